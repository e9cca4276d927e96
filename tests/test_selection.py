"""Row-selection rules: the grammar, its meaning against brute force, and that no rule runs code."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import planner
from planner.constants import MAX_RULE_CHARS
from planner.fitting import FitError, train_on_mask
from planner.runs import RunsError, load_runs
from planner.selection import MAX_DEPTH, SelectionError, parse_rule, select_rows


def _table() -> pd.DataFrame:
    sizes = [1e8, 1e8, 4e8, 4e8, 1e9, 1e9, 3e9, 3e9]
    tokens = [1e9, 2e9, 4e9, 8e9, 1e10, 2e10, 3e10, 6e10]
    spec = [0.0, 0.0, 1e8, 0.0, 0.0, 5e8, 0.0, 0.0]
    return pd.DataFrame({
        "model_size": sizes, "pretrain_tokens": tokens, "spec_tokens": spec,
        "domain": ["general", "code", "general", "code", "general", "code", "math", "general"],
        "loss": [3.5, 3.4, 3.1, 3.0, 2.8, 2.7, 2.5, 2.4],
        "run": ["a", "a", "b", "b", "c", "c", "d", "d"],
    })


# ------------------------------------------------------------------ meaning, against numpy by hand
@pytest.mark.parametrize(("rule", "expected"), [
    ("model_size <= 1e9", lambda t: t.model_size <= 1e9),
    ("model_size < '1B'", lambda t: t.model_size < 1e9),
    ("model_size <= \"1B params\"", lambda t: t.model_size <= 1e9),
    ("1e8 < model_size < 3e9", lambda t: (1e8 < t.model_size) & (t.model_size < 3e9)),
    ("1e8 < model_size <= 1e9 < pretrain_tokens * 0 + 2e9", lambda t: (1e8 < t.model_size) & (t.model_size <= 1e9)),
    ("domain == 'code'", lambda t: t.domain == "code"),
    ("'code' != domain", lambda t: t.domain != "code"),
    ("domain in ('code', 'math')", lambda t: t.domain.isin(["code", "math"])),
    ("domain not in ['code']", lambda t: ~t.domain.isin(["code"])),
    ("model_size in (1e8, '3B')", lambda t: t.model_size.isin([1e8, 3e9])),
    ("not (model_size > 1e9) and loss < 3.2", lambda t: ~(t.model_size > 1e9) & (t.loss < 3.2)),
    ("model_size > 1e9 or domain == 'code'", lambda t: (t.model_size > 1e9) | (t.domain == "code")),
    ("(model_size > 1e9) | (domain == 'code')", lambda t: (t.model_size > 1e9) | (t.domain == "code")),
    ("(model_size > 1e9) & ~(domain == 'math')", lambda t: (t.model_size > 1e9) & ~(t.domain == "math")),
    ("-loss < -3", lambda t: -t.loss < -3),
    ("tokens > 1e10", lambda t: t.pretrain_tokens + t.spec_tokens > 1e10),
    ("tokens >= '10B tokens'", lambda t: t.pretrain_tokens + t.spec_tokens >= 1e10),
    ("compute > 1e20", lambda t: 6 * t.model_size * (t.pretrain_tokens + t.spec_tokens) > 1e20),
    ("compute > '1e20 FLOPs'", lambda t: 6 * t.model_size * (t.pretrain_tokens + t.spec_tokens) > 1e20),
    ("largest", lambda t: t.model_size == t.model_size.max()),
    ("not largest", lambda t: t.model_size < t.model_size.max()),
    ("largest == False", lambda t: t.model_size < t.model_size.max()),
    ("model_size / 1e9 >= 1", lambda t: t.model_size / 1e9 >= 1),
    ("True", lambda t: np.ones(len(t), dtype=bool)),
])
def test_rules_select_what_numpy_selects(rule, expected):
    table = _table()
    got = select_rows(table, rule)
    assert got.dtype == bool and got.shape == (len(table),)
    np.testing.assert_array_equal(got, np.asarray(expected(table), dtype=bool))


def test_token_fraction_is_relative_to_the_run():
    table = _table()
    total = table.pretrain_tokens + table.spec_tokens
    frac = total / total.groupby(table.run).transform("max")
    np.testing.assert_array_equal(select_rows(table, "token_fraction <= 0.7"), (frac <= 0.7).to_numpy())


def test_nan_compares_false():
    table = _table().assign(loss=[np.nan, 1, 2, 3, 4, 5, 6, 7])
    assert not select_rows(table, "loss > 0")[0]
    assert not select_rows(table, "loss <= 0")[0]


@given(st.floats(1e7, 1e10), st.floats(1e7, 1e10), st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
@settings(max_examples=60, deadline=None)
def test_chained_comparison_is_the_conjunction(low, high, op):
    table = _table()
    chained = select_rows(table, f"{low!r} {op} model_size {op} {high!r}")
    pairwise = select_rows(table, f"({low!r} {op} model_size) and (model_size {op} {high!r})")
    np.testing.assert_array_equal(chained, pairwise)


# ------------------------------------------------------------------ refusals: never code from data
PWNED = "pwned_selection_marker"

ATTACKS = [
    f"@pd.io.common.os.system('touch {PWNED}')==0 or model_size<1e9",
    f"model_size < 1e9 or @pd.io.common.os.system('touch {PWNED}') == 0",
    "model_size < @largest_size",
    f"__import__('os').system('touch {PWNED}') == 0",
    f"model_size.__class__.__mro__[1].__subclasses__() == 0",
    "model_size.max() > 0",
    "pd.io.common.os.system('id') == 0",
    f"(lambda: __import__('os').system('touch {PWNED}'))() == 0",
    "model_size[0] > 1",
    "__builtins__ == 1",
    "_private > 1",
    "[x for x in model_size] == 1",
    "{'a': 1} == 1",
    "model_size if True else loss",
    "(x := 1) == 1",
    "f'{model_size}' == 'a'",
    "model_size ** 99999 > 1",
    "model_size @ loss > 1",
    "model_size is None",
    "b'x' == domain",
    "None == domain",
    "model_size > 1; import os",
    "`model size` > 1",
    "open('/etc/passwd') == 1",
    "eval('1') == 1",
    "*model_size == 1",
]


@pytest.mark.parametrize("rule", ATTACKS)
def test_rules_outside_the_grammar_are_refused_without_side_effects(rule, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SelectionError, match="rule") as info:
        select_rows(_table(), rule)
    assert not (tmp_path / PWNED).exists()
    assert "Traceback" not in str(info.value)


@pytest.mark.parametrize("rule", ATTACKS[:4])
def test_attacks_through_every_entry_point(rule, tmp_path, monkeypatch):
    """The issue-9 reproduction: where= (load_runs and fit) and train_on= refuse, and no file appears."""
    monkeypatch.chdir(tmp_path)
    table = _table()
    with pytest.raises(RunsError, match="where="):
        load_runs(table, where=rule)
    with pytest.raises(FitError, match="train_on"):
        train_on_mask(load_runs(table), rule)
    with pytest.raises(planner.PlannerError):
        planner.fit(table, "chinchilla", where=rule, max_starts=4)
    with pytest.raises(planner.PlannerError):
        planner.fit(table, "chinchilla", train_on=rule, max_starts=4)
    assert not (tmp_path / PWNED).exists()
    assert os.listdir(tmp_path) == []


def test_error_names_the_offending_token():
    with pytest.raises(SelectionError, match=r"a function call is not allowed.*at 'model_size.max\(\)' \(column 1\)"):
        parse_rule("model_size.max() > 0")
    with pytest.raises(SelectionError, match=r"attribute access is not allowed.*at 'model_size.real' \(column 5\)"):
        parse_rule("1 < model_size.real")
    with pytest.raises(SelectionError, match=r"'@'.*column 14"):
        parse_rule("model_size < @largest_size")
    with pytest.raises(SelectionError, match=r"operator '\*\*' is not allowed"):
        parse_rule("model_size ** 2 > 1")
    with pytest.raises(SelectionError, match="unknown column 'model_sise'.*model_size"):
        select_rows(_table(), "model_sise < 1e9")
    with pytest.raises(SelectionError, match="unknown column 'nope'"):
        parse_rule("nope < 1", columns=["model_size"])


def test_type_errors_are_clear():
    table = _table()
    with pytest.raises(SelectionError, match="True/False per row"):
        select_rows(table, "model_size + 1")
    with pytest.raises(SelectionError, match="text can only be compared with == or !="):
        select_rows(table, "domain < 'code'")
    with pytest.raises(SelectionError, match="text is compared with a number"):
        select_rows(table, "domain == 3")
    with pytest.raises(SelectionError, match="must be a quantity"):
        select_rows(table, "model_size < 'big'")
    with pytest.raises(SelectionError, match="unit 'tokens' does not fit"):
        select_rows(table, "model_size < '1B tokens'")
    with pytest.raises(SelectionError, match="parentheses"):
        select_rows(table, "model_size > 1e9 & domain == 'code'")
    with pytest.raises(SelectionError, match="True/False is compared with a number"):
        select_rows(table, "largest == 1")
    with pytest.raises(SelectionError, match="number too large"):
        select_rows(table, "model_size < 1" + "0" * 400)
    with pytest.raises(SelectionError, match="number too large"):
        select_rows(table, "model_size in (-1" + "0" * 400 + ", 2)")
    with pytest.raises(SelectionError, match="must be a string"):
        parse_rule(42)
    with pytest.raises(SelectionError, match="empty rule"):
        parse_rule("  ")


def test_length_and_depth_are_capped():
    with pytest.raises(SelectionError, match=f"limit of {MAX_RULE_CHARS} characters"):
        parse_rule("model_size > 1 or " * 200 + "largest")
    with pytest.raises(SelectionError, match="nested|not a valid expression"):
        parse_rule("(" * 500 + "largest" + ")" * 500)
    deep = "not " * (MAX_DEPTH + 5) + "largest"
    with pytest.raises(SelectionError, match="nested more than"):
        parse_rule(deep)
    # a long flat rule under the cap is fine (evaluation is linear in its length)
    flat = " or ".join(f"model_size == {i}" for i in range(100))
    assert len(flat) < MAX_RULE_CHARS
    assert not select_rows(_table(), flat).any()


def test_auto_rule_holds_out_the_largest_size():
    table = load_runs(_table())
    np.testing.assert_array_equal(train_on_mask(table, "auto"), table.model_size < table.model_size.max())


# ------------------------------------------------------------------ the issue-9 reproduction end to end
SCENARIO_WITH_ATTACK = """\
[budget]
flops = 1e21

