"""`planner fit --plot FILE.svg`: every candidate form's in-sample residuals by N, D and D'."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.cli import EXIT_BAD_INPUT, EXIT_OK, cli

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "scenarios" / "data" / "split_lab_python.csv"


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_fit_writes_the_residual_plot_and_prints_each_forms_errors(tmp_path):
    from planner.fitting import load_law
    from planner.runs import load_runs
    from planner.fitting.adequacy import adequacy

    law_path, svg_path = tmp_path / "law.json", tmp_path / "residuals.svg"
    result = invoke("fit", RUNS, "--form", "split-additive", "--min-tokens", "1M", "--max-starts", "2", "-o", law_path, "--plot", svg_path)
    assert result.exit_code == EXIT_OK, result.stderr
    svg = svg_path.read_text()
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    for words in ("split-additive", "model size N", "pretraining tokens D", "specialization tokens D"):
        assert words in svg
    # the printed in-sample errors are adequacy() of the saved law on the same rows (none held out here)
    law = load_law(law_path)
    runs = load_runs(RUNS)
    runs = runs[runs["pretrain_tokens"] + runs["spec_tokens"] >= 1e6]
    a = adequacy(law, runs)
    line = next(l for l in result.stdout.splitlines() if l.strip().startswith("split-additive") and "base mean" in l)
    assert f"{100 * a['base']['mean']:6.2f}%" in line and f"{100 * a['specialized']['mean']:6.2f}%" in line
    assert json.loads(law_path.read_text())["form"] == "split-additive"


@pytest.mark.parametrize("law, plot, fragment", [("law.json", "plot.png", "ending in .svg"), ("law.svg", "law.svg", "same file")])
def test_fit_plot_bad_paths_exit_2(tmp_path, law, plot, fragment):
    out = tmp_path / law
    result = invoke("fit", RUNS, "--form", "split-additive", "-o", out, "--plot", tmp_path / plot)
    assert result.exit_code == EXIT_BAD_INPUT and fragment in result.stderr
    assert not out.exists()


def test_fit_plot_refuses_the_runs_file(tmp_path):
    copy = tmp_path / "runs.svg"
    copy.write_text(RUNS.read_text())
    result = invoke("fit", copy, "--form", "split-additive", "--plot", copy)
    assert result.exit_code == EXIT_BAD_INPUT and "input of the command" in result.stderr
