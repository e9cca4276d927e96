"""Functional forms of scaling laws, declared as data.

A :class:`Form` is a description of a law, not a fitted law: its parameters
(:class:`Param`: name, bounds, unit, whether it is per domain, whether it enters
linearly), a vectorised ``predict`` over the run variables, optionally its
analytic gradient, and what the optimizer needs to treat it exactly
(a posynomial expansion for geometric programming, or a cvxpy expression that is
convex in the token variables for a fixed model size).

Conventions
-----------
Run variables (numpy arrays of equal length, see :class:`Inputs`):

* ``model_size``      N, parameters
* ``pretrain_tokens`` D, general pretraining tokens
* ``spec_tokens``     D', continued-pretraining (specialization) tokens
* ``unique_tokens``   U, unique tokens available for pretraining (inf where unknown)
* ``loss``            the loss, for laws that map a loss to something else
                      (downstream error laws)

Parameter values passed to ``predict`` and ``gradient`` are a mapping
``name -> float or ndarray``; per-domain parameters arrive already expanded to
one value per row (the fitter does ``values[domain_index]``), so the formula
reads exactly like the equation and numpy broadcasting does the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

__all__ = ["Param", "Inputs", "Monomial", "Form", "CallableForm"]


@dataclass(frozen=True)
class Param:
    """One parameter of a form, declared as data (lmfit style).

    Attributes
    ----------
    name: symbol used in the equation (``E``, ``alpha``, ...).
    lower, upper: bounds on the value (not on its logarithm).
    unit: physical unit, for reports ("nats/token", "tokens", "" for dimensionless).
    per_domain: one value per evaluation domain (named ``B[code]`` once fitted)
        unless tied across domains at fit time.
    linear: the prediction is linear in this parameter, so variable projection
        can solve it by non-negative least squares for given nonlinear values.
    positive: fitted in log space (strictly positive value).
    start: default starting value.
    grid: starting values tried by the multi-start for a nonlinear parameter.
    needs_spec: only identified by runs with specialization tokens; a domain
        with no such rows gets this parameter fixed at ``absent_value`` (default
        ``start``) and a note.
    description: one line for ``planner forms`` and reports.
    zero_ok: a given value of exactly 0 is meaningful although below ``lower`` (e.g. the
        token offset ``D0 = 0`` that makes the additive law a posynomial). Linear parameters
        (amplitudes) always admit 0: their term vanishes.
    """

    name: str
    lower: float
    upper: float
    unit: str = ""
    per_domain: bool = False
    linear: bool = False
    positive: bool = True
    start: float = 1.0
    grid: tuple[float, ...] = ()
    needs_spec: bool = False
    absent_value: float | None = None
    description: str = ""
    zero_ok: bool = False

    def __post_init__(self) -> None:
        if not self.lower < self.upper:
            raise ValueError(f"parameter {self.name!r}: lower bound {self.lower} must be below upper {self.upper}")
        if self.positive and self.lower <= 0:
            raise ValueError(f"parameter {self.name!r} is positive (fitted in log space) but its lower bound is {self.lower}")
        if not self.lower <= self.start <= self.upper:
            raise ValueError(f"parameter {self.name!r}: start {self.start} outside [{self.lower}, {self.upper}]")

    def check_value(self, value: float, bounds: tuple[float, float] | None = None) -> str | None:
        """Why ``value`` is not a legal given value of this parameter, or None when it is.

        Legal: finite and inside ``[lower, upper]`` (or ``bounds``, a fit's override), up to a
        relative 1e-9 for values stored at a bound; 0 where :attr:`zero_ok` or :attr:`linear`.
        So exponents are > 0 and amplitudes >= 0 for every built-in form.
        """
        lower, upper = (self.lower, self.upper) if bounds is None else (float(bounds[0]), float(bounds[1]))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, not {type(value).__name__}"
        if not math.isfinite(value):
            return f"must be finite, not {value!r}"
        if value == 0 and (self.zero_ok or self.linear) and lower >= 0:
            return None
        slack_lo = 1e-9 * abs(lower)
        slack_hi = 1e-9 * abs(upper)
        if lower - slack_lo <= value <= upper + slack_hi:
            return None
        kind = ""
        if self.positive and value <= 0:
            kind = " (an exponent or scale must be > 0)" if not self.linear else " (an amplitude must be >= 0)"
        return f"= {value:g} is outside the form's range [{lower:g}, {upper:g}]{kind}"


@dataclass(frozen=True)
class Inputs:
    """Run variables for one prediction, as float arrays of one length."""

    model_size: np.ndarray
    pretrain_tokens: np.ndarray
    spec_tokens: np.ndarray
    unique_tokens: np.ndarray
    loss: np.ndarray

    @classmethod
    def build(
        cls,
        n: int | None = None,
        *,
        model_size: Any = None,
        pretrain_tokens: Any = None,
        spec_tokens: Any = None,
        unique_tokens: Any = None,
        loss: Any = None,
    ) -> "Inputs":
        given = {
            "model_size": model_size,
            "pretrain_tokens": pretrain_tokens,
            "spec_tokens": spec_tokens,
            "unique_tokens": unique_tokens,
            "loss": loss,
        }
        arrays = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in given.items() if v is not None}
        if n is None:
            n = int(np.broadcast_shapes(*(a.shape for a in arrays.values()))[0]) if arrays else 1
        defaults = {"model_size": np.nan, "pretrain_tokens": np.nan, "spec_tokens": 0.0, "unique_tokens": np.inf, "loss": np.nan}
        out = {}
        for k, default in defaults.items():
            out[k] = np.broadcast_to(arrays[k], (n,)).astype(float) if k in arrays else np.full(n, default)
        return cls(**out)

    def __len__(self) -> int:
        return int(self.model_size.shape[0])

    def subset(self, index: np.ndarray) -> "Inputs":
        return Inputs(**{k: getattr(self, k)[index] for k in ("model_size", "pretrain_tokens", "spec_tokens", "unique_tokens", "loss")})


@dataclass(frozen=True)
class Monomial:
    """coefficient * N^model_size_exp * D^pretrain_exp * D'^spec_exp (tokens and parameters in raw units)."""

    coefficient: float
    model_size_exp: float = 0.0
    pretrain_exp: float = 0.0
    spec_exp: float = 0.0

    def __call__(self, model_size: Any, pretrain_tokens: Any, spec_tokens: Any) -> Any:
        out = self.coefficient
        if self.model_size_exp:
            out = out * np.power(model_size, self.model_size_exp)
        if self.pretrain_exp:
            out = out * np.power(pretrain_tokens, self.pretrain_exp)
        if self.spec_exp:
            out = out * np.power(spec_tokens, self.spec_exp)
        return out


class Form:
    """A family of scaling laws.

    Subclasses set the class attributes and implement :meth:`predict`; they may
    implement :meth:`gradient` (analytic derivatives of the prediction with
    respect to each parameter, per row), :meth:`monomials` (posynomial expansion
    for one domain) and :meth:`cvxpy_loss` (an expression convex in the token
    variables for fixed model size).
    """

    name: str = ""
    equation: str = ""
    description: str = ""
    params: tuple[Param, ...] = ()
    #: columns of the run table the form reads (besides the target)
    inputs: tuple[str, ...] = ("model_size", "pretrain_tokens")
    #: column the form predicts
    target: str = "loss"
    #: rows measuring forgetting (specialized on another domain) are used
    uses_cross_domain: bool = False
    #: the law has a spec-token (D') dependence: the allocator can specialize with it
    has_spec: bool = False
    #: families this form belongs to in ``form="auto"`` ranking
    kind: str = "loss"

    # ------------------------------------------------------------------ maths
    def predict(self, p: Mapping[str, Any], x: Inputs) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def gradient(self, p: Mapping[str, Any], x: Inputs) -> dict[str, np.ndarray] | None:
        """d predict / d parameter, one array per parameter (per row). None: use finite differences."""
        return None

    def monomials(self, p: Mapping[str, float]) -> list[Monomial] | None:
        """Posynomial expansion for scalar (one domain's) parameters, or None if the law is not one."""
        return None

    def cvxpy_loss(self, p: Mapping[str, float], model_size: float, pretrain_tokens: Any, spec_tokens: Any, token_scale: float = 1.0) -> Any:
        """cvxpy expression of the loss, convex in (pretrain_tokens, spec_tokens) for fixed model size.

        ``pretrain_tokens`` and ``spec_tokens`` are cvxpy expressions in units of
        ``token_scale`` tokens (e.g. 1e9: billions). None when not available.
        The default builds it from :meth:`monomials` when the law is a posynomial.
        Use ``cp.power(x, p, approx=False)``: cvxpy's default rational approximation of an
        exponent such as -0.28 moved a Chinchilla token optimum by ~0.2 % in the objective.
        """
        monos = self.monomials(p)
        if monos is None:
            return None
        import cvxpy as cp

        expr = 0.0
        for m in monos:
            coef = m.coefficient * model_size ** m.model_size_exp * token_scale ** (m.pretrain_exp + m.spec_exp)
            term: Any = coef
            if m.pretrain_exp:
                term = term * cp.power(pretrain_tokens, m.pretrain_exp, approx=False)
            if m.spec_exp:
                term = term * cp.power(spec_tokens, m.spec_exp, approx=False)
            expr = expr + term
        return expr

    def convex_in_tokens(self, p: Mapping[str, float]) -> bool:
        """Whether :meth:`cvxpy_loss` is DCP-convex for these parameter values."""
        monos = self.monomials(p)
        if monos is None:
            return False
        # a monomial in one token variable is convex for a negative exponent (or none);
        # a product of two token powers is not DCP
        return all(
            m.pretrain_exp <= 0 and m.spec_exp <= 0 and not (m.pretrain_exp and m.spec_exp) for m in monos
        )

    # --------------------------------------------------------------- helpers
    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(q.name for q in self.params)

    def param(self, name: str) -> Param:
        for q in self.params:
            if q.name == name:
                return q
        raise KeyError(f"form {self.name!r} has no parameter {name!r}; it has {', '.join(self.param_names)}")

    @property
    def posynomial(self) -> bool:
        """True when every admissible parameter value gives a posynomial (checked at the defaults)."""
        return self.monomials({q.name: q.start for q in self.params}) is not None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "equation": self.equation,
            "description": self.description,
            "inputs": list(self.inputs),
            "target": self.target,
            "posynomial": self.posynomial,
            "params": [
                {
                    "name": q.name,
                    "lower": q.lower,
                    "upper": q.upper,
                    "unit": q.unit,
                    "per_domain": q.per_domain,
                    "linear": q.linear,
                    "description": q.description,
                }
                for q in self.params
            ],
        }

    def __repr__(self) -> str:
        return f"<Form {self.name}: {self.equation}>"


