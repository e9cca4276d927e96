"""Tests for planner.downstream: error-from-loss laws, chained predictions, task-to-task prediction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import planner
from planner.downstream import (
    DownstreamPrediction,
    downstream_draws,
    downstream_table,
    fit_downstream,
    fit_task_transfer,
    predict_downstream,
    task_transfer_validation,
)

EXP_TRUE = {"eps": 0.82, "k": 2.4, "gamma": 0.8}
SIG_TRUE = {"floor": 0.15, "ceiling": 0.75, "k": 3.0, "L0": 3.2}


def exp_error(loss: np.ndarray, p: dict = EXP_TRUE) -> np.ndarray:
    return p["eps"] - p["k"] * np.exp(-p["gamma"] * loss)


def sigmoid_error(loss: np.ndarray, p: dict = SIG_TRUE) -> np.ndarray:
    return p["floor"] + (p["ceiling"] - p["floor"]) / (1 + np.exp(-p["k"] * (loss - p["L0"])))


@pytest.fixture
def exp_table() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    loss = np.sort(rng.uniform(2.2, 5.0, 60))
    err = exp_error(loss) * np.exp(0.003 * rng.standard_normal(60))
    return pd.DataFrame({"c4_loss": loss, "acc_pct": 100 * (1 - err), "err": err})


# ------------------------------------------------------------------------------------------ tables
def test_table_from_accuracy_percent(exp_table):
    t = downstream_table(exp_table, loss_col="c4_loss", accuracy_col="acc_pct")
    assert list(t.columns) == ["loss", "error"]
    np.testing.assert_allclose(t["error"], exp_table["err"], rtol=1e-12)


def test_table_explicit_scale_and_keep(exp_table):
    df = exp_table.assign(run=[f"r{i}" for i in range(len(exp_table))], acc=1 - exp_table["err"])
    t = downstream_table(df, loss_col="c4_loss", accuracy_col="acc", scale=1.0, keep=["run"])
    assert "run" in t and t["error"].between(0, 1).all()


def test_table_rejects_bad_input(exp_table):
    with pytest.raises(ValueError, match="exactly one"):
        downstream_table(exp_table, loss_col="c4_loss")
    with pytest.raises(ValueError, match="exactly one"):
        downstream_table(exp_table, loss_col="c4_loss", error_col="err", accuracy_col="acc_pct")
    with pytest.raises(KeyError):
        downstream_table(exp_table, loss_col="nope", error_col="err")
    bad = exp_table.assign(err=exp_table["err"] - 1.0)
    with pytest.raises(ValueError, match="outside"):
        downstream_table(bad, loss_col="c4_loss", error_col="err", scale=1.0)


def test_table_drops_missing_rows(exp_table):
    df = exp_table.copy()
    df.loc[3, "err"] = np.nan
    assert len(downstream_table(df, loss_col="c4_loss", error_col="err")) == len(df) - 1


# --------------------------------------------------------------------------------- law recovery
def test_exp_law_recovery(exp_table):
    law = fit_downstream(exp_table, loss_col="c4_loss", accuracy_col="acc_pct")
    assert law.form.name == "downstream-exp" and law.converged
    for k, v in EXP_TRUE.items():
        assert law.params[k] == pytest.approx(v, rel=0.05), k
    grid = np.linspace(2.3, 4.8, 20)
    np.testing.assert_allclose(law.predict(loss=grid), exp_error(grid), rtol=0.01)


def test_sigmoid_law_recovery():
    rng = np.random.default_rng(2)
    loss = np.sort(rng.uniform(2.0, 4.6, 80))
    err = sigmoid_error(loss) * np.exp(0.002 * rng.standard_normal(80))
    law = fit_downstream(pd.DataFrame({"loss": loss, "accuracy": 1 - err}), accuracy_col="accuracy", form="downstream-sigmoid")
    assert law.converged
    for k, v in SIG_TRUE.items():
        assert law.params[k] == pytest.approx(v, rel=0.05), k


def test_fit_downstream_default_error_column(exp_table):
    t = exp_table.rename(columns={"c4_loss": "loss", "err": "error"})
    law = fit_downstream(t)
    assert law.params["gamma"] == pytest.approx(EXP_TRUE["gamma"], rel=0.05)


def test_fit_downstream_rejects_loss_forms(exp_table):
    with pytest.raises(ValueError, match="form"):
        fit_downstream(exp_table, loss_col="c4_loss", error_col="err", form="chinchilla")


# ------------------------------------------------------------------------------------- chaining
LOSS_TRUE = {"E": 1.8, "A": 480.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37}


@pytest.fixture(scope="module")
def chained_laws():
    rng = np.random.default_rng(3)
    sizes = np.repeat(np.geomspace(2e7, 1e9, 6), 5)
    tokens = sizes * np.tile([5, 10, 20, 40, 80], 6)
    true_loss = planner.law("chinchilla", **LOSS_TRUE).predict(model_size=sizes, pretrain_tokens=tokens)
    runs = pd.DataFrame({"model_size": sizes, "pretrain_tokens": tokens, "loss": true_loss * np.exp(0.004 * rng.standard_normal(len(sizes)))})
    loss_law = planner.fit(runs, "chinchilla", bootstrap=40, seed=0)
    l_obs = np.sort(rng.uniform(2.3, 4.5, 40))
    err = exp_error(l_obs) * np.exp(0.01 * rng.standard_normal(40))
    err_law = fit_downstream(pd.DataFrame({"loss": l_obs, "error": err}), bootstrap=40, seed=0)
    return loss_law, err_law


def test_predict_downstream_point_is_plugin(chained_laws):
    loss_law, err_law = chained_laws
    n, d = np.array([3e9, 1e10]), np.array([6e10, 2e11])
    out = predict_downstream(loss_law, err_law, model_size=n, pretrain_tokens=d)
    assert isinstance(out, DownstreamPrediction)
    err, lo, hi = out
    expected = err_law.predict(loss=loss_law.predict(model_size=n, pretrain_tokens=d))
    np.testing.assert_allclose(err, expected)
    assert np.all(lo <= err) and np.all(err <= hi) and np.all(hi > lo)
    truth = exp_error(planner.law("chinchilla", **LOSS_TRUE).predict(model_size=n, pretrain_tokens=d))
    np.testing.assert_allclose(err, truth, rtol=0.03)


def test_chained_interval_wider_than_each_part(chained_laws):
    loss_law, err_law = chained_laws
    kw = dict(model_size=np.array([5e9]), pretrain_tokens=np.array([1e11]))
    _, lo, hi = predict_downstream(loss_law, err_law, **kw)
    only_err = predict_downstream(planner.law("chinchilla", **loss_law.params), err_law, **kw)
    only_loss = predict_downstream(loss_law, planner.law("downstream-exp", **err_law.params), **kw)
    width = hi - lo
    assert width[0] >= 0.9 * (only_err.high - only_err.low)[0]
    assert width[0] >= 0.9 * (only_loss.high - only_loss.low)[0]


def test_given_laws_give_degenerate_interval():
    loss_law = planner.law("chinchilla", **LOSS_TRUE)
    err_law = planner.law("downstream-exp", **EXP_TRUE)
    err, lo, hi = predict_downstream(loss_law, err_law, model_size=[1e9], pretrain_tokens=[2e10])
    np.testing.assert_allclose(lo, err)
    np.testing.assert_allclose(hi, err)


def test_draw_pairing_shapes(chained_laws):
    loss_law, err_law = chained_laws
    kw = dict(model_size=np.array([1e9, 2e9, 4e9]), pretrain_tokens=np.array([2e10, 4e10, 8e10]))
    assert downstream_draws(loss_law, err_law, pairing="index", **kw).shape == (40, 3)
    assert downstream_draws(loss_law, err_law, **kw).shape == (1600, 3)
    sub = downstream_draws(loss_law, err_law, max_draws=500, seed=1, **kw)
    assert sub.shape == (500, 3)
    with pytest.raises(ValueError, match="pairing"):
        downstream_draws(loss_law, err_law, pairing="bogus", **kw)


def test_chaining_accepts_run_table(chained_laws):
    loss_law, err_law = chained_laws
    runs = pd.DataFrame({"model_size": [1e9, 2e9], "pretrain_tokens": [2e10, 4e10]})
    a = predict_downstream(loss_law, err_law, runs)
    b = predict_downstream(loss_law, err_law, model_size=runs["model_size"].to_numpy(), pretrain_tokens=runs["pretrain_tokens"].to_numpy())
    np.testing.assert_allclose(a.error, b.error)
    np.testing.assert_allclose(a.low, b.low)


def test_chaining_rejects_loss_law_as_error_law(chained_laws):
    loss_law, _ = chained_laws
    with pytest.raises(planner.FitError):
        predict_downstream(loss_law, loss_law, model_size=[1e9], pretrain_tokens=[2e10])


# --------------------------------------------------------------------------------- task to task
@pytest.fixture
def task_scores() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    steps = np.arange(100)
    skill = 25 + 30 * (1 - np.exp(-steps / 40))          # rises then saturates
    known = {f"t{i}": skill + rng.normal(0, 0.8, len(steps)) + i for i in range(5)}
    df = pd.DataFrame({"step": steps, **known})
    df["unseen"] = 5 + 0.8 * df[[f"t{i}" for i in range(5)]].mean(axis=1) + rng.normal(0, 0.3, len(steps))
    return df


def test_task_transfer_recovers_mapping(task_scores):
    m = fit_task_transfer(task_scores, [f"t{i}" for i in range(5)], "unseen")
    assert m.kind == "linear" and m.n_fit == 100
    assert m.b == pytest.approx(0.8, abs=0.03)
    assert m.a == pytest.approx(5.0, abs=1.2)
    np.testing.assert_allclose(m.predict(task_scores.iloc[:3]), m.a + m.b * task_scores[[f"t{i}" for i in range(5)]].iloc[:3].mean(axis=1))


def test_task_transfer_validation_beats_baselines(task_scores):
    r = task_transfer_validation(task_scores, [f"t{i}" for i in range(5)], "unseen", train_fraction=0.3)
    assert r["n_train"] + r["n_test"] == 100
    assert r["mae"] < 0.6
    assert r["mae"] < r["mae_last_value"] and r["mae"] < r["mae_known_mean"]
    assert set(r["test"].columns) == {"step", "actual", "predicted", "last_value", "known_mean"}


def test_task_transfer_logit_stays_in_range(task_scores):
    m = fit_task_transfer(task_scores, [f"t{i}" for i in range(5)], "unseen", kind="logit")
    assert m.scale == 100.0
    pred = m.predict_from_mean(np.array([1.0, 50.0, 99.9]))
    assert np.all((pred > 0) & (pred < 100))
    r = task_transfer_validation(task_scores, [f"t{i}" for i in range(5)], "unseen", kind="logit")
    assert r["mae"] < r["mae_last_value"]


def test_task_transfer_errors(task_scores):
    with pytest.raises(ValueError, match="also among"):
        fit_task_transfer(task_scores, ["t0", "unseen"], "unseen")
    with pytest.raises(ValueError, match="at least 3"):
        fit_task_transfer(task_scores.iloc[:2], ["t0"], "unseen")
    with pytest.raises(KeyError):
        fit_task_transfer(task_scores, ["nope"], "unseen")
    with pytest.raises(ValueError, match="kind"):
        fit_task_transfer(task_scores, ["t0"], "unseen", kind="cubic")
    with pytest.raises(ValueError, match="train_fraction"):
        task_transfer_validation(task_scores, ["t0"], "unseen", train_fraction=1.5)
