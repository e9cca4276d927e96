"""The command line with click's CliRunner: every command, every bad-input path, exit codes 0, 1, 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, cli
from synthetic import INLINE_LAW_TABLE

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "scenarios" / "data"

INLINE_LAW = """\
title = "Inline two-domain plan"
description = "Code and math from inline parameters."

[budget]
flops = 1e21

""" + INLINE_LAW_TABLE + """
[[domains]]
name = "code"
weight = 2

[[domains]]
name = "math"

[report]
compute_points = 3
"""


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture()
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(INLINE_LAW)
    return path


def invoke(runner: CliRunner, *args: str):
    return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, *fragments: str) -> None:
    err = result.stderr
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for f in fragments:
        assert f in err, (f, err)


# --------------------------------------------------------------------------- help, forms, schema
def test_help_lists_every_command(runner):
    result = invoke(runner, "--help")
    assert result.exit_code == EXIT_OK
    for command in ("run", "sweep", "validate", "fit", "forms", "schema", "report"):
        assert command in result.stdout


def test_forms(runner):
    result = invoke(runner, "forms")
    assert result.exit_code == EXIT_OK
    assert "split-additive" in result.stdout and "L_k = E_k + A/N^alpha" in result.stdout
    result = invoke(runner, "forms", "--json")
    names = [f["name"] for f in json.loads(result.stdout)]
    assert "chinchilla" in names and "split-effective" in names
    result = invoke(runner, "forms", "--verbose")
    assert "per domain" in result.stdout


def test_schema(runner):
    result = invoke(runner, "schema")
    assert result.exit_code == EXIT_OK
    schema = json.loads(result.stdout)
    assert schema["additionalProperties"] is False and "budget" in schema["properties"]
    md = invoke(runner, "schema", "--markdown")
    assert md.stdout == (ROOT / "docs" / "scenario-reference.md").read_text()


# --------------------------------------------------------------------------- validate
def test_validate_ok(runner, scenario):
    result = invoke(runner, "validate", scenario)
    assert result.exit_code == EXIT_OK
    assert result.stdout.startswith("ok: ") and "code, math" in result.stdout


def test_validate_runs_scenario_without_fitting(runner):
    result = invoke(runner, "validate", ROOT / "scenarios" / "three-domains.toml")
    assert result.exit_code == EXIT_OK, result.stderr
    assert "525 rows" in result.stdout and "fitted at run time" in result.stdout


def test_validate_quiet_prints_nothing(runner, scenario):
    result = invoke(runner, "validate", scenario, "--quiet")
    assert result.exit_code == EXIT_OK and result.stdout == ""
    result = invoke(runner, "-q", "validate", scenario)
    assert result.exit_code == EXIT_OK and result.stdout == ""


@pytest.mark.parametrize(
    "edit, fragments",
    [
        (lambda t: t.replace('name = "math"', 'name = "math"\ncolour = "red"'), ["domains[1].colour", "unknown key", "line 17"]),
        (lambda t: t.replace("flops = 1e21", 'flops = "lots"'), ["budget.flops", "not a number", "line 5"]),
        (lambda t: t.replace("[budget]", "[budget"), ["invalid TOML"]),
        (lambda t: t.replace('name = "math"', 'name = "legal"'), ["the law has parameters for code, math, not for legal"]),
        (lambda t: t.replace('"D0[math]" = 1e8', '"D0[math]" = 1e8, zeta = 1'), ["law.params", "zeta"]),
        (lambda t: t.replace('form = "split-additive"', 'form = "nope"'), ["unknown form 'nope'"]),
        (lambda t: t.replace("flops = 1e21", "flops = 1e21\nplan = 3"), ["plan = 3 is not one of the budgets"]),
    ],
)
def test_validate_bad_input_exits_2(runner, tmp_path, edit, fragments):
    path = tmp_path / "bad.toml"
    path.write_text(edit(INLINE_LAW))
    result = invoke(runner, "validate", path)
    assert result.exit_code == EXIT_BAD_INPUT
    assert_one_line_error(result, "bad.toml", *fragments)


def test_validate_missing_file_exits_2(runner, tmp_path):
    result = invoke(runner, "validate", tmp_path / "nope.toml")
    assert result.exit_code == EXIT_BAD_INPUT
    assert_one_line_error(result, "scenario file not found")


def test_validate_missing_runs_and_unknown_domain(runner, tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[budget]\nflops = 1e21\n[law]\nruns = "runs.csv"\nform = "auto"\n[[domains]]\nname = "code"\n')
    result = invoke(runner, "validate", path)
    assert result.exit_code == EXIT_BAD_INPUT
    assert_one_line_error(result, "law.runs: file not found")
    shutil.copy(DATA / "three_domain_runs.csv", tmp_path / "runs.csv")
    path.write_text(path.read_text().replace('name = "code"', 'name = "legal"'))
    result = invoke(runner, "validate", path)
    assert result.exit_code == EXIT_BAD_INPUT
    assert_one_line_error(result, "the runs have domains biomedical, code, math, not legal")


def test_verbose_error_shows_traceback(runner, tmp_path):
    result = invoke(runner, "validate", tmp_path / "nope.toml", "--verbose")
    assert result.exit_code == EXIT_BAD_INPUT
    assert "Traceback" in result.stderr and "scenario file not found" in result.stderr


# --------------------------------------------------------------------------- run / sweep / report
@pytest.mark.slow
def test_run_writes_every_report(runner, scenario, tmp_path):
    out = tmp_path / "out"
    result = invoke(runner, "run", scenario, "-o", out)
    assert result.exit_code == EXIT_OK, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["allocation.csv", "allocation.json", "config.json", "config.yaml", "report.html", "report.md"]
    doc = json.loads((out / "allocation.json").read_text())
    assert doc["schema"] == "planner.allocation/1" and doc["title"] == "Inline two-domain plan"
    # the plan as a training config: the planned model's shape, pretraining to D, a branch per domain to D'_k
    config = json.loads((out / "config.json").read_text())
    pretrain = next(r for r in config["runs"] if r["kind"] == "pretrain")
    assert pretrain["tokens"] == pytest.approx(doc["pretrain_tokens"], rel=1e-12)
    branches = {r["domain"]: r["tokens"] for r in config["runs"] if r["kind"] == "branch"}
    assert branches == {d["name"]: pytest.approx(d["spec_tokens"], rel=1e-12) for d in doc["domains"] if d["spec_tokens"] > 0}
    shape = pretrain["shape"]
    assert abs(shape["params"] / doc["model_size"] - 1) <= 0.02
    assert doc["laws"]["law"]["form"] == "split-additive"
    assert "# Inline two-domain plan" in (out / "report.md").read_text()
    # the summary printed is the plan's own (Allocation.summary), not a re-implementation
    from planner.allocate import Allocation

    # after the headline (which plan, and the interval level: here the nominal plan itself)
    assert result.stdout.startswith("headline: the nominal plan")
    assert result.stdout.splitlines()[1].startswith("  intervals: ")
    # the plan as Allocation.summary gives it, its compute multipliers printed as the reports print them
    from planner.report.render import console_multiplier

    plan_lines = Allocation.from_dict(doc).summary(multiplier=console_multiplier(doc))
    assert "\n".join(result.stdout.splitlines()[2:]).startswith(plan_lines + "\n")
    assert "compute multiplier 1.00x" in plan_lines  # the inline law has no fitted runs: every multiplier is a plain figure
    assert "status optimal" in result.stdout
    # a rerun writes the same bytes (no timings or dates in any report)
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert invoke(runner, "run", scenario, "-o", out).exit_code == EXIT_OK
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    assert "timings" not in doc and "Date" not in first["report.html"].decode()
    assert [p.name for p in tmp_path.iterdir() if ".planner-" in p.name] == []


@pytest.mark.slow
def test_run_default_output_folder_and_format(runner, scenario, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(runner, "run", scenario, "--format", "md,csv", "-q")
    assert result.exit_code == EXIT_OK and result.stdout == ""
    assert sorted(p.name for p in (tmp_path / "out" / "plan").iterdir()) == ["allocation.csv", "config.json", "config.yaml", "report.md"]


def test_run_bad_format_exits_2(runner, scenario, tmp_path):
    result = invoke(runner, "run", scenario, "--format", "pdf", "-o", tmp_path / "o")
    assert result.exit_code == EXIT_BAD_INPUT
    assert "unknown format 'pdf'" in result.stderr
    assert not (tmp_path / "o").exists()


def test_run_infeasible_exits_1_and_still_reports(runner, scenario, tmp_path):
    scenario.write_text(INLINE_LAW + '[constraints]\nmin_model_size = "1T"\nmin_tokens_per_param = 20\n')
    out = tmp_path / "out"
    result = invoke(runner, "run", scenario, "-o", out)
    assert result.exit_code == EXIT_FAILED
    assert_one_line_error(result, "the plan is infeasible")
    assert json.loads((out / "allocation.json").read_text())["status"] == "infeasible"


def test_a_plan_that_is_not_optimal_exits_1_with_the_reason(runner, scenario, tmp_path, monkeypatch):
    import dataclasses

    import planner.allocate

    real = planner.allocate.optimize

    def inaccurate(*args, **kwargs):
        return dataclasses.replace(real(*args, **kwargs), status="optimal_inaccurate", message="the solver stopped at its iteration limit")

    monkeypatch.setattr(planner.allocate, "optimize", inaccurate)
    out = tmp_path / "out"
    result = invoke(runner, "run", scenario, "-o", out, "--format", "json")
    assert result.exit_code == EXIT_FAILED
    assert_one_line_error(result, "the plan is optimal_inaccurate, not optimal: the solver stopped at its iteration limit")
    assert json.loads((out / "allocation.json").read_text())["status"] == "optimal_inaccurate"


def test_run_unexpected_failure_exits_1(runner, scenario, tmp_path, monkeypatch):
    import planner.scenario

    def boom(*args, **kwargs):
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(planner.scenario, "run_scenario", boom)
    result = invoke(runner, "run", scenario, "-o", tmp_path / "o")
    assert result.exit_code == EXIT_FAILED
    assert_one_line_error(result, "RuntimeError: solver exploded")
    assert not (tmp_path / "o").exists()


def test_run_bad_scenario_exits_2(runner, tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(INLINE_LAW.replace("weight = 2", "weight = -2"))
    result = invoke(runner, "run", path, "-o", tmp_path / "o")
    assert result.exit_code == EXIT_BAD_INPUT
    assert_one_line_error(result, "domains[0].weight")
    assert not (tmp_path / "o").exists()


def test_run_missing_scenario_exits_2(runner, tmp_path):
    result = invoke(runner, "run", tmp_path / "missing.toml")
    assert result.exit_code == EXIT_BAD_INPUT
    assert_one_line_error(result, "scenario file not found")


@pytest.mark.slow
def test_sweep(runner, scenario, tmp_path):
    out = tmp_path / "sweep"
    result = invoke(runner, "sweep", scenario, "-o", out, "--format", "json,csv")
    assert result.exit_code == EXIT_OK, result.stderr
    doc = json.loads((out / "allocation.json").read_text())
    assert [p["budget"] for p in doc["sweep"]] == pytest.approx([1e20, 1e21, 1e22])
    csv_lines = (out / "allocation.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 1 + 3 * 3  # header + (pretrain, code, math) per budget
    assert "sweep:" in result.stdout


def test_report_rerenders_without_solving(runner, scenario, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert invoke(runner, "run", scenario, "-o", out, "--format", "json").exit_code == EXIT_OK
    import planner.allocate

    def no_solving(*a, **k):
        raise AssertionError("report must not re-solve")

    monkeypatch.setattr(planner.allocate, "optimize", no_solving)
    result = invoke(runner, "report", out / "allocation.json", "--format", "html,md")
    assert result.exit_code == EXIT_OK, result.stderr
    assert (out / "report.html").exists() and (out / "report.md").exists()
    other = tmp_path / "elsewhere"
    result = invoke(runner, "report", out / "allocation.json", "--format", "json,csv", "-o", other)
    assert result.exit_code == EXIT_OK
    assert json.loads((other / "allocation.json").read_text()) == json.loads((out / "allocation.json").read_text())
    result = invoke(runner, "report", out / "allocation.json", "--format", "json")
    assert result.exit_code == EXIT_BAD_INPUT


@pytest.mark.parametrize(
    "content, fragment",
    [
        (None, "result file not found"),
        ("{not json", "invalid JSON at line 1"),
        ('{"schema": "planner.law/1"}', "not a planner result"),
        ('{"schema": "planner.allocation/9"}', "is not supported"),
        ('{"schema": "planner.allocation/1", "budget": 1}', "missing key 'model_size'"),
    ],
)
def test_report_bad_input_exits_2(runner, tmp_path, content, fragment):
    path = tmp_path / "allocation.json"
    if content is not None:
        path.write_text(content)
    result = invoke(runner, "report", path)
    assert result.exit_code == EXIT_BAD_INPUT
    assert_one_line_error(result, fragment)


# --------------------------------------------------------------------------- fit
@pytest.mark.slow
def test_fit_prints_table_and_writes_json(runner, tmp_path):
    out = tmp_path / "law.json"
    result = invoke(runner, "fit", DATA / "support_runs.csv", "--form", "chinchilla", "--train-on", "model_size < 1e9",
                    "--bootstrap", "3", "--calibrate", "--seed", "2", "--max-starts", "16", "-o", out)
    assert result.exit_code == EXIT_OK, result.stderr
    assert "parameter" in result.stdout and "90% interval" in result.stdout and "held out (model_size < 1e9)" in result.stdout
    assert "extrapolation interval" in result.stdout
    law = json.loads(out.read_text())
    assert law["form"] == "chinchilla" and law["options"]["bootstrap"] == 3 and law["options"]["seed"] == 2
    assert law["calibration"]["q0"] > 0


def test_fit_with_every_option(runner, tmp_path):
    base = tmp_path / "base.json"
    assert invoke(runner, "fit", DATA / "support_runs.csv", "--form", "chinchilla", "--max-starts", "8", "-o", base).exit_code == EXIT_OK
    renamed = tmp_path / "runs.csv"
    renamed.write_text((DATA / "three_domain_runs.csv").read_text().replace("model_size", "params", 1))
    out = tmp_path / "law.json"
    borrowed = json.loads(base.read_text())["params"]
    result = invoke(runner, "fit", renamed, "--form", "split-additive", "--columns", "params=model_size",
                    "--fix", f"alpha={borrowed['alpha']!r},D0=100M", "--tie", "gamma", "--domain", "code", "--domain", "math",
                    "--min-tokens", "100M", "--loss", "ls", "--max-starts", "8", "-o", out)
    assert result.exit_code == EXIT_OK, result.stderr
    law = json.loads(out.read_text())
    assert law["params"]["alpha"] == pytest.approx(borrowed["alpha"])
    assert law["params"]["D0[code]"] == 1e8 and law["tied"] == ["gamma"]
    assert set(law["domains"]) == {"code", "math"}
    assert "(fixed)" in result.stdout


def test_fit_checkpoint_options(runner, tmp_path):
    """Hitchhiker-style fitting on intermediate checkpoints: drop early tokens, keep part of each run."""
    import numpy as np

    rows = ["model_size,step,pretrain_tokens,loss"]
    for size in (2e7, 6e7, 2e8, 6e8, 2e9):
        for step in range(1, 11):
            tokens = 40 * size * step / 10
            rows.append(f"{size},{step},{tokens},{1.8 + 480 * size ** -0.35 + 2100 * tokens ** -0.37:.6f}")
    path = tmp_path / "curves.csv"
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "law.json"
    result = invoke(runner, "fit", path, "--form", "chinchilla", "--min-tokens", "1e9", "--max-token-fraction", "0.5",
                    "--where", "model_size < 2e9", "--max-starts", "16", "-o", out)
    assert result.exit_code == EXIT_OK, result.stderr
    law = json.loads(out.read_text())
    kept = [(size, step) for size in (2e7, 6e7, 2e8, 6e8) for step in range(1, 6) if 40 * size * step / 10 >= 1e9]
    assert law["data"]["n_rows"] == len(kept)
    notes = " ".join(n["message"] for n in law["data"]["notes"])
    assert "min_tokens" in notes and "max_token_fraction" in notes
    assert np.isclose(law["params"]["alpha"], 0.35, atol=0.02)
    bad = invoke(runner, "fit", path, "--form", "chinchilla", "--where", "model_size <")
    assert bad.exit_code == EXIT_BAD_INPUT


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--form", "nope"], "unknown form 'nope'"),
        (["--form", "chinchilla", "--columns", "bogus"], "malformed column mapping"),
        (["--form", "chinchilla", "--train-on", "model_size >"], "train_on"),
        (["--form", "chinchilla", "--borrow", "a.json:alpha", "--fix", "beta=0.3"], "--fix and --borrow: give one of them"),
        (["--form", "chinchilla", "--domain", "legal"], "domain legal not in the runs"),
        (["--form", "chinchilla", "--borrow", "missing.json:alpha"], "law file not found"),
    ],
)
def test_fit_bad_input_exits_2(runner, args, fragment):
    result = invoke(runner, "fit", DATA / "support_runs.csv", *args)
    assert result.exit_code == EXIT_BAD_INPUT
    assert_one_line_error(result, fragment)


def test_fit_borrows_through_the_fitting_api(runner, tmp_path):
    base = tmp_path / "base.json"
    assert invoke(runner, "fit", DATA / "support_runs.csv", "--form", "chinchilla", "--max-starts", "8", "-o", base).exit_code == EXIT_OK
    out = tmp_path / "law.json"
    result = invoke(runner, "fit", DATA / "support_runs.csv", "--form", "chinchilla", "--borrow", f"{base}:alpha,beta",
                    "--max-starts", "8", "-o", out)
    assert result.exit_code == EXIT_OK, result.stderr
    borrowed, law = json.loads(base.read_text())["params"], json.loads(out.read_text())
    assert law["params"]["alpha"] == borrowed["alpha"] and law["params"]["beta"] == borrowed["beta"]
    assert {"alpha", "beta"} <= set(law["fixed"])


def test_old_holdout_flag_says_what_to_write(runner):
    result = runner.invoke(cli, ["fit", str(DATA / "support_runs.csv"), "--form", "chinchilla", "--holdout", "auto"])
    assert result.exit_code == EXIT_BAD_INPUT
    assert "renamed: write --train-on RULE" in result.stderr


def test_output_that_is_an_input_is_refused(runner, tmp_path):
    runs = tmp_path / "runs.csv"
    shutil.copy(DATA / "support_runs.csv", runs)
    before = runs.read_bytes()
    result = invoke(runner, "fit", runs, "--form", "chinchilla", "-o", runs)
    assert result.exit_code == EXIT_BAD_INPUT
    assert_one_line_error(result, "this is an input of the command")
    assert runs.read_bytes() == before


def test_fit_missing_runs_file_exits_2(runner, tmp_path):
    result = invoke(runner, "fit", tmp_path / "nope.csv", "--form", "chinchilla")
    assert result.exit_code == EXIT_BAD_INPUT
    assert_one_line_error(result, "file not found")


@pytest.mark.parametrize("args", [["--fix", "alpha"], ["--min-tokens", "many"], ["--loss", "l1"], [], ["--seed", "-1"],
                                  ["--bootstrap", "-1"], ["--bootstrap", "100000"], ["--max-starts", "0"], ["--format", "pdf"]])
def test_fit_bad_options_exit_2(runner, args):
    result = runner.invoke(cli, ["fit", str(DATA / "support_runs.csv"), *( ["--form", "chinchilla"] if args else []), *args])
    assert result.exit_code == EXIT_BAD_INPUT
    assert "Traceback" not in result.output


@pytest.mark.slow
# --------------------------------------------------------------------------- python -m planner
def test_python_dash_m(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "planner", "forms"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "chinchilla" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "planner", "validate", str(tmp_path / "x.toml")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_progress_bar_only_when_enabled(capsys):
    from planner.cli import _Progress

    @cli.command("progress-probe")
    def probe() -> None:
        quiet = _Progress()  # CliRunner's stderr is not a terminal: silent
        assert not quiet.enabled
        quiet("fit", 1, 2)
        shown = _Progress(enabled=True)
        for i in range(1, 4):
            shown("solve", i, 3)
        shown.close()

    try:
        result = CliRunner().invoke(cli, ["progress-probe"], catch_exceptions=False)
    finally:
        cli.commands.pop("progress-probe", None)
    assert result.exit_code == 0
    assert "solving budgets" in result.stderr and "bootstrap" not in result.stderr


@pytest.mark.slow
def test_run_with_bootstrap_law_fit(runner, tmp_path):
    shutil.copy(DATA / "support_runs.csv", tmp_path / "runs.csv")
    path = tmp_path / "s.toml"
    path.write_text('[budget]\nflops = "1e22 FLOPs"\n[law]\nruns = "runs.csv"\nform = "split-additive"\nbootstrap = 4\nmax_starts = 8\n'
                    '[[domains]]\nname = "support-chat"\n[report]\ncompute_points = 2\nformats = ["json"]\n')
    result = invoke(runner, "run", path, "-o", tmp_path / "out", "--verbose")
    assert result.exit_code == EXIT_OK, result.stderr
    doc = json.loads((tmp_path / "out" / "allocation.json").read_text())
    assert doc["laws"]["law"]["draws"] is not None
    assert "timings:" in result.stderr  # --verbose
