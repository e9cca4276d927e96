"""planner.design: ladders within budget, the fast planner against planner.optimize, the linearized
criterion against brute-force regret, MAP fits recovering a truth, existing runs used."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

import planner
from planner.experiments._model import LawVec, Points
from planner.experiments._plan import PlanProblem, fast_plan, objective_at
from planner.experiments.core import SEARCH_SPACE
from planner.experiments.criterion import linearized_regret, sensitivity
from planner.experiments.ladder import LadderSpec, default_ladder, designed_ladder, uniform_grid
from planner.experiments.prior import published_prior
from planner.experiments.simulate import map_fit

from synthetic import TRUTHS

SHIPPED = {"A": 406.4, "alpha": 0.34, "beta": 0.28, "E[code]": 1.2, "E[math]": 1.45, "B[code]": 380.0, "B[math]": 420.0,
           "C[code]": 220.0, "C[math]": 160.0, "gamma[code]": 0.36, "gamma[math]": 0.33, "D0[code]": 1e8, "D0[math]": 1e8}
DOMS = ("code", "math")


def _prob(budget: float = 1e22, weights=(2.0, 1.0)) -> PlanProblem:
    return PlanProblem(budget, np.arange(2), np.asarray(weights, float), np.full(2, np.inf))


@pytest.mark.parametrize("form", ["split-additive", "split-effective"])
def test_fast_plan_matches_the_public_optimizer(form: str) -> None:
    law = planner.law(form, **(SHIPPED if form == "split-additive" else TRUTHS[form]))
    vec, theta = LawVec.of_law(law, DOMS)
    fast = fast_plan(vec, theta, _prob())
    ref = planner.optimize(law, 1e22, domains=[planner.Domain("code", weight=2.0), "math"], baselines=False, marginal=False, check=False)
    assert fast.objective == pytest.approx(ref.objective, rel=1e-6)
    assert fast.model_size == pytest.approx(ref.model_size, rel=0.02)


@settings(max_examples=60, deadline=None)
@given(
    log_budget=st.floats(min_value=16.0, max_value=22.0),
    spec=st.builds(
        LadderSpec,
        n_sizes=st.sampled_from(SEARCH_SPACE["n_sizes"]), size_step=st.sampled_from(SEARCH_SPACE["size_step"]),
        tokens_per_param=st.sampled_from(SEARCH_SPACE["tokens_per_param"]), branch_top=st.sampled_from(SEARCH_SPACE["branch_top"]),
        branch_points=st.sampled_from(SEARCH_SPACE["branch_points"]), branch_ratio=st.sampled_from(SEARCH_SPACE["branch_ratio"]),
        spend=st.sampled_from((0.25, 0.5, 1.0)), long_factor=st.sampled_from(SEARCH_SPACE["long_factor"]),
        tilt=st.sampled_from((0.0, 0.5, 1.0)), branch_bottom=st.booleans(),
    ),
    menu=st.booleans(),
)
@pytest.mark.slow
def test_ladders_never_exceed_the_experiment_budget(log_budget: float, spec: LadderSpec, menu: bool) -> None:
    budget = 10.0 ** log_budget
    sizes = [1e6 * 3 ** i for i in range(12)] if menu else None
    lad = designed_ladder(spec, budget, DOMS, menu=sizes)
    for ladder in (lad, default_ladder(budget, DOMS), uniform_grid(budget, DOMS)):
        if ladder is None:
            continue
        seg = ladder.segments()
        assert seg["flops"].sum() <= budget * (1 + 1e-12)
        # FLOPs per segment are 6 N tokens (pretraining horizon, or D' for a branch)
        tokens = np.where(seg["spec_domain"] == "", seg["pretrain_tokens"], seg["spec_tokens"])
        assert np.allclose(seg["flops"], 6 * seg["model_size"] * tokens)
    if lad is not None and not menu and lad.pretrain[-1].model_size < 1e13:
        assert lad.flops() == pytest.approx(budget * spec.spend, rel=1e-6)  # spends its share exactly


def test_branches_hang_from_their_parent_checkpoints() -> None:
    lad = designed_ladder(LadderSpec(4, 3.0, 20.0, 2, (0.5, 1.0), 0.3), 1e20, DOMS)
    runs = {r.name: r for r in lad.pretrain}
    assert len(lad.branches) == 2 * 2 * 2  # top 2 sizes x 2 points x 2 domains
    for b in lad.branches:
        parent = runs[b.parent]
        assert b.model_size == parent.model_size
        assert any(math.isclose(b.from_tokens, c) for c in parent.checkpoints)
        assert b.spec_tokens == pytest.approx(0.3 * b.from_tokens)


def test_linearized_regret_matches_brute_force_for_small_errors() -> None:
    law = planner.law("split-additive", **SHIPPED)
    vec, theta = LawVec.of_law(law, DOMS)
    prob = _prob()
    prior = published_prior(DOMS, ("split-additive",))
    sens = sensitivity((0, vec, theta, prior.components[0].precision, prob))
    best = fast_plan(vec, theta, prob)
    rng = np.random.default_rng(3)
    quad, actual = [], []
    for _ in range(12):
        delta = rng.normal(0, 0.02, vec.p)
        plan = fast_plan(vec, theta + delta, prob, start=best.u)
        actual.append(objective_at(vec, theta, prob, plan.model_size, plan.pretrain_tokens, plan.spec_tokens) - best.objective)
        quad.append(0.5 * delta @ sens.q @ delta)
    assert np.sum(actual) > 0
    assert np.sum(quad) == pytest.approx(np.sum(actual), rel=0.35)


def test_more_measurements_never_raise_the_criterion() -> None:
    prior = published_prior(DOMS)
    from planner.experiments.criterion import sensitivities

    sens = sensitivities(prior, _prob(), 4, seed=1)
    small = designed_ladder(LadderSpec(3, 3.0, 20.0, 1, (1.0,), 0.3), 1e19, DOMS)
    extra = default_ladder(1e19, DOMS).points(DOMS)
    alone = linearized_regret(small, sens, 0.01, per_truth=True)
    more = linearized_regret(small, sens, 0.01, existing=extra, per_truth=True)
    assert np.all(more <= alone * (1 + 1e-9))
    assert linearized_regret(small, sens, 0.005) < linearized_regret(small, sens, 0.02)  # less noise, less regret


def test_pruning_drops_runs_the_prior_already_pins_down() -> None:
    """Backward greedy pruning against cost = E[waste] + FLOPs / C: with a criterion that no run improves,
    every droppable run goes (down to the size floor); with one that counts runs, none does."""
    from planner.experiments.core import prune

    lad = designed_ladder(LadderSpec(5, 3.0, 20.0, 2, (0.5, 1.0), 0.3), 1e20, DOMS)
    flat, dropped = prune(lad, lambda l: l.flops() / 1e22, min_sizes=3)
    assert len({r.model_size for r in flat.pretrain}) == 3 and not flat.branches and dropped
    assert flat.flops() < lad.flops()
    # each run removes 1e-2 of waste, more than all the FLOPs of the ladder are worth (1e20 / 1e22): nothing is dropped
    kept, none = prune(lad, lambda l: 1.0 - 1e-2 * l.n_new_runs + l.flops() / 1e22, min_sizes=3)
    assert kept == lad and none == []


def test_rivals_separate_with_data_and_carry_their_waste() -> None:
    """The selection-risk term: with no points the forms cannot be told apart (P(rival) = 1/3 each of 3 forms);
    a rich ladder separates them (Delta^2 grows with the points), and the criterion is then the quadratic term."""
    from planner.experiments.criterion import WASTE_CAP, misidentification, sensitivities

    assert np.allclose(misidentification(np.zeros(2)), [1 / 3, 1 / 3])
    assert np.allclose(misidentification(np.array([1e6])), [0.0], atol=1e-12)
    prior = published_prior(DOMS)
    ref = default_ladder(1e20, DOMS).points(DOMS)
    sens = sensitivities(prior, _prob(), 3, seed=2, reference=ref, noise=0.01)
    assert all(len(s.rivals) == 2 and all(r.waste >= 0 for r in s.rivals) for s in sens)
    rich = uniform_grid(1e21, DOMS)
    none = linearized_regret(None, sens, 0.01, per_truth=True)
    expect = np.array([(linearized_regret(None, [s], 0.01, discriminate=False) + sum(min(r.waste, WASTE_CAP) for r in s.rivals)) / 3
                       for s in sens])
    assert np.allclose(none, expect)
    full = linearized_regret(rich, sens, 0.001, per_truth=True)
    quad = linearized_regret(rich, sens, 0.001, per_truth=True, discriminate=False)
    assert np.all(full >= quad * (1 - 1e-9))
    assert np.all(full <= none)


def test_map_fit_recovers_the_truth_from_a_rich_ladder() -> None:
    law = planner.law("split-additive", **SHIPPED)
    vec, theta = LawVec.of_law(law, DOMS)
    pts = uniform_grid(1e21, DOMS).points(DOMS)
    pts = Points.concat([pts, default_ladder(1e21, DOMS).points(DOMS)])
    y = np.log(vec.predict(theta, pts))
    prior = published_prior(DOMS, ("split-additive",)).components[0]
    # a weak regulariser: the test is of the fitter, not of the prior
    fitted, ssr, _ = map_fit(vec, pts, y, prior.mean, prior.precision * 1e-4, sigma=0.01)
    assert ssr < 1e-6
    pred_big = vec.predict(fitted, Points(np.array([1e10]), np.array([2e11]), np.array([5e10]), np.array([0])))
    true_big = vec.predict(theta, Points(np.array([1e10]), np.array([2e11]), np.array([5e10]), np.array([0])))
    assert pred_big[0] == pytest.approx(true_big[0], rel=2e-3)


def test_design_bad_input() -> None:
    with pytest.raises(planner.PlannerError):
        planner.design(["code"], 1e22, 2e22)
    with pytest.raises(planner.PlannerError):
        planner.design(["code"], 1e22, None)
    with pytest.raises(planner.PlannerError):
        planner.design(["code"], 1e22, 1e20, sizes=[1e8])


@pytest.mark.slow
def test_design_from_zero_and_with_existing_runs() -> None:
    doms = [planner.Domain("code", weight=2.0), "math"]
    fresh = planner.design(doms, 1e22, 1e20, n_truths=8, n_simulations=0, curve_fractions=(0.01,), seed=0, select_simulations=0)
    assert fresh.status == "ok" and fresh.flops <= 1e20
    names = [s.name for s in fresh.comparison]
    assert names == ["designed", "default", "uniform"]
    # the search minimises expected waste + the experiment's share of the target budget
    cost = {s.name: s.linearized + s.flops / 1e22 for s in fresh.comparison}
    assert cost["designed"] <= cost["default"] and cost["designed"] <= cost["uniform"]
    assert all(float(n) in fresh.shapes for n in fresh.runs_frame()["model_size"])
    # a generous set of existing runs from the shipped law: they become the prior (their posterior),
    # so what the design expects to leave is far less than from zero runs
    law = planner.law("split-additive", **SHIPPED)
    grid = uniform_grid(3e20, DOMS)
    table = grid.measurement_table(list(DOMS))
    rng = np.random.default_rng(0)
    table["loss"] = law.predict(table) * np.exp(rng.normal(0, 0.01, len(table)))
    informed = planner.design(doms, 1e22, 1e20, runs=table, n_truths=8, n_simulations=0, curve_fractions=(0.01,), seed=0,
                              select_simulations=0)
    assert informed.existing_measurements == len(table)
    assert informed.score("designed").linearized < fresh.score("designed").linearized
    # the search values each new run against what the existing runs already pin down: fewer new runs, no more FLOPs
    assert informed.ladder.n_new_runs < fresh.ladder.n_new_runs
    assert informed.flops <= fresh.flops * (1 + 1e-12)
