"""Running a scenario: resolve the law, solve the plan and the comparison curve, one frozen result.

:func:`run_scenario` returns a :class:`ScenarioResult` holding the objects the API returns (a
:class:`~planner.FittedLaw`, the :class:`~planner.Allocation` at the primary budget and the
sweep's allocations); :meth:`ScenarioResult.to_dict` is the ``allocation.json`` document the
reports render, built from those objects' own ``to_dict``.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..constants import SOLUTION_PRESENT
from ..errors import PlannerWarning
from ..fitting import FittedLaw
from .binding import check_domains, constraints_for, domain_laws, domains_for, law_argument, optimize_options_for, resolve_law
from .loading import load_scenario
from .schema import Scenario, ScenarioError

if TYPE_CHECKING:  # the optimizer is imported when a scenario is run
    from ..allocate import Allocation

__all__ = ["ScenarioResult", "CurvePoint", "run_scenario", "curve_budgets", "headline_lines"]


def headline_lines(doc: Mapping[str, Any]) -> list[str]:
    """The console's first lines: which plan is the headline, its numbers and the interval level (see
    :func:`planner.report.render.console_headline_lines`)."""
    from ..report.render import console_headline_lines

    return console_headline_lines(doc)


@dataclass(frozen=True)
class CurvePoint:
    """The objective of the plan and of each baseline at one budget (None where infeasible)."""

    budget: float
    objective: float | None
    status: str
    baselines: Mapping[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"budget": self.budget, "objective": self.objective, "status": self.status, "baselines": dict(self.baselines)}


@dataclass(frozen=True)
class ScenarioResult:
    """The outcome of :func:`run_scenario`: the law, the plan at every budget, the comparison curve.

    Attributes
    ----------
    scenario: the scenario that was run.
    law: the [law] law (loaded, built from params, or fitted).
    allocation: the plan at the primary budget, its baselines limited to ``[compare] strategies``.
    allocations: the plan at every budget listed by a sweep (empty for a single budget).
    domain_laws: laws brought by single domains (``[[domains]] law``), by domain name.
    curve: objective of the plan and of each baseline against compute.
    decision: the ``[uncertainty]`` analysis (:class:`planner.decision.Decision`) or None.
    timings: seconds spent fitting and solving (not part of :meth:`to_dict`: outputs are
        byte-identical across reruns; the CLI prints them with ``--verbose``).
    """

    scenario: Scenario
    law: FittedLaw
    allocation: "Allocation"
    allocations: tuple["Allocation", ...] = ()
    domain_laws: Mapping[str, FittedLaw] = field(default_factory=dict)
    curve: tuple[CurvePoint, ...] = ()
    timings: Mapping[str, float] = field(default_factory=dict, compare=False)
    decision: Any = None
    candidate_laws: Mapping[str, FittedLaw] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """The primary plan's status (``Allocation.status``)."""
        return self.allocation.status

    @property
    def message(self) -> str:
        return self.allocation.message

    @property
    def ok(self) -> bool:
        """True when the plan at the primary budget is optimal (anything else exits 1 in the CLI)."""
        return self.allocation.status == "optimal"

    def law_warnings(self) -> list[dict[str, str]]:
        """The laws' warnings as records (``source: "law"``), own domain laws prefixed with their name."""
        out = [{"code": w.code, "message": w.message, "source": "law"} for w in self.law.warnings]
        for name, own in self.domain_laws.items():
            out += [{"code": w.code, "message": f"[{name} law] {w.message}", "source": "law"} for w in own.warnings]
        return out

    def to_dict(self) -> dict[str, Any]:
        """The ``allocation.json`` document (schema ``planner.allocation/1``), see :func:`planner.report.build_result`."""
        from ..report.document import build_result, headline_document

        doc = build_result(
            self.allocation.to_dict(),
            laws={"law": self.law.to_dict(), **{f"domains.{name}.law": own.to_dict() for name, own in self.domain_laws.items()},
                  # [uncertainty] forms: each candidate fitted to the same runs (its fit points are the main law's)
                  **{f"candidates.{name}": {k: v for k, v in law.to_dict().items() if k != "points"} for name, law in self.candidate_laws.items()}},
            scenario=self.scenario.echo(),
            sweep=[a.to_dict() for a in self.allocations],
            curve=[c.to_dict() for c in self.curve],
            warnings=self.law_warnings(),
            title=self.scenario.report.title or self.scenario.name,
        ) | ({"decision": _without_timings(self.decision.to_dict())} if self.decision is not None else {})
        doc["headline"] = headline_document(doc)
        return doc

    def summary(self) -> str:
        """A few lines of text: the plan (``Allocation.summary``), the sweep, the warnings."""
        from ..report.render import console_multiplier

        lines = []
        doc = self.to_dict()
        head = headline_lines(doc) if self.allocation.feasible else []
        # multipliers as the reports print them: marked beyond 10x the largest fitted compute, no figure above 100x there
        plan_text = self.allocation.summary(multiplier=console_multiplier(doc))
        if head and not head[0].startswith("headline: the nominal plan"):
            # a robust headline: its numbers beside the nominal plan's first, then the nominal plan
            lines += head + ["nominal plan (optimal under the law's point estimate), for comparison:"]
            lines += ["  " + x for x in plan_text.splitlines()]
        else:  # the nominal plan is the headline: which one and the interval level, then the plan itself
            lines += head[:2] + [plan_text]
        if self.allocations:
            lines.append("sweep:")
            for a in self.allocations:
                lines.append(f"  {a.budget:.3g} FLOPs: " + (a.summary().splitlines()[0] if a.feasible else f"{a.status}: {a.message}"))
        for w in list(self.allocation.warnings):
            lines.append(f"  warning [plan/{w.code}]: {w.message}")
        for w in self.law_warnings():
            lines.append(f"  warning [law/{w['code']}]: {w['message']}")
        if self.decision is not None:
            lines += ["", "decisions under an uncertain law:", self.decision.summary()]
        return "\n".join(lines)