[law]
runs = "runs.csv"
form = "chinchilla"
train_on = "@pd.io.common.os.system('touch {marker}')==0 or model_size<1e9"
max_starts = 4
"""


@pytest.fixture
def runs_csv(tmp_path) -> Path:
    from synthetic import grid_table

    table, _ = grid_table("chinchilla")
    path = tmp_path / "runs.csv"
    table[["model_size", "pretrain_tokens", "loss"]].to_csv(path, index=False)
    return path


def test_cli_fit_where_attack_exits_2_without_running(runs_csv, tmp_path, monkeypatch):
    from click.testing import CliRunner
    from planner.cli import cli

    monkeypatch.chdir(tmp_path)
    for option in ("--where", "--train-on"):
        result = CliRunner().invoke(cli, ["fit", str(runs_csv), "--form", "chinchilla", option, ATTACKS[0]])
        assert result.exit_code == 2, result.output
        assert "'@'" in result.output + (result.stderr if result.stderr_bytes is not None else "")
    # the old flag is refused before anything runs
    assert CliRunner().invoke(cli, ["fit", str(runs_csv), "--form", "chinchilla", "--holdout", ATTACKS[0]]).exit_code == 2
    assert not (tmp_path / PWNED).exists()


def test_scenario_holdout_attack_does_not_run(runs_csv, tmp_path, monkeypatch):
    from click.testing import CliRunner
    from planner.cli import cli

    monkeypatch.chdir(tmp_path)
    scenario = tmp_path / "plan.toml"
    scenario.write_text(SCENARIO_WITH_ATTACK.format(marker=PWNED))
    for command in ("validate", "run"):
        args = [command, str(scenario)] + (["-o", str(tmp_path / "out")] if command == "run" else [])
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert "'@'" in result.output + result.stderr and "train_on" in result.output + result.stderr
        assert not (tmp_path / PWNED).exists()