class CallableForm(Form):
    """A user's form built from a plain Python callable.

    ``func(x, **params)`` receives :class:`Inputs` ``x`` and keyword parameters
    (arrays per row for per-domain parameters) and returns predictions. Optional
    ``grad(x, **params) -> dict`` gives analytic derivatives; without it the
    fitter uses finite differences.
    """

    def __init__(
        self,
        name: str,
        func: Callable[..., Any],
        params: Sequence[Param],
        *,
        equation: str = "",
        description: str = "",
        inputs: Sequence[str] = ("model_size", "pretrain_tokens"),
        target: str = "loss",
        grad: Callable[..., Mapping[str, Any]] | None = None,
        monomials: Callable[..., Any] | None = None,
        has_spec: bool | None = None,
        uses_cross_domain: bool = False,
    ) -> None:
        self.name = name
        self.func = func
        self.params = tuple(params)
        self.equation = equation or f"{name}(...)"
        self.description = description
        self.inputs = tuple(inputs)
        self.target = target
        self._grad = grad
        self._monomials = monomials
        self.has_spec = "spec_tokens" in self.inputs if has_spec is None else has_spec
        self.uses_cross_domain = uses_cross_domain

    def predict(self, p: Mapping[str, Any], x: Inputs) -> np.ndarray:
        return np.asarray(self.func(x, **p), dtype=float)

    def gradient(self, p: Mapping[str, Any], x: Inputs) -> dict[str, np.ndarray] | None:
        if self._grad is None:
            return None
        return {k: np.asarray(v, dtype=float) for k, v in self._grad(x, **p).items()}

    def monomials(self, p: Mapping[str, float]) -> list[Monomial] | None:
        if self._monomials is None:
            return None
        return list(self._monomials(**p))


def log_grid(lo: float, hi: float, n: int) -> tuple[float, ...]:
    """n log-spaced values in [lo, hi]."""
    return tuple(float(v) for v in np.geomspace(lo, hi, n))


def safe_log(x: np.ndarray) -> np.ndarray:
    """log with log(0) = 0, for derivative terms multiplied by x**p where x = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(np.where(x > 0, x, 1.0))
    return out

