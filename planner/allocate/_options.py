"""The options of ``optimize`` and ``sweep``: one frozen record, one table of legal values, one validator.

Every option is an explicit keyword of :func:`planner.optimize` (``help(planner.optimize)`` lists
them); this module holds what each may be (:data:`OPTION_RULES`, in the manner of scikit-learn's
``_parameter_constraints``) and the cross-option rules (an option that does not apply to the problem
is an error, never silently ignored). Every option error reads the same:
``optimize: <option> must be <rule>, got <value>``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Callable

from ..quantities import parse_quantity
from .model import AllocationError, FlopModel, SixN

#: the strategies: the plan ("split") and the habits it is compared with
STRATEGIES = ("split", "no-split", "fixed", "separate")
#: pretraining share of training compute in the ``fixed`` strategy (the habitual 80 % / 20 %)
DEFAULT_FIXED_FRACTION = 0.8

__all__ = ["STRATEGIES", "DEFAULT_FIXED_FRACTION", "OptimizeOptions", "OPTION_RULES", "check_options", "check_budget", "SOLVERS", "PATHS"]

#: values of ``path``: which problem class to solve (see docs/optimizer.md, "Solver paths")
PATHS = ("auto", "gp", "dcp", "multistart")
#: values of ``solver``: "auto" (numpy KKT where it applies, else cvxpy), "numpy", "cvxpy", or a cvxpy solver name
SOLVERS = ("auto", "numpy", "cvxpy", "CLARABEL", "SCS", "ECOS", "MOSEK", "GUROBI", "CVXOPT")


@dataclass(frozen=True)
class _OneOf:
    values: tuple[Any, ...]

    def __call__(self, v: Any) -> bool:
        return any(v is x or (type(v) is type(x) and v == x) for x in self.values)

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(x) for x in self.values)


@dataclass(frozen=True)
class _Number:
    low: float
    high: float
    closed_low: bool = False
    closed_high: bool = False
    integer: bool = False
    optional: bool = False

    def __call__(self, v: Any) -> bool:
        if v is None:
            return self.optional
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (self.integer and not float(v).is_integer()):
            return False
        x = float(v)
        if not math.isfinite(x):
            return False
        lo_ok = x >= self.low if self.closed_low else x > self.low
        hi_ok = x <= self.high if self.closed_high else x < self.high
        return lo_ok and hi_ok

    def __str__(self) -> str:
        kind = "an integer" if self.integer else "a number"
        lo = "[" if self.closed_low else "("
        hi = "]" if self.closed_high else ")"
        return f"{kind} in {lo}{self.low:g}, {self.high:g}{hi}" + (" or None" if self.optional else "")


@dataclass(frozen=True)
class _Bool:
    def __call__(self, v: Any) -> bool:
        return isinstance(v, bool)

    def __str__(self) -> str:
        return "True or False"


@dataclass(frozen=True)
class _Instance:
    cls: type
    optional: bool = True
    label: str = ""

    def __call__(self, v: Any) -> bool:
        return (v is None and self.optional) or isinstance(v, self.cls)

    def __str__(self) -> str:
        return self.label or f"a {self.cls.__name__}"


#: the legal values of every option (one table, checked by :func:`check_options`)
OPTION_RULES: dict[str, Callable[[Any], bool]] = {
    "strategy": _OneOf(STRATEGIES),
    "mode": _OneOf(("min-loss", "min-compute")),
    "objective": _OneOf(("loss", "error")),
    "flops": _Instance(FlopModel, label="a FlopModel (SixN(), AttentionFlops(...)) or None"),
    "inference": _OneOf((None, "in-budget", "separate", "ignore")),
    "inference_budget": _Number(0.0, math.inf, optional=True),
    "fixed_fraction": _Number(0.0, 1.0),
    "path": _OneOf(PATHS),
    "solver": _OneOf(SOLVERS),
    "robust": _OneOf((None, "mean", "worst")),
    "uncertainty": _OneOf((None, "draws")),
    "max_draws": _Number(1, 100_000, closed_low=True, closed_high=True, integer=True, optional=True),
    "baselines": _Bool(),
    "marginal": _Bool(),
    "check": _Bool(),
    "seed": _Number(0, 2**63, closed_low=True, integer=True),
}


@dataclass(frozen=True)
class OptimizeOptions:
    """The optimizer options, checked (see :func:`planner.optimize` for their meaning)."""

    strategy: str = "split"
    mode: str = "min-loss"
    objective: str = "loss"
    flops: FlopModel | None = None
    inference: str | None = None
    inference_budget: float | None = None
    fixed_fraction: float = DEFAULT_FIXED_FRACTION
    path: str = "auto"
    solver: str = "auto"
    robust: str | None = None
    uncertainty: str | None = None
    max_draws: int | None = None
    baselines: bool = True
    marginal: bool = True
    check: bool = True
    seed: int = 0

    @property
    def flop_model(self) -> FlopModel:
        return self.flops if self.flops is not None else SixN()

    @property
    def inference_mode(self) -> str:
        """The inference accounting, resolved: "separate" when an inference budget is given, else "in-budget"."""
        if self.inference is not None:
            return self.inference
        return "separate" if self.inference_budget is not None else "in-budget"

    @property
    def cvxpy_solver(self) -> str | None:
        """The cvxpy solver name to use (None: Clarabel with fallbacks)."""
        return self.solver if self.solver not in ("auto", "numpy", "cvxpy") else None

    @property
    def numpy_allowed(self) -> bool:
        return self.solver in ("auto", "numpy")


def check_options(where: str, **values: Any) -> OptimizeOptions:
    """Check every option against :data:`OPTION_RULES` and the cross-option rules; return the record.

    Raises :class:`AllocationError` naming every bad option at once.
    """
    problems = []
    for name, value in values.items():
        rule = OPTION_RULES[name]
        if not rule(value):
            problems.append(f"{name} must be {rule}, got {value!r}")
    if problems:
        raise AllocationError(f"{where}: " + "; ".join(problems))
    known = {f.name for f in fields(OptimizeOptions)}
    opts = OptimizeOptions(**{k: (float(v) if k in ("inference_budget", "fixed_fraction") and v is not None else int(v) if k in ("seed", "max_draws") and v is not None else v)
                              for k, v in values.items() if k in known})
    # cross-option rules: an option that cannot apply is an error
    if opts.inference == "in-budget" and opts.inference_budget is not None:
        raise AllocationError(f"{where}: inference='in-budget' and inference_budget= are exclusive: the budget either includes inference or inference has its own limit")
    if opts.inference == "separate" and opts.inference_budget is None:
        raise AllocationError(f"{where}: inference='separate' needs inference_budget= (the FLOPs limit of inference); without it inference would be silently ignored (say inference='ignore')")
    if opts.inference == "ignore" and opts.inference_budget is not None:
        raise AllocationError(f"{where}: inference='ignore' and inference_budget= contradict each other")
    if opts.mode == "min-compute" and opts.robust is not None:
        raise AllocationError(f"{where}: robust={opts.robust!r} applies to mode='min-loss' only")
    if opts.objective == "error" and opts.mode != "min-loss":
        raise AllocationError(f"{where}: objective='error' applies to mode='min-loss' only")
    if opts.solver == "numpy" and opts.path == "multistart":
        raise AllocationError(f"{where}: solver='numpy' solves the convex paths ('gp', 'dcp'), not path='multistart'")
    return opts


def check_budget(budget: Any, where: str = "budget") -> float:
    """A budget in FLOPs: a positive finite number, or a quantity string ("1e21 FLOPs", "3e22").

    The one budget check (``optimize``, and every budget of ``sweep``). A bool is not a budget.
    """
    if isinstance(budget, bool) or budget is None:
        raise AllocationError(f"{where} must be a number of FLOPs, got {budget!r}")
    if isinstance(budget, str):
        try:
            return parse_quantity(budget, "flops")
        except ValueError as exc:
            raise AllocationError(f"{where}: {exc}") from None
    try:
        value = float(budget)
    except (TypeError, ValueError):
        raise AllocationError(f"{where} must be a number of FLOPs, got {budget!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise AllocationError(f"{where} must be a positive finite number of FLOPs, got {budget!r}")
    return value
