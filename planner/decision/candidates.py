r"""Candidate laws, the feasible set of plans, and a plan evaluated under any law.

A *candidate* is one fitted law form with a weight (its share of belief: e.g. the
ensemble's stacking weight). A *scenario* is one parameter vector of one candidate:
its point estimate, or one bootstrap draw; scenario s of candidate i carries the
probability p_s = w_i / B_i (B_i draws used) or w_i (no draws).

A *plan* x = (N_k, D_k, D'_k) for every domain k (N_k = N and D_k = D for a split
plan; per domain for one separate model per domain). Its objective under scenario s

    f_s(x) = sum_k w_k L_k^s(N_k, D_k, D'_k)                       (nats/token, weighted)

is what ``planner.optimize`` minimises; the feasible set does not depend on the law
(budget, size and token caps), so a plan chosen under one law can be evaluated under
any other. The optimum under s, f_s^*, is needed for regret: it comes from solving
each scenario (``planner.optimize`` for the point estimates; a warm-started local
solve or ``planner.optimize`` for the draws) and is then lowered to the best value of
*any* plan evaluated under s ("best known"), so that no regret is ever negative.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from scipy.optimize import minimize

from .._parallel import parallel_map
from .._records import json_number as _num
from ..errors import PlannerError, PlannerWarning
from ..fitting.law import FittedLaw
from ..laws.base import Inputs
from ..laws.repetition import effective_tokens
from ..allocate import Allocation, Constraints, Domain, FlopModel, SixN, optimize
from ..allocate.checks import fitted_compute  # the one extrapolation reference (largest fitted 6 N (D + D'))
from ..allocate.gradients import analytic_log_gradient, loss_log_gradients

__all__ = [
    "DecisionError", "Candidate", "as_candidates", "Setting", "Plan", "ScenarioSet", "evaluate_plan",
    "plans_per_form", "scenario_plans", "fitted_compute", "SPEC_FLOOR",
]

#: smallest specialization the local solver represents (tokens); a branch at the floor is compared with D' = 0
SPEC_FLOOR = 1e3
_S = 1e9  # tokens and parameters in billions inside the local solver


class DecisionError(PlannerError):
    """Bad input to the decision analysis (no candidate with weight, unsupported constraint, ...)."""


# ----------------------------------------------------------------------------- candidates
@dataclass(frozen=True)
class Candidate:
    """One candidate law: a name (usually the form's), the fitted law and its weight (>= 0)."""

    name: str
    law: FittedLaw
    weight: float

    def __post_init__(self) -> None:
        if not isinstance(self.law, FittedLaw):
            raise DecisionError(f"candidate {self.name!r}: expected a FittedLaw, got {type(self.law).__name__}")
        w = float(self.weight)
        if not math.isfinite(w) or w < 0:
            raise DecisionError(f"candidate {self.name!r}: weight must be a finite number >= 0, got {self.weight!r}")
        object.__setattr__(self, "weight", w)


def as_candidates(obj: Any, *, min_weight: float = 0.01) -> tuple[Candidate, ...]:
    """Normalise candidates and keep those with real weight (>= ``min_weight`` after normalising).

    Accepts a sequence of ``(name, FittedLaw, weight)`` tuples or :class:`Candidate`, a single
    FittedLaw (weight 1; a law fitted with ``form="auto"`` stands for its ensemble,
    ``law.candidates``), a dict name -> FittedLaw (equal weights), or any object with
    ``candidates`` (FittedLaws) and ``weights`` (a :class:`~planner.fitting.ensemble.LawEnsemble`).
    Weights are renormalised to sum to 1 over the kept candidates.
    """
    items: list[Candidate] = []
    if isinstance(obj, FittedLaw) and getattr(obj, "candidates", None) is not None:
        obj = obj.candidates  # form="auto": the ensemble of every candidate form
    if isinstance(obj, FittedLaw):
        items = [Candidate(obj.form.name, obj, 1.0)]
    elif hasattr(obj, "candidates") and hasattr(obj, "weights"):
        laws = list(obj.candidates)
        ws = [float(w) for w in obj.weights]
        if len(laws) != len(ws):
            raise DecisionError(f"{type(obj).__name__}: {len(laws)} candidates but {len(ws)} weights")
        names = list(getattr(obj, "names", ())) or [_law_name(l) for l in laws]
        items = [Candidate(str(n), l, w) for n, l, w in zip(names, laws, ws)]
        # best first (an ensemble's ranking: weight, ties by backtest score), so the top-weighted
        # candidate the decision treats as nominal is the law fit(form="auto") returned
        order = list(getattr(obj, "ranking", ()) or ())
        if sorted(order) == list(range(len(items))):
            items = [items[i] for i in order]
    elif isinstance(obj, Mapping):
        items = [Candidate(str(k), v, 1.0) for k, v in obj.items()]
    elif isinstance(obj, Iterable):
        for it in obj:
            if isinstance(it, Candidate):
                items.append(it)
            elif isinstance(it, (tuple, list)) and len(it) == 3:
                items.append(Candidate(str(it[0]), it[1], it[2]))
            else:
                raise DecisionError(f"a candidate is (name, FittedLaw, weight) or a Candidate, not {it!r}")
    else:
        raise DecisionError(f"candidates: expected (name, FittedLaw, weight) tuples, a FittedLaw, a dict or an ensemble, not {type(obj).__name__}")
    if not items:
        raise DecisionError("no candidate laws given")
    names = [c.name for c in items]
    if len(set(names)) != len(names):
        raise DecisionError(f"candidate names must be unique: {names}")
    total = sum(c.weight for c in items)
    if not total > 0:
        raise DecisionError("every candidate has weight 0")
    kept = [c for c in items if c.weight / total >= min_weight]
    if not kept:
        raise DecisionError(f"no candidate has weight >= {min_weight}")
    tot = sum(c.weight for c in kept)
    return tuple(Candidate(c.name, c.law, c.weight / tot) for c in kept)


def _law_name(law: Any) -> str:
    form = getattr(law, "form", None)
    return getattr(form, "name", type(law).__name__)


# ------------------------------------------------------------------------------ setting
@dataclass(frozen=True)
class Setting:
    r"""What is being planned: the budget, the domains and the limits (the feasible set of plans).

    Feasible plans: f(N) (D + sum_k D'_k) [+ 2 N I] <= budget, N within its bounds (or on the
    menu), D <= the pretraining cap, D'_k <= U_k x epochs, D/N within the tokens-per-parameter
    bounds. ``options`` are passed to ``planner.optimize`` unchanged (flops, inference,
    inference_budget, fixed_fraction, path, solver).
    """

    budget: float
    domains: tuple[Domain, ...]
    constraints: Constraints = field(default_factory=Constraints)
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, budget: float, domains: Sequence[Any], constraints: Any = None, **options: Any) -> "Setting":
        try:
            budget = float(budget)
        except (TypeError, ValueError):
            raise DecisionError(f"budget must be a number of FLOPs, got {budget!r}") from None
        if not math.isfinite(budget) or budget <= 0:
            raise DecisionError(f"budget must be a positive finite number of FLOPs, got {budget!r}")
        doms = tuple(Domain.coerce(d) for d in domains)
        if not doms:
            raise DecisionError("the decision analysis needs at least one domain")
        if any(d.target_loss is not None for d in doms):
            raise DecisionError("target_loss is not supported by the decision analysis (a target depends on the law); plan without targets")
        unknown = set(options) - {"flops", "inference", "inference_budget", "fixed_fraction", "path", "solver"}
        if unknown:
            raise DecisionError(f"unknown options {sorted(unknown)}")
        if options.get("mode", "min-loss") != "min-loss":
            raise DecisionError("the decision analysis plans in mode='min-loss'")
        return cls(budget, doms, Constraints.coerce(constraints), dict(options))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.domains)

    @property
    def K(self) -> int:
        return len(self.domains)

    @property
    def weights(self) -> np.ndarray:
        return np.array([d.weight for d in self.domains], dtype=float)

    @property
    def flop_model(self) -> FlopModel:
        return self.options.get("flops") or SixN()

    @property
    def inference_tokens(self) -> float:
        return float(sum(d.inference_tokens for d in self.domains)) + float(self.constraints.inference_tokens or 0.0)

    @property
    def inference_in_budget(self) -> bool:
        mode = self.options.get("inference")
        if mode is None:
            mode = "separate" if self.options.get("inference_budget") is not None else "in-budget"
        return mode == "in-budget" and self.inference_tokens > 0

    def can_spec(self, candidates: Sequence[Candidate]) -> np.ndarray:
        return np.array([d.name != "general" and any(c.law.form.has_spec for c in candidates) for d in self.domains], dtype=bool)

    def spec_caps(self) -> np.ndarray:
        if self.constraints.repetition == "effective":
            return np.full(self.K, math.inf)
        return np.array([d.token_cap for d in self.domains], dtype=float)

    def model_size_bounds(self) -> tuple[float, float]:
        c = self.constraints
        lo = c.min_model_size if c.min_model_size is not None else 1e3
        hi = c.max_model_size if c.max_model_size is not None else 1e16
        ib = self.options.get("inference_budget")
        if ib is not None and not self.inference_in_budget and self.inference_tokens > 0:
            hi = min(hi, float(ib) / (2.0 * self.inference_tokens))
        return float(lo), float(hi)

    def tokens_available(self, model_size: Any, budget: float | None = None) -> Any:
        """Training tokens D + sum D'_k the budget buys at model size N."""
        budget = self.budget if budget is None else budget
        n = np.asarray(model_size, dtype=float)
        infer = 2.0 * n * self.inference_tokens if self.inference_in_budget else 0.0
        return (budget - infer) / self.flop_model.per_token(n)

    def budget_used(self, model_size: Any, pretrain_tokens: Any, spec_total: Any) -> Any:
        n = np.asarray(model_size, dtype=float)
        used = self.flop_model.per_token(n) * (np.asarray(pretrain_tokens, dtype=float) + np.asarray(spec_total, dtype=float))
        if self.inference_in_budget:
            used = used + 2.0 * n * self.inference_tokens
        return used

    def optimize(self, law: FittedLaw, *, budget: float | None = None, strategy: str = "split", **extra: Any) -> Allocation:
        """``planner.optimize`` in this setting (public API)."""
        kw = dict(self.options)
        kw.update(extra)
        return optimize(law, self.budget if budget is None else budget, list(self.domains), self.constraints, strategy=strategy, **kw)


