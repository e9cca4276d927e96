"""The multi-start path's shortcuts against its full form: the direct analytic objective gradient
against the general route (``Problem.losses_log_grad``), and the early stop once ``agree`` starts
reach the same plan against running every start (``agree=None``), on random non-convex laws."""

from __future__ import annotations

import math

import numpy as np
import pytest

import planner
from planner.allocate import Domain
from planner.allocate._context import build_context
from planner.allocate._options import OptimizeOptions
from planner.allocate.multistart import solve_multistart, spread_order

FORMS = ["chinchilla", "split-effective", "split-transfer", "split-interaction", "split-additive", "split-multiplicative", "split-prelearned"]
NONCONVEX = ["split-interaction", "split-multiplicative", "split-prelearned"]


def _random_law(form: str, names: list[str], rng: np.random.Generator) -> planner.FittedLaw:
    """A law of ``form`` with parameters in the range of fitted LLM laws (every domain its own values)."""
    kw: dict[str, float] = {"A": float(rng.uniform(200, 600)), "alpha": float(rng.uniform(0.28, 0.4)), "beta": float(rng.uniform(0.24, 0.32))}
    if form == "chinchilla":
        return planner.law(form, E=1.7, B=float(rng.uniform(300, 800)), **kw)
    for n in names:
        kw[f"E[{n}]"] = float(rng.uniform(1.0, 2.0))
        kw[f"B[{n}]"] = float(rng.uniform(300, 800))
        if form == "split-effective":
            kw[f"s[{n}]"], kw[f"eta[{n}]"] = float(10 ** rng.uniform(-1, 1)), float(rng.uniform(0.6, 1.0))
        elif form == "split-transfer":
            kw[f"k[{n}]"], kw[f"a[{n}]"] = float(10 ** rng.uniform(-1, 1)), float(rng.uniform(0.5, 1.0))
        elif form == "split-interaction":
            kw[f"c[{n}]"], kw[f"gamma[{n}]"] = float(10 ** rng.uniform(-2, 0)), float(rng.uniform(0.1, 0.5))
        elif form == "split-additive":
            kw[f"C[{n}]"], kw[f"gamma[{n}]"], kw[f"D0[{n}]"] = float(rng.uniform(10, 60)), float(rng.uniform(0.2, 0.35)), float(10 ** rng.uniform(8, 10))
        elif form == "split-multiplicative":
            kw[f"D0[{n}]"], kw[f"gamma[{n}]"] = float(10 ** rng.uniform(8, 10)), float(rng.uniform(0.05, 0.4))
        elif form == "split-prelearned":
            kw[f"s[{n}]"], kw[f"b[{n}]"] = float(10 ** rng.uniform(-7, -4)), float(rng.uniform(0.3, 0.7))
    if form == "split-transfer":
        kw["b"] = float(rng.uniform(-0.2, 0.2))
    return planner.law(form, domains=names, **kw)


def _problem(law, domains, budget, **kw):
    opts = OptimizeOptions(**{k: v for k, v in kw.items() if k in ("strategy",)})
    cons = {k: v for k, v in kw.items() if k not in ("strategy",)}
    return build_context(law, budget, domains, None, opts, cons).problem


@pytest.mark.parametrize("form", FORMS)
def test_direct_objective_gradient_matches_the_general_route(form: str) -> None:
    rng = np.random.default_rng(FORMS.index(form))
    names = ["code", "math", "bio"]
    law = _random_law(form, names, rng)
    doms = [Domain(n, float(rng.uniform(0.5, 2.0))) for n in names]
    prob = _problem(law, doms, 1e22)
    assert prob._direct_log_grad() is not None
    for _ in range(5):
        N, D = 10 ** rng.uniform(8, 11), 10 ** rng.uniform(10, 13)
        S = 10 ** rng.uniform(6, 11, 3)
        S[0] = 0.0
        v1, g1 = prob.objective_log_grad(N, D, S)
        v2, g2 = prob._objective_log_grad_general(N, D, S)
        assert v1 == pytest.approx(v2, rel=1e-14)
        np.testing.assert_allclose(g1, g2, rtol=1e-13, atol=1e-300)


def test_direct_gradient_with_one_law_per_domain() -> None:
    """Two forms in one problem (a dict of laws): the direct route fills each form's domains."""
    rng = np.random.default_rng(7)
    laws = {"code": _random_law("split-interaction", ["code"], rng), "math": _random_law("split-additive", ["math"], rng)}
    prob = _problem(laws, [Domain("code", 2.0), Domain("math", 1.0)], 1e22)
    assert prob._direct_log_grad() is not None and len(prob._direct_log_grad()[2]) == 2
    N, D, S = 3e9, 5e11, np.array([2e10, 7e10])
    v1, g1 = prob.objective_log_grad(N, D, S)
    v2, g2 = prob._objective_log_grad_general(N, D, S)
    assert v1 == pytest.approx(v2, rel=1e-14)
    np.testing.assert_allclose(g1, g2, rtol=1e-13)


