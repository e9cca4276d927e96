"""Acceptance, small version (the 200-truth run is benchmarks/bench_design.py): on the shipped
split-additive truth, the designed ladder's simulated expected waste at 1 % of the target budget
is below the default ladder's at the same compute."""

from __future__ import annotations

import numpy as np
import pytest

import planner
from planner.experiments._model import LawVec
from planner.experiments._plan import PlanProblem
from planner.experiments.prior import FormPrior, Prior, gaussian_sampler, published_prior
from planner.experiments.simulate import simulate_ladders

SHIPPED = {"A": 406.4, "alpha": 0.34, "beta": 0.28, "E[code]": 1.2, "E[math]": 1.45, "B[code]": 380.0, "B[math]": 420.0,
           "C[code]": 220.0, "C[math]": 160.0, "gamma[code]": 0.36, "gamma[math]": 0.33, "D0[code]": 1e8, "D0[math]": 1e8}


@pytest.mark.slow
def test_designed_ladder_beats_the_default_on_the_shipped_truth() -> None:
    doms = ("code", "math")
    # sizes from 1M: the simulation assumes the law holds there (the default range starts at 10M, see docs/design.md)
    # the linearized search alone (select_simulations=0): the selection step is tested in test_design_selection.py
    des = planner.design([planner.Domain("code", weight=2.0), "math"], 1e22, 1e20, n_truths=8, n_simulations=0, sizes=(1e6, 1e13),
                         spend_options=(1.0,), curve_fractions=(), seed=0, select_simulations=0)
    ladders = [s.ladder for s in des.comparison]
    assert abs(ladders[0].flops() - ladders[1].flops()) <= 1e-6 * 1e20  # equal compute
    vec, theta = LawVec.of_law(planner.law("split-additive", **SHIPPED), doms)
    sd = np.array([0.03 if s.split("[")[0] in ("alpha", "beta", "gamma") else 0.1 for s in vec.slots])
    truths = Prior((FormPrior(vec, 1.0, theta, np.diag(sd ** 2), gaussian_sampler(theta, np.diag(sd ** 2))),), "shipped", 0.01)
    prob = PlanProblem(1e22, np.arange(2), np.array([2.0, 1.0]), np.full(2, np.inf))
    sim = simulate_ladders(ladders, published_prior(doms), prob, n_truths=20, seed=0, truth_prior=truths, noise=0.01)
    assert all(w >= 0 for r in sim.per_truth for w in r["waste"].values())
    assert sim.mean_waste["designed"] < sim.mean_waste["default"]
