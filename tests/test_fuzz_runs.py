"""Structure-aware fuzzing of run tables, law JSON and row-selection rules.

Each case starts from a valid input and breaks one thing (a cell, a header name, a row's length, a
JSON key's value, a token of a rule). The property: the public entry points (``load_runs``,
``planner.fit``, ``load_law``, ``select_rows``) either succeed or raise a documented
:class:`~planner.errors.PlannerError`; never another exception. A small budget runs in the normal
suite; ``-m slow`` runs the long one (thousands of cases).
"""

from __future__ import annotations

import io
import json
import math
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import planner
from planner.errors import PlannerError
from planner.fitting import load_law
from planner.runs import load_runs
from planner.selection import select_rows

pytestmark = pytest.mark.fuzz

HEADER = ["model_size", "pretrain_tokens", "spec_tokens", "domain", "loss", "run", "step"]
QUICK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LONG = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# cells that parsers find hard: numbers at the edges, text that looks like numbers, CSV syntax
HOSTILE_CELLS = st.one_of(
    st.sampled_from(["", " ", "nan", "NaN", "inf", "-inf", "1e400", "-1", "0", "-0", "1e-400", "True", "false", "None",
                     "null", "1,5", "1_000", "0x10", "3.5B", "1e21 FLOPs", '"', "'", '""', "\\", "=cmd|' /C calc'!A0",
                     "@SUM(1)", "\t", "\r", "1" * 5000, "9" * 400 + ".5", "é", "\x00", "🙂", "[1, 2]", "{}", "1e9\n2"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.text(max_size=20),
)


def _valid_rows(n: int, seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        size = float(10 ** rng.uniform(7, 9.5))
        tokens = size * float(rng.choice([5.0, 20.0, 80.0]))
        spec = float(rng.choice([0.0, 1e8, 1e9]))
        loss = 1.8 + 400 * size ** -0.34 + 400 * tokens ** -0.28
        rows.append([repr(size), repr(tokens), repr(spec), str(rng.choice(["general", "code"])), repr(loss), f"r{i // 2}", str(i % 2)])
    return rows


def _csv(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    out.write(",".join(header) + "\n")
    for row in rows:
        out.write(",".join(row) + "\n")
    return out.getvalue()


def _quote(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"' if any(c in cell for c in ',"\n\r') else cell


@st.composite
def broken_tables(draw) -> str:
    n = draw(st.integers(3, 12))
    header = list(HEADER)
    rows = _valid_rows(n, draw(st.integers(0, 10**6)))
    how = draw(st.sampled_from(["cell", "cell", "cell", "raw-cell", "header", "drop-column", "duplicate-column",
                                "short-row", "long-row", "duplicate-row", "empty", "scale"]))
    if how in ("cell", "raw-cell"):
        r, c = draw(st.integers(0, n - 1)), draw(st.integers(0, len(header) - 1))
        cell = draw(HOSTILE_CELLS)
        rows[r][c] = _quote(cell) if how == "cell" else cell.replace("\n", " ")
    elif how == "header":
        header[draw(st.integers(0, len(header) - 1))] = _quote(draw(st.one_of(st.sampled_from(HEADER + ["", "x.1", "model_size.1"]), st.text(max_size=12))))
    elif how == "drop-column":
        c = draw(st.integers(0, len(header) - 1))
        header.pop(c)
        for row in rows:
            row.pop(c)
    elif how == "duplicate-column":
        c = draw(st.integers(0, len(header) - 1))
        header.append(header[c])
        for row in rows:
            row.append(row[c])
    elif how == "short-row":
        r = draw(st.integers(0, n - 1))
        rows[r] = rows[r][: draw(st.integers(0, len(header) - 1))]
    elif how == "long-row":
        rows[draw(st.integers(0, n - 1))].append("1")
    elif how == "duplicate-row":
        rows.append(list(rows[draw(st.integers(0, n - 1))]))
    elif how == "empty":
        rows = []
    elif how == "scale":
        r = draw(st.integers(0, n - 1))
        c = draw(st.sampled_from([0, 1, 4]))
        rows[r][c] = repr(float(rows[r][c]) * 10 ** draw(st.integers(-12, 300)))
    return _csv(header, rows)


def _only_planner_errors(call) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return call()
        except PlannerError:
            return None


def _check_table(text: str, fit: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "runs.csv"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        table = _only_planner_errors(lambda: load_runs(path))
        if table is not None and fit:
            _only_planner_errors(lambda: planner.fit(path, "chinchilla", domain="general", max_starts=2, n_polish=1))


@QUICK
@given(broken_tables())
def test_fuzz_run_tables(text):
    _check_table(text, fit=False)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_tables())
def test_fuzz_run_tables_through_fit(text):
    _check_table(text, fit=True)


@pytest.mark.fuzz_long
@pytest.mark.slow
@LONG
@given(broken_tables())
def test_fuzz_run_tables_long(text):
    _check_table(text, fit=False)


@pytest.mark.fuzz_long
@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_tables())
def test_fuzz_run_tables_through_fit_long(text):
    _check_table(text, fit=True)


# --------------------------------------------------------------------------- law JSON
VALID_LAW = {
    "schema": "planner.law/1", "form": "chinchilla",
    "params": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},
    "domains": ["general"], "tied": [], "fixed": [], "status": "converged", "message": "ok",
    "warnings": [{"code": "bound-hit", "message": "m"}], "objective": 0.001, "interval_level": 0.9,
    "intervals": {"alpha": [0.3, 0.38]},
    "draws": {"names": ["E", "A", "B", "alpha", "beta"], "values": [[1.7, 400.0, 410.0, 0.34, 0.28], [1.68, 410.0, 411.0, 0.35, 0.29]]},
    "residuals": [0.01, -0.01], "data": {"n_rows": 2}, "options": {"bounds": {}},
    "holdout": {"rule": "model_size <= 1e9", "n_train": 20, "are": 0.01, "max_rel_error": 0.02, "r2": 0.9, "rmse_log": 0.01, "n_test": 4},
    "selection": [{"form": "chinchilla", "are": 0.01, "r2": 0.9, "note": "selected"}],
    "points": {"model_size": [1e8, 1e9], "loss": [3.0, 2.6]},
    "calibration": {"level": 0.9, "q0": 0.01, "slope_per_decade": 0.02, "reference_model_size": 1e9, "reference_compute": 1e20,
                    "n_backtest_points": 12},
    "version": "0.1.0",
}

JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10**40), 10**40), st.floats(allow_nan=True, allow_infinity=True),
              st.text(max_size=10)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)),
    max_leaves=12,
)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


