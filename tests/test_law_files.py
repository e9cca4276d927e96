"""Law files and given laws: malformed JSON gives a FitError naming the file and key, parameter
values are range-checked, fit options are checked by one table, and fits that cannot determine
their parameters are refused (issue 9 reproductions)."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import planner
from planner.constants import MAX_BOOTSTRAP
from planner.errors import PlannerError, PlannerWarning
from planner.fitting import FitError, load_law
from synthetic import grid_table

HOFFMANN = dict(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict:
    """A complete law file (bootstrap draws, intervals, points, holdout, calibration) as a dict."""
    table, _ = grid_table("chinchilla", noise=0.01)
    fitted = planner.fit(table, "chinchilla", bootstrap=3, max_starts=16, train_on="model_size <= 1e9", calibrate=True)
    path = tmp_path_factory.mktemp("law") / "law.json"
    fitted.save(path)
    return json.loads(path.read_text())


def _write(tmp_path: Path, payload) -> Path:
    path = tmp_path / "law.json"
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload, allow_nan=True))
    return path


def _broken(saved: dict, key: str, value) -> dict:
    d = json.loads(json.dumps(saved))
    node = d
    parts = key.split(".")
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node[p]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return d


def test_a_saved_law_round_trips(saved, tmp_path):
    law = load_law(_write(tmp_path, saved))
    assert law.params == pytest.approx(saved["params"])
    assert law.draws.shape == (3, 5)
    assert law.calibration is not None and law.points is not None


# ------------------------------------------------------------------ malformed files
@pytest.mark.parametrize(("key", "value", "message"), [
    ("params.alpha", "0.34", r"key 'params.alpha' must be a number, not str"),
    ("params.alpha", None, r"key 'params.alpha' must be a number, not NoneType"),
    ("params.alpha", [0.3], r"key 'params.alpha' must be a number, not list"),
    ("params.alpha", True, r"key 'params.alpha' must be a number, not bool"),
    ("params", [1, 2], r"key 'params' must be an object, not list"),
    ("params", {}, r"key 'params' is empty"),
    ("form", 3, r"key 'form' must be a form name"),
    ("draws", [[1, 2]], r"key 'draws' must be an object, not list"),
    ("draws.values", "x", r"key 'draws.values' must be a list"),
    ("draws.values.0", [1.0], r"key 'draws.values\[0\]' has 1 values for 5 parameters"),
    ("draws.values.0.0", "a", r"key 'draws.values\[0\]\[0\]' must be a number"),
    ("draws.names", ["E", "A", "B", "alpha", "nope"], r"key 'draws.names' must name the law's parameters"),
    ("intervals", [1, 2], r"key 'intervals' must be an object"),
    ("intervals.alpha", [0.3], r"key 'intervals.alpha' must be \[low, high\]"),
    ("intervals.alpha", ["a", "b"], r"key 'intervals.alpha\[0\]' must be a number"),
    ("points", [1, 2, 3], r"key 'points' must be an object"),
    ("points.loss", 7, r"key 'points.loss' must be a list"),
    ("points.loss", [1.0], r"key 'points': columns have different lengths"),
    ("points.loss.0", {"a": 1}, r"key 'points.loss\[0\]' must be a number, text or null"),
    ("warnings", "careful", r"key 'warnings' must be a list"),
    ("warnings", [3], r"key 'warnings\[0\]' must be an object"),
    ("warnings", [{"code": 1, "message": "m"}], r"key 'warnings\[0\].code' must be text"),
    ("residuals", {"a": 1}, r"key 'residuals' must be a list"),
    ("domains", "general", r"key 'domains' must be a list"),
    ("domains", [1], r"key 'domains\[0\]' must be text"),
    ("tied", [None], r"key 'tied\[0\]' must be text"),
    ("status", 5, r"key 'status' must be text"),
    ("interval_level", 2.0, r"key 'interval_level' must be in \(0, 1\)"),
    ("interval_level", "high", r"key 'interval_level' must be a number"),
    ("calibration", {"level": 0.9}, r"key 'calibration' lacks 'q0'"),
    ("calibration.q0", "wide", r"key 'calibration.q0' must be a number"),
    ("options", "fast", r"key 'options' must be an object"),
    ("options.bounds", {"alpha": [0.1]}, r"key 'options.bounds.alpha' must be \[lower, upper\]"),
    ("schema", "planner.allocation/1", r"key 'schema' is 'planner.allocation/1', not a law file"),
    ("selection", "auto", r"key 'selection' must be a list"),
    ("holdout", 3, r"key 'holdout' must be an object"),
])
def test_malformed_keys_name_the_file_and_key(saved, tmp_path, key, value, message):
    path = _write(tmp_path, _broken(saved, key, value))
    with pytest.raises(FitError, match=message) as info:
        load_law(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(("text", "message"), [
    ('{"form": "chinchilla", "params": {"E": NaN, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}}', r"E must be finite, not nan|NaN is not a JSON number"),
    ('{"form": "chinchilla", "params": {"E": 1e400, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}}', r"E must be finite, not inf|1e400 is beyond the float range"),
    ('{"form": "chinchilla", "params": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": ' + "1" * 5000 + ', "beta": 0.28}}', r"invalid JSON|too large|out of range"),
    ('{"form": "chinchilla", "params": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.' + "3" * 5000 + ', "beta": 0.28}}', r"longer than the limit"),
    ('{"form": "chinchilla", "params": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": ' + "1" * 4000 + ', "beta": 0.28}}', r"number too large|out of range|longer than the limit"),
    ("[" * 100_000 + "]" * 100_000, r"nested too deeply|invalid JSON"),
    ('{"a": ' * 50_000 + "1" + "}" * 50_000, r"nested too deeply|invalid JSON"),
    ("[1, 2]", r"a law file holds a JSON object"),
    ('{"form": "chinchilla"}', r"missing top-level key 'params'"),
    ('{"form": "no-such-form", "params": {"a": 1}}', r"unknown form 'no-such-form'"),
    ("{not json", r"invalid JSON at line 1"),
    ('{"form": "chinchilla", "params": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0, "beta": 0}}', r"alpha = 0 is outside.*must be > 0.*beta = 0"),
    ('{"form": "chinchilla", "params": {"E": -1, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}}', r"E = -1 is outside"),
    ('{"form": "chinchilla", "params": {"E": 1.69, "A": -5, "B": 410.7, "alpha": 0.34, "beta": 0.28}}', r"A = -5 is outside.*amplitude must be >= 0"),
])
def test_hostile_json_gives_a_fit_error(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(FitError, match=message) as info:
        load_law(path)
    assert str(path) in str(info.value)


def test_a_fit_with_wider_bounds_reloads(tmp_path):
    """options.bounds in the file widen the range check, so a law fitted with bounds= reloads."""
    table, _ = grid_table("chinchilla", noise=0.0)
    truth = planner.law("chinchilla", **HOFFMANN)
    params = dict(truth.params, alpha=2.5)
    d = {"form": "chinchilla", "params": params, "options": {"bounds": {"alpha": [0.01, 3.0]}}}
    assert load_law(_write(tmp_path, d)).params["alpha"] == 2.5
    del d["options"]
    with pytest.raises(FitError, match=r"alpha = 2.5 is outside the form's range \[0.01, 2\]"):
        load_law(_write(tmp_path, d))


# ------------------------------------------------------------------ given laws (planner.law)
@pytest.mark.parametrize(("change", "message"), [
    ({"alpha": 0.0, "beta": 0.0}, r"alpha = 0 is outside the form's range \[0.01, 2\].*beta = 0"),
    ({"E": -0.5}, r"E = -0.5 is outside"),
    ({"A": math.inf}, r"A must be finite"),
    ({"B": math.nan}, r"B must be finite"),
    ({"alpha": "0.3"}, r"parameter alpha must be a number, not str"),
    ({"alpha": True}, r"parameter alpha must be a number, not bool"),
])
def test_given_laws_are_range_checked(change, message):
    with pytest.raises(FitError, match=message):
        planner.law("chinchilla", **{**HOFFMANN, **change})


def test_zero_is_legal_where_it_switches_a_term_off():
    """D0 = 0 (posynomial additive law) and an amplitude C = 0 (no specialization term) are legal."""
    shared = dict(A=406.4, alpha=0.34, beta=0.28)
    law = planner.law("split-additive", domains=["code"], **shared, **{"E[code]": 1.5, "B[code]": 400.0, "C[code]": 0.0,
                                                                          "gamma[code]": 0.3, "D0[code]": 0.0})
    assert law.params["D0[code]"] == 0.0
    with pytest.raises(FitError, match=r"gamma\[code\] = 0 is outside"):
        planner.law("split-additive", domains=["code"], **shared, **{"E[code]": 1.5, "B[code]": 400.0, "C[code]": 1.0,
                                                                       "gamma[code]": 0.0, "D0[code]": 1e9})


def test_fix_values_are_range_checked():
    table, _ = grid_table("chinchilla")
    with pytest.raises(FitError, match=r"fix=: .*alpha = -0.3 is outside"):
        planner.fit(table, "chinchilla", fix={"alpha": -0.3}, max_starts=4)
    with pytest.raises(FitError, match=r"fix\['alpha'\]=nan must be a finite number"):
        planner.fit(table, "chinchilla", fix={"alpha": math.nan}, max_starts=4)


# ------------------------------------------------------------------ fit options: one table, one validator
@pytest.mark.parametrize(("options", "message"), [
    ({"bootstrap": -1}, r"bootstrap=-1 must be in \[0, 10000\]"),
    ({"bootstrap": MAX_BOOTSTRAP + 1}, r"bootstrap=10001 must be in \[0, 10000\]"),
    ({"bootstrap": 2.5}, r"bootstrap=2.5 must be an integer"),
    ({"bootstrap": True}, r"bootstrap=True must be an integer"),
    ({"max_starts": 0}, r"max_starts=0 must be in \[1, 100000\]"),
    ({"seed": -3}, r"seed=-3 must be in \[0, "),
    ({"seed": "7"}, r"seed='7' must be an integer"),
    ({"loss": "l1"}, r"loss='l1' must be one of 'huber', 'ls', 'over'"),
    ({"delta": 0}, r"delta=0 must be in \(0, inf\)"),
    ({"interval_level": 1.0}, r"interval_level=1.0 must be in \(0, 1\)"),
    ({"n_polish": 0}, r"n_polish=0 must be in \[1, "),
    ({"calibrate": "yes"}, r"calibrate='yes' must be one of True, False"),
    ({"progress": 5}, r"progress=5 must be a callable"),
    ({"tie": "gamma"}, r"tie='gamma' must be a list of parameter names"),
    ({"bootstrap": -1, "seed": -1}, r"invalid fit options: bootstrap=-1 .*; seed=-1"),
])
def test_bad_fit_options_are_one_clear_error(options, message):
    table, _ = grid_table("chinchilla")
    with pytest.raises(FitError, match=message):
        planner.fit(table, "chinchilla", **options)


def test_fewer_rows_than_parameters_is_an_error_not_converged():
    """Issue 9: five parameters fitted to two rows were 'converged'."""
    table = pd.DataFrame({"model_size": [1e8, 1e9], "pretrain_tokens": [2e9, 2e10], "loss": [3.2, 2.7]})
    with pytest.raises(FitError, match=r"5 free parameters but only 2 rows"):
        planner.fit(table, "chinchilla", max_starts=4)
    # fixing three leaves two free parameters: two rows are then enough
    with pytest.warns(PlannerWarning):  # few-model-sizes, and A at its bound
        fitted = planner.fit(table, "chinchilla", fix={"E": 1.7, "alpha": 0.34, "beta": 0.28}, max_starts=4)
    assert fitted.status in ("converged", "not-converged")


# ------------------------------------------------------------------ warnings at the public boundary
def test_fit_warnings_are_raised_once_and_kept_as_data():
    table, _ = grid_table("chinchilla")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = planner.fit(table, "chinchilla", bounds={"alpha": (0.01, 0.2)}, max_starts=8)
    hits = [w for w in fitted.warnings if w.code == "bound-hit"]
    assert hits, fitted.warnings
    raised = [w for w in caught if issubclass(w.category, PlannerWarning) and "[bound-hit]" in str(w.message)]
    assert len(raised) == len(hits)
    assert all(w.filename == __file__ for w in raised)  # attributed to the caller's line, not planner's


def test_data_sanity_notes_reach_the_fit(tmp_path):
    """Issue 9: a row with model_size = 1e300 moved N with no outlier warning."""
    table, _ = grid_table("chinchilla")
    table = pd.DataFrame(table[["model_size", "pretrain_tokens", "loss"]].to_dict(orient="list"))  # a raw table, not loaded
    table.loc[0, "model_size"] = 1e300
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = planner.fit(table, "chinchilla", max_starts=8)
    assert any(w.code == "outlier" and "1e+300" in w.message for w in fitted.warnings)
    assert sum("[outlier]" in str(w.message) for w in caught) == 1


def test_save_refuses_a_target_that_is_not_a_regular_file(saved, tmp_path):
    """The atomic rename would replace a device or a folder with a plain file: refuse it, write nothing."""
    law = load_law(_write(tmp_path, saved))
    folder = tmp_path / "a-folder"
    folder.mkdir()
    (folder / "keep.txt").write_text("kept")
    with pytest.raises(FitError, match="not a regular file"):
        law.save(folder)
    assert folder.is_dir() and (folder / "keep.txt").read_text() == "kept"
    assert not list(tmp_path.glob(".a-folder.*"))
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(FitError, match="not a regular file"):
        law.save(fifo)
    assert not fifo.is_file()
    saved_path = law.save(tmp_path / "new.json")
    assert load_law(saved_path).params == pytest.approx(law.params)
