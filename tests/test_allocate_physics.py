"""Checked physics (issue 9): each red-team reproduction on the allocator, as an error or a correct, flagged result."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import planner
from planner.allocate import PLAN_PRESENT, PLAN_STATUSES, AllocationError, Domain, optimize, sweep
from planner.errors import PlannerWarning

warnings.simplefilter("ignore", PlannerWarning)

HOFFMANN = dict(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
SHARED = dict(A=406.4, alpha=0.34, beta=0.28)


def chinchilla(**over: float) -> planner.FittedLaw:
    return planner.law("chinchilla", **{**HOFFMANN, **over})


def three(d0: float) -> planner.FittedLaw:
    per = {"E[code]": 1.2, "E[math]": 1.0, "E[bio]": 1.1, "B[code]": 410.7, "B[math]": 600.0, "B[bio]": 500.0}
    spec = {f"{p}[{d}]": v for d in ("code", "math", "bio") for p, v in (("C", 30.0), ("gamma", 0.3), ("D0", d0))}
    return planner.law("split-additive", domains=["code", "math", "bio"], **SHARED, **per, **spec)


# ------------------------------------------------------------------------ weights: only ratios matter
@pytest.mark.parametrize("d0, solver", [(0.0, "auto"), (1e9, "auto"), (1e9, "cvxpy")])
def test_a_common_scale_of_the_weights_changes_nothing(d0: float, solver: str) -> None:
    names = ("code", "math", "bio")
    base = solver == "auto"  # the compute multipliers re-solve many times: on the fast path only
    tiny = optimize(three(d0), 1e22, [Domain(n, 1e-9 * w) for n, w in zip(names, (2, 1, 1))], solver=solver, baselines=base)
    unit = optimize(three(d0), 1e22, [Domain(n, float(w)) for n, w in zip(names, (2, 1, 1))], solver=solver, baselines=base)
    assert tiny.status == unit.status == "optimal"
    assert tiny.model_size == pytest.approx(unit.model_size, rel=1e-9)
    assert tiny.pretrain_tokens == pytest.approx(unit.pretrain_tokens, rel=1e-9)
    for n in names:
        assert tiny.spec_tokens[n] == pytest.approx(unit.spec_tokens[n], rel=1e-8, abs=1.0)
        assert tiny.domain(n).loss == pytest.approx(unit.domain(n).loss, rel=1e-12)
    assert tiny.objective == pytest.approx(1e-9 * unit.objective, rel=1e-9)  # reported in the caller's weights
    for a, b in zip(tiny.baselines, unit.baselines):
        assert a.compute_multiplier == pytest.approx(b.compute_multiplier, rel=1e-6)


# ------------------------------------------------------------------------ internal limits are reported
def test_huge_budget_reaches_the_internal_size_limit_and_says_so() -> None:
    plan = optimize(chinchilla(), 1e40, baselines=False)
    assert plan.status == "limit" and not plan.optimal and not plan.certified
    assert plan.feasible  # a plan is present, it is just not an optimum
    assert plan.model_size == pytest.approx(1e16, rel=1e-9)
    assert "internal limit: model_size <= 1e+16" in plan.binding_constraints
    assert plan.message.startswith("NOT an optimum")
    assert any(w.code == "internal-limit" for w in plan.warnings)
    # the closed form puts N far beyond the limit: the limit really binds
    g = (0.34 * 406.4 / (0.28 * 410.7)) ** (1 / 0.62)
    assert g * (1e40 / 6) ** (0.28 / 0.62) > 1e16
    # an explicit user bound at the same place is a constraint, not a limit
    user = optimize(chinchilla(), 1e40, baselines=False, max_model_size=1e16)
    assert user.status == "optimal" and "max_model_size" in user.binding_constraints


def test_plans_inside_the_limits_list_no_internal_limit() -> None:
    plan = optimize(chinchilla(), 1e22, baselines=False)
    assert plan.status == "optimal" and plan.optimal
    assert not any(r.name.startswith("internal limit") for r in plan.binding)


def test_one_flop_is_infeasible_with_the_reason() -> None:
    for solver in ("auto", "cvxpy"):
        plan = optimize(chinchilla(), 1.0, baselines=False, solver=solver)
        assert plan.status == "infeasible" and not plan.feasible
        assert "below the 6000 FLOPs" in plan.message and "smallest model the planner considers" in plan.message


def test_separate_inference_limit_of_one_flop_is_infeasible() -> None:
    plan = optimize(chinchilla(), 1e22, [Domain("code", inference_tokens=1e12)], inference_budget=1.0, baselines=False)
    assert plan.status == "infeasible"
    assert "inference_budget 1 FLOPs" in plan.message and "inference tokens" in plan.message
    assert math.isnan(plan.model_size)  # not N = 5e-21 "optimal"


def test_law_and_solver_disagreeing_is_inaccurate_not_optimal(monkeypatch: pytest.MonkeyPatch) -> None:
    from planner.allocate import kkt

    real = kkt.KKTSolver._solution

    def skewed(self, N, budget, inn, notes=()):  # a solver whose own objective is 1 % off the law
        sol = real(self, N, budget, inn, notes)
        return type(sol)(**{**sol.__dict__, "solver_value": sol.solver_value * 1.01})

    monkeypatch.setattr(kkt.KKTSolver, "_solution", skewed)
    plan = optimize(chinchilla(), 1e22, baselines=False)
    assert plan.status == "inaccurate" and not plan.optimal and not plan.certified
    assert plan.message.startswith("NOT an optimum")
    assert any(w.code == "check-mismatch" for w in plan.warnings)


def test_statuses_are_documented_and_grouped() -> None:
    assert set(PLAN_PRESENT) < set(PLAN_STATUSES)
    assert "infeasible" not in PLAN_PRESENT and "limit" in PLAN_PRESENT
    text = open(__file__.replace("tests/test_allocate_physics.py", "docs/optimizer.md")).read()
    for status in PLAN_STATUSES:
        assert f"`{status}`" in text


# ------------------------------------------------------------------------ laws that make no physical sense
@pytest.mark.parametrize("over, match", [
    (dict(alpha=0.0, beta=0.0), "exponent alpha = 0 .* must be > 0"),
    (dict(E=-1.0), "E = -1 .* must be >= 0"),
])
def test_unphysical_laws_are_refused(over: dict, match: str) -> None:
    # refused where the law is built (planner.law checks the form's ranges), else by the optimizer: never planned
    try:
        law = chinchilla(**over)
    except planner.PlannerError as err:
        assert all(f"{name} = {value:g}" in str(err) for name, value in over.items()), err
        return
    with pytest.raises(AllocationError, match=match):
        optimize(law, 1e21)


# ------------------------------------------------------------------------ Python API type checks
def test_type_checks_of_the_python_api() -> None:
    with pytest.raises(AllocationError, match="budget must be a number of FLOPs, got True"):
        optimize(chinchilla(), True)
    with pytest.raises(AllocationError, match="not a single str 'code'"):
        optimize(chinchilla(), 1e21, domains="code")
    with pytest.raises(AllocationError, match="MAX_DOMAINS"):
        optimize(chinchilla(), 1e21, [f"d{i}" for i in range(planner.constants.MAX_DOMAINS + 1)])


# ------------------------------------------------------------------------ many domains stay fast (timed in benchmarks/)
def test_thousand_domains_with_a_shared_law_are_solved_exactly() -> None:
    """1,000 domains of one shared Chinchilla law: every branch is the general model, so the plan is
    the closed form of the weighted law (the weights factor out)."""
    K = 1000
    doms = [Domain(f"d{i}", 1.0 + (i % 3)) for i in range(K)]
    plan = optimize(chinchilla(), 1e22, doms, baselines=False)
    assert plan.status == "optimal" and plan.path == "gp"
    g = (0.34 * 406.4 / (0.28 * 410.7)) ** (1 / 0.62)
    n = g * (1e22 / 6) ** (0.28 / 0.62)
    assert plan.model_size == pytest.approx(n, rel=1e-9)
    assert len(plan.domains) == K and all(d.spec_tokens == 0 for d in plan.domains)
    swept = sweep(chinchilla(), [1e21, 1e22], doms)
    assert swept[1].model_size == pytest.approx(n, rel=1e-9)


def test_thousand_domains_split_law_matches_a_small_equivalent() -> None:
    """1,000 identical split-additive domains with weight 1/1000 each behave like... themselves: each
    branch gets the same D', and the plan satisfies the budget exactly."""
    K = 1000
    names = [f"d{i}" for i in range(K)]
    kw: dict[str, float] = dict(SHARED)
    for n in names:
        kw.update({f"E[{n}]": 1.2, f"B[{n}]": 410.7, f"C[{n}]": 30.0, f"gamma[{n}]": 0.3, f"D0[{n}]": 1e8})
    law = planner.law("split-additive", domains=names, **kw)
    plan = optimize(law, 1e23, [Domain(n) for n in names], baselines=False)
    assert plan.status == "optimal"
    spec = np.array(list(plan.spec_tokens.values()))
    assert np.ptp(spec) <= 1e-9 * spec.mean()
    assert 6 * plan.model_size * (plan.pretrain_tokens + spec.sum()) == pytest.approx(1e23, rel=1e-12)
