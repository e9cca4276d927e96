r"""Verify a ladder by simulation: draw a truth, simulate the ladder's losses, fit, plan, score regret.

For every truth theta (a draw from the prior, or given):

1. the ladder's measurements are the truth's losses times exp(N(0, sigma^2)) (independent log-normal
   noise per checkpoint; ``sigma`` the design's noise level);
2. every candidate form is fitted (:func:`map_fit`: maximum a posteriori in log-parameters,
   Gauss-Newton/trust-region from the prior mean and two prior draws, the prior being the design's
   Gaussian approximation of that form), and the form is **selected as** ``form="auto"`` **does**:
   each form is fitted with the largest model size held out, the lowest held-out ARE wins, and the
   winner is refitted on every row;
3. the fitted law is planned at the target budget (:func:`._plan.fast_plan`), and the plan scored
   under the truth: regret = Obj_theta(plan(theta_hat)) - Obj_theta(plan(theta)) in weighted nats,
   and as compute-equivalent waste regret / |dObj*/dlog C| (the share of the target budget that
   would buy the same loss).

Why not ``planner.fit(form="auto")`` itself: on the shared two-core machine one auto fit of a ladder
takes 10-30 s, so 200 truths x 3 ladders would take hours; the MAP fit of the same forms with the
same selection rule takes well under a second. ``fitter="planner"`` runs the real ``auto`` fit
(slow, for spot checks).

Simulations run through :func:`planner._parallel.parallel_map` (joblib processes or Dask); each
task takes its seed from its index, so serial and parallel runs agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .._parallel import parallel_map
from ._mapfit import map_fit
from ._model import LawVec, Points
from ._plan import PlanProblem, fast_plan, objective_at
from .ladder import Ladder
from .prior import Prior

__all__ = ["map_fit", "select_and_fit", "simulate_ladders", "SimulationSummary", "regret_of"]


def select_and_fit(prior: Prior, pts: Points, y_log: np.ndarray, sigma: float, seed: int = 0, n_starts: int = 2) -> tuple[int, np.ndarray]:
    """``auto``'s rule with MAP fits: hold out the largest size, lowest held-out ARE wins, refit on all rows."""
    comps = prior.components
    if len(comps) == 1:
        c = comps[0]
        return 0, map_fit(c.vec, pts, y_log, c.mean, c.precision, sigma=sigma, seed=seed, n_starts=n_starts)[0]
    top = pts.model_size.max()
    held = np.isclose(pts.model_size, top)
    if held.all() or not held.any():
        scores = [map_fit(c.vec, pts, y_log, c.mean, c.precision, sigma=sigma, seed=seed, n_starts=n_starts)[1] for c in comps]
        i = int(np.argmin(scores))
    else:
        train, test = pts.take(~held), pts.take(held)
        ares = []
        for c in comps:
            th = map_fit(c.vec, train, y_log[~held], c.mean, c.precision, sigma=sigma, seed=seed, n_starts=n_starts)[0]
            pred = c.vec.predict(th, test)
            actual = np.exp(y_log[held])
            ares.append(float(np.mean(np.abs(pred - actual) / actual)))
        i = int(np.argmin(ares))
    c = comps[i]
    return i, map_fit(c.vec, pts, y_log, c.mean, c.precision, sigma=sigma, seed=seed, n_starts=n_starts)[0]


def regret_of(truth_vec: LawVec, truth_theta: np.ndarray, prob: PlanProblem, plan: Any, best: Any) -> float:
    """Obj_truth(plan) - Obj_truth(best plan), >= 0 up to solver tolerance."""
    val = objective_at(truth_vec, truth_theta, prob, plan.model_size, plan.pretrain_tokens, plan.spec_tokens)
    return max(val - best.objective, 0.0)


@dataclass(frozen=True)
class _Task:
    index: int
    truth: tuple[int, np.ndarray]
    ladders: tuple[Ladder, ...]
    prior: Prior
    truth_prior: Prior
    prob: PlanProblem
    sigma: float
    existing: Points
    existing_y: np.ndarray | None
    seed: int
    fitter: str


