"""The decision package's fast routes against its general ones: the local solver's direct analytic
values and gradients (``LocalSolver.DIRECT``) against ``predict``/``loss_log_gradients``, and profiles of
a separable point-estimate objective by the numpy KKT solver against the SLSQP local solver, on random
split-additive laws; the flatness band by both routes."""

from __future__ import annotations

import numpy as np
import pytest

import planner
from planner.allocate import Domain
from planner.decision import Plan, ScenarioSet, Setting, as_candidates, flatness_band
from planner.decision.candidates import LocalSolver


def _additive(names: list[str], rng: np.random.Generator) -> planner.FittedLaw:
    kw: dict[str, float] = {"A": float(rng.uniform(200, 600)), "alpha": float(rng.uniform(0.28, 0.4)), "beta": float(rng.uniform(0.24, 0.32))}
    for n in names:
        kw[f"E[{n}]"] = float(rng.uniform(1.0, 2.0))
        kw[f"B[{n}]"] = float(rng.uniform(300, 800))
        kw[f"C[{n}]"] = float(rng.uniform(10, 60))
        kw[f"gamma[{n}]"] = float(rng.uniform(0.2, 0.35))
        kw[f"D0[{n}]"] = float(10 ** rng.uniform(8, 10))
    return planner.law("split-additive", domains=names, **kw)


def _interaction(names: list[str], rng: np.random.Generator) -> planner.FittedLaw:
    kw: dict[str, float] = {"A": float(rng.uniform(200, 600)), "alpha": float(rng.uniform(0.28, 0.4)), "beta": float(rng.uniform(0.24, 0.32))}
    for n in names:
        kw[f"E[{n}]"], kw[f"B[{n}]"] = float(rng.uniform(1.0, 2.0)), float(rng.uniform(300, 800))
        kw[f"c[{n}]"], kw[f"gamma[{n}]"] = float(10 ** rng.uniform(-2, 0)), float(rng.uniform(0.1, 0.5))
    return planner.law("split-interaction", domains=names, **kw)


def _setting(seed: int, **constraints):
    rng = np.random.default_rng(seed)
    names = ["code", "math", "bio"][: 1 + seed % 3]
    law = _additive(names, rng)
    doms = [Domain(n, float(rng.uniform(0.5, 2.0))) for n in names]
    budget = float(10 ** rng.uniform(20, 23))
    setting = Setting.build(budget, doms, constraints or None)
    ss = ScenarioSet(as_candidates(law), setting, use_draws=False)
    return law, setting, ss


@pytest.fixture(autouse=True)
def _restore_direct():
    yield
    LocalSolver.DIRECT = True


def _general(ss: ScenarioSet, scen, **kw) -> LocalSolver:
    LocalSolver.DIRECT = False
    try:
        return LocalSolver(ss, np.asarray(scen), **kw)
    finally:
        LocalSolver.DIRECT = True