def _without_timings(d: dict[str, Any]) -> dict[str, Any]:
    """The decision's document without its timings: reports are byte-identical across reruns
    (the timings stay on ``ScenarioResult.timings`` for ``--verbose``)."""
    return {k: v for k, v in d.items() if k != "timings"}


def curve_budgets(scenario: Scenario, *, sweep: bool = False) -> list[float]:
    """Budgets for the objective-against-compute plot (the sweep list, or a span around the plan)."""
    b = scenario.budget
    if b.is_sweep and not sweep:
        return b.budgets
    span, n = scenario.report.compute_span, scenario.report.compute_points
    center = b.primary
    lo, hi = math.log10(center / span), math.log10(center * span)
    values = [10 ** (lo + (hi - lo) * i / (n - 1)) for i in range(n)]
    # the scenario's own budgets exactly (10**23.0 may come out as 1.0000000000000002e23)
    values = [v for v in values if not any(abs(v - x) <= 1e-9 * x for x in b.budgets)]
    return sorted(set(values) | set(b.budgets))


def _objective(a: "Allocation") -> float | None:
    return a.objective if a.status in SOLUTION_PRESENT and math.isfinite(a.objective) else None


def _curve_plans(optimize: Callable[..., Any], sweep_plans: Callable[..., Any], law_arg: Any, plan: "Allocation", primary: float,
                 budgets: list[float], domains: list[dict[str, Any]], constraints: Any, strategy: str,
                 options: Mapping[str, Any]) -> list["Allocation"]:
    """One strategy's plan at every curve budget (a compiled sweep; in error, one error-optimal plan per budget)."""
    if options.get("objective") == "error":
        return [plan if (strategy == "split" and b == primary) else
                optimize(law_arg, b, domains, constraints, strategy=strategy, baselines=False, **options) for b in budgets]
    return list(sweep_plans(law_arg, budgets, domains, constraints, strategy=strategy, baselines=False,
                            **{**options, "marginal": strategy == "split"}))


