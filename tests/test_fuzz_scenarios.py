"""Structure-aware fuzzing of scenario files, the law files they name, and result files for ``planner report``.

Each case starts from a valid input and breaks one thing: a key's value (hostile numbers, strings,
nesting), a deleted or renamed key, an unknown key, or the text itself (truncated, a very long line,
a duplicated YAML key, an alias bomb, deep nesting). The properties:

- the entry points (``load_scenario`` and the binding to the API, ``planner validate``, ``load_result``
  and ``planner report``) succeed or raise a documented :class:`~planner.errors.PlannerError`; the CLI
  exits 0 or 2 with one ``error:`` line, never a traceback;
- no case runs longer than a few seconds (hypothesis' per-example ``deadline``);
- nothing is half written: after ``planner report`` the output folder holds the complete old set or
  the complete new set, and no temporary folder.

A small budget runs in the normal suite; the long run is marked ``fuzz`` and ``slow``
(``pytest -m fuzz tests/test_fuzz_scenarios.py``).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.cli import cli
from planner.errors import PlannerError
from planner.report import load_result, render
from planner.scenario import check_domains, check_plan_arguments, domain_laws, law_argument, load_scenario, resolve_law
from test_report_fixtures import make_result

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "scenarios" / "data"

# a per-example deadline: a case that hangs fails instead of stalling the suite
_COMMON = dict(deadline=timedelta(seconds=8), suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
QUICK = settings(max_examples=40, **_COMMON)
LONG = settings(max_examples=2500, **_COMMON)

INLINE = {
    "title": "Fuzz base",
    "description": "Two domains from inline parameters.",
    "budget": {"flops": 1e21},
    "law": {"form": "split-additive", "params": {
        "A": 406.4, "alpha": 0.34, "beta": 0.28, "E[code]": 1.2, "E[math]": 1.45, "B[code]": 380.0, "B[math]": 420.0,
        "C[code]": 220.0, "C[math]": 160.0, "gamma[code]": 0.36, "gamma[math]": 0.33, "D0[code]": 1e8, "D0[math]": 1e8}},
    "domains": [{"name": "code", "weight": 2.0}, {"name": "math", "unique_tokens": "2B", "max_epochs": 2}],
    "constraints": {"max_model_size": "30B", "min_tokens_per_param": 1},
    "inference": {"tokens": "1T", "accounting": "in-budget"},
    "compare": {"strategies": ["no-split", "fixed"], "fixed_fraction": 0.7},
    "optimizer": {"path": "auto", "seed": 1},
    "report": {"compute_points": 3, "formats": ["json", "md"]},
}
FROM_FILE = {
    "budget": {"flops": [1e22, 1e23], "plan": 1e22},
    "law": {"file": "law.json"},
    "domains": [{"name": "support-chat", "inference_tokens": "20T"}],
    "cost": {"n_layers": 32, "d_model": 4096, "context": 8192},
}
FROM_RUNS = {
    "budget": {"flops": "1e22 FLOPs"},
    "law": {"runs": "runs.csv", "form": "split-additive", "train_on": "model_size < 1e9", "bootstrap": 4, "max_starts": 8,
            "fix": {"D0": 1e8}, "tie": ["gamma"], "min_tokens": "100M"},
    "domains": [{"name": "support-chat"}],
}
BASES = [INLINE, FROM_FILE, FROM_RUNS]

HOSTILE_VALUES = st.one_of(
    st.sampled_from([
        None, True, False, 0, -1, 1, -1e21, 0.0, -0.0, math.nan, math.inf, -math.inf, 1e308, 5e-324, 2**63, -(2**63), 10**40,
        "", " ", "3.5Q", "1e21 tokens", "-3B", "nan", "inf", "1" * 5000, " " * 4000 + "1", "1" + " " * 4000, "$x^$",
        "=cmd|' /C calc'!A0", "<script>alert(1)</script>", "@pd.io.common.os.system('true')", "../../../etc/passwd",
        "/dev/null", "law.json", "runs.csv", "auto", "gp", "error", "\x00", "é", "🙂", "a\nb", [], {}, [1, 2], [[]],
        {"a": 1}, ["fixed", "magic"], [1e21] * 3,
    ]),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=5), st.floats()), max_size=4),
)
KEYS = st.sampled_from(["holdout", "colour", "weight", "flops", "law", "name", "", "domains", "E[code]", "x.y"])


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


# --------------------------------------------------------------------------- writing TOML (no tomli_w dependency)
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v if x is not None) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(x)}" for k, x in v.items() if x is not None) + "}"
    raise TypeError(type(v))


def to_toml(data: dict) -> str:
    lines: list[str] = []
    tables = []
    for k, v in data.items():
        if v is None:
            continue
        if isinstance(v, dict):
            tables.append((k, v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            tables.append((k, v))
        else:
            lines.append(f"{json.dumps(str(k))} = {_toml_value(v)}")
    for k, v in tables:
        items = v if isinstance(v, list) else [v]
        for item in items:
            lines += ["", f"[[{json.dumps(str(k))}]]" if isinstance(v, list) else f"[{json.dumps(str(k))}]"]
            lines += [f"{json.dumps(str(kk))} = {_toml_value(vv)}" for kk, vv in item.items() if vv is not None]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- broken scenarios
@st.composite
def broken_scenarios(draw) -> tuple[str, str]:
    """(suffix, text) of a valid scenario with one thing broken."""
    data = json.loads(json.dumps(draw(st.sampled_from(BASES))))
    suffix = draw(st.sampled_from([".toml", ".toml", ".yaml"]))
    how = draw(st.sampled_from(["value", "value", "value", "delete", "add-key", "rename-key", "text", "none"]))
    paths = [p for p in _paths(data) if p]
    path = draw(st.sampled_from(paths))
    node = data
    for key in path[:-1]:
        node = node[key]
    if how == "value":
        node[path[-1]] = draw(HOSTILE_VALUES)
    elif how == "delete":
        node.pop(path[-1])
    elif how in ("add-key", "rename-key") and isinstance(node, dict):
        new = draw(KEYS)
        if how == "rename-key":
            node[new] = node.pop(path[-1])
        else:
            node[new] = draw(HOSTILE_VALUES)
    try:
        text = to_toml(data) if suffix == ".toml" else yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    except (TypeError, ValueError):
        text = to_toml(INLINE)
    if how == "text":
        kind = draw(st.sampled_from(["truncate", "long-line", "dup-key", "alias-bomb", "deep", "garbage"]))
        if kind == "truncate":
            text = text[: draw(st.integers(0, len(text)))]
        elif kind == "long-line":
            text = text + " " * draw(st.integers(1000, 20000)) + "\n"
        elif kind == "dup-key":
            suffix = ".yaml"
            text = yaml.safe_dump(data, sort_keys=False) + "budget:\n  flops: 1e22\n"
        elif kind == "alias-bomb":
            suffix = ".yaml"
            text = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
                f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")) + "budget: {flops: 1e21}\n"
        elif kind == "deep":
            depth = draw(st.integers(50, 3000))
            text = ("x = " + "[" * depth + "]" * depth + "\n") if suffix == ".toml" else ("x: " + "[" * depth + "]" * depth + "\n")
        else:
            text = draw(st.text(max_size=200))
    return suffix, text


def _only_planner_errors(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except PlannerError as exc:
        assert str(exc).strip(), "an error without a message"
        assert "\n" not in str(exc).strip(), f"a multi-line error: {exc!r}"
        return None


def _files(folder: Path) -> None:
    shutil.copy(DATA / "support_law.json", folder / "law.json")
    shutil.copy(DATA / "support_runs.csv", folder / "runs.csv")


def _bind(sc: Any) -> None:
    """Everything `planner run` does before solving, except fitting runs (too slow for thousands of cases)."""
    fitted = resolve_law(sc) if sc.law.source != "runs" else None
    own = domain_laws(sc)
    if fitted is not None:
        check_domains(sc, fitted, own)
    check_plan_arguments(sc, law_argument(sc, fitted, own) if fitted is not None else None)


def _scenario_file(folder: Path, case: tuple[str, str]) -> Path:
    """The case written as ``plan.toml``/``plan.yaml`` beside a law file and a run table."""
    suffix, text = case
    _files(folder)
    path = folder / f"plan{suffix}"
    path.write_text(text, encoding="utf-8")
    return path


def check_scenario_case(case: tuple[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = _scenario_file(Path(tmp), case)
        sc = _only_planner_errors(lambda: load_scenario(path))
        if sc is not None:
            _only_planner_errors(lambda: _bind(sc))


def check_validate_case(case: tuple[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = _scenario_file(Path(tmp), case)
        result = CliRunner().invoke(cli, ["validate", str(path)])
        assert result.exit_code in (0, 2), (result.exit_code, result.stderr, result.exception)
        if result.exit_code == 2:
            assert "Traceback" not in result.stderr
            assert result.stderr.startswith("error: ") or "Usage:" in result.stderr, result.stderr


# --------------------------------------------------------------------------- broken law files named by a scenario
LAW = json.loads((DATA / "support_law.json").read_text())
LAW_PATHS = [p for p in _paths(LAW) if p and len(p) <= 3]


@st.composite
def broken_law_files(draw) -> str:
    law = json.loads(json.dumps(LAW))
    path = draw(st.sampled_from(LAW_PATHS))
    node = law
    for key in path[:-1]:
        node = node[key]
    if draw(st.booleans()):
        node[path[-1]] = draw(HOSTILE_VALUES)
        return json.dumps(law, allow_nan=True)
    marker = "__RAW__"
    node[path[-1]] = marker
    raw = draw(st.sampled_from(["1" * 5000, "1e400", "NaN", "-Infinity", "[" * 3000 + "]" * 3000, "0." + "3" * 500]))
    return json.dumps(law).replace(json.dumps(marker), raw, 1)


def check_law_case(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "law.json").write_text(text, encoding="utf-8")
        (folder / "plan.toml").write_text(to_toml(FROM_FILE), encoding="utf-8")
        sc = _only_planner_errors(lambda: load_scenario(folder / "plan.toml"))
        if sc is not None:
            _only_planner_errors(lambda: _bind(sc))


# --------------------------------------------------------------------------- broken result files for `planner report`
RESULT = json.loads(json.dumps(make_result(sweep=True)))
RESULT_PATHS = [p for p in _paths(RESULT) if p and p[0] not in ("laws", "scenario") and len(p) <= 4]
FORMATS = ["json", "md", "csv"]


@st.composite
def broken_results(draw) -> str:
    doc = json.loads(json.dumps(RESULT))
    path = draw(st.sampled_from(RESULT_PATHS))
    node = doc
    for key in path[:-1]:
        node = node[key]
    how = draw(st.sampled_from(["value", "value", "delete", "raw"]))
    if how == "delete":
        node.pop(path[-1])
    elif how == "raw":
        node[path[-1]] = "__RAW__"
        raw = draw(st.sampled_from(["1" * 5000, "1e400", "NaN", "[" * 3000 + "]" * 3000, '{"a":' * 2000 + "1" + "}" * 2000]))
        return json.dumps(doc).replace('"__RAW__"', raw, 1)
    else:
        node[path[-1]] = draw(HOSTILE_VALUES)
    return json.dumps(doc, allow_nan=True)


def _snapshot(folder: Path) -> dict[str, bytes] | None:
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else None


def check_result_case(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = folder / "in" / "allocation.json"
        source.parent.mkdir()
        source.write_text(text, encoding="utf-8")
        out = folder / "out"
        out.mkdir()
        for name, body in render(RESULT, FORMATS).items():
            (out / name).write_text(body, encoding="utf-8")
        old = _snapshot(out)
        doc = _only_planner_errors(lambda: load_result(source))
        result = CliRunner().invoke(cli, ["report", str(source), "-o", str(out), "--format", ",".join(FORMATS)])
        assert result.exit_code in (0, 2), (result.exit_code, result.stderr, result.exception)
        assert (result.exit_code == 0) == (doc is not None), result.stderr
        now = _snapshot(out)
        if result.exit_code == 0:
            assert set(now) == {"allocation.json", "report.md", "allocation.csv"}
            assert json.loads(now["allocation.json"]) == json.loads(json.dumps(doc))
        else:
            assert now == old, "a failed report changed the old set"
            assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert sorted(p.name for p in folder.iterdir()) == ["in", "out"], "a temporary folder was left behind"


# --------------------------------------------------------------------------- the suite
def test_bases_are_valid():
    # the fuzzer breaks valid inputs: check they are valid to start with
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _files(folder)
        for i, base in enumerate(BASES):
            for suffix, text in ((".toml", to_toml(base)), (".yaml", yaml.safe_dump(base, sort_keys=False))):
                path = folder / f"base{i}{suffix}"
                path.write_text(text)
                _bind(load_scenario(path))
    assert load_result(_write(RESULT)) == RESULT


def _write(doc: dict) -> Path:
    path = Path(tempfile.mkdtemp()) / "allocation.json"
    path.write_text(json.dumps(doc))
    return path


@QUICK
@given(broken_scenarios())
def test_fuzz_scenarios(case):
    check_scenario_case(case)


@settings(max_examples=15, **_COMMON)
@given(broken_scenarios())
def test_fuzz_validate_command(case):
    check_validate_case(case)


@settings(max_examples=25, **_COMMON)
@given(broken_law_files())
def test_fuzz_law_files_named_by_a_scenario(text):
    check_law_case(text)


@settings(max_examples=15, **_COMMON)
@given(broken_results())
def test_fuzz_report_command(text):
    check_result_case(text)


@pytest.mark.fuzz_long
@pytest.mark.fuzz
@pytest.mark.slow
@LONG
@given(broken_scenarios())
def test_fuzz_scenarios_long(case):
    check_scenario_case(case)


@pytest.mark.fuzz_long
@pytest.mark.fuzz
@pytest.mark.slow
@settings(max_examples=500, **_COMMON)
@given(broken_scenarios())
def test_fuzz_validate_command_long(case):
    check_validate_case(case)


@pytest.mark.fuzz_long
@pytest.mark.fuzz
@pytest.mark.slow
@settings(max_examples=1000, **_COMMON)
@given(broken_law_files())
def test_fuzz_law_files_named_by_a_scenario_long(text):
    check_law_case(text)


@pytest.mark.fuzz_long
@pytest.mark.fuzz
@pytest.mark.slow
@settings(max_examples=1000, **_COMMON)
@given(broken_results())
def test_fuzz_report_command_long(text):
    check_result_case(text)
