"""Inputs and results of the allocator, as frozen dataclasses.

Inputs: :class:`Domain` (one specialization target), :class:`Constraints`
(limits that bind in practice) and the FLOPs-per-token models :class:`SixN` and
:class:`AttentionFlops`.

Results: :class:`Allocation` (the plan), :class:`DomainPlan` (one branch),
:class:`Baseline` (a habitual strategy with its compute multiplier),
:class:`ConstraintRecord` (is a constraint binding, and by how much not) and
:class:`AllocationWarning` (a problem worth a reader's attention, as data).

Units everywhere: model size N in parameters, tokens in tokens (not billions),
compute in FLOPs, losses in nats/token.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .._records import Note, json_number as _num, to_jsonable as _jsonable

__all__ = [
    "AllocationError",
    "AllocationWarning",
    "Domain",
    "Constraints",
    "FlopModel",
    "SixN",
    "AttentionFlops",
    "ConstraintRecord",
    "DomainPlan",
    "Baseline",
    "Allocation",
    "ALLOCATION_SCHEMA",
    "PLAN_STATUSES",
    "PLAN_PRESENT",
]

from ..constants import ALLOCATION_SCHEMA, SOLUTION_PRESENT
from ..errors import PlannerError
from ..quantities import parse_quantity


#: every status a plan can have (docs/optimizer.md, "Statuses"): "optimal" (an optimum to the solver's
#: tolerance, re-checked with the law); "optimal_inaccurate" (the conic solver flagged its own answer
#: as inaccurate); "inaccurate" (the law's prediction and the solver's objective disagree beyond
#: tolerance, or a target is missed at the plan); "limit" (the plan sits at an internal limit of the
#: solver, e.g. N = 1e16: not an optimum); "infeasible" (no plan meets the constraints; the message
#: names them); "failed" (the solver failed).
PLAN_STATUSES = ("optimal", "optimal_inaccurate", "inaccurate", "limit", "infeasible", "failed")
#: statuses that come with a plan (a point that meets the constraints); only "optimal" is an optimum
PLAN_PRESENT = ("optimal", "optimal_inaccurate", "inaccurate", "limit")


class AllocationError(PlannerError):
    """Bad input to the allocator (unknown domain, negative budget, contradictory options).

    Infeasible but well-formed problems do not raise: they return an
    :class:`Allocation` with ``status == "infeasible"`` and a message.
    """


@dataclass(frozen=True)
class AllocationWarning(Note):
    """Something a reader of the plan should know (``code`` is stable, ``message`` is prose)."""


# --------------------------------------------------------------------------- inputs
#: the unit each quantity field expects (strings such as "5B" are parsed by planner.quantities)
_DOMAIN_UNITS = {"weight": "", "unique_tokens": "tokens", "max_epochs": "", "inference_tokens": "tokens", "target_loss": ""}
_CONSTRAINT_UNITS = {
    "min_model_size": "params", "max_model_size": "params", "max_pretrain_tokens": "tokens", "pretrain_unique_tokens": "tokens",
    "pretrain_max_epochs": "", "min_tokens_per_param": "", "max_tokens_per_param": "", "repetition_decay": "", "inference_tokens": "tokens",
}


def _quantity(value: Any, unit: str, where: str) -> Any:
    """A number from a number or a quantity string ("5B", "1.2T tokens"); None stays None; a bool is refused."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise AllocationError(f"{where} must be a number, got {value!r}")
    if isinstance(value, str):
        try:
            return parse_quantity(value, unit)
        except ValueError as exc:
            raise AllocationError(f"{where}: {exc}") from None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise AllocationError(f"{where} must be a number, got {type(value).__name__} {value!r}") from None