def _simulate_one(task: _Task) -> dict[str, Any]:
    ci, theta = task.truth
    tvec = task.truth_prior.components[ci].vec
    best = fast_plan(tvec, theta, task.prob)
    hi = fast_plan(tvec, theta, task.prob.with_budget(task.prob.budget * 1.1), start=best.u)
    lo = fast_plan(tvec, theta, task.prob.with_budget(task.prob.budget / 1.1), start=best.u)
    marginal = abs(hi.objective - lo.objective) / (2 * math.log(1.1))
    out: dict[str, Any] = {"index": task.index, "form": tvec.form.name, "marginal": marginal, "regret": {}, "waste": {}, "selected": {}}
    for lad in task.ladders:
        pts = Points.concat([task.existing, lad.points(tvec.domains)])
        y = np.log(tvec.predict(theta, pts))
        # common random numbers: every ladder's noise comes from the truth's seed, so ladders are compared on the
        # same truths and (where their points coincide in order) the same noise, whatever their order in the list
        y = y + np.random.default_rng(task.seed).normal(0.0, task.sigma, len(pts))
        if task.existing_y is not None:
            y[: len(task.existing)] = task.existing_y
        if task.fitter == "planner":
            fvec, ftheta = _planner_fit(tvec, pts, y, task.seed)
            sel = fvec.form.name
        else:
            i, ftheta = select_and_fit(task.prior, pts, y, task.sigma, seed=task.seed)
            fvec, sel = task.prior.components[i].vec, task.prior.components[i].vec.form.name
        plan = fast_plan(fvec, ftheta, task.prob)
        r = regret_of(tvec, theta, task.prob, plan, best)
        out["regret"][lad.name] = r
        out["waste"][lad.name] = r / marginal if marginal > 0 else math.nan
        out["selected"][lad.name] = sel
    return out


def _planner_fit(tvec: LawVec, pts: Points, y: np.ndarray, seed: int) -> tuple[LawVec, np.ndarray]:
    import pandas as pd

    from ..fitting.core import fit

    doms = np.asarray(tvec.domains, dtype=object)[pts.dom]
    df = pd.DataFrame({"model_size": pts.model_size, "pretrain_tokens": pts.pretrain_tokens, "spec_tokens": pts.spec_tokens,
                       "domain": doms, "loss": np.exp(y)})
    law = fit(df, form="auto", max_starts=16, seed=seed)
    return LawVec.of_law(law, tvec.domains)


@dataclass(frozen=True)
class SimulationSummary:
    """Regret of each ladder over the simulated truths: mean with a 90 % bootstrap interval (over truths)."""

    n_truths: int
    mean_regret: dict[str, float]
    regret_interval: dict[str, tuple[float, float]]
    mean_waste: dict[str, float]
    waste_interval: dict[str, tuple[float, float]]
    selected_true_form: dict[str, float]
    per_truth: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"n_truths": self.n_truths, "mean_regret": self.mean_regret, "regret_interval": {k: list(v) for k, v in self.regret_interval.items()},
                "mean_waste": self.mean_waste, "waste_interval": {k: list(v) for k, v in self.waste_interval.items()},
                "selected_true_form": self.selected_true_form}


def _boot_interval(x: np.ndarray, seed: int, level: float = 0.9, n: int = 2000) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), (n, len(x)))].mean(axis=1)
    return float(np.quantile(means, (1 - level) / 2)), float(np.quantile(means, (1 + level) / 2))


def simulate_ladders(ladders: Sequence[Ladder], prior: Prior, prob: PlanProblem, *, n_truths: int = 20, seed: int = 0,
                     truths: Sequence[tuple[int, np.ndarray]] | None = None, truth_prior: Prior | None = None, noise: float | None = None,
                     existing: Points | None = None, existing_y: np.ndarray | None = None, n_jobs: int | None = None,
                     fitter: str = "map") -> SimulationSummary:
    """Expected regret of every ladder over ``n_truths`` truths drawn from ``truth_prior`` (default ``prior``).

    ``prior`` is what the fits know (their candidate forms and regularisation); ``truth_prior`` what the
    truths are drawn from. With ``existing`` points (and their measured log losses ``existing_y``), every
    simulated fit also sees them.
    """
    if fitter not in ("map", "planner"):
        raise ValueError(f"fitter must be 'map' or 'planner', not {fitter!r}")
    tp = truth_prior or prior
    ts = list(truths) if truths is not None else tp.draw(n_truths, seed + 104729)
    sigma = float(noise if noise is not None else prior.noise)
    ex = existing if existing is not None else Points.empty()
    tasks = [_Task(i, t, tuple(ladders), prior, tp, prob, sigma, ex, existing_y, seed * 100003 + i, fitter) for i, t in enumerate(ts)]
    results = parallel_map(_simulate_one, tasks, n_jobs=n_jobs)
    names = [l.name for l in ladders]
    reg = {n: np.array([r["regret"][n] for r in results]) for n in names}
    waste = {n: np.array([r["waste"][n] for r in results]) for n in names}
    right = {n: float(np.mean([r["selected"][n] == r["form"] for r in results])) for n in names}
    return SimulationSummary(
        len(results), {n: float(np.mean(reg[n])) for n in names}, {n: _boot_interval(reg[n], seed) for n in names},
        {n: float(np.nanmean(waste[n])) for n in names}, {n: _boot_interval(waste[n], seed) for n in names}, right, tuple(results),
    )
