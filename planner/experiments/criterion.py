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
the target budget (compute-equivalent waste).

**The forms' selection risk** (T-optimal / Box-Hill discrimination, Atkinson & Fedorov 1975). The
quadratic term scores each truth as if its own form were fitted; a ladder that cannot tell the
forms apart instead fits a rival form g and plans with it. For every truth (form f, theta) and
every rival form g of the prior, :func:`sensitivity` fits the rival's *pseudo-truth* phi_g (the
rival's MAP fit to the truth's noiseless log losses on reference points: the baselines' points at
the experiment budget) and its waste W_fg = regret of the rival's plan under the truth / |dObj/dlog C|.
A ladder's separating power between f and g is the linearized T-criterion

    Delta_g^2 = min_delta |r - J_g delta|^2 / sigma^2 + delta' P_g delta,
    r = log L_f(theta, X) - log L_g(phi_g, X),

over the ladder's points X at its largest model size (J_g: the rival's log-loss Jacobian at phi_g,
P_g its prior precision: the rival may re-fit, one Gauss-Newton step), which is the expected log
Bayes factor (twice the KL divergence) between the two hypotheses on those points. Only the
largest size counts because ``form="auto"`` selects by the error on the held-out largest size: a
ladder whose largest size carries no branch cannot tell the forms apart however well its smaller
sizes would (every form reduces to the same Chinchilla law at D' = 0). Two Gaussian hypotheses Delta apart are
confused with probability p_g = Phi(-Delta_g / 2); with several rivals the odds
o_g = p_g / (1 - p_g) give P(select g) = o_g / (1 + sum_h o_h). Each truth then scores

    (1 - sum_g P_g) * 1/2 tr(Q Sigma) / |dObj/dlog C|  +  sum_g P_g min(W_fg, 1),

the expected regret under model uncertainty. ``discriminate=False`` gives the quadratic term
alone. What it still leaves out: the rival's pseudo-truth moves with the ladder (W_fg is fixed at
the reference points), the selection rule of ``auto`` (held-out ARE, not a likelihood ratio) and
non-quadratic tails; the simulation (:mod:`.simulate`) checks all three.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.special import ndtr

from .._parallel import parallel_map
from ._mapfit import map_fit
from ._model import LawVec, Points
from ._plan import PlanProblem, fast_plan, objective, objective_at
from .ladder import Ladder
from .prior import Prior

__all__ = ["Rival", "TruthSensitivity", "sensitivity", "sensitivities", "linearized_regret", "misidentification"]

_H_THETA = 0.05
_H_U = 2e-3
#: a rival's waste counts at most this share of the target budget (the linearized waste of a plan that far
#: off is meaningless, and a few prior truths with astronomical values would otherwise decide the search)
WASTE_CAP = 1.0


@dataclass(frozen=True)
class Rival:
    """A rival form for one truth: its pseudo-truth (log-parameters), prior precision, and the waste of planning with it."""

    vec: LawVec
    theta: np.ndarray
    precision: np.ndarray
    waste: float


@dataclass(frozen=True)
class TruthSensitivity:
    """One truth with what the criterion needs: Q = G'HG, the prior precision, the marginal value of compute, its rivals."""

    component: int
    vec: LawVec
    theta: np.ndarray
    q: np.ndarray
    precision: np.ndarray
    marginal: float
    plan_u: np.ndarray
    objective: float
    rivals: tuple[Rival, ...] = ()


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


def _rival(vec: LawVec, theta: np.ndarray, prob: PlanProblem, best_objective: float, marginal: float, rival_vec: LawVec,
           mean: np.ndarray, precision: np.ndarray, reference: Points, noise: float) -> Rival:
    """The rival form's pseudo-truth on the reference points and the waste of planning with it under the truth."""
    y = np.log(vec.predict(theta, reference))
    phi = map_fit(rival_vec, reference, y, mean, precision, sigma=noise, seed=0, n_starts=2)[0]
    plan = fast_plan(rival_vec, phi, prob)
    regret = max(objective_at(vec, theta, prob, plan.model_size, plan.pretrain_tokens, plan.spec_tokens) - best_objective, 0.0)
    return Rival(rival_vec, phi, precision, regret / marginal)


def sensitivity(item: tuple) -> TruthSensitivity:
    """Q, the plan, the marginal value of compute and the rivals for one truth.

    ``item`` = (component, vec, theta, precision, problem[, rivals, reference, noise]) with rivals a
    sequence of (vec, prior mean, prior precision) of the other forms and reference the points their
    pseudo-truths are fitted on (no rivals: the quadratic criterion alone).
    """
    ci, vec, theta, precision, prob = item[:5]
    rivals_in, reference, noise = (item[5], item[6], item[7]) if len(item) > 5 else ((), None, 0.01)
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
    marginal = max(abs(hi.objective - lo.objective) / (2 * math.log(1.1)), 1e-12)
    rivals = ()
    if rivals_in and reference is not None and len(reference):
        rivals = tuple(_rival(vec, theta, prob, best.objective, marginal, rv, m, pr, reference, noise) for rv, m, pr in rivals_in)
    return TruthSensitivity(ci, vec, theta, 0.5 * (Q + Q.T), precision, marginal, best.u, best.objective, rivals)


