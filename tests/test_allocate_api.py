"""The allocator's public surface: explicit options checked by one table, quantities in the Python API,
warnings raised once, solver fallbacks logged, a light import, and the renamed parameter draw."""

from __future__ import annotations

import inspect
import logging
import subprocess
import sys
import warnings

import pytest

import planner
from planner.allocate import (
    DEFAULT_FIXED_FRACTION,
    OPTION_RULES,
    AllocationError,
    Constraints,
    Domain,
    ParameterDraw,
    optimize,
    sweep,
)
from planner.constants import MAX_DOMAINS
from planner.errors import PlannerWarning

HOFFMANN = dict(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
SHARED = dict(A=406.4, alpha=0.34, beta=0.28)
PER_DOMAIN = {"E[code]": 1.2, "E[math]": 1.0, "B[code]": 410.7, "B[math]": 600.0}


def additive(d0: float = 0.0) -> planner.FittedLaw:
    return planner.law(
        "split-additive", domains=["code", "math"], **SHARED, **PER_DOMAIN,
        **{"C[code]": 30.0, "C[math]": 50.0, "gamma[code]": 0.3, "gamma[math]": 0.25, "D0[code]": d0, "D0[math]": d0},
    )


def chinchilla() -> planner.FittedLaw:
    return planner.law("chinchilla", **HOFFMANN)


# ------------------------------------------------------------------------ quantities in the Python API
def test_domain_and_constraints_take_quantity_strings() -> None:
    d = planner.Domain(name="legal", unique_tokens="5B", inference_tokens="1.2T tokens")
    assert d.unique_tokens == 5e9 and d.inference_tokens == 1.2e12
    c = planner.Constraints(max_model_size="30B", max_pretrain_tokens="2T", model_sizes=["1B", 3e9])
    assert c.max_model_size == 30e9 and c.max_pretrain_tokens == 2e12 and c.model_sizes == (1e9, 3e9)
    # the string and the number give the same plan
    a = optimize(additive(), 1e22, [Domain("code", unique_tokens="5B"), Domain("math")], max_model_size="2B", baselines=False)
    b = optimize(additive(), 1e22, [Domain("code", unique_tokens=5e9), Domain("math")], max_model_size=2e9, baselines=False)
    assert a.objective == b.objective and a.model_size == b.model_size
    assert optimize(chinchilla(), "1e22 FLOPs", baselines=False).model_size == optimize(chinchilla(), 1e22, baselines=False).model_size


@pytest.mark.parametrize("call, match", [
    (lambda: Domain("legal", unique_tokens="5 FLOPs"), "unit"),
    (lambda: Constraints(max_model_size="30B tokens"), "unit"),
    (lambda: Constraints(max_model_size=True), "must be a number"),
    (lambda: Domain("x", weight="heavy"), "not a number"),
])
def test_bad_quantities_are_named(call, match: str) -> None:
    with pytest.raises(AllocationError, match=match):
        call()


# ------------------------------------------------------------------------ options
def test_options_are_explicit_keywords() -> None:
    sig = inspect.signature(optimize)
    kw_only = {n for n, p in sig.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert set(OPTION_RULES) - {"strategy"} <= kw_only
    assert sig.parameters["fixed_fraction"].default == DEFAULT_FIXED_FRACTION == 0.8
    assert set(inspect.signature(sweep).parameters) == set(sig.parameters) - {"budget"} | {"budgets"}
    doc = optimize.__doc__ or ""
    for name in ("inference_budget", "solver", "robust", "fixed_fraction"):
        assert name in doc


@pytest.mark.parametrize("kwargs, match", [
    ({"inference": "separate"}, "needs inference_budget"),
    ({"inference": "in-budget", "inference_budget": 1e20}, "exclusive"),
    ({"inference": "ignore", "inference_budget": 1e20}, "contradict"),
    ({"inference_budget": 1e20}, "no inference tokens"),
    ({"path": "simplex"}, r"path must be one of 'auto', 'gp', 'dcp', 'multistart'"),
    ({"mode": "max-loss"}, "mode must be one of"),
    ({"robust": "median"}, "robust must be one of"),
    ({"seed": -1}, "seed must be an integer"),
    ({"max_draws": 0}, "max_draws must be an integer"),
    ({"baselines": "yes"}, "baselines must be True or False"),
    ({"fixed_fraction": 1.0}, r"fixed_fraction must be a number in \(0, 1\)"),
    ({"flops": "6N"}, "flops must be a FlopModel"),
    ({"solver": "simplex"}, "solver must be one of"),
    ({"colour": "red"}, "unknown options"),
])
def test_option_errors_read_the_same(kwargs: dict, match: str) -> None:
    with pytest.raises(AllocationError, match=match):
        optimize(chinchilla(), 1e22, ["code"], **kwargs)


def test_every_bad_option_is_named_at_once() -> None:
    with pytest.raises(AllocationError) as exc:
        optimize(chinchilla(), 1e22, path="x", robust="y", seed=-3)
    assert "path" in str(exc.value) and "robust" in str(exc.value) and "seed" in str(exc.value)


def test_inference_ignore_with_demand_is_said() -> None:
    doms = [Domain("code", inference_tokens=1e12)]
    with pytest.warns(PlannerWarning, match="inference-ignored"):
        plan = optimize(chinchilla(), 1e22, doms, inference="ignore", baselines=False)
    assert any(w.code == "inference-ignored" for w in plan.warnings)
    plain = optimize(chinchilla(), 1e22, ["code"], baselines=False)
    assert plan.model_size == pytest.approx(plain.model_size, rel=1e-9)  # ignored: same plan as without demand


# ------------------------------------------------------------------------ budget and domains type checks
@pytest.mark.parametrize("budget, match", [
    (True, "must be a number of FLOPs"), (0, "positive"), (float("nan"), "positive"), ("lots", "not a number"), ([1e21], "number of FLOPs"),
])
def test_budget_is_checked_once_and_strictly(budget, match: str) -> None:
    with pytest.raises(AllocationError, match=match):
        optimize(chinchilla(), budget)
    with pytest.raises(AllocationError, match=match):
        sweep(chinchilla(), [1e21, budget])


def test_a_string_is_not_a_list_of_domains() -> None:
    with pytest.raises(AllocationError, match=r"not a single str 'code'; write domains=\['code'\]"):
        optimize(chinchilla(), 1e21, domains="code")
    with pytest.raises(AllocationError, match="budgets must be a list"):
        sweep(chinchilla(), 1e21)


def test_domain_count_is_capped() -> None:
    with pytest.raises(AllocationError, match="MAX_DOMAINS"):
        optimize(chinchilla(), 1e21, [f"d{i}" for i in range(MAX_DOMAINS + 1)])


# ------------------------------------------------------------------------ warnings and logging
def test_plan_warnings_raised_once_at_the_boundary() -> None:
    law = planner.law("split-additive", domains=["code", "math"], **SHARED, **PER_DOMAIN,
                      **{"C[code]": 30.0, "C[math]": 1e-6, "gamma[code]": 0.3, "gamma[math]": 0.3, "D0[code]": 1e9, "D0[math]": 1e9})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = optimize(law, 1e22, ["code", "math"])
    mine = [w for w in caught if issubclass(w.category, PlannerWarning)]
    assert [str(w.message).split(":")[0] for w in mine] == [w.code for w in plan.warnings]
    assert all(w.filename == __file__ for w in mine)  # attributed to the caller
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plans = sweep(law, [1e22, 1e22], ["code", "math"])
    assert sum(issubclass(w.category, PlannerWarning) for w in caught) == len(plans[0].warnings)


def test_solver_fallbacks_are_logged(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import cvxpy as cp

    calls = {"n": 0}
    real = cp.Problem.solve

    def flaky(self, *a, **kw):  # the first Clarabel attempt fails, as it does on hard instances
        calls["n"] += 1
        if calls["n"] == 1:
            raise cp.error.SolverError("simulated failure")
        return real(self, *a, **kw)

    monkeypatch.setattr(cp.Problem, "solve", flaky)
    with caplog.at_level(logging.INFO, logger="planner.allocate"):
        plan = optimize(chinchilla(), 1e22, baselines=False, solver="cvxpy")
    assert plan.status == "optimal"
    assert any("falling back" in r.getMessage() for r in caplog.records if r.name == "planner.allocate")


# ------------------------------------------------------------------------ names and imports
def test_parameter_draw_is_not_a_scenario() -> None:
    import planner.allocate.problem as problem

    assert not hasattr(problem, "Scenario")
    assert ParameterDraw((({"E": 1.0},))).params == ({"E": 1.0},)
    assert planner.Scenario.__module__.startswith("planner.scenario")


def test_import_planner_does_not_import_cvxpy() -> None:
    code = "import sys, planner, planner.allocate; print('cvxpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
