"""The [uncertainty] section of a scenario: every candidate form's plan, regret, robust plan, ranges in the reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.report.render import render_html, render_markdown
from planner.scenario import load_scenario, run_scenario

ROOT = Path(__file__).resolve().parent.parent

SCENARIO = """
title = "uncertain law"
[budget]
flops = 1e22
[law]
runs = "{runs}"
form = "split-additive"
max_starts = 4
[[domains]]
name = "code"
weight = 2.0
[[domains]]
name = "math"
[[domains]]
name = "biomedical"
unique_tokens = "60B"
max_epochs = 4
[constraints]
max_model_size = "30B"
[compare]
strategies = ["no-split"]
[uncertainty]
forms = ["split-additive", "split-effective"]
draws = 2
headline = "robust-worst"
multiplier_draws = 0
"""


@pytest.mark.slow
def test_uncertainty_section_end_to_end(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.format(runs=ROOT / "scenarios" / "data" / "three_domain_runs.csv"))
    scen = load_scenario(path)
    assert scen.uncertainty is not None and scen.uncertainty.epsilon == 1e-3
    res = run_scenario(scen)
    doc = res.to_dict()
    d = doc["decision"]
    assert d["headline"] == "robust-worst" and d["interval_level"] == 0.9
    assert [c["name"] for c in d["candidates"]] == ["split-additive", "split-effective"]
    regret = d["regret"]
    w = dict(zip(regret["plans"], regret["worst"]))
    assert w["robust (worst-case regret)"] <= min(w["plan under split-additive"], w["plan under split-effective"]) + 1e-9
    json.dumps(doc)  # JSON-able
    # no timings in the reports (reruns are byte-identical); they stay on the result for --verbose
    assert "timings" not in d and "decision_robust_seconds" in res.timings
    md = render_markdown(doc)
    for title in ("Decisions under an uncertain law", "Cross-regret", "Robust plans", "Decision ranges", "Flatness band"):
        assert title in md
    assert "Headline: the robust-worst plan" in md
    # the headline drives the main Plan section, the CSV and the console, not only the decision tables
    h = doc["headline"]
    assert h["plan"] == "robust-worst" and h["model_size"] == d["headline_plan"]["model_size"] and h["interval_level"] == 0.9
    from planner.report.render import fmt_count, render_csv

    assert f"| **model size N** | {fmt_count(h['model_size'])} parameters [" in md.split("## Plan", 1)[1].split("\n## ", 1)[0]
    assert "robust-worst" in render_csv(doc) and res.summary().startswith("headline: the robust-worst plan")
    # both listed forms are kept with the result, for the per-form curves and residuals
    assert {"candidates.split-additive", "candidates.split-effective"} <= set(doc["laws"])
    assert "| code | split-effective (50 %) |" in md
    html = render_html(doc, {})
    assert 'id="uncertainty"' in html and "Cross-regret" in html
    assert "decisions under an uncertain law" in res.summary()
    # each form's own gap and multiplier beside the interval (a form of small weight can lie outside it)
    text = d["baselines"][0]["text"]
    by_law = d["baselines"][0]["gap_by_law"]
    assert "; under each form's point estimate: " in text
    for name in ("split-additive", "split-effective"):
        assert f"{name} gap {by_law[name]:+.4g}, multiplier " in text


def test_uncertainty_section_is_validated(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.format(runs="runs.csv").replace('headline = "robust-worst"', 'headline = "best"'))
    with pytest.raises(Exception, match="headline"):
        load_scenario(path)


def test_report_marks_multipliers_beyond_the_fitted_range():
    """The issue's artefact: 898.02x at 1e22 FLOPs from a law fitted up to 4.8e20 FLOPs is not printed as a figure."""
    from planner.report.render import _baseline_rows

    def doc(budget: float, m: float) -> dict:
        return {"budget": budget, "objective": 7.5, "laws": {"law": {"calibration": {"reference_compute": 4.8e20}}},
                "baselines": [{"strategy": "no-split", "objective": 7.6, "compute_multiplier": m}]}

    assert _baseline_rows(doc(1e22, 898.02))[0][3] == "> 100× (beyond the fitted range)"
    assert _baseline_rows(doc(1e22, 4.91))[0][3] == "4.9× (beyond the fitted range)"
    assert _baseline_rows(doc(1e20, 2.4))[0][3] == "2.40×"  # 2.4e20 FLOPs: inside the data
    assert _baseline_rows(doc(1e22, None))[0][3] == "> 100× (beyond the fitted range)"  # never reaches the plan
    # without a fitted range (a law given by parameters) the figure is printed as before
    assert _baseline_rows({**doc(1e22, 898.02), "laws": {"law": {}}})[0][3] == "898.02×"