def test_effective_tokens_take_the_general_route() -> None:
    law = _random_law("split-interaction", ["code"], np.random.default_rng(1))
    prob = _problem(law, [Domain("code", 1.0, unique_tokens=1e10)], 1e22, repetition="effective")
    assert prob._direct_log_grad() is None


def test_spread_order_is_a_permutation_that_starts_in_the_middle_and_the_corners() -> None:
    for n, m in [(5, 3), (1, 1), (5, 1), (1, 3), (2, 2), (7, 4)]:
        order = spread_order(n, m)
        assert sorted(order) == [(i, j) for i in range(n) for j in range(m)]
        assert order[0] == (n // 2, m // 2)
        if n * m >= 3 and (0, 0) != order[0]:
            assert order[1] == (0, 0)
    assert spread_order(5, 3)[:3] == [(2, 1), (0, 0), (4, 2)]


def _same_plan(a, b, rtol: float = 1e-6) -> None:
    """The same optimum: the objective to 1e-9 and every variable to ``rtol`` relative, unless the two
    plans lie in a valley so flat that they tie to 1e-12 (then no number of starts decides between them)."""
    assert a.ok and b.ok
    assert a.value == pytest.approx(b.value, rel=1e-9)
    total = a.pretrain_tokens + float(np.sum(a.spec_tokens))
    x, y = np.array([a.model_size, a.pretrain_tokens, *a.spec_tokens]), np.array([b.model_size, b.pretrain_tokens, *b.spec_tokens])
    scale = np.concatenate([[a.model_size], np.full(1 + len(a.spec_tokens), total)])  # a D' at the floor: relative to all tokens
    if np.all(np.abs(x - y) <= rtol * np.maximum(np.abs(y), 0) + 1e-12 * scale) or np.all(np.abs(x - y) <= rtol * scale):
        return
    assert abs(a.value - b.value) <= 1e-12 * abs(b.value), f"plans differ beyond {rtol:g}: {x} vs {y}"


FAST_CASES = [("split-interaction", 0, {}), ("split-interaction", 3, {}), ("split-multiplicative", 0, {}), ("split-prelearned", 2, {}),
              ("split-interaction", 100, {"strategy": "fixed"}), ("split-interaction", 101, {"min_tokens_per_param": 40.0}),
              ("split-multiplicative", 103, {"max_model_size": 2e9})]
SLOW_CASES = [(form, seed, {}) for form in NONCONVEX for seed in range(12) if (form, seed, {}) not in FAST_CASES] + [
    ("split-multiplicative", 102, {"max_model_size": 2e9}), ("split-multiplicative", 105, {"max_model_size": 2e9})]


def _check_agreement(form: str, seed: int, kw: dict) -> None:
    rng = np.random.default_rng(seed)
    K = 1 + seed % 3
    names = ["code", "math", "bio"][:K]
    law = _random_law(form, names, rng)
    doms = [Domain(n, float(rng.uniform(0.5, 2.0))) for n in names]
    budget = float(10 ** rng.uniform(20, 24))
    strategy = kw.pop("strategy", "split")
    prob = _problem(law, doms, budget, **kw)
    if strategy == "fixed":
        prob = prob.fixed(0.8)
    everyone = solve_multistart(prob, budget, agree=None)
    early = solve_multistart(prob, budget)
    _same_plan(early, everyone)


@pytest.mark.parametrize("form, seed, kw", FAST_CASES)
def test_early_stop_gives_the_plan_of_every_start(form: str, seed: int, kw: dict) -> None:
    _check_agreement(form, seed, dict(kw))


@pytest.mark.slow
@pytest.mark.parametrize("form, seed, kw", SLOW_CASES)
def test_early_stop_gives_the_plan_of_every_start_many_laws(form: str, seed: int, kw: dict) -> None:
    _check_agreement(form, seed, dict(kw))


def test_early_stop_skips_starts_and_says_so() -> None:
    rng = np.random.default_rng(0)
    law = _random_law("split-interaction", ["code", "math"], rng)
    prob = _problem(law, [Domain("code", 2.0), Domain("math", 1.0)], 1e22)
    early = solve_multistart(prob, 1e22)
    every = solve_multistart(prob, 1e22, agree=None)
    assert "skipped" in early.notes[0] and early.notes[0].startswith("3/3 starts feasible")
    assert every.notes[0] == "15/15 starts feasible"
    assert math.isfinite(early.value) and early.value <= every.value * (1 + 1e-12)
