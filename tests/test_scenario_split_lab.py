"""The shipped scenario on real split-training runs (scenarios/split-lab.toml), end to end."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from planner.report import render
from planner.scenario import load_scenario, run_scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "split-lab.toml"
PUBLISHED = ROOT / "data" / "published" / "split_lab" / "split_runs_python.csv"
SHIPPED = ROOT / "scenarios" / "data" / "split_lab_python.csv"


def test_shipped_runs_are_the_python_rows_of_the_published_file_byte_for_byte():
    published = PUBLISHED.read_text().splitlines()
    header, rows = published[0], published[1:]
    domain = header.split(",").index("domain")
    expected = [header] + [r for r in rows if r.split(",")[domain] == "python"]
    assert SHIPPED.read_text().splitlines() == expected
    assert len(expected) == 101  # 25 pretraining rows + 75 python branch rows


def test_scenario_validates():
    sc = load_scenario(SCENARIO)
    assert [d.name for d in sc.domains] == ["python"]
    assert sc.uncertainty is not None and sc.uncertainty.headline == "robust-worst"
    assert sc.law.min_tokens == 1e6  # the early-checkpoint cut is an explicit choice of the scenario


@pytest.mark.slow
def test_split_lab_plans_near_the_data():
    rows = list(csv.DictReader(io.StringIO(SHIPPED.read_text())))
    sizes = sorted({float(r["model_size"]) for r in rows})
    largest_compute = max(6 * float(r["model_size"]) * (float(r["pretrain_tokens"]) + float(r["spec_tokens"])) for r in rows)
    res = run_scenario(SCENARIO)
    assert res.ok
    doc = res.to_dict()
    h = doc["headline"]
    assert h["plan"] == "robust-worst" and h["interval_level"] == 0.9
    # the budget is 1.4x the largest run: every plan's model size stays within the data's sizes (25K .. 1.2M)
    for n in [doc["model_size"], h["model_size"]] + [p["model_size"] for p in doc["decision"]["plans"]]:
        assert sizes[0] <= n <= sizes[-1], n
    assert doc["budget"] <= 1.5 * largest_compute
    # the plan specializes on python, with D' within a few times the runs' 2M tokens
    assert 0 < h["spec_tokens"]["python"] <= 10 * 2.0e6
    assert 0 < doc["spec_tokens"]["python"] <= 10 * 2.0e6
    # every candidate form fitted to the real runs, each with its plan
    assert [c["name"] for c in doc["decision"]["candidates"]] == ["split-interaction", "split-additive", "split-effective"]
    regret = doc["decision"]["regret"]
    worst = dict(zip(regret["plans"], regret["worst"]))
    assert worst["robust (worst-case regret)"] <= min(worst[f"plan under {f}"] for f in ("split-interaction", "split-additive", "split-effective")) + 1e-9
    texts = render(doc, ["md", "csv"])
    assert "Headline: the robust-worst plan" in texts["report.md"] and "## Loss against D' under every candidate form" in texts["report.md"]
    assert any(r["section"] == "headline" for r in csv.DictReader(io.StringIO(texts["allocation.csv"])))
    assert res.summary().startswith("headline: the robust-worst plan")
    assert "timings" not in doc["decision"]  # nothing that changes between reruns
