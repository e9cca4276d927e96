r"""A small, fast planner used inside the design's criterion and simulations.

It solves the same problem as :func:`planner.optimize` for the budget alone (no inference,
no loss targets): minimise sum_k w_k L_k(N, D, D'_k) subject to f(N) (D + sum_k D'_k) = C,
N within [min, max] and D'_k <= cap_k, in the reduced coordinates

    u = (log N, z_1 .. z_K),  T = C / f(N),  D = T / (1 + sum_k e^{z_k}),  D'_k = D e^{z_k},

(z_k clipped to [-12, 12]: a domain at -12 gets a few millionths of the tokens, i.e. is not
specialized) by multi-start L-BFGS-B. It is thousands of times cheaper than the public optimizer,
which the design needs: every truth's plan is differentiated with respect to the law's parameters
(finite differences), and every simulated fit is planned. ``tests/test_design_core.py`` checks it
against :func:`planner.optimize` on the shipped law.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import minimize

from ..allocate.model import FlopModel, SixN
from ..laws.base import Inputs
from ._model import LawVec, Points

__all__ = ["PlanProblem", "PlanPoint", "fast_plan", "Z_RANGE"]

Z_RANGE = (-12.0, 12.0)


@dataclass(frozen=True)
class PlanProblem:
    """The target decision: budget, domains (law-domain index, weight, D' cap), limits on N."""

    budget: float
    dom: np.ndarray  # law-domain index of each planned domain
    weights: np.ndarray
    caps: np.ndarray  # D'_k cap in tokens (inf: none)
    min_model_size: float = 1e6
    max_model_size: float = 1e13
    flop_model: FlopModel = SixN()
    fixed_model_size: float | None = None
    min_pretrain_tokens: float = 0.0

    @property
    def K(self) -> int:
        return int(self.dom.shape[0])

    def with_budget(self, budget: float) -> "PlanProblem":
        return PlanProblem(budget, self.dom, self.weights, self.caps, self.min_model_size, self.max_model_size,
                           self.flop_model, self.fixed_model_size, self.min_pretrain_tokens)


@dataclass(frozen=True)
class PlanPoint:
    """A plan: N, D, D'_k (tokens), its objective under the law it was solved for, and its coordinates u."""

    model_size: float
    pretrain_tokens: float
    spec_tokens: np.ndarray
    objective: float
    u: np.ndarray


def plan_tokens(prob: PlanProblem, u: np.ndarray) -> tuple[float, float, np.ndarray]:
    log_n = u[0] if prob.fixed_model_size is None else math.log(prob.fixed_model_size)
    n = math.exp(log_n)
    total = prob.budget / float(prob.flop_model.per_token(n))
    e = np.exp(np.clip(u[1:], *Z_RANGE))
    d = total / (1.0 + e.sum())
    return n, d, d * e


def objective(vec: LawVec, theta: np.ndarray, prob: PlanProblem, u: np.ndarray) -> float:
    n, d, s = plan_tokens(prob, u)
    return objective_at(vec, theta, prob, n, d, s)


class _Evaluator:
    """The plan's objective for one law: parameters expanded to the planned domains once."""

    def __init__(self, vec: LawVec, theta: np.ndarray, prob: PlanProblem) -> None:
        self.form = vec.form
        self.params = vec._expand(theta, prob.dom)
        self.prob = prob
        k = prob.K
        self._nan = np.full(k, np.nan)
        self._inf = np.full(k, np.inf)

    def losses(self, n: float, d: float, s: np.ndarray) -> np.ndarray:
        k = self.prob.K
        x = Inputs(np.full(k, n), np.full(k, d), np.asarray(s, dtype=float), self._inf, self._nan)
        return np.asarray(self.form.predict(self.params, x), dtype=float)

    def __call__(self, n: float, d: float, s: np.ndarray) -> float:
        prob = self.prob
        val = float(np.dot(prob.weights, self.losses(n, d, s)))
        over = np.log(np.maximum(np.asarray(s) / prob.caps, 1.0))
        under = math.log(max(prob.min_pretrain_tokens / d, 1.0)) if prob.min_pretrain_tokens > 0 else 0.0
        return val + 1e3 * float(np.sum(over ** 2) + under ** 2)


def objective_at(vec: LawVec, theta: np.ndarray, prob: PlanProblem, n: float, d: float, s: np.ndarray) -> float:
    """sum_k w_k L_k(N, D, D'_k) plus a steep penalty for a D' cap or a D floor crossed."""
    return _Evaluator(vec, theta, prob)(n, d, s)


def fast_plan(vec: LawVec, theta: np.ndarray, prob: PlanProblem, start: np.ndarray | None = None, n_starts: int = 2) -> PlanPoint:
    """Minimise the objective by multi-start L-BFGS-B (``start`` warm-starts a single run)."""
    lo_n, hi_n = math.log(prob.min_model_size), math.log(prob.max_model_size)
    bounds = [(lo_n, hi_n)] + [Z_RANGE] * prob.K
    if start is not None:
        starts = [np.asarray(start, dtype=float)]
    else:
        # Chinchilla-like centre: N ~ sqrt(C / 120), shares 70 % pretraining
        centre = min(max(0.5 * math.log(prob.budget / 120.0), lo_n), hi_n)
        z0 = math.log(0.3 / max(prob.K, 1) / 0.7) if prob.K else 0.0
        offsets = (0.0, -1.2, 1.2, -2.4, 2.4)[: max(n_starts, 1)]
        starts = [np.array([min(max(centre + o, lo_n), hi_n)] + [z0] * prob.K) for o in offsets]
        starts += [np.array([min(max(centre, lo_n), hi_n)] + [Z_RANGE[0] + 1.0] * prob.K)]
    ev = _Evaluator(vec, theta, prob)

    def f(u: np.ndarray) -> float:
        return ev(*plan_tokens(prob, u))

    best = None
    for s0 in starts:
        res = minimize(f, s0, method="L-BFGS-B", bounds=bounds, options={"ftol": 1e-13, "gtol": 1e-9, "maxiter": 300})
        if best is None or res.fun < best.fun:
            best = res
    u = np.asarray(best.x, dtype=float)
    n, d, s = plan_tokens(prob, u)
    return PlanPoint(n, d, s, float(best.fun), u)


def problem_for(budget: float, law_domains: Sequence[str], names: Sequence[str], weights: Sequence[float], caps: Sequence[float],
                flop_model: FlopModel | None = None, min_model_size: float | None = None, max_model_size: float | None = None) -> PlanProblem:
    dom = np.array([list(law_domains).index(n) for n in names], dtype=int)
    return PlanProblem(float(budget), dom, np.asarray(weights, dtype=float), np.asarray(caps, dtype=float),
                       1e6 if min_model_size is None else float(min_model_size), 1e13 if max_model_size is None else float(max_model_size),
                       flop_model or SixN())