@pytest.mark.parametrize("seed", range(3))
def test_direct_values_and_gradients_match_the_general_route(seed: int) -> None:
    rng = np.random.default_rng(seed)
    names = ["code", "math", "bio"]
    doms = [Domain(n, float(rng.uniform(0.5, 2.0))) for n in names]
    laws = [("add", _additive(names, rng), 0.5), ("int", _interaction(names, rng), 0.5)]
    draws = np.array(list(laws[1][1].params.values()))[None, :] * np.exp(0.05 * rng.standard_normal((4, len(laws[1][1].params))))
    laws[1] = ("int", planner.FittedLaw(**{**laws[1][1].__dict__, "draws": draws}), 0.5)
    ss = ScenarioSet(as_candidates(laws), Setting.build(1e22, doms), use_draws=True)
    fast = LocalSolver(ss, np.arange(len(ss)))
    slow = _general(ss, np.arange(len(ss)))
    assert fast._direct is not None and slow._direct is None
    for _ in range(4):
        N, D, S = 10 ** rng.uniform(8, 10.5), 10 ** rng.uniform(10, 12.5), 10 ** rng.uniform(8, 11, 3)
        f1, g1 = fast.point_values_grad(N, D, S)
        f2, g2 = slow.point_values_grad(N, D, S)
        np.testing.assert_allclose(f1, f2, rtol=1e-14)
        np.testing.assert_allclose(f1, slow.point_values(N, D, S), rtol=1e-14)
        np.testing.assert_allclose(g1, g2, rtol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_token_profiles_match_the_local_solver(seed: int) -> None:
    """Every coordinate held at a value off the optimum: the KKT profile point is at least as good as
    SLSQP's (it is global in the tokens) and the same plan."""
    law, setting, ss = _setting(seed)
    fast = LocalSolver(ss, np.array([0]))
    slow = _general(ss, [0])
    assert fast._token_solver is not None and slow._token_solver is None
    a = setting.optimize(law, baselines=False, marginal=False)
    names = setting.names
    start = (a.model_size, a.pretrain_tokens, np.array([a.spec_tokens[n] for n in names]))
    N1, D1, S1, F1 = fast.solve(start)
    N2, D2, S2, F2 = slow.solve(start)
    assert F1 <= F2 * (1 + 1e-12) and F1 == pytest.approx(F2, rel=1e-10)
    assert N1 == pytest.approx(a.model_size, rel=1e-7) and N2 == pytest.approx(a.model_size, rel=1e-4)
    values = [start[0], start[1], *start[2]]
    for j, v in enumerate(values):
        for factor in (0.6, 1.5):
            r1 = fast.solve(start, fix=(j, v * factor))
            r2 = slow.solve(start, fix=(j, v * factor))
            assert r1[3] <= r2[3] * (1 + 1e-12), (j, factor)
            assert r1[3] == pytest.approx(r2[3], rel=1e-9)
            assert r1[0] == pytest.approx(r2[0], rel=1e-4) and r1[1] == pytest.approx(r2[1], rel=1e-4)
            np.testing.assert_allclose(r1[2], r2[2], rtol=1e-3, atol=1e-6 * (r2[1] + r2[2].sum()))


@pytest.mark.parametrize("seed", [0, 4])
def test_flatness_band_by_both_routes(seed: int) -> None:
    law, setting, ss = _setting(seed, max_model_size=5e10)
    a = setting.optimize(law, baselines=False, marginal=False)
    plan = Plan.from_allocation(a, "p")
    fast = flatness_band(LocalSolver(ss, np.array([0])), plan, epsilon=1e-3)
    slow = flatness_band(_general(ss, [0]), plan, epsilon=1e-3)
    assert fast.rows.keys() == slow.rows.keys()
    for k, row in fast.rows.items():
        for side in ("low", "high"):
            assert row[f"{side}_at_bound"] == slow.rows[k][f"{side}_at_bound"]
            assert row[side] == pytest.approx(slow.rows[k][side], rel=1e-6), (k, side)


def test_token_route_only_where_it_applies() -> None:
    rng = np.random.default_rng(3)
    names = ["code", "math"]
    doms = [Domain(n) for n in names]
    setting = Setting.build(1e22, doms)
    inter = ScenarioSet(as_candidates(_interaction(names, rng)), setting, use_draws=False)
    assert LocalSolver(inter, np.array([0]))._token_solver is None  # not separable: SLSQP
    add = ScenarioSet(as_candidates([("a", _additive(names, rng), 0.5), ("b", _additive(names, rng), 0.5)]), setting, use_draws=False)
    assert LocalSolver(add, np.array([0, 1]))._token_solver is None  # two scenarios: SLSQP
    assert LocalSolver(add, np.array([1]), kind="worst")._token_solver is None
    assert LocalSolver(add, np.array([1]))._token_solver is not None
    menu = Setting.build(1e22, doms, {"model_sizes": [1e9, 3e9]})
    assert LocalSolver(ScenarioSet(as_candidates(_additive(names, rng)), menu, use_draws=False), np.array([0]))._token_solver is None