# --------------------------------------------------------------------------------- plans
@dataclass(frozen=True)
class Plan:
    """A fixed plan: per-domain model size, pretraining tokens and specialization tokens.

    A split plan has one N and one D (``model_size``/``pretrain_tokens`` floats); a separate
    plan (one model per domain) has them per domain (dicts).
    """

    label: str
    model_size: float | Mapping[str, float]
    pretrain_tokens: float | Mapping[str, float]
    spec_tokens: Mapping[str, float]
    strategy: str = "split"
    source: str = ""

    def arrays(self, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        def per(v: Any) -> np.ndarray:
            if isinstance(v, Mapping):
                return np.array([float(v.get(n, math.nan)) for n in names])
            return np.full(len(names), float(v))

        S = np.array([float(self.spec_tokens.get(n, 0.0) or 0.0) for n in names])
        return per(self.model_size), per(self.pretrain_tokens), S

    @property
    def is_split(self) -> bool:
        return not isinstance(self.model_size, Mapping)

    def pretrain_share(self, setting: Setting) -> float:
        """Pretraining FLOPs / training FLOPs of the plan (per-token cost x tokens)."""
        N, D, S = self.arrays(setting.names)
        fpt = setting.flop_model.per_token(N)
        if self.is_split:
            pre = float(fpt[0] * D[0])
            return pre / float(fpt[0] * (D[0] + S.sum()))
        return float(np.sum(fpt * D) / np.sum(fpt * (D + S)))

    @classmethod
    def from_allocation(cls, a: Allocation, label: str, source: str = "") -> "Plan":
        return cls(label, float(a.model_size), float(a.pretrain_tokens), dict(a.spec_tokens), a.strategy, source)

    def to_dict(self) -> dict[str, Any]:
        def conv(v: Any) -> Any:
            return {k: _num(x) for k, x in v.items()} if isinstance(v, Mapping) else _num(v)

        return {"label": self.label, "strategy": self.strategy, "source": self.source, "model_size": conv(self.model_size),
                "pretrain_tokens": conv(self.pretrain_tokens), "spec_tokens": conv(dict(self.spec_tokens))}


# ----------------------------------------------------------------------------- scenarios
def _domain_map(law: FittedLaw, names: Sequence[str]) -> list[str]:
    out = []
    for n in names:
        if n in law.domains:
            out.append(n)
        elif law.has_domain(n) or n == "general" and len(law.domains) == 1:
            out.append(law.domains[0])
        else:
            raise DecisionError(f"the {law.form.name} law has parameters for domains {', '.join(law.domains)}, not {n!r}")
    return out


def _scalar_params(law: FittedLaw, values: Mapping[str, float], law_domains: Sequence[str]) -> dict[str, np.ndarray]:
    per = law.layout.per_domain(values)
    idx = [law.domains.index(d) for d in law_domains]
    return {name: (np.asarray(v, dtype=float)[idx] if isinstance(v, np.ndarray) else np.full(len(idx), float(v))) for name, v in per.items()}


def draw_indices(n_draws: int, max_draws: int | None) -> np.ndarray:
    """Evenly spaced draw indices (all of them when ``max_draws`` is None or large enough)."""
    if max_draws is None or max_draws >= n_draws:
        return np.arange(n_draws)
    return np.unique(np.linspace(0, n_draws - 1, max(int(max_draws), 1)).round().astype(int))


@dataclass
class _Group:
    candidate: int
    form: Any
    params: dict[str, np.ndarray]  # name -> (S_i, K)
    draws: np.ndarray  # draw index per scenario (-1: point estimate)


class ScenarioSet:
    r"""Every scenario (candidate x parameter vector) with its probability, evaluated at plans in bulk.

    ``use_draws=True``: each candidate's bootstrap draws (at most ``max_draws``, evenly spaced;
    draws with a non-finite parameter skipped), each with probability w_i / B_i; a candidate
    without draws contributes its point estimate with probability w_i. ``use_draws=False``:
    the point estimates only (uncertainty across forms, not within them).
    """

    def __init__(self, candidates: Sequence[Candidate], setting: Setting, *, use_draws: bool = True, max_draws: int | None = None) -> None:
        self.candidates = tuple(candidates)
        self.setting = setting
        names = setting.names
        self.can_spec = setting.can_spec(candidates)
        self.groups: list[_Group] = []
        cand, draw, prob = [], [], []
        self.nominal_params: list[dict[str, np.ndarray]] = []
        for i, c in enumerate(self.candidates):
            law = c.law
            ldoms = _domain_map(law, names)
            nominal = _scalar_params(law, law.params, ldoms)
            self.nominal_params.append(nominal)
            rows: list[dict[str, np.ndarray]] = []
            idx: list[int] = []
            if use_draws and law.draws is not None and len(law.draws) >= 2:
                keys = list(law.params)
                for b in draw_indices(len(law.draws), max_draws):
                    row = law.draws[b]
                    if not np.all(np.isfinite(row)):
                        continue
                    rows.append(_scalar_params(law, dict(zip(keys, map(float, row))), ldoms))
                    idx.append(int(b))
            if not rows:
                rows, idx = [nominal], [-1]
            params = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
            self.groups.append(_Group(i, law.form, params, np.array(idx)))
            cand += [i] * len(rows)
            draw += idx
            prob += [c.weight / len(rows)] * len(rows)
        self.candidate = np.array(cand, dtype=int)
        self.draw = np.array(draw, dtype=int)
        self.prob = np.array(prob, dtype=float)
        self.prob /= self.prob.sum()
        self.use_draws = use_draws

    def __len__(self) -> int:
        return len(self.prob)

    @property
    def over(self) -> str:
        """What the scenarios span, in words (for interval captions)."""
        return "draws and forms" if bool(np.any(self.draw >= 0)) else "forms (point estimates)"

    def labels(self) -> list[str]:
        return [f"{self.candidates[i].name}" + ("" if b < 0 else f"#{b}") for i, b in zip(self.candidate, self.draw)]

    # ------------------------------------------------------------------ evaluation
    def _tokens(self, D: np.ndarray, S: np.ndarray, form: Any) -> tuple[np.ndarray, np.ndarray]:
        c = self.setting.constraints
        if c.repetition == "effective":
            if c.pretrain_unique_tokens is not None and "unique_tokens" not in form.inputs:
                D = effective_tokens(D, float(c.pretrain_unique_tokens), c.repetition_decay)
            U = np.array([math.inf if d.unique_tokens is None else float(d.unique_tokens) for d in self.setting.domains])
            S = effective_tokens(S, np.broadcast_to(U, S.shape), c.repetition_decay)
        return D, S

    @staticmethod
    def _predict(form: Any, params: Mapping[str, np.ndarray], N: np.ndarray, D: np.ndarray, S: np.ndarray, unique: float) -> np.ndarray:
        """Losses of every scenario of one group at n points: params (G, K), points (n, K) -> (G, n, K)."""
        G = next(iter(params.values())).shape[0]
        n, K = N.shape
        p = {k: np.broadcast_to(v[:, None, :], (G, n, K)).reshape(-1) for k, v in params.items()}
        x = Inputs(
            model_size=np.broadcast_to(N, (G, n, K)).reshape(-1), pretrain_tokens=np.broadcast_to(D, (G, n, K)).reshape(-1),
            spec_tokens=np.broadcast_to(S, (G, n, K)).reshape(-1), unique_tokens=np.full(G * n * K, unique), loss=np.full(G * n * K, np.nan),
        )
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            out = np.asarray(form.predict(p, x), dtype=float).reshape(G, n, K)
        return np.where(np.isnan(out), np.inf, out)

    def _points(self, N: Any, D: Any, S: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Points as (n, K) arrays: N and D scalar, (n,) (one per point) or (n, K); S (K,) or (n, K)."""
        K = self.setting.K
        S = np.atleast_2d(np.asarray(S, dtype=float))
        N = np.asarray(N, dtype=float)
        D = np.asarray(D, dtype=float)
        n = max(S.shape[0], N.shape[0] if N.ndim else 1, D.shape[0] if D.ndim else 1)

        def shape(a: np.ndarray) -> np.ndarray:
            if a.ndim == 0:
                return np.full((n, K), float(a))
            if a.ndim == 1:
                return np.broadcast_to(a[:, None], (n, K))
            return np.broadcast_to(a, (n, K))

        return shape(N), shape(D), np.where(self.can_spec[None, :], np.broadcast_to(S, (n, K)), 0.0)

    def parts(self, scenarios: np.ndarray | None = None) -> list[tuple[Any, dict[str, np.ndarray], np.ndarray]]:
        """(form, parameters of the selected scenarios of one group, their positions in the selection)."""
        sel = np.arange(len(self)) if scenarios is None else np.asarray(scenarios, dtype=int)
        out = []
        start = 0
        for g in self.groups:
            G = len(g.draws)
            pos = np.flatnonzero((sel >= start) & (sel < start + G))
            if len(pos):
                out.append((g.form, {k: v[sel[pos] - start] for k, v in g.params.items()}, pos))
            start += G
        return out

    def losses(self, N: Any, D: Any, S: Any, scenarios: np.ndarray | None = None, *, parts: list | None = None) -> np.ndarray:
        """Per-domain losses, shape (n_scenarios, n_points, K). N, D: scalar, (n,) or (n, K); S: (K,) or (n, K)."""
        N, D, S = self._points(N, D, S)
        parts = self.parts(scenarios) if parts is None else parts
        n_sel = sum(len(p[2]) for p in parts)
        out = np.empty((n_sel, N.shape[0], self.setting.K))
        u = self.setting.constraints.pretrain_unique_tokens
        unique = math.inf if u is None else float(u)
        for form, params, pos in parts:
            De, Se = self._tokens(D, S, form)
            out[pos] = self._predict(form, params, N, De, Se, unique)
        return out

    def objective(self, N: Any, D: Any, S: Any, scenarios: np.ndarray | None = None, *, parts: list | None = None) -> np.ndarray:
        """f_s(x) = sum_k w_k L_k^s(x) for every scenario s and point x: shape (n_scenarios, n_points)."""
        L = self.losses(N, D, S, scenarios, parts=parts)
        w = self.setting.weights
        with np.errstate(invalid="ignore"):
            return np.where(w[None, None, :] > 0, L * w[None, None, :], 0.0).sum(axis=2)

    def nominal_objective(self, i: int, N: Any, D: Any, S: Any) -> np.ndarray:
        """f under candidate i's point estimate at n points: shape (n,)."""
        N, D, S = self._points(N, D, S)
        g = self.groups[i]
        u = self.setting.constraints.pretrain_unique_tokens
        De, Se = self._tokens(D, S, g.form)
        L = self._predict(g.form, {k: v[None, :] for k, v in self.nominal_params[i].items()}, N, De, Se, math.inf if u is None else float(u))[0]
        w = self.setting.weights
        return np.where(w[None, :] > 0, L * w[None, :], 0.0).sum(axis=1)

    def evaluate(self, plans: Sequence[Plan]) -> np.ndarray:
        """f_s(plan) for every scenario and plan: shape (n_scenarios, n_plans)."""
        names = self.setting.names
        arrs = [p.arrays(names) for p in plans]
        N = np.stack([a[0] for a in arrs])
        D = np.stack([a[1] for a in arrs])
        S = np.stack([a[2] for a in arrs])
        return self.objective(N, D, S)


def evaluate_plan(plan: Plan | Allocation, law: FittedLaw, setting: Setting, *, draws: bool = False) -> np.ndarray:
    """Objective sum_k w_k L_k(N_k, D_k, D'_k) of a fixed plan under ``law``.

    Returns a 1-element array for the point estimate, or one value per bootstrap draw
    (``draws=True``). The plan may come from another law: the feasible set is the same.
    """
    if isinstance(plan, Allocation):
        plan = Plan.from_allocation(plan, "plan")
    ss = ScenarioSet([Candidate(law.form.name, law, 1.0)], setting, use_draws=draws)
    return ss.evaluate([plan])[:, 0]


# ----------------------------------------------------------------------- local solver
class LocalSolver:
    r"""Warm-started SLSQP over a split plan in log variables v = (log N, log D, log D'_k) (billions).

    Minimises F(x) = sum_s q_s f_s(x) (``kind="mean"``) or max_s (f_s(x) - c_s) (``kind="worst"``,
    as an epigraph: min t s.t. t >= f_s(x) - c_s) over the feasible set of the setting, for the
    scenarios ``scen`` of a :class:`ScenarioSet`. Optional ``fix``: (coordinate, value) held
    fixed (for profiles). Local: not certified. A branch that ends at the 1e3-token floor is
    compared with D'_k = 0 (the freed tokens going to pretraining).
    """

    #: values and gradients of the shipped forms from one direct analytic call (False: the general route
    #: through ``predict`` and ``loss_log_gradients``, kept for ``benchmarks/bench_decision.py --compare``)
    DIRECT = True

    def __init__(self, ss: ScenarioSet, scen: np.ndarray, *, weights: np.ndarray | None = None, kind: str = "mean", offsets: np.ndarray | None = None) -> None:
        self.ss = ss
        self.setting = ss.setting
        self.scen = np.asarray(scen, dtype=int)
        q = np.ones(len(self.scen)) if weights is None else np.asarray(weights, dtype=float)
        self.q = q / q.sum()
        self.kind = kind
        self.c = np.zeros(len(self.scen)) if offsets is None else np.asarray(offsets, dtype=float)
        self.spec = np.flatnonzero(ss.can_spec)
        self._parts = ss.parts(self.scen)
        K = self.setting.K
        # one point at a time (the SLSQP path): parameters pre-flattened per group, rows = scenarios x domains
        self._flat = [(form, {k: v.reshape(-1) for k, v in params.items()}, pos, len(pos)) for form, params, pos in self._parts]
        u = self.setting.constraints.pretrain_unique_tokens
        self._unique = math.inf if u is None else float(u)
        self._w = np.where(self.setting.weights > 0, self.setting.weights, 0.0)
        self._effective = self.setting.constraints.repetition == "effective"
        self._K = K
        # the analytic log-gradients called directly (every group a shipped form, no repeated tokens):
        # (function, flat parameters, positions, number of scenarios, domain index of every row)
        fns = [analytic_log_gradient(form) for form, *_ in self._flat]
        self._fast = bool(self.DIRECT)  # read once: the routes of this solver do not change
        self._direct = None if not self._fast or self._effective or any(f is None for f in fns) else [
            (fn, params, pos, G, np.tile(np.arange(K), G)) for fn, (form, params, pos, G) in zip(fns, self._flat)]

    def point_values(self, N: float, D: float, S: np.ndarray) -> np.ndarray:
        """f_s at one split plan for the solver's scenarios, shape (n_scen,)."""
        if self._effective:
            return self.scenario_values(N, D, S[None, :])[:, 0]
        K = self._K
        S = np.where(self.ss.can_spec, S, 0.0)
        out = np.empty(len(self.scen))
        for form, params, pos, G in self._flat:
            m = G * K
            x = Inputs(np.full(m, N), np.full(m, D), np.tile(S, G), np.full(m, self._unique), np.full(m, np.nan))
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                L = np.asarray(form.predict(params, x), dtype=float).reshape(G, K)
            out[pos] = np.where(np.isnan(L), np.inf, L) @ self._w
        return out

    def point_values_grad(self, N: float, D: float, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """f_s at one split plan and its gradient in v = (log N, log D, log D'_k for k in spec): shapes
        (n_scen,) and (n_scen, 2 + n_spec). Analytic for the shipped forms (``allocate.gradients``)."""
        K = self._K
        S = np.where(self.ss.can_spec, S, 0.0)
        n_scen = len(self.scen)
        out = np.empty(n_scen)
        G = np.zeros((n_scen, 2 + len(self.spec)))
        w = self._w
        if self._direct is not None:
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                for fn, params, pos, Gn, rows in self._direct:
                    L, dn, dd, ds = (a if np.shape(a) == rows.shape else np.broadcast_to(a, rows.shape) for a in fn(params, N, D, S[rows]))
                    L = np.where(np.isnan(L), np.inf, L).reshape(Gn, K)
                    if Gn == 1:
                        out[pos] = L[0] @ w
                        G[pos, 0], G[pos, 1] = dn @ w, dd @ w
                        G[pos, 2:] = (ds * w)[self.spec]
                        continue
                    out[pos] = L @ w
                    G[pos, 0] = dn.reshape(Gn, K) @ w
                    G[pos, 1] = dd.reshape(Gn, K) @ w
                    G[pos, 2:] = (ds.reshape(Gn, K) * w[None, :])[:, self.spec]
            return out, G
        for form, params, pos, Gn in self._flat:
            L, dn, dd, ds = loss_log_gradients(form, params, N, D, np.tile(S, Gn), self._unique)
            L = np.where(np.isnan(L), np.inf, L).reshape(Gn, K)
            with np.errstate(invalid="ignore"):
                out[pos] = L @ w
            G[pos, 0] = dn.reshape(Gn, K) @ w
            G[pos, 1] = dd.reshape(Gn, K) @ w
            G[pos, 2:] = (ds.reshape(Gn, K) * w[None, :])[:, self.spec]
        return out, G

    def scenario_values(self, N: Any, D: Any, S: Any) -> np.ndarray:
        """f_s at n points for the solver's scenarios, shape (n_scen, n)."""
        return self.ss.objective(N, D, S, parts=self._parts)

    def point_value(self, N: float, D: float, S: np.ndarray) -> float:
        f = self.point_values(N, D, S)
        return float(self.q @ f) if self.kind == "mean" else float(np.max(f - self.c))

    def values(self, N: Any, D: Any, S: Any) -> np.ndarray:
        """F at n points (shape (n,))."""
        f = self.scenario_values(N, D, S)
        if self.kind == "mean":
            return self.q @ f
        return np.max(f - self.c[:, None], axis=0)

    def _unpack(self, v: np.ndarray) -> tuple[float, float, np.ndarray]:
        S = np.zeros(self.setting.K)
        S[self.spec] = np.exp(v[2:2 + len(self.spec)]) * _S
        return math.exp(v[0]) * _S, math.exp(v[1]) * _S, S

    def solve(self, start: tuple[float, float, np.ndarray], fix: tuple[int, float] | None = None, *, budget: float | None = None) -> tuple[float, float, np.ndarray, float]:
        """(N, D, S, F) from a start; ``fix=(j, value)`` holds coordinate j (0: N, 1: D, 2+i: D'_spec[i]).

        With a size menu (``model_sizes``) N is held at each allowed size in turn and the best kept
        (with another coordinate fixed, at the allowed size nearest the start)."""
        menu = self.setting.constraints.model_sizes
        if menu is None or (fix is not None and fix[0] == 0):
            return self._solve(start, {} if fix is None else {fix[0]: fix[1]}, budget)
        lo, hi = self.setting.model_size_bounds()
        sizes = [float(m) for m in menu if lo * (1 - 1e-12) <= m <= hi * (1 + 1e-12)]
        if not sizes:
            return math.nan, math.nan, np.full(self.setting.K, math.nan), math.inf
        if fix is not None:
            sizes = [min(sizes, key=lambda m: abs(math.log(m / start[0])))]
        best = None
        for m in sizes:
            r = self._solve((m, start[1], start[2]), {0: m} if fix is None else {0: m, fix[0]: fix[1]}, budget)
            if best is None or r[3] < best[3]:
                best = r
        return best

    @functools.cached_property
    def _token_solver(self) -> Any:
        """The numpy KKT solver of :mod:`planner.allocate.kkt` for this objective, or None (computed once).

        It applies when the objective is one point-estimate scenario (the nominal headline's flatness
        band) of a law that is separable in the tokens (split-additive, Chinchilla, ...), with the
        setting's own feasible set (no size menu, no repeated-token model) and the same specializing
        domains: then a profile point (one coordinate held) is the global optimum in the tokens at
        each N with N found by the root of dV/dlog N (:meth:`KKTSolver.solve`), instead of an SLSQP run."""
        from dataclasses import replace as _replace

        from ..allocate._context import build_context
        from ..allocate._options import check_options
        from ..allocate.kkt import KKTSolver, kkt_applicable

        solver = None
        st = self.setting
        if (self._fast and self.kind == "mean" and len(self.scen) == 1 and self.ss.draw[self.scen[0]] < 0
                and not self._effective and st.constraints.model_sizes is None):
            law = self.ss.candidates[self.ss.candidate[self.scen[0]]].law
            try:
                opts = check_options("optimize", **{k: v for k, v in st.options.items() if k in ("flops", "inference", "inference_budget")})
                prob = _replace(build_context(law, st.budget, list(st.domains), st.constraints, opts, {}).problem, fixed_fraction=None)
                if np.array_equal(prob.can_spec, self.ss.can_spec) and kkt_applicable(prob)[0]:
                    solver = KKTSolver(prob, path="dcp+search", certified=False)
            except PlannerError:
                solver = None
        return solver

    def _solve_tokens(self, solver: Any, start: tuple[float, float, np.ndarray], fixes: dict[int, float], budget: float) -> tuple[float, float, np.ndarray, float]:
        """:meth:`_solve` by the KKT solver (at most one coordinate held; see :meth:`_token_solver`)."""
        if 0 in fixes:
            sol = solver.solve_at(float(fixes[0]), budget)
        else:
            if fixes:
                (j, value), = fixes.items()
                solver = solver.pinned(j - 1, max(float(value), SPEC_FLOOR if j >= 2 else 1.0))
            sol = solver.solve(budget, near=float(start[0]))
        if not sol.ok:
            return math.nan, math.nan, np.full(self.setting.K, math.nan), math.inf
        N, D, S = float(sol.model_size), float(sol.pretrain_tokens), np.asarray(sol.spec_tokens, dtype=float).copy()
        return N, D, S, float(self.values(N, D, S[None, :])[0])

    def _solve(self, start: tuple[float, float, np.ndarray], fixes: dict[int, float], budget: float | None) -> tuple[float, float, np.ndarray, float]:
        st = self.setting
        budget = st.budget if budget is None else budget
        kkt = self._token_solver if len(fixes) <= 1 else None
        if kkt is not None:
            return self._solve_tokens(kkt, start, fixes, budget)
        lo, hi = st.model_size_bounds()
        cap_d = st.constraints.pretrain_token_cap
        caps = st.spec_caps()
        n_spec = len(self.spec)
        bounds = [(math.log(lo / _S), math.log(hi / _S)), (math.log(1.0 / _S), math.log(cap_d / _S) if math.isfinite(cap_d) else 30.0)]
        for k in self.spec:
            bounds.append((math.log(SPEC_FLOOR / _S), math.log(caps[k] / _S) if math.isfinite(caps[k]) else 30.0))
        N0, D0, S0 = start
        v0 = np.array([math.log(N0 / _S), math.log(max(D0, 1.0) / _S)] + [math.log(max(S0[k], SPEC_FLOOR) / _S) for k in self.spec])
        for j, val in fixes.items():
            v0[j] = math.log(max(val, SPEC_FLOOR if j >= 2 else 1.0) / _S)
            bounds[j] = (v0[j], v0[j])
        v0 = np.clip(v0, [b[0] for b in bounds], [b[1] for b in bounds])
        # place the start on the budget
        N, D, S = self._unpack(v0)
        used = float(st.budget_used(N, D, S.sum()))
        if used > budget:
            f = float(st.tokens_available(N, budget)) / (D + S.sum())
            movable = [i for i in range(1, 2 + n_spec) if i not in fixes]
            v0[movable] += math.log(max(f, 1e-12)) - 1e-9
            v0 = np.clip(v0, [b[0] for b in bounds], [b[1] for b in bounds])
        worst = self.kind == "worst"
        terms = st.flop_model.terms()
        infer_tokens = st.inference_tokens if st.inference_in_budget else 0.0
        n_x = 2 + n_spec + (1 if worst else 0)

        def budget_fun(x: np.ndarray) -> float:
            """1 - (f(N) (D + sum D') + 2 N I) / C in log variables."""
            N = math.exp(x[0]) * _S
            tokens = math.exp(x[1]) * _S + float(np.exp(x[2:2 + n_spec]).sum()) * _S
            return 1.0 - (sum(cj * N ** e for cj, e in terms) * tokens + 2.0 * N * infer_tokens) / budget

        def budget_jac(x: np.ndarray) -> np.ndarray:
            """d/dv of 1 - (f(N) (D + sum D') + 2 N I) / C in log variables, f(N) = sum_j c_j N^e_j."""
            N, D, S = self._unpack(x[:2 + n_spec])
            fpt = sum(cj * N ** e for cj, e in terms)
            dfpt = sum(cj * e * N ** e for cj, e in terms)
            g = np.zeros(n_x)
            g[0] = -(dfpt * (D + S.sum()) + 2.0 * N * infer_tokens) / budget
            g[1] = -fpt * D / budget
            g[2:2 + n_spec] = -fpt * S[self.spec] / budget
            return g

        cons: list[dict[str, Any]] = [{"type": "ineq", "fun": budget_fun, "jac": budget_jac}]
        c = st.constraints
        e_ratio = np.zeros(n_x)
        e_ratio[0], e_ratio[1] = -1.0, 1.0
        if c.min_tokens_per_param is not None:
            cons.append({"type": "ineq", "fun": lambda v: v[1] - v[0] - math.log(c.min_tokens_per_param), "jac": lambda v: e_ratio})
        if c.max_tokens_per_param is not None:
            cons.append({"type": "ineq", "fun": lambda v: math.log(c.max_tokens_per_param) - (v[1] - v[0]), "jac": lambda v: -e_ratio})
        ref = max(abs(float(self.values(N0, D0, S0[None, :])[0])), 1e-12)
        nv = 2 + n_spec
        h = 1e-6
        steps = np.vstack([np.zeros(nv), h * np.eye(nv), -h * np.eye(nv)])
        free = np.array([lo_ < hi_ for lo_, hi_ in bounds])

        def batch(v: np.ndarray) -> np.ndarray:
            """f_s at v and at v +- h e_i in one evaluation: shape (n_scen, 2 nv + 1)."""
            V = v[None, :] + steps
            Ns = np.exp(V[:, 0]) * _S
            Ds = np.exp(V[:, 1]) * _S
            Ss = np.zeros((len(V), st.K))
            Ss[:, self.spec] = np.exp(V[:, 2:]) * _S
            return self.scenario_values(Ns, Ds, Ss)

        def grad_of(vals: np.ndarray) -> np.ndarray:
            """Central differences from ``batch`` output (last axis), zero along fixed coordinates."""
            g = (vals[..., 1:1 + nv] - vals[..., 1 + nv:]) / (2 * h)
            return np.where(free, g, 0.0)

        analytic = not self._effective  # repeated tokens: central differences of the batch above
        direct = analytic and self._direct is not None  # values and gradients from one analytic call

        memo: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

        def values_grad(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """f_s and df_s/dv at v, one analytic evaluation (SLSQP asks for the value and the gradient
            at the same point; the last point is kept)."""
            key = v.tobytes()
            got = memo.get(key)
            if got is None:
                N, D, S = self._unpack(v)
                f, g = self.point_values_grad(N, D, S)
                got = (f, np.where(free, g, 0.0))
                memo.clear()
                memo[key] = got
            return got

        def scen_grad(v: np.ndarray) -> np.ndarray:
            """df_s/dv for every scenario, shape (n_scen, nv), zero along fixed coordinates."""
            if not analytic:
                return grad_of(batch(v))
            return values_grad(v)[1]

        if worst:
            def fs(v: np.ndarray) -> np.ndarray:
                if direct:
                    return values_grad(v)[0] - self.c
                N, D, S = self._unpack(v)
                return self.point_values(N, D, S) - self.c

            t0 = float(np.max(fs(v0)))
            x0 = np.append(v0, t0 / ref)
            bnds = bounds + [(None, None)]

            def worst_jac(x: np.ndarray) -> np.ndarray:
                G = scen_grad(x[:-1]) / ref  # (n_scen, nv)
                return np.hstack([-G, np.ones((G.shape[0], 1))])

            cons.append({"type": "ineq", "fun": lambda x: x[-1] - fs(x[:-1]) / ref, "jac": worst_jac})
            obj = lambda x: float(x[-1])  # noqa: E731
            jac = lambda x: np.append(np.zeros(nv), 1.0)  # noqa: E731
        else:
            def obj(x: np.ndarray) -> float:
                if direct:
                    f = values_grad(x)[0]
                    val = float(self.q @ f) if self.kind == "mean" else float(np.max(f - self.c))
                else:
                    N, D, S = self._unpack(x)
                    val = self.point_value(N, D, S)
                return val / ref if math.isfinite(val) else 1e30

            def jac(x: np.ndarray) -> np.ndarray:
                g = (self.q @ scen_grad(x) if analytic else grad_of(self.q @ batch(x))) / ref
                return np.where(np.isfinite(g), g, 0.0)

            x0, bnds = v0, bounds
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = minimize(obj, x0, jac=jac, method="SLSQP", bounds=bnds, constraints=cons, options={"maxiter": 500, "ftol": 1e-13})
        v = np.clip(res.x[:2 + n_spec], [b[0] for b in bounds], [b[1] for b in bounds])
        N, D, S = self._unpack(v)
        used = float(st.budget_used(N, D, S.sum()))
        if used > budget:  # solver tolerance: scale the free tokens onto the budget
            f = float(st.tokens_available(N, budget)) / (D + S.sum()) * (1 - 1e-13)
            D, S = D * f, S * f
        val = float(self.values(N, D, S[None, :])[0])
        # the start itself may be better (SLSQP failed): keep the better feasible point
        Ns, Ds, Ss = self._unpack(v0)
        if float(st.budget_used(Ns, Ds, Ss.sum())) <= budget * (1 + 1e-12):
            vs = float(self.values(Ns, Ds, Ss[None, :])[0])
            if vs < val:
                N, D, S, val = Ns, Ds, Ss, vs
        # branches at the floor: compare with no specialization at all
        for i, k in enumerate(self.spec):
            if 2 + i in fixes:
                continue
            if S[k] <= 2 * SPEC_FLOOR:
                S0_ = S.copy()
                S0_[k] = 0.0
                D0_ = D if 1 in fixes else min(D + S[k], cap_d)
                v2 = float(self.values(N, D0_, S0_[None, :])[0])
                if v2 <= val:
                    D, S, val = D0_, S0_, v2
        return N, D, S, val

    def _split(self, v: np.ndarray) -> tuple[float, float, float]:
        N, D, S = self._unpack(v)
        return N, D, float(S.sum())


# ------------------------------------------------------------------ plans per candidate
def plans_per_form(candidates: Sequence[Candidate], setting: Setting) -> list[tuple[Plan, Allocation]]:
    """Each candidate's plan under its point estimate, by ``planner.optimize`` (the exact paths)."""
    out = []
    for c in candidates:
        a = setting.optimize(c.law, baselines=False, marginal=False)
        if not a.feasible:
            raise DecisionError(f"no feasible plan under candidate {c.name!r}: {a.message}")
        out.append((Plan.from_allocation(a, f"plan under {c.name}", source=c.name), a))
    return out


def _optimize_draw_quiet(task: tuple[FittedLaw, dict[str, float], Setting]) -> tuple[float, float, np.ndarray, float, bool]:
    law, values, setting = task
    try:
        a = setting.optimize(law.with_params(**values), baselines=False, marginal=False, check=False)
    except PlannerError:
        return math.nan, math.nan, np.full(setting.K, math.nan), math.inf, False
    if not a.feasible:
        return math.nan, math.nan, np.full(setting.K, math.nan), math.inf, False
    return a.model_size, a.pretrain_tokens, np.array([a.spec_tokens[n] for n in setting.names]), a.objective, True


def _optimize_draw(task: Any) -> Any:
    """In a worker: the plan warnings are data on the Allocation, not printed from every process."""
    import warnings as _w

    with _w.catch_warnings():
        _w.simplefilter("ignore", PlannerWarning)
        return _optimize_draw_quiet(task)


def _local_chunk(task: tuple[ScenarioSet, list[int], list[tuple[float, float, np.ndarray]]]) -> list[tuple[float, float, np.ndarray, float, bool]]:
    ss, scen, starts = task
    out = []
    for s, st in zip(scen, starts):
        try:
            N, D, S, v = LocalSolver(ss, np.array([s])).solve(st)
        except (ValueError, FloatingPointError):
            v = math.inf
        out.append((N, D, S, v, True) if math.isfinite(v) else (math.nan, math.nan, np.full(ss.setting.K, math.nan), math.inf, False))
    return out


@dataclass(frozen=True)
class ScenarioPlans:
    """The optimal plan of every scenario: arrays over scenarios (model_size, pretrain_tokens,
    spec_tokens (S, K), value f_s^*, ok) and the method used."""

    model_size: np.ndarray
    pretrain_tokens: np.ndarray
    spec_tokens: np.ndarray
    value: np.ndarray
    ok: np.ndarray
    method: str
    improved_by_cross_evaluation: int = 0

    def plans(self, names: Sequence[str], labels: Sequence[str]) -> list[Plan]:
        return [Plan(lab, float(self.model_size[s]), float(self.pretrain_tokens[s]), dict(zip(names, map(float, self.spec_tokens[s]))), "split", lab)
                for s, lab in enumerate(labels)]


def scenario_plans(ss: ScenarioSet, nominal: Sequence[Plan], *, method: str = "local", n_jobs: int | None = None) -> ScenarioPlans:
    r"""The optimal plan under every scenario.

    ``method="local"``: SLSQP warm-started from the candidate's point-estimate plan (the draws
    of a law sit near its point estimate); fast, local.
    ``method="optimize"``: ``planner.optimize`` on a law carrying the draw's parameters (the
    exact paths: geometric program / DCP + search / multi-start); slower. Point-estimate
    scenarios always use ``planner.optimize`` (their plans are ``nominal``). Either way every
    scenario's plan is then evaluated under every scenario, and a scenario takes the best plan
    found for it (``improved_by_cross_evaluation`` counts how often that beat its own solve).
    Tasks run through ``planner._parallel.parallel_map`` (``n_jobs`` as in scikit-learn).
    """
    if method not in ("local", "optimize"):
        raise DecisionError(f"method must be 'local' or 'optimize', not {method!r}")
    names = ss.setting.names
    S = len(ss)
    out_N, out_D = np.full(S, math.nan), np.full(S, math.nan)
    out_S, out_v = np.full((S, ss.setting.K), math.nan), np.full(S, math.inf)
    ok = np.zeros(S, dtype=bool)
    todo = []
    for s in range(S):
        if ss.draw[s] < 0:
            p = nominal[ss.candidate[s]]
            N, D, Sv = p.arrays(names)
            out_N[s], out_D[s], out_S[s] = N[0], D[0], Sv
            out_v[s] = float(ss.objective(N[0], D[0], Sv[None, :], np.array([s]))[0, 0])
            ok[s] = True
        else:
            todo.append(s)
    starts = []
    for p in nominal:
        N, D, Sv = p.arrays(names)
        starts.append((float(N[0]), float(D[0]), Sv))
    if method == "optimize":
        tasks = []
        for s in todo:
            c = ss.candidates[ss.candidate[s]]
            tasks.append((c.law, dict(zip(c.law.params, map(float, c.law.draws[ss.draw[s]]))), ss.setting))
        results = parallel_map(_optimize_draw, tasks, n_jobs=n_jobs)
    else:
        # chunks, so each worker task carries the scenario set once per chunk rather than per draw
        workers = 1 if n_jobs in (None, 1) else (4 if n_jobs < 0 else int(n_jobs))
        n_chunks = max(1, min(len(todo), 2 * workers))
        chunks = [todo[i::n_chunks] for i in range(n_chunks)] if todo else []
        res_chunks = parallel_map(_local_chunk, [(ss, ch, [starts[ss.candidate[s]] for s in ch]) for ch in chunks], n_jobs=n_jobs)
        results_by: dict[int, Any] = {}
        for ch, res in zip(chunks, res_chunks):
            results_by.update(dict(zip(ch, res)))
        results = [results_by[s] for s in todo]
    for s, (N, D, Sv, v, good) in zip(todo, results):
        out_N[s], out_D[s], out_S[s], ok[s] = N, D, Sv, good
    # best known: every scenario's plan evaluated under every scenario; a scenario whose own solve
    # was beaten by another scenario's plan takes that plan (local solves can stop short)
    good = np.flatnonzero(ok)
    improved = 0
    if len(good):
        vals = np.full((S, len(good)), np.inf)
        for lo in range(0, len(good), 64):
            cols = good[lo:lo + 64]
            vals[:, lo:lo + len(cols)] = ss.objective(out_N[cols], out_D[cols], out_S[cols])
        own = np.full(S, np.inf)
        own[good] = vals[good, np.arange(len(good))]
        j = np.argmin(vals, axis=1)
        best = vals[np.arange(S), j]
        for s in range(S):
            src = good[j[s]]
            if best[s] < own[s] - 1e-12 * max(1.0, abs(own[s])):
                out_N[s], out_D[s], out_S[s], ok[s] = out_N[src], out_D[src], out_S[src], True
                improved += 1 if np.isfinite(own[s]) else 0
            out_v[s] = min(best[s], own[s])
    return ScenarioPlans(out_N, out_D, out_S, out_v, ok, method, improved)
