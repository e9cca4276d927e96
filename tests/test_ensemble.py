"""form="auto" as an ensemble: backtest folds, stacking weights, failures, serialization, identifiability warnings."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

import planner
import planner.fitting.core as core
from planner.fitting.ensemble import (CandidateScore, LawEnsemble, ensemble_weights, pseudo_bma_weights, shrunk_stacking_weights, size_folds,
                                      stacking_weights)
from planner.fitting.identifiability import wide_interval_warnings
from planner.laws import CallableForm, Param
from synthetic import TRUTHS


def _runs(form: str = "split-additive", sizes=(1e7, 3e7, 1e8, 3e8), constant_d: float | None = None, seed: int = 0) -> pd.DataFrame:
    truth = planner.law(form, **TRUTHS[form])
    rows = [dict(model_size=n, pretrain_tokens=constant_d or n * m, spec_tokens=dp, domain=dom, run=f"n{n:g}-m{m:g}")
            for n, m in itertools.product(sizes, (10.0, 40.0))
            for dom, dp in itertools.product(("code", "math"), (0.0, 1e8, 1e9, 1e10))]
    df = pd.DataFrame(rows)
    df["loss"] = truth.predict(df) * np.exp(np.random.default_rng(seed).normal(0.0, 0.005, len(df)))
    return planner.load_runs(df)


# ----------------------------------------------------------------------------- folds
def test_size_folds_extrapolate_one_size_ahead_from_at_least_three():
    table = pd.DataFrame({"model_size": np.repeat([1.0, 2.0, 3.0, 4.0, 5.0], 2)})
    folds = size_folds(table)
    assert len(folds) == 2  # k = 3, 4
    for k, fold in zip((3, 4), folds):
        assert set(table.model_size[fold.train]) == set(range(1, k + 1))
        assert set(table.model_size[fold.test]) == {k + 1}
    three = size_folds(table[table.model_size <= 3])
    assert len(three) == 1 and set(table.model_size[:6][three[0].test]) == {3.0}


def test_two_sizes_backtest_on_each_runs_last_checkpoints():
    table = pd.DataFrame({"model_size": [1.0] * 5 + [2.0] * 5, "pretrain_tokens": list(range(1, 6)) * 2, "run": ["a"] * 5 + ["b"] * 5})
    (fold,) = size_folds(table)
    assert list(table.pretrain_tokens[fold.test]) == [4, 5, 4, 5]


# --------------------------------------------------------------------------- weights
def _mixture_score(w: np.ndarray, blocks: list[np.ndarray]) -> float:
    return sum(float(np.mean(np.log(np.exp(b) @ w))) for b in blocks)


def test_stacking_weights_maximise_the_mixture_log_score():
    rng = np.random.default_rng(0)
    blocks = [rng.normal(-1.0, 1.0, (7, 3)), rng.normal(-1.0, 1.5, (4, 3)) + np.array([0.0, 0.8, -0.5])]
    w = stacking_weights(blocks)
    assert w.sum() == pytest.approx(1.0) and np.all(w >= 0)
    # brute force over a simplex grid
    grid = [np.array([a, b, 1 - a - b]) for a in np.linspace(0, 1, 101) for b in np.linspace(0, 1, 101) if a + b <= 1 + 1e-12]
    best = max(_mixture_score(np.clip(g, 0, None), blocks) for g in grid)
    assert _mixture_score(w, blocks) >= best - 1e-6


def test_a_dominant_candidate_takes_all_weight_and_pseudo_bma_is_exp_elpd():
    blocks = [np.array([[-1.0, -5.0], [-0.5, -4.0]])]
    assert stacking_weights(blocks)[0] > 0.99
    elpd = np.array([-1.5, -9.0])
    np.testing.assert_allclose(pseudo_bma_weights(blocks), np.exp(elpd) / np.exp(elpd).sum())


def test_shrunk_stacking_is_equal_with_one_fold_and_the_dirichlet_posterior_mean_with_more():
    rng = np.random.default_rng(3)
    one = [rng.normal(-1.0, 1.0, (6, 4)) + np.array([0.0, 3.0, -2.0, 0.0])]
    assert stacking_weights(one)[1] > 0.9  # one fold: stacking puts (nearly) all weight on one form ...
    np.testing.assert_array_equal(shrunk_stacking_weights(one), np.full(4, 0.25))  # ... shrunk stacking does not
    three = one + [rng.normal(-1.0, 1.0, (5, 4)), rng.normal(-1.0, 1.0, (3, 4)) + np.array([0.0, 1.0, 0.0, 0.0])]
    s = stacking_weights(three)
    # F = 3 folds: 2 fold-observations against a Dirichlet(1, 1, 1, 1) prior, computed by hand
    np.testing.assert_allclose(shrunk_stacking_weights(three), (2 * s + 1) / (2 + 4), rtol=1e-12)
    many = [rng.normal(-1.0, 0.3, (4, 2)) + np.array([0.0, -2.0]) for _ in range(200)]
    assert shrunk_stacking_weights(many)[0] == pytest.approx(stacking_weights(many)[0], abs=0.01)  # tends to stacking
    np.testing.assert_array_equal(ensemble_weights(three, "equal"), np.full(4, 0.25))
    np.testing.assert_allclose(ensemble_weights(three, "shrunk-stacking"), shrunk_stacking_weights(three))
    np.testing.assert_allclose(ensemble_weights(three), s)  # the default: plain stacking


def test_equal_weights_rank_by_backtest_log_score():
    names = ("split-additive", "split-interaction", "split-effective")
    laws = tuple(planner.law(n, **TRUTHS[n]) for n in names)
    scores = tuple(CandidateScore(n, "fitted", 1 / 3, log_score=ls) for n, ls in zip(names, (-2.0, 1.0, 0.5)))
    ens = LawEnsemble(laws, (1 / 3, 1 / 3, 1 / 3), scores)
    assert ens.ranking == (1, 2, 0) and ens.best is laws[1]
    one_fold = LawEnsemble(laws, (1 / 3, 1 / 3, 1 / 3), scores, method="shrunk-stacking", folds=({"name": "sizes <= 2 -> 3", "n_train": 4, "n_test": 2},))
    lines = one_fold.summary_lines()
    assert "equal, as one fold only proposes a ranking" in lines[0]
    assert [ln.split()[0] for ln in lines[2:5]] == ["split-interaction", "split-effective", "split-additive"]
    unequal = LawEnsemble(laws, (0.5, 0.3, 0.2), scores)
    assert unequal.ranking == (0, 1, 2)  # weight first
    # the decision package takes the candidates best first: with tied weights its nominal candidate
    # (the first of the largest weight) is the ensemble's best, the law fit(form="auto") returns
    from planner.decision import as_candidates

    assert [c.name for c in as_candidates(ens)] == ["split-interaction", "split-effective", "split-additive"]
    assert [c.name for c in as_candidates(unequal)] == list(names)


# ------------------------------------------------------------------------ the ensemble
@pytest.fixture(scope="module")
def auto_law():
    return planner.fit(_runs(), "auto", max_starts=16, train_on="model_size < 3e8", ensemble="shrunk-stacking")


@pytest.mark.slow
def test_auto_keeps_every_split_candidate_and_returns_the_best(auto_law):
    ens = auto_law.candidates
    assert isinstance(ens, LawEnsemble)
    assert set(ens.names) == {"split-additive", "split-effective", "split-interaction", "split-transfer", "split-multiplicative", "split-prelearned"}
    assert sum(ens.weights) == pytest.approx(1.0)
    assert auto_law.form.name == ens.best.form.name
    # 3 fitted sizes: one backtest fold, equal weights (shrunk stacking), the best backtest log score ranks first
    assert len(ens.folds) == 1 and np.allclose(ens.weights, 1 / len(ens))
    fitted_scores = {s.form: s.log_score for s in ens.scores if s.status == 'fitted'}
    assert ens.best.form.name == max(fitted_scores, key=fitted_scores.get)
    # the data came from split-additive: its backtest error is the smallest of all
    fitted = {s.form: s for s in ens.scores if s.status == "fitted"}
    assert min(fitted, key=lambda f: fitted[f].backtest_are) == "split-additive"
    assert {s.form: s.status for s in ens.scores}["chinchilla"] == "skipped"
    table = ens.score_table()
    assert {"form", "weight", "backtest_are", "log_score", "holdout_are", "reason"} <= set(table.columns)


@pytest.mark.slow
def test_ensemble_predicts_the_weighted_mixture_and_its_holdout(auto_law):
    ens = auto_law.candidates
    runs = _runs()
    preds = np.vstack([c.predict(runs) for c in ens.candidates])
    np.testing.assert_allclose(ens.predict(runs), np.asarray(ens.weights) @ preds, rtol=1e-12)
    # held-out: the mixture of each candidate's training-only fit on the held-out rows
    test = runs[runs.model_size >= 3e8]
    held = [planner.law(c.form.name, domains=c.domains, **c.holdout["params"]).predict(test) for c in ens.candidates]
    mix = np.asarray(ens.weights) @ np.vstack(held)
    assert ens.holdout["are"] == pytest.approx(float(np.mean(np.abs(mix - test.loss) / test.loss)), rel=1e-9)
    # without draws the parameter interval at level -> 1 spans the candidates with weight
    lo, hi = ens.predict_interval(runs, level=0.99999)
    live = preds[np.asarray(ens.weights) > 0]
    assert np.all(lo >= live.min(axis=0) - 1e-9) and np.all(hi <= live.max(axis=0) + 1e-9)
    plo, phi = ens.predict_interval(runs, kind="predictive")
    assert np.all(plo < ens.predict(runs)) and np.all(phi > ens.predict(runs))


@pytest.mark.slow
def test_law_file_round_trip_keeps_the_ensemble(auto_law, tmp_path):
    path = auto_law.save(tmp_path / "law.json")
    back = planner.load_law(path)
    assert back.candidates is not None and back.candidates.names == auto_law.candidates.names
    assert back.candidates.weights == pytest.approx(auto_law.candidates.weights)
    runs = _runs()
    np.testing.assert_allclose(back.candidates.predict(runs), auto_law.candidates.predict(runs), rtol=1e-12)
    np.testing.assert_allclose(back.predict(runs), auto_law.predict(runs), rtol=1e-12)
    assert "form selection" in back.summary() and "stacking" in back.summary()


def _broken(x, **p):
    raise FloatingPointError("this form always breaks")


BROKEN = CallableForm("broken-test-form", _broken, [Param("E", 0.1, 10.0, per_domain=True, start=1.0)],
                      inputs=("model_size", "pretrain_tokens", "spec_tokens"), has_spec=True)


@pytest.mark.slow
def test_a_failing_candidate_never_fails_auto(monkeypatch):
    real = core.list_forms
    monkeypatch.setattr(core, "list_forms", lambda kind=None: [BROKEN, planner.laws.get_form("split-additive")])
    fitted = planner.fit(_runs(), "auto", max_starts=16)
    score = {s.form: s for s in fitted.candidates.scores}
    assert score["broken-test-form"].status == "failed" and "always breaks" in score["broken-test-form"].reason
    assert fitted.form.name == "split-additive" and fitted.candidates.weights == (1.0,)
    monkeypatch.setattr(core, "list_forms", lambda kind=None: [BROKEN] + [f for f in real(kind) if f.name == "repetition"])
    with pytest.raises(planner.FitError, match="broken-test-form: .*always breaks.*repetition: no unique_tokens"):
        planner.fit(_runs(), "auto", max_starts=16)


@pytest.mark.slow
def test_auto_with_three_sizes_and_a_constant_pretraining_column():
    """OPT-like runs: the same D for every size and only 3 sizes (one fold: 2 sizes -> the third)."""
    runs = _runs(sizes=(1e7, 3e7, 1e8), constant_d=5e9)
    fitted = planner.fit(runs, "auto", max_starts=16, domain="code")
    ens = fitted.candidates
    assert len(ens.folds) == 1 and ens.folds[0]["n_test"] == int((runs.model_size == 1e8).sum() / 2)
    assert "chinchilla" in ens.names and len(ens.names) >= 6
    assert np.all(np.isfinite(ens.predict(runs[runs.domain == "code"])))


@pytest.mark.slow
def test_auto_train_on_auto_that_holds_nothing_out_is_a_note_not_an_error():
    runs = _runs(sizes=(1e7, 3e7, 1e8), seed=2)
    runs = runs[runs.domain == "code"].assign(pretrain_tokens=1e12)  # D' ~ 1e-2 of D: token_fraction ~ 1 everywhere
    fitted = planner.fit(planner.load_runs(runs), "auto", max_starts=16, train_on="auto")
    assert any(w.code == "no-holdout" for w in fitted.warnings)


@pytest.mark.slow
def test_parallel_candidates_give_the_serial_result():
    runs = _runs(sizes=(1e7, 3e7, 1e8, 3e8), seed=4)
    serial = planner.fit(runs, "auto", max_starts=8)
    parallel = planner.fit(runs, "auto", max_starts=8, n_jobs=2)
    assert serial.candidates.names == parallel.candidates.names
    np.testing.assert_allclose(serial.candidates.weights, parallel.candidates.weights, rtol=1e-10, atol=1e-12)


def test_unknown_weighting_method_is_an_error():
    with pytest.raises(planner.FitError, match="stacking.*pseudo-bma"):
        planner.fit(_runs(), "auto", ensemble="bma")


# ---------------------------------------------------------------------- identifiability
def test_wide_interval_warning_when_an_interval_spans_a_decade_or_se_exceeds_value():
    params = {"E": 1.7, "C": 4215.0, "gamma": 0.3, "b": 0.05}
    rng = np.random.default_rng(0)
    draws = np.column_stack([rng.normal(1.7, 0.01, 50), 10 ** rng.uniform(2, 6, 50), rng.normal(0.3, 0.01, 50), rng.normal(0.05, 0.2, 50)])
    lo, hi = np.percentile(draws, [5, 95], axis=0)
    intervals = {k: (a, b) for k, a, b in zip(params, lo, hi)}
    warned = {w.message.split(" ")[0]: w for w in wide_interval_warnings(params, intervals, draws)}
    assert set(warned) == {"C", "b"}
    assert "decades" in warned["C"].message and "standard error" in warned["b"].message
    assert all(w.code == "wide-interval" for w in warned.values())
    assert wide_interval_warnings(params, intervals, draws, fixed=("C", "b")) == []


@pytest.mark.slow
def test_bootstrap_fit_warns_about_an_unidentified_parameter():
    # three nearby sizes, 2 % noise, one run per (size, tokens): B is not pinned down (4 decades)
    truth = planner.law("chinchilla", **TRUTHS["chinchilla"])
    df = pd.DataFrame([dict(model_size=n, pretrain_tokens=n * m, run=f"{n}-{m}") for n in (1e7, 2e7, 4e7) for m in (5, 10, 20, 40, 80)])
    df["loss"] = truth.predict(df) * np.exp(np.random.default_rng(5).normal(0.0, 0.02, len(df)))
    fitted = planner.fit(df, "chinchilla", bootstrap=12, max_starts=8)
    wide = [w for w in fitted.warnings if w.code == "wide-interval"]
    assert wide and all(w.message.split(" ")[0] in fitted.params for w in wide)
    lo, hi = fitted.intervals[wide[0].message.split(" ")[0]]
    assert hi / lo > 10 or "standard error" in wide[0].message
