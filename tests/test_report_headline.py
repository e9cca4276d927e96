"""A robust headline plan in the Domains, FLOPs-per-phase and baselines tables of every output (issue 11).

With ``[uncertainty] headline = "robust-mean"`` (or "robust-worst"), the headline plan's losses, FLOPs and
baseline gaps are evaluated under the nominal plan's law and shown beside the nominal plan's, in
allocation.json (``headline.tables``), Markdown, HTML, CSV and the console. The numbers are checked against
the law written out by hand (the fixture) and, end to end, against the decision's regret table.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

from planner.report import law_objects, load_result, render, write_reports
from planner.report.document import headline_document, headline_tables
from planner.report.render import console_headline_lines, fmt_count, fmt_flops, fmt_loss, render_csv, render_html, render_markdown
from test_report_decision import split_additive
from test_report_fixtures import make_result

ROOT = Path(__file__).resolve().parent.parent


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("which", ["robust-mean", "robust-worst"])
def test_headline_tables_are_the_law_at_the_headline_plan(which):
    doc = make_result(decision=which)
    head = doc["decision"]["headline_plan"]
    n, d, spec = head["model_size"], head["pretrain_tokens"], head["spec_tokens"]
    t = headline_tables(doc)
    assert t["available"] and t["plan"] == which and not t["is_nominal"] and t["law"] == "split-additive"
    weights = {x["name"]: x["weight"] for x in doc["domains"]}
    for row in t["domains"]:
        k = row["name"]
        assert row["spec_tokens"] == spec[k] and row["weight"] == weights[k]
        assert row["loss"] == pytest.approx(split_additive(n, d, spec[k], k), rel=1e-12)
        assert row["flops"] == pytest.approx(6.0 * n * spec[k], rel=1e-12)  # the fixture's FLOP model is 6N
        assert row["specialize"] == (spec[k] > 0)
    assert t["objective"] == pytest.approx(sum(weights[k] * split_additive(n, d, spec[k], k) for k in spec), rel=1e-12)
    assert t["flops"]["pretrain"] == pytest.approx(6.0 * n * d, rel=1e-12)
    assert t["flops"]["training"] == pytest.approx(6.0 * n * (d + sum(spec.values())), rel=1e-12)
    gaps = {b["strategy"]: b for b in doc["decision"]["baselines"]}
    for b, nominal in zip(t["baselines"], doc["baselines"]):
        assert b["strategy"] == nominal["strategy"] and b["objective"] == nominal["objective"]
        assert b["gap"] == pytest.approx(nominal["objective"] - t["objective"], rel=1e-12)
        assert b["gap_to_nominal"] == pytest.approx(nominal["objective"] - doc["objective"], rel=1e-12)
        assert b["compute_multiplier_to_nominal"] == nominal["compute_multiplier"] and b["multiplier_is_upper_bound"]
        if b["strategy"] in gaps:
            assert b["gap_over_scenarios"] == gaps[b["strategy"]]["gap"] and b["gap_interval"] == gaps[b["strategy"]]["gap_interval"]


def test_nominal_headline_tables_are_the_documents_own():
    doc = make_result(decision="nominal")
    t = headline_tables(doc)
    assert t["is_nominal"] and t["objective"] == doc["objective"]
    assert [x["spec_tokens"] for x in t["domains"]] == [x["spec_tokens"] for x in doc["domains"]]
    assert t["flops"]["pretrain"] == doc["flops"]["pretrain"]
    assert all(not b["multiplier_is_upper_bound"] and b["gap"] == b["gap_to_nominal"] for b in t["baselines"])
    # the nominal tables keep their layout
    assert "| code | 2 | 120B | yes | 1.6200 | [1.6000, 1.6500] |" in render_markdown(doc)


def test_every_output_shows_the_headline_plans_tables_beside_the_nominal():
    doc = make_result(decision="robust-mean")
    t = headline_tables(doc)
    code = next(x for x in t["domains"] if x["name"] == "code")
    nominal_code = next(x for x in doc["domains"] if x["name"] == "code")
    # json: the headline block carries the tables
    again = json.loads(json.dumps(doc, allow_nan=False))
    assert again["headline"]["tables"]["domains"][0]["loss"] == pytest.approx(t["domains"][0]["loss"])
    # markdown: which plan is which, the headline's numbers beside the nominal's
    md = render_markdown(doc)
    domains = md.split("## Domains", 1)[1].split("\n## ", 1)[0]
    assert "The headline robust-mean plan beside the nominal plan" in domains and "D' (tokens), headline (robust-mean)" in domains
    assert (f"| code | 2 | {fmt_count(code['spec_tokens'])} | {fmt_count(nominal_code['spec_tokens'])} | yes / yes | {fmt_loss(code['loss'])} |"
            in domains)
    phases = md.split("## FLOPs per phase", 1)[1].split("\n## ", 1)[0]
    assert f"| general pretraining | {fmt_flops(t['flops']['pretrain'])} |" in phases and fmt_flops(doc["flops"]["pretrain"]) in phases
    base = md.split("## Against the usual baselines", 1)[1].split("\n## ", 1)[0]
    assert "vs headline plan (robust-mean)" in base and "vs nominal plan" in base and "compute to match the nominal plan" in base
    no_split = next(b for b in t["baselines"] if b["strategy"] == "no-split")
    assert f"| no-split | {fmt_loss(no_split['objective'], 5)} | {no_split['gap']:+.4f} | {no_split['gap_to_nominal']:+.4f} |" in base
    # html: the same tables
    page = render_html(doc, {})
    section = page.split('<section id="domains">', 1)[1].split("</section>", 1)[0]
    assert "headline (robust-mean)" in section and f"<td class=\"num\">{fmt_count(code['spec_tokens'])}</td>" in section
    assert "vs headline plan (robust-mean)" in page.split('<section id="baselines">', 1)[1].split("</section>", 1)[0]
    # csv: the headline plan's rows in the plan's layout, marked headline; the baselines' gaps to both plans
    rows = _csv_rows(render_csv(doc))
    head_rows = [r for r in rows if r["section"] == "plan" and r["plan"] == "robust-mean"]
    assert {r["headline"] for r in head_rows} == {"True"} and len(head_rows) == 1 + len(doc["domains"])
    code_row = next(r for r in head_rows if r["domain"] == "code")
    assert float(code_row["tokens"]) == code["spec_tokens"] and float(code_row["loss"]) == pytest.approx(code["loss"], rel=1e-15)
    gap = next(r for r in rows if r["section"] == "baseline" and r["plan"] == "no-split" and r["quantity"] == "gap_to_headline_point_estimate")
    assert float(gap["value"]) == pytest.approx(no_split["gap"], rel=1e-15)
    # console: the headline's losses and gaps beside the nominal's
    lines = "\n".join(console_headline_lines(doc))
    assert "headline | nominal" in lines and f"loss {fmt_loss(code['loss'])} | {fmt_loss(nominal_code['loss'])}" in lines
    assert "vs no-split" in lines


def test_a_headline_plan_without_one_model_size_keeps_the_nominal_tables_and_says_so():
    from planner.report.render import _head_tables, _nominal_note

    doc = make_result(decision="robust-worst")
    doc["decision"]["headline_plan"]["model_size"] = {"code": 1e9, "math": 1e9, "biomedical": 1e9}
    t = headline_tables(doc)
    assert not t["available"] and "single model size" in t["reason"]
    assert _head_tables(doc) is None
    assert _nominal_note(doc, t).startswith("These tables detail the nominal plan")


@pytest.mark.slow
def test_main_scenario_with_a_robust_mean_headline(tmp_path):
    """A copy of scenarios/three-domains.toml with ``headline = "robust-mean"``: every output shows the headline plan."""
    from planner.scenario import run_scenario

    text = (ROOT / "scenarios" / "three-domains.toml").read_text()
    runs = tomllib.loads(text)["law"]["runs"]
    text = text.replace(f'runs = "{runs}"', f'runs = "{ROOT / "scenarios" / runs}"').replace('headline = "nominal"', 'headline = "robust-mean"')
    assert 'headline = "robust-mean"' in text
    path = tmp_path / "three-mean.toml"
    path.write_text(text)
    res = run_scenario(path, n_jobs=1)
    doc = res.to_dict()
    h = doc["headline"]
    assert h["plan"] == "robust-mean" and not h["is_nominal"]
    t = h["tables"]
    assert t["available"] and t["law"] == res.law.form.name
    # the tables' objective (the law's losses at the headline plan, summed with the weights) is the decision's
    # regret-table figure (the top law's optimum + the headline plan's regret), computed another way
    assert t["objective"] == pytest.approx(h["objective"], rel=1e-9)
    head = doc["decision"]["headline_plan"]
    for row in t["domains"]:
        pred = res.law.predict(model_size=[head["model_size"]], pretrain_tokens=[head["pretrain_tokens"]],
                               spec_tokens=[head["spec_tokens"][row["name"]]], domain=[row["name"]])
        assert row["loss"] == pytest.approx(float(pred[0]), rel=1e-12)
    assert t["flops"]["training"] == pytest.approx(doc["flops"]["training"], rel=1e-6)  # the robust plan spends the same budget
    # the nominal plan itself is unchanged by the headline choice
    assert doc["model_size"] == pytest.approx(2.833094975e9, rel=1e-6) and doc["objective"] == pytest.approx(7.745188382580997, rel=1e-6)
    out = tmp_path / "out"
    write_reports(doc, out)
    back = load_result(out / "allocation.json")
    assert back["headline"]["tables"]["objective"] == pytest.approx(t["objective"], rel=1e-15)
    texts = render(back)
    md, page, table = texts["report.md"], texts["report.html"], texts["allocation.csv"]
    code = next(x for x in t["domains"] if x["name"] == "code")
    assert "D' (tokens), headline (robust-mean)" in md and fmt_count(code["spec_tokens"]) in md.split("## Domains", 1)[1].split("\n## ", 1)[0]
    assert "vs headline plan (robust-mean)" in page and "headline (robust-mean)" in page
    head_rows = [r for r in _csv_rows(table) if r["section"] == "plan" and r["plan"] == "robust-mean"]
    assert len(head_rows) == 1 + len(t["domains"]) and {r["headline"] for r in head_rows} == {"True"}
    summary = res.summary()
    assert summary.startswith("headline: the robust-mean plan") and "headline | nominal" in summary
    assert "nominal plan (optimal under the law's point estimate), for comparison:" in summary
    assert re.search(r"vs no-split +objective", summary)
    assert np.isfinite(t["flops"]["pretrain"])