def sensitivities(prior: Prior, prob: PlanProblem, n_truths: int, seed: int = 0, n_jobs: int | None = None,
                  reference: Points | None = None, noise: float | None = None) -> list[TruthSensitivity]:
    """:func:`sensitivity` for ``n_truths`` truths of the prior (in parallel through ``parallel_map``).

    With ``reference`` points and more than one form in the prior, every truth also gets its rivals
    (the other forms' pseudo-truths on the reference points, for the selection-risk term).
    """
    sigma = float(prior.noise if noise is None else noise)
    comps = prior.components
    items = []
    for ci, th in prior.draw(n_truths, seed):
        rivals = tuple((c.vec, c.mean, c.precision) for j, c in enumerate(comps) if j != ci) if reference is not None else ()
        items.append((ci, comps[ci].vec, th, comps[ci].precision, prob, rivals, reference, sigma))
    return parallel_map(sensitivity, items, n_jobs=n_jobs)


def misidentification(deltas_sq: np.ndarray) -> np.ndarray:
    """P(select rival g) from the separations Delta_g^2: odds p/(1-p) with p = Phi(-Delta/2), normalised with the truth's 1."""
    p = ndtr(-0.5 * np.sqrt(np.maximum(np.asarray(deltas_sq, dtype=float), 0.0)))
    odds = p / np.maximum(1.0 - p, 1e-300)
    return odds / (1.0 + odds.sum())


def _separation(rival: Rival, truth_log: np.ndarray, pts: Points, noise: float) -> float:
    """Delta^2 = min_delta |r - J delta|^2 / sigma^2 + delta' P delta (one Gauss-Newton step of the rival's re-fit)."""
    r = (truth_log - np.log(rival.vec.predict(rival.theta, pts))) / noise
    r = np.nan_to_num(r, nan=0.0, posinf=1e6, neginf=-1e6)
    J = rival.vec.jac_log(rival.theta, pts) / noise
    info = J.T @ J + rival.precision
    g = J.T @ r
    try:
        step = np.linalg.solve(info, g)
    except np.linalg.LinAlgError:
        step = np.linalg.pinv(info) @ g
    return max(float(r @ r - g @ step), 0.0)


def linearized_regret(ladder: Ladder | None, sens: Sequence[TruthSensitivity], noise: float, existing: Points | None = None,
                      per_truth: bool = False, discriminate: bool = True, known: Points | None = None) -> float | np.ndarray:
    """Mean over truths of the expected waste (module doc): the quadratic term, mixed with the rivals' waste by P(misidentification).

    ``existing``: extra measurement points (they add information to both terms); ``known``: points whose
    information the truths' prior precision already holds (a posterior given existing runs): they count
    for the forms' separation only.
    """
    out = np.empty(len(sens))
    cache: dict[tuple[str, tuple[str, ...]], tuple[Points, Points]] = {}
    for i, s in enumerate(sens):
        key = (s.vec.form.name, s.vec.domains)
        if key not in cache:
            parts = [ladder.points(s.vec.domains)] if ladder is not None else []
            if existing is not None:
                parts.append(existing)
            new = Points.concat(parts)
            sep = Points.concat([new, known]) if known is not None else new
            if len(sep):  # auto selects by the held-out largest size: only its points tell the forms apart
                sep = sep.take(np.isclose(sep.model_size, sep.model_size.max(), rtol=1e-9))
            cache[key] = (new, sep)
        pts, sep_pts = cache[key]
        J = s.vec.jac_log(s.theta, pts)
        info = J.T @ J / noise ** 2 + s.precision
        try:
            sigma = np.linalg.inv(info)
        except np.linalg.LinAlgError:
            sigma = np.linalg.pinv(info)
        quad = 0.5 * float(np.sum(s.q * sigma)) / s.marginal
        if discriminate and s.rivals:
            truth_log = np.log(s.vec.predict(s.theta, sep_pts)) if len(sep_pts) else np.zeros(0)
            d2 = np.array([_separation(r, truth_log, sep_pts, noise) if len(sep_pts) else 0.0 for r in s.rivals])
            pm = misidentification(d2)
            quad = (1.0 - pm.sum()) * quad + float(pm @ np.minimum([r.waste for r in s.rivals], WASTE_CAP))
        out[i] = quad
    return out if per_truth else float(np.mean(out))