def run_scenario(
    scenario: Scenario | str | Path,
    *,
    sweep: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    optimize_options: Mapping[str, Any] | None = None,
    n_jobs: int | None = -1,
) -> ScenarioResult:
    """Resolve the law, solve the plan and the comparison curve, and build the result.

    The plan at the primary budget is solved with ``planner.optimize`` (baselines, compute
    multipliers, marginal value, independent check). The objective-against-compute curve
    solves the plan and each baseline strategy at every curve budget with ``planner.sweep``
    (the sweep list, or ``report.compute_points`` budgets across ``report.compute_span``).
    ``sweep=True`` lists the plan at every curve budget even for a single budget.
    ``progress(stage, done, total)`` is called for the fit's bootstrap ("fit") and the solves
    ("solve"). ``n_jobs``: workers for the fit and the ``[uncertainty]`` analysis (scikit-learn's
    convention: -1 every core, 1 in this process; the results do not depend on it). Raises
    ScenarioError / FitError / RunsError / AllocationError on bad input.
    """
    from ..allocate import optimize, sweep as sweep_plans

    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    t0 = time.perf_counter()
    fit_progress = (lambda done, total: progress("fit", done, total)) if progress else None
    fitted_law = resolve_law(scenario, progress=fit_progress, n_jobs=n_jobs)
    law_seconds = time.perf_counter() - t0
    own_laws = domain_laws(scenario)
    check_domains(scenario, fitted_law, own_laws)
    law_arg = law_argument(scenario, fitted_law, own_laws)
    domains = domains_for(scenario)
    constraints = constraints_for(scenario) or None
    options = {**optimize_options_for(scenario), **dict(optimize_options or {})}
    strategies = list(scenario.compare.strategies) if domains else []
    budgets = curve_budgets(scenario, sweep=sweep)
    primary = scenario.budget.primary
    steps = 2 + len(strategies)
    t1 = time.perf_counter()
    plan = optimize(law_arg, primary, domains, constraints, baselines=bool(strategies), **options)
    plan = replace(plan, baselines=tuple(b for b in plan.baselines if b.strategy in strategies))
    if progress:
        progress("solve", 1, steps)
    curve_options = {**options, "check": False}
    by_strategy: dict[str, list[Allocation]] = {}
    with warnings.catch_warnings():
        # the curve's plans are context for the plot: their warnings would repeat the plan's, once per budget
        warnings.simplefilter("ignore", PlannerWarning)
        for i, strategy in enumerate(["split"] + strategies):
            by_strategy[strategy] = _curve_plans(optimize, sweep_plans, law_arg, plan, primary, budgets, domains, constraints,
                                                 strategy, curve_options)
            if progress:
                progress("solve", 2 + i, steps)
    solve_seconds = time.perf_counter() - t1
    split = [plan if b == primary else p for b, p in zip(budgets, by_strategy["split"])]
    curve = tuple(
        CurvePoint(budget=b, objective=_objective(split[j]), status=split[j].status,
                   baselines={s: _objective(by_strategy[s][j]) for s in strategies})
        for j, b in enumerate(budgets)
    )
    listed = scenario.budget.budgets if scenario.budget.is_sweep else (budgets if sweep else [])
    decision = None
    candidate_laws: dict[str, FittedLaw] = {}
    if scenario.uncertainty is not None:
        t2 = time.perf_counter()
        with warnings.catch_warnings():
            # plans per form, per draw and per baseline: their notes are kept in the decision's tables
            warnings.simplefilter("ignore", PlannerWarning)
            decision, candidate_laws = _decide(scenario, fitted_law, domains, constraints, options, budgets, n_jobs=n_jobs)
        solve_seconds += time.perf_counter() - t2
    return ScenarioResult(
        scenario=scenario,
        law=fitted_law,
        allocation=plan,
        allocations=tuple(split[budgets.index(b)] for b in listed),
        domain_laws=own_laws,
        curve=curve,
        timings={"law_seconds": law_seconds, "solve_seconds": solve_seconds,
                 **({f"decision_{k}_seconds": float(v) for k, v in getattr(decision, "timings", {}).items()} if decision is not None else {})},
        decision=decision,
        candidate_laws=candidate_laws,
    )


def _decide(scenario: Scenario, fitted_law: FittedLaw, domains: list[Any], constraints: Any, options: Mapping[str, Any],
            budgets: list[float], n_jobs: int | None = None) -> tuple[Any, dict[str, FittedLaw]]:
    """The ``[uncertainty]`` analysis: every candidate form (listed and fitted here, or the [law] ensemble),
    and the laws fitted here by form name (empty when the [law] ensemble is used)."""
    from ..decision import decide

    u = scenario.uncertainty
    assert u is not None
    if u.forms:
        if scenario.law.source != "runs":
            raise ScenarioError(f"{scenario.path or '<scenario>'}: uncertainty.forms needs [law] runs to fit each form on")
        cands = []
        for form in u.forms:
            spec = scenario.law.model_copy(update={"form": form, "bootstrap": u.draws})
            cands.append((form, resolve_law(scenario.model_copy(update={"law": spec}), n_jobs=n_jobs), 1.0))
    else:
        cands = fitted_law
    keep = {"flops", "inference", "inference_budget", "fixed_fraction", "path", "solver"}
    fitted_here = {form: law for form, law, _ in cands} if u.forms else {}
    return decide(cands, scenario.budget.primary, domains, constraints, draws=True, max_draws=u.max_draws, robust=tuple(u.robust),
                  headline=u.headline, epsilon=u.epsilon, level=u.level, multiplier_draws=u.multiplier_draws,
                  baselines=tuple(scenario.compare.strategies) or None, budgets=budgets, n_jobs=n_jobs,
                  **{k: v for k, v in options.items() if k in keep}), fitted_here
