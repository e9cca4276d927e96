"""The shipped example scenarios run out of the box through the CLI, and each shows what it is
about: the three-domain sweep with a law picked by held-out error, the data-limited domain whose
token cap binds, the inference-heavy deployment with inference FLOPs in the budget."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import PLOT_IDS, SCENARIOS
from planner.cli import EXIT_OK, cli


def run(name: str, out: Path, *extra: str) -> tuple[dict, str]:
    result = CliRunner().invoke(cli, ["run", str(SCENARIOS / f"{name}.toml"), "-o", str(out), *extra], catch_exceptions=False)
    assert result.exit_code == EXIT_OK, result.stderr
    return json.loads((out / "allocation.json").read_text()), result.stdout


@pytest.mark.slow
def test_three_domains_main_job(tmp_path):
    # how long it takes is measured by benchmarks/bench_scenario.py, not asserted here
    doc, stdout = run("three-domains", tmp_path)
    law = doc["laws"]["law"]
    ranked = [s["form"] for s in law["selection"] if s.get("are") is not None]
    assert law["form"] == ranked[0] and len(ranked) >= 2  # form = "auto": the lowest held-out error wins
    assert [p["budget"] for p in doc["sweep"]] == [1e21, 1e22, 1e23] and doc["budget"] == 1e22
    assert {d["name"] for d in doc["domains"]} == {"code", "math", "biomedical"}
    assert doc["status"] == "optimal" and 0 < doc["pretrain_fraction"] < 1
    assert {b["strategy"] for b in doc["baselines"]} == {"no-split", "fixed", "separate"}
    # the plan is at least as good as every baseline it is compared with
    assert all(b["objective"] >= doc["objective"] - 1e-6 for b in doc["baselines"])
    html = (tmp_path / "report.html").read_text()
    assert all(re.search(rf'<figure class="plot(?: wide)?" id="{p}">', html) for p in PLOT_IDS)
    # the headline (here the nominal plan) and the interval level first, then the plan itself
    assert stdout.startswith("headline: the nominal plan") and stdout.splitlines()[1].startswith("  intervals: central 90 %")
    assert stdout.splitlines()[2].startswith("budget 1e+22 FLOPs -> N = ") and "status optimal" in stdout
    for p in ("plot-dprime", "plot-plans", "plot-form-residuals"):  # every candidate form's curves, plans and residuals
        assert re.search(rf'<figure class="plot(?: wide)?" id="{p}">', html), p


@pytest.mark.slow
def test_data_limited_cap_binds(tmp_path):
    doc, _ = run("data-limited", tmp_path, "--format", "json,md")
    legal = next(d for d in doc["domains"] if d["name"] == "legal")
    assert legal["spec_tokens"] == pytest.approx(16e9, rel=1e-6)  # 4B unique tokens x 4 epochs
    binding = {c["name"]: c["binding"] for c in doc["binding"]}
    assert binding["token_cap[legal]"] is True and binding["token_cap[finance]"] is False
    assert "token_cap[legal]" in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_inference_heavy_counts_inference_in_the_budget(tmp_path):
    doc, _ = run("inference-heavy", tmp_path, "--format", "json,csv")
    flops = doc["flops"]
    assert flops["inference"] == pytest.approx(2 * doc["model_size"] * 20e12, rel=1e-6)
    assert flops["training"] + flops["inference"] == pytest.approx(doc["budget"], rel=1e-6)
    # served heavily, the model is far smaller than its pretraining tokens would suggest (D/N >> 20)
    assert doc["pretrain_tokens"] / doc["model_size"] > 100
    assert "inference" in (tmp_path / "allocation.csv").read_text()
