"""Fitting without waste gives the numbers of the wasteful path, and ``-j/--jobs`` reaches the fitter.

* a subset fit warm-started from the full-data optimum (backtests, held-out and calibration fits)
  reaches the optimum of the cold multi-start on the same rows;
* ``form="auto"`` with ``warm_start=False`` is the previous cold path: the full-data fits are the
  same numbers, the backtest weights agree to 1e-6;
* solves reused within one fit call (``REUSE_SOLVES``) change nothing and run fewer multi-starts;
* results do not depend on ``n_jobs`` (a process pool forced for every map);
* ``planner run/sweep/fit/design -j N`` parse and pass N on to the fitter, the decision and the design.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import planner
import planner.fitting.core as core
from planner import _parallel
from planner.cli import cli
from planner.fitting.core import LawFitter, _prepare, _subset
from synthetic import TRUTHS, grid_table


def _two_domain_runs(form: str = "split-additive", sizes=(1e7, 3e7, 1e8, 3e8), seed: int = 0) -> pd.DataFrame:
    truth = planner.law(form, **TRUTHS[form])
    rows = [dict(model_size=n, pretrain_tokens=n * m, spec_tokens=dp, domain=dom, run=f"n{n:g}-m{m:g}")
            for n, m in itertools.product(sizes, (10.0, 40.0))
            for dom, dp in itertools.product(("code", "math"), (0.0, 1e8, 1e9, 1e10))]
    df = pd.DataFrame(rows)
    df["loss"] = truth.predict(df) * np.exp(np.random.default_rng(seed).normal(0.0, 0.005, len(df)))
    return planner.load_runs(df)


# ------------------------------------------------------------------ warm starts
@pytest.mark.parametrize("form", ["chinchilla", "split-additive", "split-effective", "split-interaction"])
def test_a_warm_started_subset_fit_reaches_the_cold_optimum(form):
    runs, _ = grid_table(form, noise=0.01, seed=11)
    f = planner.get_form(form)
    fitter = LawFitter(f, max_starts=16)
    prep = _prepare(runs, f, domain=None, weights=None)
    full = fitter._solve(f, prep, 0)
    small = _subset(prep, np.flatnonzero(prep.x.model_size <= 3e8))  # the backtest of the four smallest sizes
    cold = fitter._solve(f, small, 0)
    warm = fitter._solve_subset(f, small, full)
    assert "starts" in warm.message and warm.status == cold.status == "converged"
    # the same optimum: objectives to 1e-9, parameters to the optimizer's reproducibility
    assert warm.objective == pytest.approx(cold.objective, rel=1e-9)
    for name in cold.params:
        assert warm.params[name] == pytest.approx(cold.params[name], rel=1e-3, abs=1e-9), name


def test_warm_start_false_solves_cold():
    runs, _ = grid_table("chinchilla", seed=12)
    f = planner.get_form("chinchilla")
    prep = _prepare(runs, f, domain=None, weights=None)
    fitter = LawFitter(f, max_starts=8, warm_start=False)
    full = fitter._solve(f, prep, 0)
    small = _subset(prep, np.flatnonzero(prep.x.model_size <= 3e8))
    cold = fitter._solve_subset(f, small, full)
    assert cold.params == fitter._solve(f, small, 0).params


def test_a_bad_warm_start_option_is_an_error():
    runs, _ = grid_table("chinchilla", seed=6)
    with pytest.raises(planner.FitError, match="warm_start"):
        planner.fit(runs, "chinchilla", warm_start="yes")


@pytest.fixture(scope="module")
def auto_runs() -> pd.DataFrame:
    return _two_domain_runs(sizes=(1e7, 3e7, 1e8, 3e8), seed=3)


AUTO = dict(max_starts=4, n_polish=2, train_on="auto", calibrate=True, n_jobs=1)
#: the candidates of these tests (every loss form would only make them slower)
FORMS = ("split-additive", "split-effective", "split-interaction")


@pytest.fixture(autouse=True)
def three_candidates(monkeypatch):
    real = core.list_forms
    monkeypatch.setattr(core, "list_forms", lambda **kw: [f for f in real(**kw) if f.name in FORMS])


@pytest.fixture(scope="module")
def auto_warm(auto_runs):
    real = core.list_forms
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(core, "list_forms", lambda **kw: [f for f in real(**kw) if f.name in FORMS])
        return planner.fit(auto_runs, "auto", **AUTO)


@pytest.mark.slow
def test_auto_cold_path_gives_the_same_law_and_weights(auto_runs, auto_warm):
    cold = planner.fit(auto_runs, "auto", warm_start=False, **AUTO)
    a, b = auto_warm.candidates, cold.candidates
    assert a.names == b.names and set(a.names) == set(FORMS) and auto_warm.form.name == cold.form.name
    # the fits on every row are cold multi-starts either way: the same numbers
    for x, y in zip(a.candidates, b.candidates):
        assert x.params == y.params
    # backtests and held-out fits start elsewhere and stop at the same optimum
    np.testing.assert_allclose(a.weights, b.weights, rtol=0, atol=1e-6)
    # (sloppy fits: two polishes reach one optimum to about 1e-4 in the backtest error scale)
    np.testing.assert_allclose(a.sigmas, b.sigmas, rtol=1e-3)
    for x, y in zip(a.candidates, b.candidates):
        assert x.holdout["are"] == pytest.approx(y.holdout["are"], rel=1e-3)
    assert auto_warm.calibration["slope_per_decade"] == pytest.approx(cold.calibration["slope_per_decade"], rel=1e-3, abs=1e-9)


@pytest.mark.slow
def test_reused_solves_change_nothing_and_run_fewer_multistarts(auto_runs, auto_warm, monkeypatch):
    calls = {"n": 0}
    real = core.multistart

    def counted(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(core, "multistart", counted)
    again = planner.fit(auto_runs, "auto", **AUTO)
    with_cache = calls["n"]
    calls["n"] = 0
    monkeypatch.setattr(core, "REUSE_SOLVES", False)
    without = planner.fit(auto_runs, "auto", **AUTO)
    assert calls["n"] > with_cache
    for law in (again, without):
        assert law.candidates.weights == auto_warm.candidates.weights
        assert law.params == auto_warm.params and law.calibration == auto_warm.calibration
        assert [c.holdout for c in law.candidates.candidates] == [c.holdout for c in auto_warm.candidates.candidates]
    # 3 forms x (all rows, the 3 smallest sizes (training rows), the 2 smallest (the backtest fold));
    # the chosen form's refit (all rows, training rows) and its calibration cutoff (the 3 smallest
    # sizes again) are found in the cache
    assert with_cache == 3 * 3
    assert calls["n"] == 3 * 3 + 3


@pytest.mark.slow
def test_auto_results_do_not_depend_on_n_jobs(auto_runs, monkeypatch):
    options = {**AUTO, "bootstrap": 3}
    serial = planner.fit(auto_runs, "auto", **options)
    monkeypatch.setattr(_parallel, "MIN_PARALLEL_SECONDS", 0.0)  # every map to the process pool
    pooled = planner.fit(auto_runs, "auto", **{**options, "n_jobs": 2})
    assert serial.candidates.weights == pooled.candidates.weights
    for x, y in zip(serial.candidates.candidates, pooled.candidates.candidates):
        assert x.params == y.params
        assert (x.draws is None) == (y.draws is None)
        if x.draws is not None:
            np.testing.assert_array_equal(x.draws, y.draws)
    assert serial.calibration == pooled.calibration


@pytest.mark.slow
def test_auto_bootstrap_progress_counts_every_candidates_draws(auto_runs):
    seen: list[tuple[int, int]] = []
    law = planner.fit(auto_runs, "auto", max_starts=4, n_polish=2, bootstrap=2, n_jobs=1, progress=lambda d, t: seen.append((d, t)))
    n_boot = sum(1 for c in law.candidates.candidates if c.draws is not None)
    assert n_boot >= 1
    assert seen == [(i, 2 * n_boot) for i in range(1, 2 * n_boot + 1)]


# ------------------------------------------------------------------ -j / --jobs
@pytest.fixture
def scenario_file(tmp_path):
    runs, _ = grid_table("chinchilla", seed=1)
    runs.to_csv(tmp_path / "runs.csv", index=False)
    path = tmp_path / "s.toml"
    path.write_text('[budget]\nflops = 1e21\n\n[law]\nruns = "runs.csv"\nform = "chinchilla"\nmax_starts = 4\n')
    return path


class _Stop(Exception):
    pass


def _capture(store: dict, name: str):
    def fake(*args, **kwargs):
        store[name] = kwargs.get("n_jobs", "missing")
        raise _Stop()

    return fake


@pytest.mark.parametrize("command", ["run", "sweep"])
@pytest.mark.parametrize("args, expected", [((), -1), (("-j", "1"), 1), (("--jobs", "2"), 2), (("-j", "-1"), -1)])
def test_run_and_sweep_pass_jobs_to_the_fit(command, args, expected, scenario_file, monkeypatch):
    import planner.scenario.binding as binding

    seen: dict = {}
    monkeypatch.setattr(binding, "fit", _capture(seen, "fit"))
    result = CliRunner().invoke(cli, [command, str(scenario_file), *args, "-o", str(scenario_file.parent / "out")])
    assert "_Stop" in result.output or isinstance(result.exception, _Stop), result.output
    assert seen["fit"] == expected


def test_the_uncertainty_analysis_gets_the_jobs(monkeypatch):
    from types import SimpleNamespace

    import planner.scenario.running as running

    seen: dict = {}
    monkeypatch.setattr("planner.decision.decide", _capture(seen, "decide"))
    law = planner.law("chinchilla", **TRUTHS["chinchilla"])
    uncertainty = SimpleNamespace(forms=(), max_draws=None, robust=(), headline="nominal", epsilon=None, level=None, multiplier_draws=None)
    scenario = SimpleNamespace(uncertainty=uncertainty, budget=SimpleNamespace(primary=1e21), compare=SimpleNamespace(strategies=()))
    with pytest.raises(_Stop):
        running._decide(scenario, law, [], None, {}, [1e21], n_jobs=3)
    assert seen["decide"] == 3


def test_fit_passes_jobs(tmp_path, monkeypatch):
    runs, _ = grid_table("chinchilla", seed=1)
    runs.to_csv(tmp_path / "runs.csv", index=False)
    seen: dict = {}
    monkeypatch.setattr(planner.fitting, "fit", _capture(seen, "fit"))
    for args, expected in (((), -1), (("-j", "1"), 1), (("--jobs", "3"), 3)):
        result = CliRunner().invoke(cli, ["fit", str(tmp_path / "runs.csv"), "--form", "chinchilla", *args])
        assert "_Stop" in result.output or isinstance(result.exception, _Stop), result.output
        assert seen["fit"] == expected


def test_design_passes_jobs(scenario_file, monkeypatch):
    import planner.experiments.scenario_io as scenario_io

    seen: dict = {}
    monkeypatch.setattr(scenario_io, "design_from_scenario", _capture(seen, "design"))
    result = CliRunner().invoke(cli, ["design", str(scenario_file), "-j", "2", "--experiment-budget", "1e19"])
    assert "_Stop" in result.output or isinstance(result.exception, _Stop), result.output
    assert seen["design"] == 2


@pytest.mark.parametrize("command", ["run", "sweep", "fit", "design"])
@pytest.mark.parametrize("bad", ["0", "two", "1.5"])
def test_bad_jobs_is_exit_2(command, bad, scenario_file):
    target = [str(scenario_file)] if command != "fit" else [str(scenario_file), "--form", "chinchilla"]
    result = CliRunner().invoke(cli, [command, *target, "-j", bad])
    assert result.exit_code == 2
    assert "--jobs" in result.output


def test_run_with_one_job_gives_the_default_plan(scenario_file, tmp_path):
    """End to end: -j 1 and the default (-1) write the same plan."""
    import json

    outs = []
    for args in ((), ("-j", "1")):
        out = tmp_path / f"out{len(outs)}"
        result = CliRunner().invoke(cli, ["run", str(scenario_file), "-o", str(out), "-q", "--format", "json", *args])
        assert result.exit_code == 0, result.output
        outs.append(json.loads((out / "allocation.json").read_text()))
    for key in ("model_size", "pretrain_tokens", "objective"):
        assert outs[0][key] == outs[1][key]