@dataclass(frozen=True)
class Domain:
    """One target domain: a branch of the split model, continued-pretrained on D'_k tokens.

    Attributes
    ----------
    name: domain name; must be a domain of the (per-domain) law. The name
        ``"general"`` means the base model itself (no branch, D' = 0): use it to
        weigh the general loss in the objective.
    weight: weight w_k of the domain's loss in the objective sum_k w_k L_k (>= 0).
    unique_tokens: unique tokens U_k available for specialization (None: unlimited).
    max_epochs: passes allowed over those tokens; the hard cap is
        D'_k <= U_k * max_epochs (default 1 epoch when ``unique_tokens`` is given).
        With ``repetition="effective"`` there is no cap: repeated tokens are worth
        Muennighoff's effective tokens instead.
    inference_tokens: tokens served by this branch over its lifetime; each costs
        2 N FLOPs (Sardana et al. 2024).
    target_loss: the branch must reach this loss (nats/token); in
        ``mode="min-compute"`` the plan minimises compute subject to the targets.
    downstream: optional law of a downstream form mapping loss -> error; the plan
        reports the predicted error of the branch.
    """

    name: str
    weight: float = 1.0
    unique_tokens: float | None = None
    max_epochs: float | None = None
    inference_tokens: float = 0.0
    target_loss: float | None = None
    downstream: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise AllocationError(f"a domain needs a non-empty name, got {self.name!r}")
        for attr, unit in _DOMAIN_UNITS.items():
            object.__setattr__(self, attr, _quantity(getattr(self, attr), unit, f"domain {self.name!r}: {attr}"))
        for attr in ("weight", "inference_tokens"):
            v = getattr(self, attr)
            if v is None or not math.isfinite(float(v)) or float(v) < 0:
                raise AllocationError(f"domain {self.name!r}: {attr} must be a finite number >= 0, got {v!r}")
        for attr in ("unique_tokens", "max_epochs", "target_loss"):
            v = getattr(self, attr)
            if v is not None and (not math.isfinite(float(v)) or float(v) <= 0):
                raise AllocationError(f"domain {self.name!r}: {attr} must be a positive finite number, got {v!r}")

    @property
    def token_cap(self) -> float:
        """Hard cap on D'_k in tokens: unique_tokens * max_epochs (inf when unknown)."""
        if self.unique_tokens is None:
            return math.inf
        return float(self.unique_tokens) * float(self.max_epochs if self.max_epochs is not None else 1.0)

    @classmethod
    def coerce(cls, d: "Domain | Mapping[str, Any] | str") -> "Domain":
        """A Domain from a Domain, a dict with the same keys, or a bare name."""
        if isinstance(d, Domain):
            return d
        if isinstance(d, str):
            return cls(d)
        if isinstance(d, Mapping):
            known = {f.name for f in fields(cls)}
            unknown = set(d) - known
            if unknown:
                raise AllocationError(f"domain {d.get('name', '?')!r}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
            if "name" not in d:
                raise AllocationError(f"a domain dict needs a 'name': {dict(d)!r}")
            kw = dict(d)
            if kw.get("inference_tokens") is None:
                kw.pop("inference_tokens", None)
            if kw.get("weight") is None:
                kw.pop("weight", None)
            return cls(**kw)
        raise AllocationError(f"a domain is a planner.Domain, a dict or a name, not {type(d).__name__}")


@dataclass(frozen=True)
class Constraints:
    """Limits on the plan; every field is optional (None: no limit).

    Attributes
    ----------
    min_model_size, max_model_size: bounds on N (parameters).
    model_sizes: a discrete menu of N; the plan is solved for each allowed size
        and the best is kept.
    max_pretrain_tokens: cap on general pretraining tokens D (unique tokens x epochs).
    pretrain_unique_tokens: unique general tokens U_0. With ``repetition="cap"``
        it caps D at U_0 * pretrain_max_epochs (default 1 epoch); with
        ``repetition="effective"`` the general loss sees Muennighoff's effective tokens.
    pretrain_max_epochs: passes allowed over ``pretrain_unique_tokens``.
    min_tokens_per_param, max_tokens_per_param: bounds on D / N (general tokens per parameter).
    repetition: "cap" (hard caps U x epochs) or "effective" (no cap; repeated
        tokens count as D_eff = U + U R* (1 - exp(-(D/U - 1)/R*)), R* = ``repetition_decay``).
    repetition_decay: R*_D, published 15.39 (Muennighoff et al. 2023).
    inference_tokens: tokens served by the general (unbranched) model.
    """

    min_model_size: float | None = None
    max_model_size: float | None = None
    model_sizes: tuple[float, ...] | None = None
    max_pretrain_tokens: float | None = None
    pretrain_unique_tokens: float | None = None
    pretrain_max_epochs: float | None = None
    min_tokens_per_param: float | None = None
    max_tokens_per_param: float | None = None
    repetition: str = "cap"
    repetition_decay: float = 15.39
    inference_tokens: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("repetition",):
                continue
            if f.name == "model_sizes":
                if v is not None:
                    vals = tuple(_quantity(s, "params", "constraint model_sizes") for s in (v if isinstance(v, (list, tuple, np.ndarray)) else [v]))
                    if not vals or any(not math.isfinite(s) or s <= 0 for s in vals):
                        raise AllocationError(f"model_sizes must be a non-empty list of positive sizes, got {v!r}")
                    object.__setattr__(self, "model_sizes", vals)
                continue
            if v is None:
                continue
            fv = _quantity(v, _CONSTRAINT_UNITS.get(f.name, ""), f"constraint {f.name}")
            if not math.isfinite(fv) or fv < 0 or (fv == 0 and f.name not in ("inference_tokens",)):
                raise AllocationError(f"constraint {f.name} must be a positive finite number, got {v!r}")
            object.__setattr__(self, f.name, fv)
        if self.repetition not in ("cap", "effective"):
            raise AllocationError(f"repetition must be 'cap' or 'effective', got {self.repetition!r}")
        if self.min_model_size is not None and self.max_model_size is not None and self.min_model_size > self.max_model_size:
            raise AllocationError(f"min_model_size {self.min_model_size:.4g} is above max_model_size {self.max_model_size:.4g}")
        if self.min_tokens_per_param is not None and self.max_tokens_per_param is not None and self.min_tokens_per_param > self.max_tokens_per_param:
            raise AllocationError(f"min_tokens_per_param {self.min_tokens_per_param:.4g} is above max_tokens_per_param {self.max_tokens_per_param:.4g}")

    @classmethod
    def field_names(cls) -> frozenset[str]:
        """The names of the constraint fields (also accepted as keywords of ``optimize``)."""
        return frozenset(f.name for f in fields(cls))

    @property
    def pretrain_token_cap(self) -> float:
        """Hard cap on D: min(max_pretrain_tokens, U_0 x epochs when repetition="cap")."""
        cap = math.inf if self.max_pretrain_tokens is None else self.max_pretrain_tokens
        if self.pretrain_unique_tokens is not None and self.repetition == "cap":
            cap = min(cap, self.pretrain_unique_tokens * (self.pretrain_max_epochs or 1.0))
        return cap

    @classmethod
    def coerce(cls, c: "Constraints | Mapping[str, Any] | None", **extra: Any) -> "Constraints":
        base: dict[str, Any] = {}
        if isinstance(c, Constraints):
            base = {f.name: getattr(c, f.name) for f in fields(cls)}
        elif isinstance(c, Mapping):
            base = dict(c)
        elif c is not None:
            raise AllocationError(f"constraints must be a planner.Constraints or a dict, not {type(c).__name__}")
        base.update({k: v for k, v in extra.items()})
        known = {f.name for f in fields(cls)}
        unknown = set(base) - known
        if unknown:
            raise AllocationError(f"unknown constraints {sorted(unknown)}; known: {sorted(known)}")
        base = {k: v for k, v in base.items() if v is not None or k in ("model_sizes",)}
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out


# ----------------------------------------------------------------------- FLOP models
class FlopModel:
    r"""Training FLOPs per token as a posynomial in N: sum_j c_j N^{e_j}.

    Subclasses return the terms; the allocator multiplies by the tokens
    (D + sum_k D'_k), which keeps the budget a posynomial (a geometric program).
    """

    def terms(self) -> tuple[tuple[float, float], ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def per_token(self, model_size: Any) -> Any:
        """Training FLOPs per token (forward + backward) for a model of ``model_size`` parameters."""
        n = np.asarray(model_size, dtype=float)
        return sum(c * n ** e for c, e in self.terms())

    def describe(self) -> str:
        return " + ".join(f"{c:.4g}*N^{e:g}" if e else f"{c:.4g}" for c, e in self.terms()) + " FLOPs/token"


@dataclass(frozen=True)
class SixN(FlopModel):
    """C = 6 N per training token (forward 2N, backward 4N; Kaplan et al. 2020, Hoffmann et al. 2022)."""

    def terms(self) -> tuple[tuple[float, float], ...]:
        return ((6.0, 1.0),)

    def to_dict(self) -> dict[str, Any]:
        return {"model": "6N"}


@dataclass(frozen=True)
class AttentionFlops(FlopModel):
    r"""6 N + 6 n_layers n_ctx d_model FLOPs per training token.

    Kaplan et al. (2020, Table 1) count a forward pass as 2 N + 2 n_layer n_ctx d_attn
    FLOPs per token (the second term is the attention scores QK^T and the weighted
    sum over the context); the backward pass costs twice the forward, so training
    costs 3x: 6 N + 6 n_layer n_ctx d_model (with d_attn = d_model). Chinchilla
    (Hoffmann et al. 2022, Appendix F) counts the same terms in more detail.

    ``scale_with_model_size=False`` (default): the architecture is the given one,
    so the attention term is a constant per token, 6 n_layers n_ctx d_model
    (accurate for model sizes near 12 n_layers d_model^2).
    ``scale_with_model_size=True``: keep the aspect ratio r = d_model / n_layers of
    the given architecture as N changes. With N = 12 n_layers d_model^2 = 12 d^3 / r,
    d = (r N / 12)^(1/3) and the attention term is 6 n_ctx d^2 / r
    = 6 n_ctx r^(-1) (r N / 12)^(2/3): a monomial in N, so still a geometric program.
    """

    n_layers: int
    d_model: int
    context: int
    scale_with_model_size: bool = False

    def __post_init__(self) -> None:
        for attr in ("n_layers", "d_model", "context"):
            if getattr(self, attr) is None or getattr(self, attr) <= 0:
                raise AllocationError(f"AttentionFlops: {attr} must be positive, got {getattr(self, attr)!r}")

    def terms(self) -> tuple[tuple[float, float], ...]:
        if not self.scale_with_model_size:
            return ((6.0, 1.0), (6.0 * self.n_layers * self.context * self.d_model, 0.0))
        r = self.d_model / self.n_layers
        return ((6.0, 1.0), (6.0 * self.context / r * (r / 12.0) ** (2.0 / 3.0), 2.0 / 3.0))

    def to_dict(self) -> dict[str, Any]:
        return {"model": "attention", "n_layers": self.n_layers, "d_model": self.d_model, "context": self.context, "scale_with_model_size": self.scale_with_model_size}


def flop_model_from_dict(d: Mapping[str, Any] | None) -> FlopModel:
    if not d or d.get("model") == "6N":
        return SixN()
    if d.get("model") == "attention":
        return AttentionFlops(int(d["n_layers"]), int(d["d_model"]), int(d["context"]), bool(d.get("scale_with_model_size", False)))
    raise AllocationError(f"unknown FLOP model {d!r}")


# ---------------------------------------------------------------------------- results
def _unnum(v: Any, default: float = math.nan) -> float:
    return default if v is None else float(v)


@dataclass(frozen=True)
class ConstraintRecord:
    """One constraint of the plan: its value, its limit, and whether it binds.

    ``slack`` is relative: (limit - value) / |limit| for an upper limit,
    (value - limit) / |limit| for a lower one; ``binding`` when slack <= 1e-4
    (or the constraint's dual is positive).
    """

    name: str
    kind: str  # "upper" or "lower"
    value: float
    limit: float
    binding: bool
    slack: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "value": _num(self.value), "limit": _num(self.limit), "binding": bool(self.binding), "slack": _num(self.slack)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ConstraintRecord":
        return cls(d["name"], d["kind"], _unnum(d.get("value")), _unnum(d.get("limit")), bool(d["binding"]), _unnum(d.get("slack")))


@dataclass(frozen=True)
class DomainPlan:
    """The plan for one domain's branch.

    spec_tokens: D'_k in tokens (0 when not specialized); loss: predicted L_k
    (nats/token); loss_interval: (low, high): the calibrated extrapolation interval when
    the law was fitted with ``calibrate=True``, else the percentile interval over its
    bootstrap draws (None without either; ``interval_kind`` says which); error: predicted downstream error (None without a downstream
    law); specialize: the branch gets continued pretraining; flops: training FLOPs
    of the branch (per-token cost x D'_k); inference_flops: 2 N I_k.
    """

    name: str
    weight: float
    spec_tokens: float
    loss: float
    loss_interval: tuple[float, float] | None = None
    error: float | None = None
    specialize: bool = False
    flops: float = 0.0
    inference_flops: float = 0.0
    target_loss: float | None = None
    note: str = ""
    interval_kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "weight": _num(self.weight), "spec_tokens": _num(self.spec_tokens), "loss": _num(self.loss),
            "loss_interval": None if self.loss_interval is None else [_num(self.loss_interval[0]), _num(self.loss_interval[1])],
            "interval_kind": self.interval_kind,
            "error": _num(self.error), "specialize": bool(self.specialize), "flops": _num(self.flops),
            "inference_flops": _num(self.inference_flops), "target_loss": _num(self.target_loss), "note": self.note,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DomainPlan":
        iv = d.get("loss_interval")
        return cls(
            d["name"], _unnum(d.get("weight"), 1.0), _unnum(d.get("spec_tokens"), 0.0), _unnum(d.get("loss")),
            None if iv is None else (_unnum(iv[0]), _unnum(iv[1])), None if d.get("error") is None else float(d["error"]),
            bool(d.get("specialize", False)), _unnum(d.get("flops"), 0.0), _unnum(d.get("inference_flops"), 0.0),
            None if d.get("target_loss") is None else float(d["target_loss"]), d.get("note", ""), d.get("interval_kind"),
        )


@dataclass(frozen=True)
class Baseline:
    """A habitual strategy evaluated at the same budget, optimised within its own rules.

    compute_multiplier: m such that this strategy with m x budget matches the
    recommended plan's objective (inf when no budget up to the search limit
    reaches it; m < 1 when the baseline is better). In ``mode="min-compute"`` it
    is the baseline's compute divided by the plan's.
    model_size: one size, or per domain for ``separate``.
    """

    strategy: str
    objective: float
    compute_multiplier: float
    model_size: float | dict[str, float] | None
    pretrain_tokens: float | dict[str, float] | None
    spec_tokens: dict[str, float]
    status: str = "optimal"
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        def conv(v: Any) -> Any:
            return {k: _num(x) for k, x in v.items()} if isinstance(v, Mapping) else _num(v)

        return {
            "strategy": self.strategy, "objective": _num(self.objective), "compute_multiplier": _num(self.compute_multiplier),
            "model_size": conv(self.model_size), "pretrain_tokens": conv(self.pretrain_tokens),
            "spec_tokens": conv(self.spec_tokens), "status": self.status, "note": self.note,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Baseline":
        def conv(v: Any) -> Any:
            if isinstance(v, Mapping):
                return {k: _unnum(x) for k, x in v.items()}
            return None if v is None else float(v)

        return cls(
            d["strategy"], _unnum(d.get("objective")), _unnum(d.get("compute_multiplier"), math.inf), conv(d.get("model_size")),
            conv(d.get("pretrain_tokens")), {k: _unnum(v) for k, v in (d.get("spec_tokens") or {}).items()},
            d.get("status", "optimal"), d.get("note", ""),
        )


@dataclass(frozen=True)
class Allocation:
    r"""A recommended plan: model size, general and per-domain tokens, and the evidence for it.

    Attributes
    ----------
    budget: training (+ inference when in budget) FLOPs allowed; in
        ``mode="min-compute"`` the compute the plan needs.
    model_size: N (parameters) of the shared base model.
    pretrain_tokens: D, general pretraining tokens.
    spec_tokens: domain -> D'_k (tokens; 0 for a domain not worth specializing).
    objective: sum_k w_k L_k (nats/token, weighted), re-evaluated with the law's own
        ``predict``; in ``mode="min-compute"`` the FLOPs. For ``robust="mean"``/``"worst"``
        the mean / worst case over the bootstrap draws.
    certified: the optimum is global by convexity (geometric program solved to
        optimality and checked); False for the N-search and multi-start paths.
    path: "gp", "dcp+search", "multistart" (with "+menu" when a size menu was searched).
    status: one of ``PLAN_STATUSES``: "optimal", "optimal_inaccurate", "inaccurate", "limit",
        "infeasible" or "failed" (only "optimal" is an optimum; see :attr:`optimal`).
    message: one line of explanation (for infeasible plans: the conflicting constraints).
    domains: one :class:`DomainPlan` per domain (empty for plain pretraining).
    flops: FLOPs per phase: pretrain, specialization (sum), inference, training, total, and by_domain.
    pretrain_fraction: pretraining FLOPs / training FLOPs.
    binding: :class:`ConstraintRecord` per constraint.
    marginal_value: d objective / d log(budget) (negative: more compute lowers the loss),
        from the budget constraint's dual (envelope theorem) or a finite difference.
    baselines: :class:`Baseline` per other strategy.
    warnings: :class:`AllocationWarning` records.
    draw_summary: distribution of the plan over bootstrap draws (``uncertainty="draws"``)
        or of the objective over the draws for robust plans; None otherwise.
    strategy, mode: what was optimised. general_loss: the base model's predicted
        general loss when the law has one. check: the independent re-evaluation.
    """

    budget: float
    model_size: float
    pretrain_tokens: float
    spec_tokens: dict[str, float]
    objective: float
    certified: bool
    path: str
    status: str
    message: str
    domains: tuple[DomainPlan, ...] = ()
    flops: dict[str, Any] = field(default_factory=dict)
    pretrain_fraction: float = math.nan
    binding: tuple[ConstraintRecord, ...] = ()
    marginal_value: float | None = None
    baselines: tuple[Baseline, ...] = ()
    warnings: tuple[AllocationWarning, ...] = ()
    draw_summary: dict[str, Any] | None = None
    strategy: str = "split"
    mode: str = "min-loss"
    general_loss: float | None = None
    check: dict[str, Any] = field(default_factory=dict)
    flop_model: dict[str, Any] = field(default_factory=lambda: {"model": "6N"})
    constraints: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ access
    @property
    def feasible(self) -> bool:
        """A plan is present (it meets the constraints); see :attr:`optimal` for whether it is an optimum."""
        return self.status in PLAN_PRESENT

    @property
    def optimal(self) -> bool:
        """The plan is an optimum to the solver's tolerance, confirmed by the law's own prediction
        (status "optimal"). Every other status is not: exit non-zero in pipelines."""
        return self.status == "optimal"

    @property
    def training_flops(self) -> float:
        return float(self.flops.get("training", math.nan))

    def domain(self, name: str) -> DomainPlan:
        for d in self.domains:
            if d.name == name:
                return d
        raise KeyError(f"no domain {name!r} in this plan; domains: {', '.join(d.name for d in self.domains)}")

    def baseline(self, strategy: str) -> Baseline:
        for b in self.baselines:
            if b.strategy == strategy:
                return b
        raise KeyError(f"no baseline {strategy!r}; baselines: {', '.join(b.strategy for b in self.baselines)}")

    @property
    def binding_constraints(self) -> list[str]:
        return [r.name for r in self.binding if r.binding]

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (inf and nan become null)."""
        return {
            "schema": ALLOCATION_SCHEMA,
            "budget": _num(self.budget),
            "model_size": _num(self.model_size),
            "pretrain_tokens": _num(self.pretrain_tokens),
            "spec_tokens": {k: _num(v) for k, v in self.spec_tokens.items()},
            "objective": _num(self.objective),
            "certified": bool(self.certified),
            "path": self.path,
            "status": self.status,
            "message": self.message,
            "strategy": self.strategy,
            "mode": self.mode,
            "domains": [d.to_dict() for d in self.domains],
            "flops": _jsonable(self.flops),
            "pretrain_fraction": _num(self.pretrain_fraction),
            "binding": [r.to_dict() for r in self.binding],
            "marginal_value": _num(self.marginal_value),
            "baselines": [b.to_dict() for b in self.baselines],
            "warnings": [w.to_dict() for w in self.warnings],
            "draw_summary": _jsonable(self.draw_summary) if self.draw_summary is not None else None,
            "general_loss": _num(self.general_loss),
            "check": _jsonable(self.check),
            "flop_model": _jsonable(self.flop_model),
            "constraints": _jsonable(self.constraints),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Allocation":
        """Rebuild from :meth:`to_dict` output (e.g. to re-render a report from JSON)."""
        for key in ("budget", "model_size", "pretrain_tokens", "objective", "certified", "domains"):
            if key not in d:
                raise AllocationError(f"not an allocation dict: missing key {key!r}")
        domains = tuple(DomainPlan.from_dict(x) for x in d.get("domains") or [])
        spec = d.get("spec_tokens")
        spec_tokens = {k: _unnum(v) for k, v in spec.items()} if spec is not None else {p.name: p.spec_tokens for p in domains}
        return cls(
            budget=_unnum(d.get("budget")),
            model_size=_unnum(d.get("model_size")),
            pretrain_tokens=_unnum(d.get("pretrain_tokens")),
            spec_tokens=spec_tokens,
            objective=_unnum(d.get("objective")),
            certified=bool(d.get("certified")),
            path=d.get("path", ""),
            status=d.get("status", ""),
            message=d.get("message", ""),
            domains=domains,
            flops=dict(d.get("flops") or {}),
            pretrain_fraction=_unnum(d.get("pretrain_fraction")),
            binding=tuple(ConstraintRecord.from_dict(x) for x in d.get("binding") or []),
            marginal_value=None if d.get("marginal_value") is None else float(d["marginal_value"]),
            baselines=tuple(Baseline.from_dict(x) for x in d.get("baselines") or []),
            warnings=tuple(AllocationWarning(w["code"], w["message"]) for w in d.get("warnings") or []),
            draw_summary=d.get("draw_summary"),
            strategy=d.get("strategy", "split"),
            mode=d.get("mode", "min-loss"),
            general_loss=None if d.get("general_loss") is None else float(d["general_loss"]),
            check=dict(d.get("check") or {}),
            flop_model=dict(d.get("flop_model") or {"model": "6N"}),
            constraints=dict(d.get("constraints") or {}),
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per phase: pretraining, each domain's specialization, inference (when any)."""
        fpt = self.flops.get("per_token", math.nan)
        rows = [{
            "phase": "pretrain", "domain": "general", "model_size": self.model_size, "tokens": self.pretrain_tokens,
            "flops": self.flops.get("pretrain", math.nan), "loss": self.general_loss if self.general_loss is not None else math.nan,
            "loss_low": math.nan, "loss_high": math.nan, "error": math.nan, "weight": math.nan, "specialize": False,
        }]
        for p in self.domains:
            lo, hi = p.loss_interval if p.loss_interval is not None else (math.nan, math.nan)
            rows.append({
                "phase": "specialize", "domain": p.name, "model_size": self.model_size, "tokens": p.spec_tokens,
                "flops": p.flops, "loss": p.loss, "loss_low": lo, "loss_high": hi,
                "error": math.nan if p.error is None else p.error, "weight": p.weight, "specialize": p.specialize,
            })
        inf = self.flops.get("inference", 0.0) or 0.0
        if inf:
            rows.append({
                "phase": "inference", "domain": "all", "model_size": self.model_size, "tokens": inf / (2 * self.model_size),
                "flops": inf, "loss": math.nan, "loss_low": math.nan, "loss_high": math.nan, "error": math.nan,
                "weight": math.nan, "specialize": False,
            })
        df = pd.DataFrame(rows)
        df.attrs["flops_per_token"] = fpt
        return df

    def summary(self, multiplier: Callable[[float], str] | None = None) -> str:
        """A few lines of text: the plan, the domains, the baselines (no I/O). ``multiplier`` formats a
        baseline's compute multiplier (default: three decimals; a scenario marks the ones beyond the fitted range)."""
        if not self.feasible:
            return f"status: {self.status}: {self.message}"
        lines = [
            f"budget {self.budget:.4g} FLOPs -> N = {self.model_size:.4g} params, D = {self.pretrain_tokens:.4g} tokens "
            f"({100 * self.pretrain_fraction:.1f}% of training compute in pretraining)",
            f"objective {self.objective:.6g}  path {self.path}  certified {self.certified}  status {self.status}",
        ]
        for p in self.domains:
            lines.append(f"  {p.name:<12} D' = {p.spec_tokens:.4g}  loss {p.loss:.5g}" + ("" if p.specialize else "  (not worth specializing)"))
        for b in self.baselines:
            m = b.compute_multiplier
            text = multiplier(m) if multiplier is not None else ("inf" if not math.isfinite(m) else f"{m:.3f}")
            lines.append(f"  vs {b.strategy:<9} objective {b.objective:.6g}  compute multiplier {text}")
        return "\n".join(lines)
