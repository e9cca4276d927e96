r"""The linearized expected regret of a ladder (classical optimal design, made decision-aware).

For a truth theta (log-parameters of one candidate form) let u*(theta) be its optimal plan in the
planner's reduced coordinates u = (log N, z_1 .. z_K) (:mod:`._plan`), and let a ladder estimate
theta_hat = theta + delta. The regret of planning with theta_hat is, to second order,

    R(delta) = Obj_theta(u*(theta_hat)) - Obj_theta(u*(theta)) ~ 1/2 delta' Q delta,
    Q = G' H G,   G = d u* / d theta,   H = d^2 Obj_theta / du^2 at u*(theta)

(the first-order term vanishes at the optimum). A ladder whose measurements have log-loss Jacobian
J (rows: its checkpoints, d log L / d theta) and noise sigma gives, with prior precision P, the
posterior covariance Sigma = (J'J / sigma^2 + P)^-1, so

    E[R] ~ 1/2 tr(Q Sigma).

G is computed once per truth by central finite differences of the plan (warm-started solves), H by
finite differences of the objective; both depend on the truth and the target budget, not on the
ladder, so scoring a ladder costs one Jacobian and one p x p solve per truth. The criterion is the
mean over the prior's truths of 1/2 tr(Q Sigma) / |dObj*/dlog C|: the expected regret as a share of
the target budget (compute-equivalent waste). What it leaves out: the forms' *selection* risk (a
ladder that cannot tell the forms apart may fit the wrong one; the truths of every form are
averaged, but each is scored as if its own form were fitted) and non-quadratic tails; the
simulation (:mod:`.simulate`) checks both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .._parallel import parallel_map
from ._model import LawVec, Points
from ._plan import PlanProblem, fast_plan, objective
from .ladder import Ladder
from .prior import Prior

__all__ = ["TruthSensitivity", "sensitivity", "sensitivities", "linearized_regret"]

_H_THETA = 0.05
_H_U = 2e-3


@dataclass(frozen=True)
class TruthSensitivity:
    """One truth with what the criterion needs: Q = G'HG, the prior precision, the marginal value of compute."""

    component: int
    vec: LawVec
    theta: np.ndarray
    q: np.ndarray
    precision: np.ndarray
    marginal: float
    plan_u: np.ndarray
    objective: float


def _hessian(f, u: np.ndarray, h: float) -> np.ndarray:
    k = len(u)
    H = np.zeros((k, k))
    f0 = f(u)
    E = np.eye(k) * h
    for i in range(k):
        for j in range(i, k):
            if i == j:
                H[i, i] = (f(u + E[i]) - 2 * f0 + f(u - E[i])) / h ** 2
            else:
                H[i, j] = H[j, i] = (f(u + E[i] + E[j]) - f(u + E[i] - E[j]) - f(u - E[i] + E[j]) + f(u - E[i] - E[j])) / (4 * h * h)
    # the regret is a minimum: keep the positive semidefinite part
    w, V = np.linalg.eigh(0.5 * (H + H.T))
    return (V * np.maximum(w, 0.0)) @ V.T


def sensitivity(item: tuple[int, LawVec, np.ndarray, np.ndarray, PlanProblem]) -> TruthSensitivity:
    """Q, the plan and the marginal value of compute for one truth (``item`` = (component, vec, theta, precision, problem))."""
    ci, vec, theta, precision, prob = item
    best = fast_plan(vec, theta, prob)
    fixed_n = prob.fixed_model_size is not None
    G = np.zeros((len(best.u), vec.p))
    for j, s in enumerate(vec.slots):
        if s == "E" or s.startswith("E["):  # an additive constant does not move the plan
            continue
        e = np.zeros(vec.p)
        e[j] = _H_THETA
        up = fast_plan(vec, theta + e, prob, start=best.u).u
        dn = fast_plan(vec, theta - e, prob, start=best.u).u
        G[:, j] = (up - dn) / (2 * _H_THETA)
    if fixed_n:
        G[0, :] = 0.0
    H = _hessian(lambda u: objective(vec, theta, prob, u), best.u, _H_U)
    Q = G.T @ H @ G
    hi = fast_plan(vec, theta, prob.with_budget(prob.budget * 1.1), start=best.u)
    lo = fast_plan(vec, theta, prob.with_budget(prob.budget / 1.1), start=best.u)
    marginal = abs(hi.objective - lo.objective) / (2 * math.log(1.1))
    return TruthSensitivity(ci, vec, theta, 0.5 * (Q + Q.T), precision, max(marginal, 1e-12), best.u, best.objective)


def sensitivities(prior: Prior, prob: PlanProblem, n_truths: int, seed: int = 0, n_jobs: int | None = None) -> list[TruthSensitivity]:
    """:func:`sensitivity` for ``n_truths`` truths of the prior (in parallel through ``parallel_map``)."""
    items = [(ci, prior.components[ci].vec, th, prior.components[ci].precision, prob) for ci, th in prior.draw(n_truths, seed)]
    return parallel_map(sensitivity, items, n_jobs=n_jobs)


def linearized_regret(ladder: Ladder | None, sens: Sequence[TruthSensitivity], noise: float, existing: Points | None = None,
                      per_truth: bool = False) -> float | np.ndarray:
    """Mean over truths of 1/2 tr(Q Sigma) / |dObj/dlog C| (a share of the target budget)."""
    out = np.empty(len(sens))
    cache: dict[tuple[str, tuple[str, ...]], Points] = {}
    for i, s in enumerate(sens):
        key = (s.vec.form.name, s.vec.domains)
        if key not in cache:
            parts = [ladder.points(s.vec.domains)] if ladder is not None else []
            if existing is not None:
                parts.append(existing)
            cache[key] = Points.concat(parts)
        pts = cache[key]
        J = s.vec.jac_log(s.theta, pts)
        info = J.T @ J / noise ** 2 + s.precision
        try:
            sigma = np.linalg.inv(info)
        except np.linalg.LinAlgError:
            sigma = np.linalg.pinv(info)
        out[i] = 0.5 * float(np.sum(s.q * sigma)) / s.marginal
    return out if per_truth else float(np.mean(out))
