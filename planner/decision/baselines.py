r"""Honest baselines: gaps and compute multipliers with intervals, flagged beyond the fitted range.

For each habitual strategy b (no-split, fixed, separate) and each candidate law j, the
baseline plan b_j is the strategy optimised within its own rules under j's point estimate
(``planner.optimize``). Over the scenarios s (candidate j(s), its point estimate or draws):

    gap_s = f_s(b_{j(s)}) - f_s(headline plan)          (objective units; > 0: the baseline is worse)

Compute multiplier m_s: the budget factor the baseline needs to match the best split plan
under s (``planner.optimize``'s ``Baseline.compute_multiplier``), for each candidate's point
estimate and up to ``multiplier_draws`` of its draws. Evaluating it needs the law at m x the
budget; when m x budget is more than ``beyond_factor`` (10) times the largest compute the law
was fitted to, the figure is flagged and printed as "> 100x (beyond the fitted range)" when
above 100x, or with two significant digits and the same mark otherwise. A constraint that
binds in the baseline's problem at m x budget but not at the budget is flagged too
(the multiplier then measures the constraint, not the strategy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .._parallel import parallel_map
from .._records import Note, json_number as _num
from ..allocate import Allocation
from ..errors import PlannerError, PlannerWarning
from .candidates import Candidate, Plan, ScenarioSet, Setting, draw_indices, fitted_compute
from .regret import weighted_percentile

__all__ = ["BaselineGap", "baseline_gaps", "multiplier_text", "extrapolation_notes", "DEFAULT_STRATEGIES"]

DEFAULT_STRATEGIES = ("no-split", "fixed", "separate")


def multiplier_text(m: float, beyond: bool, cap: float = 100.0) -> str:
    """How a multiplier is printed: precise inside the fitted range, bounded or marked beyond it."""
    if m is None or (isinstance(m, float) and math.isnan(m)):
        return "n/a"
    if not math.isfinite(m) or m > cap:
        return f"> {cap:g}x" + (" (beyond the fitted range)" if beyond or not math.isfinite(m) else "")
    if beyond:
        # two significant digits beyond the data, three below 2x: "1x" would erase the excess over 1 (1.007 -> "1.01x")
        return f"{m:.3g}x (beyond the fitted range)" if m < 2 else f"{m:.2g}x (beyond the fitted range)"
    return f"{m:.3g}x"


@dataclass(frozen=True)
class BaselineGap:
    """One baseline strategy against the headline plan, over laws and draws.

    gap: probability-weighted mean of gap_s; gap_interval: central ``level`` interval;
    gap_by_law: nominal gap under each candidate; multiplier: the headline (highest-weight)
    candidate's point-estimate multiplier; multiplier_interval over the point estimates and
    the sampled draws; beyond_fitted_range: some multiplier needs the law more than
    ``beyond_factor`` x the largest fitted compute; scaled_binding: constraints binding only in
    the scaled problem; text: the line a report prints.
    """

    strategy: str
    gap: float
    gap_interval: tuple[float, float]
    gap_by_law: dict[str, float]
    multiplier: float
    multiplier_interval: tuple[float, float]
    multiplier_by_law: dict[str, float]
    beyond_fitted_range: bool
    extrapolation_factor: float
    scaled_binding: tuple[str, ...]
    n_multiplier_samples: int
    level: float
    plans: dict[str, Plan] = field(default_factory=dict)
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy, "gap": _num(self.gap), "gap_interval": [_num(x) for x in self.gap_interval],
            "gap_by_law": {k: _num(v) for k, v in self.gap_by_law.items()}, "multiplier": _num(self.multiplier),
            "multiplier_interval": [_num(x) for x in self.multiplier_interval],
            "multiplier_by_law": {k: _num(v) for k, v in self.multiplier_by_law.items()},
            "beyond_fitted_range": self.beyond_fitted_range, "extrapolation_factor": _num(self.extrapolation_factor),
            "scaled_binding": list(self.scaled_binding), "n_multiplier_samples": self.n_multiplier_samples, "level": self.level,
            "plans": {k: p.to_dict() for k, p in self.plans.items()}, "text": self.text,
        }


def _baseline_plan(b: Any, names: Sequence[str]) -> Plan:
    return Plan(f"{b.strategy}", b.model_size if not isinstance(b.model_size, Mapping) else dict(b.model_size),
                b.pretrain_tokens if not isinstance(b.pretrain_tokens, Mapping) else dict(b.pretrain_tokens),
                {n: float(b.spec_tokens.get(n, 0.0) or 0.0) for n in names}, b.strategy, "baseline")


def _multipliers_of_quiet(task: tuple[Any, dict[str, float] | None, Setting]) -> dict[str, float]:
    law, values, setting = task
    try:
        l2 = law if values is None else law.with_params(**values)
        a = setting.optimize(l2, marginal=False, check=False)
    except PlannerError:
        return {}
    if not a.feasible:
        return {}
    return {b.strategy: float(b.compute_multiplier) for b in a.baselines}


def _multipliers_of(task: Any) -> Any:
    """In a worker: the plan warnings are data on the Allocation, not printed from every process."""
    import warnings as _w

    with _w.catch_warnings():
        _w.simplefilter("ignore", PlannerWarning)
        return _multipliers_of_quiet(task)


def baseline_gaps(
    candidates: Sequence[Candidate], setting: Setting, ss: ScenarioSet, headline: Plan, nominal: Sequence[Allocation], *,
    strategies: Sequence[str] = DEFAULT_STRATEGIES, level: float = 0.9, multiplier_draws: int = 5, beyond_factor: float = 10.0,
    cap: float = 100.0, n_jobs: int | None = None,
) -> list[BaselineGap]:
    """Gap and compute multiplier of every baseline against ``headline`` (see module docstring).

    ``nominal``: each candidate's ``planner.optimize`` result *with* baselines (their plans and
    point-estimate multipliers).
    """
    names = setting.names
    C = len(candidates)
    # baseline plans per candidate, from the optimizer's own Baseline records
    plans: dict[str, list[Plan | None]] = {b: [None] * C for b in strategies}
    mult_nominal: dict[str, list[float]] = {b: [math.nan] * C for b in strategies}
    for j, a in enumerate(nominal):
        for rec in a.baselines:
            if rec.strategy in plans and rec.status == "optimal":
                plans[rec.strategy][j] = _baseline_plan(rec, names)
                mult_nominal[rec.strategy][j] = float(rec.compute_multiplier)
    # multipliers over a sample of draws (each candidate: up to multiplier_draws draws, through parallel_map)
    tasks, owners = [], []
    for j, c in enumerate(candidates):
        if c.law.draws is None or len(c.law.draws) < 2 or multiplier_draws <= 0:
            continue
        for b in draw_indices(len(c.law.draws), multiplier_draws):
            row = c.law.draws[b]
            if np.all(np.isfinite(row)):
                tasks.append((c.law, dict(zip(c.law.params, map(float, row))), setting))
                owners.append(j)
    draw_mults = parallel_map(_multipliers_of, tasks, n_jobs=n_jobs)
    head_f = ss.evaluate([headline])[:, 0]
    top = int(np.argmax([c.weight for c in candidates]))
    q = [50 * (1 - level), 50 * (1 + level)]
    cfit = np.array([fitted_compute(c.law) for c in candidates])
    out = []
    for b in strategies:
        if all(p is None for p in plans[b]):
            continue
        # gap over scenarios: the baseline chosen under the scenario's own candidate
        gaps = np.full(len(ss), np.nan)
        for j in range(C):
            p = plans[b][j]
            if p is None:
                continue
            m = ss.candidate == j
            gaps[m] = ss.evaluate([p])[m, 0] - head_f[m]
        ok = np.isfinite(gaps)
        gap = float(np.average(gaps[ok], weights=ss.prob[ok])) if ok.any() else math.nan
        lo, hi = weighted_percentile(gaps, ss.prob, q)
        nominal_ss = ScenarioSet(candidates, setting, use_draws=False)
        by_law = {}
        for j, c in enumerate(candidates):
            p = plans[b][j]
            if p is not None:
                f = nominal_ss.evaluate([p, headline])
                by_law[c.name] = float(f[j, 0] - f[j, 1])
        # multipliers: point estimates (weight w_j / (1 + n_j)) and the sampled draws
        vals, wts, facs = [], [], []
        n_per = {j: owners.count(j) for j in range(C)}
        for j, c in enumerate(candidates):
            m = mult_nominal[b][j]
            if not math.isnan(m):
                vals.append(m)
                wts.append(c.weight / (1 + n_per.get(j, 0)))
                facs.append(cfit[j])
        for j, res in zip(owners, draw_mults):
            if b in res:
                vals.append(res[b])
                wts.append(candidates[j].weight / (1 + n_per[j]))
                facs.append(cfit[j])
        vals_a = np.array(vals, dtype=float)
        finite = np.where(np.isfinite(vals_a), vals_a, 1e300)
        m_lo, m_hi = (weighted_percentile(finite, np.array(wts), q) if len(vals) else (math.nan, math.nan))
        m_head = mult_nominal[b][top]
        ext = np.array([v * setting.budget / f if f > 0 else math.nan for v, f in zip(vals_a, facs)], dtype=float)
        beyond = bool(np.any(~np.isfinite(vals_a)) or np.any(ext > beyond_factor))
        ext_head = m_head * setting.budget / cfit[top] if cfit[top] > 0 else math.nan
        scaled = _scaled_binding(candidates[top].law, setting, b, m_head, cap)

        def nominal_text(j: int) -> str:
            """Candidate j's point-estimate multiplier, marked beyond ``beyond_factor`` x its fitted compute."""
            m = mult_nominal[b][j]
            ext_j = m * setting.budget / cfit[j] if cfit[j] > 0 else math.nan
            return multiplier_text(m, (not math.isfinite(m)) or (math.isfinite(ext_j) and ext_j > beyond_factor), cap)

        text = (f"{b}: gap {gap:+.4g} [{lo:+.4g}, {hi:+.4g}] ({int(round(100 * level))} % over {ss.over}); "
                f"compute multiplier {nominal_text(top)} "
                f"[{multiplier_text(float(m_lo), beyond, cap)}, {multiplier_text(float(m_hi), beyond, cap)}]")
        if len(candidates) > 1:
            # a form of small weight lies outside the central interval: its figures are given beside it
            text += "; under each form's point estimate: " + ", ".join(
                f"{c.name} gap {by_law[c.name]:+.4g}, multiplier {nominal_text(j)}" for j, c in enumerate(candidates) if c.name in by_law)
        if scaled:
            text += f"; binds only in the scaled problem: {', '.join(scaled)}"
        out.append(BaselineGap(
            b, gap, (float(lo), float(hi)), by_law, float(m_head), (float(m_lo) if m_lo < 1e299 else math.inf, float(m_hi) if m_hi < 1e299 else math.inf),
            {c.name: mult_nominal[b][j] for j, c in enumerate(candidates)}, beyond, float(ext_head), scaled, len(vals), level,
            {c.name: plans[b][j] for j, c in enumerate(candidates) if plans[b][j] is not None}, text,
        ))
    return out


