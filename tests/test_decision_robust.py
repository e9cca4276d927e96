"""Plans under uncertain laws: evaluation of fixed plans, cross-regret, robust plans (planner.decision)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import planner
from planner.decision import (
    Candidate, DecisionError, Plan, ScenarioSet, Setting, as_candidates, cross_regret, decide, evaluate_plan, robust_plan,
    scenario_plans,
)
from planner.decision.candidates import plans_per_form

from synthetic import TRUTHS

DOMAINS = [planner.Domain("code", weight=2.0), planner.Domain("math")]


def _laws() -> dict[str, planner.FittedLaw]:
    return {f: planner.law(f, domains=["code", "math"], **TRUTHS[f]) for f in ("split-additive", "split-effective")}


def _with_draws(law: planner.FittedLaw, n: int, spread: float, seed: int) -> planner.FittedLaw:
    """A copy of ``law`` with log-normal parameter draws around its values (a stand-in for a bootstrap)."""
    rng = np.random.default_rng(seed)
    vals = np.array(list(law.params.values()))
    draws = vals[None, :] * np.exp(spread * rng.standard_normal((n, len(vals))))
    # exponents stay inside their bounds
    for j, name in enumerate(law.params):
        base = name.split("[")[0]
        q = law.form.param(base)
        draws[:, j] = np.clip(draws[:, j], q.lower, q.upper)
    return dataclasses.replace(law, draws=draws)


def test_evaluate_plan_matches_predict_and_optimize():
    law = _laws()["split-additive"]
    setting = Setting.build(1e21, DOMAINS)
    a = setting.optimize(law, baselines=False)
    plan = Plan.from_allocation(a, "p")
    # independent: the law's own predict, weighted by hand
    L = law.predict(model_size=[a.model_size] * 2, pretrain_tokens=[a.pretrain_tokens] * 2,
                    spec_tokens=[a.spec_tokens["code"], a.spec_tokens["math"]], domain=["code", "math"])
    assert evaluate_plan(plan, law, setting)[0] == pytest.approx(2.0 * L[0] + L[1], rel=1e-12)
    assert evaluate_plan(a, law, setting)[0] == pytest.approx(a.objective, rel=1e-10)


def test_evaluate_plan_over_draws_matches_predict_draws():
    law = _with_draws(_laws()["split-effective"], 7, 0.05, 1)
    setting = Setting.build(1e21, DOMAINS)
    plan = Plan("p", 1e9, 1e11, {"code": 2e10, "math": 0.0})
    got = evaluate_plan(plan, law, setting, draws=True)
    ref = law.predict_draws(model_size=[1e9, 1e9], pretrain_tokens=[1e11, 1e11], spec_tokens=[2e10, 0.0], domain=["code", "math"])
    np.testing.assert_allclose(got, 2.0 * ref[:, 0] + ref[:, 1], rtol=1e-12)


def test_as_candidates_normalises_and_drops_small_weights():
    laws = _laws()
    c = as_candidates([("a", laws["split-additive"], 3.0), ("b", laws["split-effective"], 1.0), ("c", laws["split-additive"], 0.01)])
    assert [x.name for x in c] == ["a", "b"]
    assert sum(x.weight for x in c) == pytest.approx(1.0)

    class Ensemble:  # the shape of the ensemble object of form="auto"
        candidates = (laws["split-additive"], laws["split-effective"])
        weights = (0.5, 0.5)

    assert [x.name for x in as_candidates(Ensemble())] == ["split-additive", "split-effective"]
    with pytest.raises(DecisionError):
        as_candidates([])
    with pytest.raises(DecisionError):
        Setting.build(1e21, [planner.Domain("code", target_loss=2.0)])


def _regrets(ss, optimum, plans):
    F = ss.evaluate(plans)
    return F - optimum[:, None]


@pytest.mark.slow
@pytest.mark.parametrize("forms", [("split-additive", "split-effective"), ("split-additive", "split-interaction")])
@pytest.mark.parametrize("kind", ["worst", "mean"])
def test_robust_plan_beats_every_form_plan_synthetic(kind, forms):
    laws = {f: planner.law(f, domains=["code", "math"], **TRUTHS[f]) for f in forms}
    cands = as_candidates([(n, _with_draws(l, 6, 0.04, i), 1.0) for i, (n, l) in enumerate(laws.items())])
    setting = Setting.build(1e21, DOMAINS)
    nominal = [p for p, _ in plans_per_form(cands, setting)]
    ss = ScenarioSet(cands, setting, use_draws=True)
    sp = scenario_plans(ss, nominal, method="local")
    rp = robust_plan(ss, sp.value, nominal, kind=kind)
    R = _regrets(ss, sp.value, nominal + [rp.plan])
    if kind == "worst":
        assert R[:, -1].max() <= R[:, :-1].max(axis=0).min() + 1e-9
        assert rp.worst_regret == pytest.approx(R[:, -1].max(), rel=1e-9)
        best_single = R[:, :-1].max(axis=0).min()
        mine = R[:, -1].max()
    else:
        exp = ss.prob @ R
        assert exp[-1] <= exp[:-1].min() + 1e-9
        assert rp.expected_regret == pytest.approx(exp[-1], rel=1e-9)
        best_single, mine = exp[:-1].min(), exp[-1]
    # the laws disagree, so hedging between them is strictly better than either plan
    assert mine < best_single * (1 - 1e-3)
    if "split-interaction" in forms:  # not convex in the tokens: the local path, labelled so
        assert "SLSQP" in rp.method and "not certified" in rp.method and not rp.certified
    else:  # convex in the tokens: the epigraph path, not certified without a size menu
        assert "epigraph" in rp.method and not rp.certified


def test_robust_plan_certified_on_a_size_menu():
    laws = _laws()
    cands = as_candidates([(n, l, 1.0) for n, l in laws.items()])
    menu = [3e8, 1e9, 3e9]
    setting = Setting.build(1e21, DOMAINS, {"model_sizes": menu})
    nominal = [p for p, _ in plans_per_form(cands, setting)]
    ss = ScenarioSet(cands, setting, use_draws=False)
    opt = np.diag(ss.evaluate(nominal))
    rp = robust_plan(ss, opt, nominal, kind="worst")
    assert rp.certified and rp.plan.model_size in menu
    # independent: the best worst-case regret over the menu, each size's tokens on a dense grid
    best = np.inf
    for n in menu:
        T = 1e21 / (6 * n)
        fr = np.linspace(0, 1, 301)
        g = np.array(np.meshgrid(fr, fr, indexing="ij")).reshape(2, -1).T
        g = g[g.sum(axis=1) <= 1.0]
        D = T * (1 - g.sum(axis=1))
        F = ss.objective(np.full(len(g), n), D, T * g)
        best = min(best, float((F - opt[:, None]).max(axis=0).min()))
    assert rp.worst_regret <= best + 1e-9
    assert rp.worst_regret >= best * 0.97


def test_robust_worst_plan_brute_force_one_domain():
    """One domain, two laws, no draws: the worst-case-regret plan against a dense grid on the budget."""
    laws = _laws()
    dom = [planner.Domain("code")]
    cands = as_candidates([(n, l, 1.0) for n, l in laws.items()])
    budget = 1e20
    setting = Setting.build(budget, dom)
    nominal = [p for p, _ in plans_per_form(cands, setting)]
    ss = ScenarioSet(cands, setting, use_draws=False)
    # brute force: N on a log grid, the specialization share on a grid, budget spent
    Ns = np.geomspace(1e7, 1e11, 161)
    shares = np.concatenate([[0.0], np.geomspace(1e-4, 0.9, 160)])
    NN, SH = np.meshgrid(Ns, shares, indexing="ij")
    T = budget / (6.0 * NN.ravel())
    Dg, Sg = T * (1 - SH.ravel()), T * SH.ravel()
    F = ss.objective(NN.ravel(), Dg, Sg[:, None])
    opt_brute = F.min(axis=1)
    opt = np.array([a for a in ss.evaluate(nominal).diagonal()])
    optimum = np.minimum(opt, opt_brute)
    rp = robust_plan(ss, optimum, nominal, kind="worst")
    brute_worst = (F - optimum[:, None]).max(axis=0).min()
    # the grid is coarse (factor 1.06 in N): the robust plan is at least as good, and close
    assert rp.worst_regret <= brute_worst + 1e-9
    assert rp.worst_regret >= brute_worst - 0.02 * brute_worst
    # its regrets under both laws are equal (the worst case balances them) unless a corner binds
    r = ss.evaluate([rp.plan])[:, 0] - optimum
    assert r.max() == pytest.approx(rp.worst_regret, rel=1e-9)


def test_cross_regret_table_is_consistent():
    laws = _laws()
    cands = as_candidates([(n, l, 1.0) for n, l in laws.items()])
    setting = Setting.build(1e21, DOMAINS)
    pa = plans_per_form(cands, setting)
    plans = [p for p, _ in pa]
    ss = ScenarioSet(cands, setting, use_draws=False)
    opt = np.array([a.objective for _, a in pa])
    tab = cross_regret(plans, ss, opt, ss, opt)
    np.testing.assert_allclose(np.diag(tab.nominal), 0.0, atol=1e-9)
    # off-diagonal: plan i under law j, recomputed with the law's own predict
    for i, p in enumerate(plans):
        for j, c in enumerate(cands):
            direct = evaluate_plan(p, c.law, setting)[0] - opt[j]
            assert tab.nominal[i, j] == pytest.approx(max(direct, 0.0), abs=1e-12)
            assert tab.nominal_relative[i, j] == pytest.approx(max(direct, 0.0) / opt[j], abs=1e-12)
    assert np.all(tab.worst >= tab.expected - 1e-15)
    df = tab.to_frame()
    assert len(df) == len(plans) * len(cands)


@pytest.mark.slow
def test_robust_plan_on_shipped_three_domain_runs():
    """The shipped runs fitted with the three split forms (small bootstrap): the robust worst-case plan's
    worst regret is no larger than any single form's plan's, over the same forms and draws."""
    runs = planner.load_runs("scenarios/data/three_domain_runs.csv")
    fits = [(f, planner.fit(runs, form=f, bootstrap=4, max_starts=8, seed=0), 1.0) for f in ("split-additive", "split-interaction", "split-effective")]
    doms = [planner.Domain("code", weight=2.0), planner.Domain("math"), planner.Domain("biomedical", unique_tokens=60e9, max_epochs=4)]
    d = decide(fits, 1e22, doms, {"max_model_size": 30e9}, robust=("worst",), headline="robust-worst", baselines=None,
               sensitivity=False, flatness=False)
    tab = d.regret
    worst_robust = tab.worst[tab.row("robust (worst-case regret)")]
    for f, _, _ in fits:
        assert worst_robust <= tab.worst[tab.row(f"plan under {f}")] + 1e-9
    # the headline is named in every output
    assert d.to_dict()["headline"] == "robust-worst" and "headline: robust-worst" in d.summary()


@pytest.mark.slow
def test_decide_takes_the_ensemble_of_form_auto():
    """form="auto" keeps every candidate with its weight; decide plans under each of them."""
    from synthetic import grid_table

    runs, _ = grid_table("split-additive", seed=2)
    law = planner.fit(runs, form="auto", max_starts=8, bootstrap=3)
    ens = law.candidates
    cands = as_candidates(law)
    kept = [n for n, w in zip(ens.names, ens.weights) if w / sum(ens.weights) >= 0.01]
    assert [c.name for c in cands] == kept
    d = decide(law, 1e21, DOMAINS, robust=("mean",), baselines=None, sensitivity=False, flatness=False)
    assert [p.source for p in d.plans] == kept
    assert d.regret.expected[d.regret.row("robust (expected regret)")] <= d.regret.expected[: len(kept)].min() + 1e-9


@pytest.mark.parametrize("form", ["split-additive", "split-effective", "split-interaction"])
def test_local_solver_gradient_matches_central_differences(form: str) -> None:
    """LocalSolver.point_values_grad (analytic, used by SLSQP) against central differences of its own
    values in v = (log N, log D, log D'_k), for every scenario of a law with draws."""
    from planner.decision.candidates import LocalSolver

    law = _with_draws(planner.law(form, domains=["code", "math"], **TRUTHS[form]), 5, 0.05, 1)
    ss = ScenarioSet([Candidate(form, law, 1.0)], Setting.build(1e22, DOMAINS), use_draws=True)
    solver = LocalSolver(ss, np.arange(len(ss)))
    N, D, S = 2e9, 3e11, np.array([4e10, 2e10])
    f, G = solver.point_values_grad(N, D, S)
    np.testing.assert_allclose(f, solver.point_values(N, D, S), rtol=1e-13)
    v0 = np.log([N, D, *S])
    h = 1e-6
    for j in range(4):
        e = np.zeros(4)
        e[j] = h
        up, dn = np.exp(v0 + e), np.exp(v0 - e)
        fd = (solver.point_values(up[0], up[1], up[2:]) - solver.point_values(dn[0], dn[1], dn[2:])) / (2 * h)
        np.testing.assert_allclose(G[:, j], fd, rtol=1e-6, atol=1e-9)
