r"""``decide``: every candidate's plan, cross-regret, robust plans, ranges, honest baselines, sensitivity.

>>> d = decide([("split-additive", add, 0.5), ("split-effective", eff, 0.5)], budget=1e22,
...            domains=["code", "math"], headline="robust-worst")          # doctest: +SKIP
>>> print(d.summary())                                                       # doctest: +SKIP

The headline plan is one of ``"nominal"`` (the highest-weight candidate's own plan),
``"robust-mean"`` (minimum expected regret) or ``"robust-worst"`` (minimum worst-case regret);
every output names it and the interval level.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .._records import Note, json_number as _num, to_jsonable
from ..allocate import Allocation, Baseline
from .baselines import DEFAULT_STRATEGIES, BaselineGap, baseline_gaps, extrapolation_notes
from .candidates import Candidate, DecisionError, LocalSolver, Plan, ScenarioPlans, ScenarioSet, Setting, as_candidates, scenario_plans
from .ranges import DecisionRanges, FlatnessBand, decision_ranges, flatness_band
from .regret import RegretTable, cross_regret
from .robust import RobustPlan, robust_plan
from .sensitivity import Sensitivity, identifiability_notes, plan_sensitivity

__all__ = ["Decision", "decide", "HEADLINES"]

HEADLINES = ("nominal", "robust-mean", "robust-worst")


@dataclass(frozen=True)
class Decision:
    """Everything ``decide`` found (see the module docstring); ``to_dict`` is JSON-able."""

    headline: str
    headline_plan: Plan
    level: float
    candidates: tuple[tuple[str, float], ...]
    plans: tuple[Plan, ...]
    allocations: tuple[Allocation, ...]
    regret: RegretTable
    robust: tuple[RobustPlan, ...]
    ranges: DecisionRanges
    flatness: FlatnessBand | None
    baselines: tuple[BaselineGap, ...]
    sensitivity: tuple[Sensitivity, ...]
    notes: tuple[Note, ...]
    n_scenarios: int
    draw_method: str
    timings: dict[str, float] = field(default_factory=dict)

    def strategies(self) -> tuple[Baseline, ...]:
        """Every strategy as a ``Baseline`` record: each candidate's plan, the robust plans and the
        habitual baselines (objective: the expected loss over every scenario)."""
        out = []
        for p, a in zip(self.plans, self.allocations):
            out.append(Baseline(f"plan under {p.source}", float(a.objective), math.nan, p.model_size, p.pretrain_tokens, dict(p.spec_tokens), "optimal",
                                f"optimal under the {p.source} point estimate"))
        out += [r.as_baseline() for r in self.robust]
        for b in self.baselines:
            out.append(Baseline(b.strategy, math.nan, b.multiplier, None, None, {}, "optimal", b.text))
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "headline": self.headline, "headline_plan": self.headline_plan.to_dict(), "interval_level": self.level,
            "candidates": [{"name": n, "weight": w} for n, w in self.candidates],
            "plans": [p.to_dict() for p in self.plans],
            "regret": self.regret.to_dict(), "robust": [r.to_dict() for r in self.robust], "ranges": self.ranges.to_dict(),
            "flatness": None if self.flatness is None else self.flatness.to_dict(),
            "baselines": [b.to_dict() for b in self.baselines], "sensitivity": [s.to_dict() for s in self.sensitivity],
            "notes": [n.to_dict() for n in self.notes], "n_scenarios": self.n_scenarios, "draw_method": self.draw_method,
            "timings": {k: _num(v) for k, v in self.timings.items()},
        }

    def summary(self) -> str:
        """Readable text: headline, plans per law, regret, robust plans, ranges, baselines, notes."""
        pct = int(round(100 * self.level))
        h = self.headline_plan
        lines = [f"headline: {self.headline} plan ({h.label}); intervals are central {pct} % over {self.ranges.over} ({self.n_scenarios} scenarios)",
                 f"  N = {h.model_size:.4g}, D = {h.pretrain_tokens:.4g}, " + ", ".join(f"D'[{k}] = {v:.4g}" for k, v in h.spec_tokens.items()),
                 "", "candidates: " + ", ".join(f"{n} ({100 * w:.0f} %)" for n, w in self.candidates), "", "cross-regret (objective units):",
                 self.regret.markdown(), ""]
        for r in self.robust:
            lines.append(f"{r.strategy}: expected regret {r.expected_regret:.4g}, worst {r.worst_regret:.4g}; "
                         f"{'certified' if r.certified else 'not certified'} ({r.method})")
        lines += ["", f"decision ranges ({pct} %, over {self.ranges.over}):", self.ranges.markdown()]
        if self.flatness is not None:
            lines += ["", f"flatness band of the {self.flatness.objective} ({self.flatness.method}):", self.flatness.markdown()]
        if self.baselines:
            lines += ["", "baselines against the headline plan:"] + [f"  {b.text}" for b in self.baselines]
        for s in self.sensitivity:
            top = s.top(3)
            lines.append(f"\nsensitivity ({s.candidate}), top parameters: " + "; ".join(
                f"{r.param}: N {100 * r.model_size_rel_per_se:+.1f} %/SE, D {100 * r.pretrain_tokens_rel_per_se:+.1f} %/SE"
                + (f" (information from {s.information[r.param][0][0]}: {100 * s.information[r.param][0][1]:.0f} %)" if s.information.get(r.param) else "")
                for r in top.itertuples()))
        if self.notes:
            lines += ["", "notes:"] + [f"  [{n.code}] {n.message}" for n in self.notes]
        return "\n".join(lines)


def decide(
    candidates: Any,
    budget: float,
    domains: Sequence[Any],
    constraints: Any = None,
    *,
    draws: bool = True,
    max_draws: int | None = 100,
    robust: Sequence[str] = ("mean", "worst"),
    headline: str = "nominal",
    epsilon: float = 1e-3,
    level: float = 0.9,
    draw_method: str = "local",
    baselines: Sequence[str] | None = DEFAULT_STRATEGIES,
    multiplier_draws: int = 2,
    sensitivity: bool = True,
    flatness: bool = True,
    budgets: Sequence[float] = (),
    min_weight: float = 0.01,
    n_jobs: int | None = None,
    **options: Any,
) -> Decision:
    """Plans under every candidate law and a decision that holds up across them.

    candidates: ``(name, FittedLaw, weight)`` tuples, a dict, a FittedLaw or an ensemble with
        ``candidates``/``weights`` (candidates below ``min_weight`` are dropped).
    draws / max_draws: use each candidate's bootstrap draws (at most ``max_draws``, evenly spaced).
    robust: which robust plans to compute ("mean", "worst"). headline: "nominal",
        "robust-mean" or "robust-worst". epsilon: flatness tolerance (relative, 0.1 %).
    level: central probability of every interval. draw_method: "local" or "optimize" (see
        :func:`~planner.decision.candidates.scenario_plans`). baselines: strategies compared;
        multiplier_draws: draws per candidate used for multiplier intervals.
    budgets: every budget of a sweep, for the extrapolation notes.
    options: passed to ``planner.optimize`` (flops, inference, inference_budget, fixed_fraction, path, solver).
    """
    if headline not in HEADLINES:
        raise DecisionError(f"headline must be one of {', '.join(HEADLINES)}, not {headline!r}")
    robust = tuple(robust)
    for r in robust:
        if r not in ("mean", "worst"):
            raise DecisionError(f"robust kinds are 'mean' and 'worst', not {r!r}")
    if headline.startswith("robust-") and headline[7:] not in robust:
        robust = robust + (headline[7:],)
    if not 0 < level < 1:
        raise DecisionError(f"level must be in (0, 1), got {level!r}")
    cands = as_candidates(candidates, min_weight=min_weight)
    setting = Setting.build(budget, domains, constraints, **options)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    allocs = []
    plans = []
    for c in cands:
        a = setting.optimize(c.law, marginal=False, baselines=bool(baselines))
        if not a.feasible:
            raise DecisionError(f"no feasible plan under candidate {c.name!r}: {a.message}")
        allocs.append(a)
        plans.append(Plan.from_allocation(a, f"plan under {c.name}", source=c.name))
    timings["plans_per_form"] = time.perf_counter() - t0
    nominal_ss = ScenarioSet(cands, setting, use_draws=False)
    ss = ScenarioSet(cands, setting, use_draws=draws, max_draws=max_draws)
    t0 = time.perf_counter()
    sp = scenario_plans(ss, plans, method=draw_method, n_jobs=n_jobs)
    timings["scenario_plans"] = time.perf_counter() - t0
    nominal_opt = np.array([a.objective for a in allocs])
    t0 = time.perf_counter()
    robust_plans = [robust_plan(ss, sp.value, plans, kind=k) for k in robust]
    timings["robust"] = time.perf_counter() - t0
    # best known optima: no evaluated plan may beat f_s^*
    all_plans = plans + [r.plan for r in robust_plans]
    F = ss.evaluate(all_plans)
    optimum = np.minimum(sp.value, F.min(axis=1))
    Fn = nominal_ss.evaluate(all_plans)
    nominal_opt = np.minimum(nominal_opt, Fn.min(axis=1))
    if np.any(optimum < sp.value):
        robust_plans = [robust_plan(ss, optimum, plans + [r.plan for r in robust_plans], kind=k) for k in robust]
        all_plans = plans + [r.plan for r in robust_plans]
        F = ss.evaluate(all_plans)
        Fn = nominal_ss.evaluate(all_plans)
    top = int(np.argmax([c.weight for c in cands]))
    if headline == "nominal":
        head = plans[top]
    else:
        head = next(r.plan for r in robust_plans if r.kind == headline[7:])
    # baselines: their plans are rows of the regret table too
    t0 = time.perf_counter()
    gaps = baseline_gaps(cands, setting, ss, head, allocs, strategies=tuple(baselines or ()), level=level,
                         multiplier_draws=multiplier_draws, n_jobs=n_jobs) if baselines else []
    timings["baselines"] = time.perf_counter() - t0
    rows = list(all_plans)
    for g in gaps:
        p = g.plans.get(cands[top].name)
        if p is not None:
            rows.append(Plan(f"{g.strategy} (under {cands[top].name})", p.model_size, p.pretrain_tokens, p.spec_tokens, g.strategy, "baseline"))
    table = cross_regret(rows, ss, optimum, nominal_ss, nominal_opt, level=level)
    ranges = decision_ranges(ss, sp, level=level)
    t0 = time.perf_counter()
    band = None
    if flatness:
        if headline == "nominal":
            solver = LocalSolver(nominal_ss, np.array([top]))
            what = f"objective under the {cands[top].name} point estimate"
        elif headline == "robust-mean":
            solver = LocalSolver(ss, np.arange(len(ss)), weights=ss.prob, kind="mean")
            what = "expected loss over the scenarios"
        else:
            solver = LocalSolver(ss, np.arange(len(ss)), kind="worst", offsets=optimum)
            what = "worst-case regret over the scenarios"
        band = flatness_band(solver, head, epsilon=epsilon, objective=what)
    timings["flatness"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    sens = tuple(plan_sensitivity(c, setting, p) for c, p in zip(cands, plans) if c.law.draws is not None and len(c.law.draws) >= 2) if sensitivity else ()
    timings["sensitivity"] = time.perf_counter() - t0
    notes = extrapolation_notes(cands, list(budgets) or [setting.budget]) + identifiability_notes(cands)
    if sp.improved_by_cross_evaluation:
        notes.append(Note("scenario-plans", f"{sp.improved_by_cross_evaluation} scenario optima were improved by another scenario's plan (local solves stop short)"))
    return Decision(headline, head, level, tuple((c.name, c.weight) for c in cands), tuple(plans), tuple(allocs), table,
                    tuple(robust_plans), ranges, band, tuple(gaps), sens, tuple(notes), len(ss), sp.method, timings)