def _scaled_binding(law: Any, setting: Setting, strategy: str, m: float, cap: float) -> tuple[str, ...]:
    """Constraints binding in the baseline's problem at m x budget but not at the budget."""
    if strategy == "separate" or not math.isfinite(m) or m <= 1.0 or m > cap * 100:
        return ()
    try:
        at = setting.optimize(law, strategy=strategy, baselines=False, marginal=False, check=False)
        scaled = setting.optimize(law, budget=m * setting.budget, strategy=strategy, baselines=False, marginal=False, check=False)
    except PlannerError:
        return ()
    ignore = {"budget", "budget (pretraining share)", "budget (specialization share)"}
    before = set(at.binding_constraints) - ignore
    return tuple(sorted(set(scaled.binding_constraints) - ignore - before))


def extrapolation_notes(candidates: Sequence[Candidate], budgets: Sequence[float], *, beyond_factor: float = 10.0) -> list[Note]:
    """One note per budget (every budget of a sweep) that is more than ``beyond_factor`` x the largest
    compute any candidate was fitted to."""
    out = []
    for budget in budgets:
        worst = []
        for c in candidates:
            f = fitted_compute(c.law)
            if f > 0 and math.isfinite(f) and budget / f > beyond_factor:
                worst.append(f"{c.name} {budget / f:.3g}x")
        if worst:
            out.append(Note("extrapolation", f"budget {budget:.3g} FLOPs is beyond {beyond_factor:g}x the largest fitted compute of "
                                             f"{', '.join(worst)}: every figure at this budget extrapolates the laws"))
    return out