ALL_PATHS = [p for p in _paths(VALID_LAW) if p]


@st.composite
def broken_laws(draw) -> str:
    law = json.loads(json.dumps(VALID_LAW))
    path = draw(st.sampled_from(ALL_PATHS))
    how = draw(st.sampled_from(["value", "value", "delete", "raw"]))
    node = law
    for key in path[:-1]:
        node = node[key]
    if how == "delete":
        if isinstance(node, dict):
            del node[path[-1]]
        else:
            node.pop(path[-1])
        return json.dumps(law)
    if how == "raw":  # text that json.dumps cannot make: huge numbers, deep nesting, bare NaN
        marker = "__RAW__"
        node[path[-1]] = marker
        raw = draw(st.sampled_from(["1" * 5000, "1e400", "-1e400", "NaN", "Infinity", "[" * 5000 + "]" * 5000,
                                    '{"a":' * 3000 + "1" + "}" * 3000, "0." + "3" * 5000, "-0"]))
        return json.dumps(law).replace(json.dumps(marker), raw, 1)
    node[path[-1]] = draw(JSON_VALUES)
    return json.dumps(law, allow_nan=True)


def _check_law(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "law.json"
        path.write_text(text, encoding="utf-8")
        law = _only_planner_errors(lambda: load_law(path))
        if law is not None:
            # a law that loads is usable: prediction, summary and a round trip
            pred = law.predict(model_size=np.array([1e8, 1e9]), pretrain_tokens=np.array([2e9, 2e10]))
            assert pred.shape == (2,)
            assert law.summary()
            again = planner.FittedLaw.from_dict(json.loads(law.to_json()), source="<round trip>")
            assert again.params == law.params


@QUICK
@given(broken_laws())
def test_fuzz_law_json(text):
    _check_law(text)


@pytest.mark.fuzz_long
@pytest.mark.slow
@LONG
@given(broken_laws())
def test_fuzz_law_json_long(text):
    _check_law(text)


# --------------------------------------------------------------------------- rules
RULE_TOKENS = st.sampled_from([
    "model_size", "tokens", "token_fraction", "compute", "largest", "domain", "loss", "run", "__class__", "os", "pd",
    "1e9", "-", "+", "*", "/", "**", "%", "<", "<=", "==", "!=", ">", "and", "or", "not", "in", "is", "(", ")", "[", "]",
    "{", "}", ",", ".", "@", "'code'", '"3.5B"', "'1e21 FLOPs'", "lambda", ":", "if", "else", "~", "&", "|", "True", "None",
    "1", "0", "nan", "inf", "\\", "#", ";", "`", "import", "x", "1" + "0" * 400, "1e400", "'1" + "0" * 70 + "'",
])


@st.composite
def rules(draw) -> str:
    return " ".join(draw(st.lists(RULE_TOKENS, min_size=1, max_size=14)))


_TABLE = pd.DataFrame({"model_size": [1e8, 4e8, 1e9], "pretrain_tokens": [2e9, 8e9, 2e10], "spec_tokens": [0.0, 1e8, 0.0],
                       "domain": ["general", "code", "code"], "loss": [3.0, 2.8, 2.6], "run": ["a", "a", "b"]})


def _check_rule(rule: str) -> None:
    mask = _only_planner_errors(lambda: select_rows(_TABLE, rule))
    if mask is not None:
        assert mask.dtype == bool and mask.shape == (len(_TABLE),)


@QUICK
@given(rules())
def test_fuzz_rules(rule):
    _check_rule(rule)


@pytest.mark.fuzz_long
@pytest.mark.slow
@settings(max_examples=5000, deadline=None)
@given(rules())
def test_fuzz_rules_long(rule):
    _check_rule(rule)
