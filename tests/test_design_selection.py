"""planner.design's selection step: the linearized search short-lists ladders, a simulation on common
truths of the prior picks among them and the baselines (never worse than the default on those truths)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from planner.allocate.model import SixN
from planner.experiments._plan import PlanProblem
from planner.experiments.core import select_by_simulation, shortlist
from planner.experiments.ladder import LadderSpec, default_ladder, designed_ladder, uniform_grid
from planner.experiments.prior import published_prior
from planner.experiments.simulate import simulate_ladders

DOMS = ("code", "math")
PROB = PlanProblem(1e22, np.arange(2), np.array([2.0, 1.0]), np.full(2, np.inf))


def test_shortlist_keeps_the_search_ladder_first_and_prefers_distinct_shapes() -> None:
    specs = [LadderSpec(4, 3.0, 20.0, 2, (0.5, 1.0), r) for r in (0.1, 0.3, 1.0)] + [LadderSpec(5, 2.0, 40.0, 2, (0.5, 1.0), 0.3),
                                                                                   LadderSpec(3, 4.0, 80.0, 1, (1.0,), 0.3)]
    costs = [0.01, 0.02, 0.03, 0.05, 0.04]  # two variants of the first shape are next best by the criterion
    seen = {s: (c, designed_ladder(s, 1e20, DOMS)) for s, c in zip(specs, costs)}
    seen[LadderSpec(6, 4.0, 80.0, 6, (1.0,), 0.3)] = (math.inf, None)  # a ladder that did not fit is never listed
    chosen = seen[specs[0]][1]
    short = shortlist(chosen, specs[0], seen, 3)
    assert [s for s, _ in short] == [specs[0], specs[4], specs[3]]  # distinct shapes before variants of the chosen one
    assert short[0][1] is chosen
    # with room for everything, the variants follow, ranked by cost, and nothing repeats
    full = shortlist(chosen, specs[0], seen, 10)
    assert [s for s, _ in full] == [specs[0], specs[4], specs[3], specs[1], specs[2]]


@pytest.mark.slow
def test_selection_keeps_the_default_unless_beaten_by_a_standard_error_and_a_copy_cannot_win() -> None:
    prior = published_prior(DOMS, seed=0)
    default = default_ladder(1e20, DOMS, min_size=1e7)
    grid = uniform_grid(1e20, DOMS, min_size=1e6)
    cheap = designed_ladder(LadderSpec(3, 4.0, 20.0, 1, (1.0,), 0.3, spend=0.25), 1e20, DOMS, min_size=1e7)
    # a candidate identical to the default: with common random numbers it scores exactly the default's cost,
    # and another ladder must beat the default by a standard error of the paired difference
    k, lad, rows, named = select_by_simulation([default, cheap], [default, grid], prior, prior, PROB, n_truths=3, seed=5, noise=0.01,
                                        flop_model=SixN())
    by = {r["ladder"]: r for r in rows}
    assert by["candidate-1"]["cost"] == by["default"]["cost"]
    # the costs are those of an independent simulation of the same ladders on the same truths
    sim = simulate_ladders([replace(default, name="x"), grid], prior, PROB, n_truths=3, seed=5, noise=0.01)
    w = np.minimum(np.array([r["waste"]["x"] for r in sim.per_truth]), 1.0)
    assert by["default"]["expected_waste"] == pytest.approx(float(np.mean(w)), rel=1e-12)
    assert by["default"]["cost"] == pytest.approx(float(np.mean(w)) + default.flops() / 1e22, rel=1e-12)
    assert [l.name for l in named] == [r["ladder"] for r in rows] == ["candidate-1", "candidate-2", "default", "uniform"]
    # the paired difference to the default, from the independent simulation
    wg = np.minimum(np.array([r["waste"]["uniform"] for r in sim.per_truth]), 1.0) + grid.flops() / 1e22
    d = wg - (w + default.flops() / 1e22)
    assert by["uniform"]["vs_default"] == pytest.approx(float(np.mean(d)), rel=1e-9, abs=1e-15)
    assert by["uniform"]["vs_default_se"] == pytest.approx(float(np.std(d, ddof=1) / np.sqrt(3)), rel=1e-9, abs=1e-15)
    assert by["candidate-1"]["vs_default"] == 0.0 and by["candidate-1"]["vs_default_se"] == 0.0
    # the default is the incumbent: another ladder wins only by a standard error, then the cheapest of those
    beats = [r for r in rows if r["ladder"] != "default" and r["vs_default"] + r["vs_default_se"] < 0]
    expected = min(beats, key=lambda r: r["cost"])["ladder"] if beats else "default"
    assert rows[k]["ladder"] == expected and rows[k].get("chosen") and lad.name == "designed"
    assert sum(bool(r.get("chosen")) for r in rows) == 1
    # never worse than the default on the selection truths
    assert rows[k]["cost"] <= by["default"]["cost"]
    if rows[k]["ladder"] == "candidate-1":
        pytest.fail("a copy of the default won against the default itself")
