"""The numpy effective-tokens solver (split-effective, split-transfer) against the cvxpy reference,
brute force, finite differences and properties."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import planner
from planner.allocate import Domain, optimize
from planner.allocate._context import build_context
from planner.allocate._options import check_options
from planner.allocate.kkt import kkt_applicable
from planner.allocate.kkt_effective import EffectiveKKTSolver, effective_applicable
from planner.errors import PlannerWarning

warnings.simplefilter("ignore", PlannerWarning)


def effective_law(rng: np.random.Generator, K: int, form: str = "split-effective") -> tuple[planner.FittedLaw, list[Domain]]:
    """A random split-effective or split-transfer law with K domains and random weights."""
    names = [f"d{i}" for i in range(K)]
    kw: dict[str, float] = dict(A=float(rng.uniform(200, 600)), alpha=float(rng.uniform(0.3, 0.38)), beta=float(rng.uniform(0.26, 0.34)))
    if form == "split-transfer":
        kw["b"] = float(rng.uniform(0.0, 0.4))
    for n in names:
        kw[f"E[{n}]"] = float(rng.uniform(1.0, 2.0))
        kw[f"B[{n}]"] = float(rng.uniform(200, 2000))
        if form == "split-effective":
            kw[f"s[{n}]"] = float(10 ** rng.uniform(-0.5, 2.0))
            kw[f"eta[{n}]"] = float(rng.uniform(0.5, 1.0))
        else:
            kw[f"k[{n}]"] = float(10 ** rng.uniform(-2.0, 1.0))
            kw[f"a[{n}]"] = float(rng.uniform(0.5, 1.0))
    law = planner.law(form, domains=names, **kw)
    return law, [Domain(n, float(rng.uniform(0.2, 3.0))) for n in names]


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def problem(law: planner.FittedLaw, doms: list[Domain], budget: float, constraints=None, **kw):
    return build_context(law, budget, doms, constraints, check_options("test", **kw), {}).problem


def _compare(law: planner.FittedLaw, doms: list[Domain], budget: float, constraints=None, **kw) -> planner.Allocation:
    a = optimize(law, budget, doms, constraints, baselines=False, solver="numpy", **kw)
    b = optimize(law, budget, doms, constraints, baselines=False, solver="cvxpy", **kw)
    assert a.path == b.path == "dcp+search" and not a.certified
    assert a.feasible == b.feasible
    if not b.feasible:
        return a
    assert a.objective <= b.objective * (1 + 1e-9)  # never worse than the conic reference (beyond its tolerance)
    assert rel(a.objective, b.objective) < 1e-6
    # N is the flat direction: the conic reference's value-based Brent search over log N, fed values
    # accurate to its conic tolerance, locates N only to ~1e-4 .. 1e-3 (as in test_allocate_kkt.py);
    # the numpy N is the root of dV/dlog N to ~1e-13 and its objective is never worse
    total = a.pretrain_tokens + sum(a.spec_tokens.values())
    assert rel(a.model_size, b.model_size) < 2e-3
    assert abs(a.pretrain_tokens - b.pretrain_tokens) <= 2e-3 * total
    for name, s in a.spec_tokens.items():
        assert abs(s - b.spec_tokens[name]) <= 2e-3 * total
    # the solver's terms and the law's own formula agree; the plan's assembly may set a branch of a few
    # tokens to 0 when that changes the objective by < 1e-9 (worth s D'^eta of a few tokens is not 0)
    assert a.check["relative_difference"] < 2e-9
    return a


CASES = [
    # (seed, K, form, budget, constraints, options)
    (0, 2, "split-effective", 1e22, None, {}),
    (1, 3, "split-effective", 1e24, None, {}),
    (2, 1, "split-effective", 1e20, None, {}),
    (3, 2, "split-transfer", 1e22, None, {}),
    (4, 3, "split-transfer", 1e23, None, {}),
    (5, 2, "split-effective", 1e22, None, {"strategy": "fixed"}),
    (6, 2, "split-transfer", 1e23, None, {"strategy": "fixed", "fixed_fraction": 0.6}),
    (7, 2, "split-effective", 1e22, None, {"strategy": "no-split"}),
    (8, 2, "split-effective", 1e23, {"max_model_size": 2e9}, {}),
    (9, 2, "split-transfer", 1e22, {"min_tokens_per_param": 200.0}, {}),
    (10, 2, "split-effective", 1e22, {"max_tokens_per_param": 5.0}, {}),
    (11, 2, "split-effective", 1e22, {"max_pretrain_tokens": 5e10}, {}),
]


@pytest.mark.parametrize("seed, K, form, budget, constraints, kw", CASES)
def test_numpy_and_cvxpy_agree(seed: int, K: int, form: str, budget: float, constraints, kw) -> None:
    law, doms = effective_law(np.random.default_rng(seed), K, form)
    _compare(law, doms, budget, constraints, **kw)


def test_token_caps_and_a_domain_that_may_not_specialize() -> None:
    law, doms = effective_law(np.random.default_rng(12), 3)
    doms = [Domain(doms[0].name, 1.0, unique_tokens=3e8), doms[1], Domain(doms[2].name, 0.0)]
    plan = _compare(law, doms, 1e22)
    assert plan.spec_tokens[doms[0].name] <= 3e8 * (1 + 1e-12)


def test_numpy_is_taken_by_default_and_cvxpy_on_request() -> None:
    law, doms = effective_law(np.random.default_rng(0), 2)
    prob = problem(law, doms, 1e22)
    assert not kkt_applicable(prob)[0]  # not separable
    assert effective_applicable(prob) == (True, "")
    auto = optimize(law, 1e22, doms, baselines=False)
    ref = optimize(law, 1e22, doms, baselines=False, solver="cvxpy")
    assert auto.path == ref.path == "dcp+search" and not auto.certified and not ref.certified
    assert rel(auto.objective, ref.objective) < 1e-9


def test_baselines_and_multipliers_agree_with_cvxpy() -> None:
    law, doms = effective_law(np.random.default_rng(1), 2)
    a = optimize(law, 1e23, doms, solver="numpy")
    b = optimize(law, 1e23, doms, solver="cvxpy")
    assert rel(a.objective, b.objective) < 1e-6
    ba = {x.strategy: x for x in a.baselines}
    bb = {x.strategy: x for x in b.baselines}
    assert set(ba) == set(bb) == {"no-split", "fixed", "separate"}
    for name in ba:
        # the conic fixed-split baseline stops short of the optimum by up to ~1e-4 here: never worse
        assert ba[name].objective <= bb[name].objective * (1 + 1e-9), name
        assert rel(ba[name].objective, bb[name].objective) < 1e-4, name
        assert rel(ba[name].compute_multiplier, bb[name].compute_multiplier) < 1e-3, name
    assert rel(a.marginal_value, b.marginal_value) < 1e-4


def test_robust_mean_over_draws_matches_cvxpy() -> None:
    law, doms = effective_law(np.random.default_rng(2), 2, "split-transfer")
    rng = np.random.default_rng(0)
    base = np.array(list(law.params.values()))
    draws = base * np.exp(rng.normal(0.0, 0.05, (5, len(base))))
    names = list(law.params)
    for i, n in enumerate(names):  # exponents of the worth stay within (0, 1]
        if n.startswith("a["):
            draws[:, i] = np.minimum(draws[:, i], 1.0)
    law = dataclasses.replace(law, draws=draws)
    a = optimize(law, 1e22, doms, robust="mean", baselines=False, solver="numpy")
    b = optimize(law, 1e22, doms, robust="mean", baselines=False, solver="cvxpy")
    assert rel(a.objective, b.objective) < 1e-6 and a.objective <= b.objective * (1 + 1e-9)
    assert rel(a.model_size, b.model_size) < 1e-4


def test_worst_case_is_refused_with_a_reason() -> None:
    law, doms = effective_law(np.random.default_rng(2), 2)
    base = np.array(list(law.params.values()))
    law = dataclasses.replace(law, draws=base * np.exp(np.random.default_rng(0).normal(0.0, 0.02, (3, len(base)))))
    with pytest.raises(planner.AllocationError, match="worst case over draws"):
        optimize(law, 1e22, doms, robust="worst", baselines=False, solver="numpy")


# ---------------------------------------------------------------- the inner problem by brute force
@pytest.mark.parametrize("seed, K, form", [(0, 1, "split-effective"), (1, 1, "split-transfer"), (2, 2, "split-effective"), (3, 2, "split-transfer"), (4, 2, "split-effective")])
def test_inner_problem_against_brute_force(seed: int, K: int, form: str) -> None:
    """At fixed N the numpy plan spends the budget and is no worse than the best point of a dense grid
    over the token simplex (refined twice around the best point)."""
    rng = np.random.default_rng(seed)
    law, doms = effective_law(rng, K, form)
    budget = float(10 ** rng.uniform(20, 24))
    prob = problem(law, doms, budget)
    N = math.sqrt(budget / 120.0) * float(10 ** rng.uniform(-0.5, 0.5))
    sol = EffectiveKKTSolver(prob, path="dcp+search", certified=False).solve_at(N, budget)
    T = prob.tokens_available(N, budget)
    assert sol.pretrain_tokens + sol.spec_tokens.sum() == pytest.approx(T, rel=1e-12)

    def value(frac: np.ndarray) -> np.ndarray:  # frac: (n, K) shares of T for the D'_k
        D = T * (1.0 - frac.sum(axis=1))
        return prob.objective(np.full(len(frac), N), D, T * frac)

    lo, hi = np.zeros(K), np.ones(K)
    best = math.inf
    for _ in range(8):
        axes = [np.linspace(lo[k], hi[k], 401 if K == 1 else 81) for k in range(K)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, K)
        grid = grid[grid.sum(axis=1) < 1.0]
        vals = value(grid)
        i = int(np.argmin(vals))
        best = min(best, float(vals[i]))
        width = (hi - lo) / 8
        lo, hi = np.maximum(grid[i] - width, 0.0), np.minimum(grid[i] + width, 1.0)
    assert sol.value <= best + 1e-13 * abs(best)
    assert sol.value == pytest.approx(best, rel=1e-7)


def test_every_weighted_domain_gets_some_specialization_when_eta_below_one() -> None:
    """d/dD' of D'^eta is infinite at 0 (eta < 1): with the budget binding every weighted domain gets
    D' > 0, however little; with eta = 1 a poor worth (s < 1) is a corner at D' = 0."""
    law, doms = effective_law(np.random.default_rng(5), 2)
    params = dict(law.params)
    params["eta[d0]"], params["s[d0]"] = 1.0, 0.5  # a pretraining token is worth more for every domain
    params["eta[d1]"] = 0.7
    law = planner.law("split-effective", domains=["d0", "d1"], **params)
    prob = problem(law, doms, 1e22)
    solver = EffectiveKKTSolver(prob, path="dcp+search", certified=False)
    inn = solver.inner(3e9, 1e22)
    assert inn.ok and inn.x[1] == 0.0 and inn.x[2] > 0.0


# ---------------------------------------------------------------- the outer problem's derivative
@pytest.mark.parametrize("form, constraints, strategy", [
    ("split-effective", None, "split"), ("split-transfer", None, "split"), ("split-transfer", None, "fixed"),
    ("split-transfer", {"max_tokens_per_param": 10.0}, "split"), ("split-effective", {"max_tokens_per_param": 3.0}, "split"),
])
def test_slope_matches_finite_differences(form: str, constraints, strategy: str) -> None:
    law, doms = effective_law(np.random.default_rng(7), 2, form)
    budget = 1e22
    prob = problem(law, doms, budget, constraints, strategy=strategy)
    if strategy == "fixed":
        prob = prob.fixed(0.8)
    solver = EffectiveKKTSolver(prob, path="dcp+search", certified=False)
    checked, at_bound = 0, 0
    for N in (3e8, 1e9, 1.6e9, 2e9, 1.5e10):
        inn = solver.inner(N, budget)
        if not inn.ok:  # the tokens-per-parameter floor exceeds the budget's tokens
            continue
        h = 1e-5
        up, dn = solver.inner(N * math.exp(h), budget), solver.inner(N * math.exp(-h), budget)
        fd = (up.value - dn.value) / (2 * h)
        assert inn.slope == pytest.approx(fd, rel=1e-5, abs=1e-9 * abs(inn.value))
        checked += 1
        r = (constraints or {}).get("min_tokens_per_param") or (constraints or {}).get("max_tokens_per_param")
        at_bound += r is not None and inn.x[0] == pytest.approx(r * N, rel=1e-9)
    assert checked >= 3
    if constraints:
        assert at_bound >= 1  # the envelope term of D at its N-dependent bound is exercised


# ---------------------------------------------------------------- properties
@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), K=st.integers(1, 3), form=st.sampled_from(["split-effective", "split-transfer"]),
       budget=st.floats(1e19, 1e25), factor=st.floats(1.01, 10.0), strategy=st.sampled_from(["split", "fixed"]))
def test_budget_holds_and_more_budget_is_never_worse(seed: int, K: int, form: str, budget: float, factor: float, strategy: str) -> None:
    law, doms = effective_law(np.random.default_rng(seed), K, form)
    prob = problem(law, doms, budget, strategy=strategy)
    if strategy == "fixed":
        prob = prob.fixed(0.8)
    solver = EffectiveKKTSolver(prob, path="dcp+search", certified=False)
    small = solver.solve(budget)
    large = solver.solve(budget * factor)
    assert small.ok and large.ok
    for b, sol in ((budget, small), (budget * factor, large)):
        used = float(prob.budget_used(sol.model_size, sol.pretrain_tokens, sol.spec_tokens))
        assert used <= b * (1 + 1e-12)
    assert large.value <= small.value * (1 + 1e-13)


def test_mixed_forms_carry_the_separable_terms_along() -> None:
    """A split-effective domain beside a split-additive one (C (D' + D0)^-gamma: a D'-only term in the
    same Newton iteration): at fixed N the numpy plan is no worse than the conic one and agrees to 1e-9."""
    from planner.allocate.dcp import TokenModel

    law, doms = effective_law(np.random.default_rng(3), 2)
    prob = problem(law, doms, 1e22)
    p1 = prob.params[1]
    add = planner.law("split-additive", domains=["d1"], E=1.5, A=p1["A"], alpha=p1["alpha"], B=p1["B"], beta=p1["beta"], C=30.0, gamma=0.3, D0=1e9)
    other = problem(add, [Domain("d1")], 1e22)
    mixed = dataclasses.replace(prob, forms=(prob.forms[0], other.forms[0]), params=(prob.params[0], other.params[0]))
    assert not kkt_applicable(mixed)[0] and effective_applicable(mixed)[0]
    for N in (1e9, 5e9):
        a = EffectiveKKTSolver(mixed, path="dcp+search", certified=False).solve_at(N, 1e22)
        b = TokenModel(mixed).solve_at(N, 1e22)
        assert a.value <= b.value * (1 + 1e-12)
        assert rel(a.value, b.value) < 1e-9
        assert a.spec_tokens[1] == pytest.approx(b.spec_tokens[1], rel=1e-4)
