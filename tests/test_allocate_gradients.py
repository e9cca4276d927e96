"""Analytic log-gradients of the plan objective (allocate/gradients.py) against finite differences in
extended precision, the multi-start path with them, the compute-multiplier root against closed forms,
and the one extrapolation reference shared by the optimizer and the decision package."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import planner
from planner.allocate import Domain, optimize
from planner.allocate._context import build_context
from planner.allocate._options import OptimizeOptions
from planner.allocate.baselines import compute_multiplier
from planner.allocate.checks import fitted_compute
from planner.allocate.gradients import has_analytic_gradient, loss_log_gradients, numeric_log_gradients
from planner.laws.base import Inputs
from planner.laws.registry import get_form

FORMS = ["chinchilla", "overtrain", "split-effective", "split-transfer", "split-interaction", "split-additive",
         "split-multiplicative", "split-prelearned"]
LD = np.longdouble


def _random_params(form, m: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    p = {}
    for q in form.params:
        lo, hi = max(q.lower, 1e-3 if q.positive else q.lower), min(q.upper, 1e6)
        if q.name in ("alpha", "beta", "gamma", "eta", "a", "b"):
            lo, hi = 0.1, 0.9
        if q.name == "b" and form.name == "split-transfer":
            lo, hi = -0.5, 0.5
        p[q.name] = np.exp(rng.uniform(np.log(lo), np.log(hi), m)) if q.positive else rng.uniform(lo, hi, m)
    return p


def _fd_long(form, p, N, D, S, h=LD(1e-6)):
    """Central differences in log space in long double (rounding ~1e-13 of the loss, truncation ~h^2)."""
    P = {k: np.asarray(v, dtype=LD) for k, v in p.items()}

    def ev(n, d, s):
        m = len(n)
        return form.predict(P, Inputs(n, d, s, np.full(m, np.inf, dtype=LD), np.full(m, np.nan, dtype=LD)))

    N, D, S = (np.asarray(a, dtype=LD) for a in (N, D, S))
    up, dn = np.exp(h), np.exp(-h)
    return [(ev(N * up, D, S) - ev(N * dn, D, S)) / (2 * h), (ev(N, D * up, S) - ev(N, D * dn, S)) / (2 * h),
            np.where(S > 0, (ev(N, D, S * up) - ev(N, D, S * dn)) / (2 * h), 0)]


@pytest.mark.parametrize("name", FORMS)
def test_analytic_log_gradients_match_finite_differences(name: str) -> None:
    form = get_form(name)
    assert has_analytic_gradient(form)
    rng = np.random.default_rng(FORMS.index(name))
    m = 60
    p = _random_params(form, m, rng)
    N, D, S = 10 ** rng.uniform(7, 11, m), 10 ** rng.uniform(8, 12, m), 10 ** rng.uniform(6, 11, m)
    S[:5] = 0.0
    L, *grads = loss_log_gradients(form, p, N, D, S)
    ref = np.asarray(form.predict(p, Inputs.build(model_size=N, pretrain_tokens=D, spec_tokens=S)), dtype=float)
    np.testing.assert_allclose(L, ref, rtol=1e-13)
    for g, f in zip(grads, _fd_long(form, p, N, D, S)):
        f = np.asarray(f, dtype=float)
        assert np.all(np.abs(g - f) <= 1e-8 * (np.abs(f) + np.abs(L)))
    assert np.all(grads[2][:5] == 0.0)  # no D' term at D' = 0


def test_numeric_fallback_for_a_user_form() -> None:
    """A form without an analytic entry (here a subclass) gets batched central differences."""
    base = get_form("split-interaction")
    sub = type("MyInteraction", (type(base),), {"name": "my-interaction"})()
    assert not has_analytic_gradient(sub)
    rng = np.random.default_rng(3)
    p = _random_params(base, 20, rng)
    N, D, S = 10 ** rng.uniform(7, 11, 20), 10 ** rng.uniform(8, 12, 20), 10 ** rng.uniform(6, 11, 20)
    a = loss_log_gradients(base, p, N, D, S)
    b = loss_log_gradients(sub, p, N, D, S)
    c = numeric_log_gradients(sub, p, N, D, S, np.full(20, np.inf))
    for x, y, z in zip(a, b, c):
        np.testing.assert_array_equal(y, z)
        assert np.all(np.abs(x - y) <= 1e-7 * (np.abs(x) + np.abs(a[0])))


def _problem(law, domains, budget=1e22, **kw):
    opts = OptimizeOptions(**{k: v for k, v in kw.items() if k in ("robust", "strategy")})
    cons = {k: v for k, v in kw.items() if k not in ("robust", "strategy")}
    return build_context(law, budget, domains, None, opts, cons).problem


@pytest.mark.parametrize("case", ["plain", "effective", "robust-mean", "robust-worst"])
def test_problem_objective_gradient(case: str) -> None:
    """Problem.objective_log_grad against central differences of Problem.objective in v = (log N, log D, log D')."""
    law = planner.law("split-interaction", domains=["code", "math"], A=406.4, alpha=0.34, beta=0.28,
                      **{"E[code]": 1.2, "E[math]": 1.0, "B[code]": 410.7, "B[math]": 600.0, "c[code]": 0.1, "c[math]": 0.3,
                         "gamma[code]": 0.3, "gamma[math]": 0.2})
    doms = [Domain("code", 2.0, unique_tokens=2e10), Domain("math", 1.0, unique_tokens=5e9)]
    kw = {}
    if case == "effective":
        kw = dict(repetition="effective", pretrain_unique_tokens=1e11)
    if case.startswith("robust"):
        rng = np.random.default_rng(0)
        vals = np.array(list(law.params.values()))
        draws = vals[None, :] * np.exp(0.05 * rng.standard_normal((6, len(vals))))
        law = dataclasses.replace(law, draws=draws)
        kw = dict(robust=case.split("-")[1])
    prob = _problem(law, doms, **kw)
    N, D, S = 2e9, 3e11, np.array([4e10, 3e10])  # beyond both unique-token counts (repeats)
    val, g = prob.objective_log_grad(N, D, S)
    assert val == pytest.approx(float(prob.objective(N, D, S)), rel=1e-13)
    h = 1e-6
    v0 = np.log([N, D, *S])
    for j in range(4):
        e = np.zeros(4)
        e[j] = h
        up, dn = np.exp(v0 + e), np.exp(v0 - e)
        fd = (float(prob.objective(up[0], up[1], up[2:])) - float(prob.objective(dn[0], dn[1], dn[2:]))) / (2 * h)
        assert g[j] == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_multistart_with_analytic_gradients_beats_a_grid() -> None:
    """The interaction law (no convex path): the multi-start plan is at least as good as every point of a
    dense feasible grid on the budget (N x pretraining share x D' split)."""
    law = planner.law("split-interaction", domains=["code", "math"], A=406.4, alpha=0.34, beta=0.28,
                      **{"E[code]": 1.2, "E[math]": 1.0, "B[code]": 410.7, "B[math]": 600.0, "c[code]": 0.1, "c[math]": 0.3,
                         "gamma[code]": 0.3, "gamma[math]": 0.2})
    doms = [Domain("code", 2.0), Domain("math", 1.0)]
    budget = 1e21
    plan = optimize(law, budget, doms, baselines=False)
    assert plan.path == "multistart" and plan.optimal
    prob = _problem(law, doms, budget=budget)
    best = math.inf
    for N in np.geomspace(2e8, 2e10, 41):
        T = budget / (6 * N)
        for share in np.linspace(0.5, 0.999, 41):
            for split in np.linspace(0.01, 0.99, 21):
                S = np.array([split, 1 - split]) * (1 - share) * T
                best = min(best, float(prob.objective(N, share * T, S)))
    assert plan.objective <= best * (1 + 1e-12)


@pytest.mark.parametrize("m_true", [0.37, 1.0004, 3.1, 898.0, 2e5])
@pytest.mark.parametrize("with_slope", [False, True])
def test_compute_multiplier_closed_form(m_true: float, with_slope: bool) -> None:
    """V(C) = E + a C^-c: the multiplier matching V(m C) = V(m_true C) is m_true (to Brent's 1e-8 in log m)."""
    E, a, c, C = 1.7, 3e3, 0.15, 1e22
    calls = []

    def V(b: float) -> float:
        calls.append(b)
        return E + a * b ** -c

    slope = -c * a * C ** -c if with_slope else None
    m = compute_multiplier(V, V(m_true * C), C, slope=slope)
    assert m == pytest.approx(m_true, rel=1e-7)
    assert len(calls) == len(set(calls))  # no budget solved twice


def test_compute_multiplier_beyond_the_range() -> None:
    assert compute_multiplier(lambda b: 2.0 + 1.0 / b, 1.0, 1e22) == math.inf  # never reaches the target
    assert compute_multiplier(lambda b: 0.5, 1.0, 1e22) == 0.0  # always better than the target


@pytest.mark.filterwarnings("ignore::planner.errors.PlannerWarning")
def test_one_extrapolation_reference_for_optimizer_and_decision() -> None:
    """The optimizer's warning and the decision package use the same reference, the largest fitted
    6 N (D + D'); the warning fires exactly when the plan's largest branch is above 10x of it."""
    from planner.decision import fitted_compute as decision_fitted_compute

    assert decision_fitted_compute is fitted_compute
    law = planner.law("split-additive", domains=["code"], A=406.4, alpha=0.34, beta=0.28,
                      **{"E[code]": 1.2, "B[code]": 410.7, "C[code]": 30.0, "gamma[code]": 0.3, "D0[code]": 1e9})
    law = dataclasses.replace(law, data={"model_sizes": [1e8, 4e8], "pretrain_token_range": [1e9, 1e10], "spec_token_range": [0.0, 2e9]})
    ref = 6.0 * 4e8 * (1e10 + 2e9)
    assert fitted_compute(law) == pytest.approx(ref)
    calibrated = dataclasses.replace(law, calibration={**(law.calibration or {}), "reference_compute": 5e19})
    assert fitted_compute(calibrated) == 5e19
    for budget in np.geomspace(1e19, 1e22, 13):
        a = optimize(law, float(budget), [Domain("code")], baselines=False, marginal=False)
        branch = 6.0 * a.model_size * (a.pretrain_tokens + a.spec_tokens["code"])
        warned = any(w.code == "extrapolation" for w in a.warnings)
        assert warned == (branch > 10.0 * ref)
