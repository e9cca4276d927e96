"""The multi-start's shortcuts give the numbers of the path without them.

* with ``n_agree=k`` the cold multi-start stops polishing once k polishes reached the best optimum;
  the scripted cases pin the rule (a lower basin found later resets the count), and on the main
  scenario's runs and on synthetic recoveries the fit equals the default one that polishes every
  start, to the optimizer's own reproducibility;
* the amplitude columns of the variable-projection starts come from one call of the form's
  gradient: the same columns, and the same amplitudes, as one prediction per linear slot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import OptimizeResult

import planner
import planner.fitting.multistart as ms
from planner.fitting.core import LawFitter, _prepare
from planner.fitting.objective import Objective, make_loss
from synthetic import TRUTHS, grid_table

ROOT = Path(__file__).resolve().parents[1]
SCENARIO_RUNS = ROOT / "scenarios" / "data" / "three_domain_runs.csv"
#: the [law] options of scenarios/three-domains.toml
SCENARIO_FIT = dict(train_on="auto", max_starts=32, calibrate=True, n_jobs=1)


def _objective(runs, form: str) -> Objective:
    f = planner.get_form(form)
    prep = _prepare(runs, f, domain=None, weights=None)
    layout = LawFitter(f)._layout(f, prep, [])
    return Objective(f, layout, prep.x, prep.observed, prep.domain_index, prep.weights, make_loss("huber"))


def _old_path(monkeypatch) -> None:
    """Amplitude columns by one prediction per linear slot (the path before the gradient call)."""
    monkeypatch.setattr(ms, "ANALYTIC_COLUMNS", False)


# ------------------------------------------------------------------ the agreement rule
def _scripted(monkeypatch, funs: list[float]) -> list[int]:
    """Replace the polish by results with the given objectives, in order; returns the polished indices."""
    done: list[int] = []

    def polish(obj, values, method="auto"):
        i = len(done)
        done.append(i)
        return OptimizeResult(x=np.full(len(obj.layout.free), float(i)), fun=funs[i], status=0, message="scripted")

    monkeypatch.setattr(ms, "polish", polish)
    return done


@pytest.mark.parametrize("funs, n_agree, polished, best", [
    ([2.0, 2.0, 1.0, 1.0, 1.0, 1.0], 2, 2, 0),             # the first two agree: the rest are not polished
    ([2.0, 2.0 * (1 + 1e-10), 1.0, 1.0], 2, 2, 0),         # agreement is to CONFIRM_RTOL in objective
    ([5.0, 3.0, 3.0 * (1 - 1e-12), 1.0], 2, 3, 2),         # a lower basin resets the count; agreeing and lower wins
    ([5.0, 3.0, 1.0, 1.0, 0.5, 0.5], 2, 4, 2),             # stops at the first basin found twice
    ([5.0, 3.0, 1.0, 0.5, 0.4, 0.3], 2, 6, 5),             # no two agree: every start is polished
    ([2.0, 2.0, 1.0, 1.0, 1.0, 1.0], 6, 6, 2),             # n_agree >= n_polish: every start
    ([2.0, 2.0, 1.0, 1.0, 1.0, 1.0], None, 6, 2),          # None (the default): every start
    ([2.0, 2.0, 2.0, 1.0, 1.0, 1.0], 3, 3, 0),
    ([np.inf, 2.0, 2.0, 1.0], 2, 3, 1),                    # a failed polish neither counts nor wins
])
def test_cold_multistart_stops_once_n_agree_polishes_reach_the_best(monkeypatch, funs, n_agree, polished, best):
    runs, _ = grid_table("chinchilla", seed=3)
    obj = _objective(runs, "chinchilla")
    done = _scripted(monkeypatch, funs)
    res, n_starts = ms.multistart(obj, max_starts=16, n_polish=len(funs), n_agree=n_agree)
    assert len(done) == polished
    assert res.x[0] == best and res.fun == funs[best]
    assert n_starts == 16


def test_by_default_every_start_is_polished(monkeypatch):
    runs, _ = grid_table("chinchilla", seed=3)
    done = _scripted(monkeypatch, [1.0] * 6)
    ms.multistart(_objective(runs, "chinchilla"), max_starts=16, n_polish=6)
    assert ms.N_AGREE is None and len(done) == 6
    assert LawFitter("chinchilla").n_agree is None


def test_bad_n_agree_is_an_error():
    runs, _ = grid_table("chinchilla", seed=3)
    with pytest.raises(planner.FitError, match=r"n_agree=0 must be in \[1, .*\(or None\)"):
        planner.fit(runs, "chinchilla", n_agree=0)


# ------------------------------------------------------------------ the same numbers
def _same_law(a: planner.FittedLaw, b: planner.FittedLaw, params_rel: float = 1e-4) -> None:
    """One optimum: objectives to 1e-10 relative (polishes of one basin from different starts agree
    to ~1e-13), parameters to ``params_rel`` (they agree to ~1e-5: the valley is flat)."""
    assert a.status == b.status
    assert a.objective == pytest.approx(b.objective, rel=1e-10)
    for name in b.params:
        assert a.params[name] == pytest.approx(b.params[name], rel=params_rel, abs=1e-12), name


@pytest.mark.parametrize("form", ["chinchilla", "split-additive", "split-interaction"])
def test_synthetic_recovery_is_the_same_with_the_agreement_stop(form, monkeypatch):
    runs, truth = grid_table(form, noise=0.01, seed=0)
    options = {"tie": ["gamma"]} if form == "split-additive" else {}
    new = planner.fit(runs, form, seed=0, max_starts=64, n_agree=2, **options)
    _old_path(monkeypatch)
    old = planner.fit(runs, form, seed=0, max_starts=64, **options)
    _same_law(new, old, params_rel=1e-3)


def test_a_scenario_form_with_its_holdout_is_the_same(monkeypatch):
    """split-additive (the form the main scenario plans with) on its runs: the fit and the held-out fit."""
    runs = planner.load_runs(SCENARIO_RUNS)
    options = dict(SCENARIO_FIT, calibrate=False)
    new = planner.fit(runs, "split-additive", n_agree=2, **options)
    _old_path(monkeypatch)
    old = planner.fit(runs, "split-additive", **options)
    _same_law(new, old)
    assert new.holdout["are"] == pytest.approx(old.holdout["are"], rel=1e-6)
    for name in old.holdout["params"]:
        assert new.holdout["params"][name] == pytest.approx(old.holdout["params"][name], rel=1e-4), name


@pytest.mark.slow
def test_the_main_scenarios_auto_fit_is_the_same_as_polishing_every_start(monkeypatch):
    """The fit of scenarios/three-domains.toml (form auto, six candidates, backtests, calibration)."""
    runs = planner.load_runs(SCENARIO_RUNS)
    new = planner.fit(runs, "auto", n_agree=2, **SCENARIO_FIT)
    _old_path(monkeypatch)
    old = planner.fit(runs, "auto", **SCENARIO_FIT)
    assert new.form.name == old.form.name
    np.testing.assert_allclose(new.candidates.weights, old.candidates.weights, rtol=0, atol=1e-6)
    for a, b in zip(new.candidates.candidates, old.candidates.candidates):
        assert a.form.name == b.form.name
        _same_law(a, b)
        assert a.holdout["are"] == pytest.approx(b.holdout["are"], rel=1e-6)
    for a, b in zip(new.candidates.scores, old.candidates.scores):
        if a.status == "fitted":
            np.testing.assert_allclose(a.fold_are, b.fold_are, rtol=1e-6)
    assert new.calibration["slope_per_decade"] == pytest.approx(old.calibration["slope_per_decade"], rel=1e-5)


# ------------------------------------------------------------------ amplitude columns
@pytest.mark.parametrize("form", sorted(TRUTHS))
def test_amplitude_columns_from_the_gradient_are_the_prediction_differences(form, monkeypatch):
    if not any(q.linear for q in planner.get_form(form).params):
        pytest.skip(f"{form} has no linear parameter")
    runs, _ = grid_table(form, noise=0.01, seed=1)
    obj = _objective(runs, form)
    index = [j for j, s in enumerate(obj.layout.free) if s.param.linear]
    linear = [obj.layout.free[j] for j in index]
    for values in ms.start_grid(obj, 8, np.random.default_rng(0)):
        affine = obj.linear_columns(values, index)
        if not obj.analytic:
            assert affine is None
            continue
        base, columns = affine
        at_zero = dict(values, **{s.name: 0.0 for s in linear})
        np.testing.assert_allclose(base, obj.predict(at_zero), rtol=1e-13)
        for k, s in enumerate(linear):
            np.testing.assert_allclose(columns[:, k], obj.predict(dict(at_zero, **{s.name: 1.0})) - base, rtol=1e-12, atol=1e-15)
        by_gradient = ms.solve_amplitudes(obj, values)
        monkeypatch.setattr(ms, "ANALYTIC_COLUMNS", False)
        by_predictions = ms.solve_amplitudes(obj, values)
        monkeypatch.setattr(ms, "ANALYTIC_COLUMNS", True)
        for name in by_predictions:
            assert by_gradient[name] == pytest.approx(by_predictions[name], rel=1e-9, abs=1e-12), name


# ------------------------------------------------------------------ near optima: the runs do not single out the parameters
def test_near_optima_are_other_polishes_as_good_as_the_best_with_other_parameters():
    best = OptimizeResult(x=np.array([0.0, 0.0]), fun=1.0)
    same_basin = OptimizeResult(x=np.array([1e-6, 0.0]), fun=1.0)                     # the best's own basin
    far_as_good = OptimizeResult(x=np.array([0.0, 2.0]), fun=1.0 + 0.5 * ms.NEAR_RTOL)  # another optimum, as good
    farther = OptimizeResult(x=np.array([3.0, 0.0]), fun=1.0)                          # a flat valley, farther away
    far_worse = OptimizeResult(x=np.array([5.0, 5.0]), fun=1.0 + 2 * ms.NEAR_RTOL)    # another optimum, worse
    failed = OptimizeResult(x=np.array([9.0, 9.0]), fun=np.inf)
    got = ms._with_near_optima(best, [best, same_basin, far_as_good, farther, far_worse, failed])
    assert got is best and got.near_optima == [farther, far_as_good]  # farthest first
    assert ms._with_near_optima(OptimizeResult(x=np.zeros(2), fun=1.0), [same_basin]).near_optima == []


def test_a_fit_the_runs_cannot_pin_down_says_so_and_a_well_posed_one_does_not():
    """One model size: A N^-alpha is a constant next to E, so alpha is free (every start fits equally well);
    five sizes of a known Chinchilla law pin every parameter."""
    runs, _ = grid_table("chinchilla", noise=0.005, seed=4)
    one_size = runs[runs["model_size"] == runs["model_size"].max()]
    flat = planner.fit(one_size, "chinchilla", max_starts=16)
    (w,) = [w for w in flat.warnings if w.code == "flat-optimum"]
    assert "fit the runs as well as the reported optimum" in w.message and "do not single out" in w.message
    assert "flat-optimum" not in {w.code for w in planner.fit(runs, "chinchilla", max_starts=16).warnings}
