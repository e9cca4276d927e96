"""The report's headline, per-form plots and decision rows, from hand-made result documents.

Every number is checked against something computed here independently: the split-additive
formula written out by hand, the decision block's own plans, the regret table.
"""

from __future__ import annotations

import csv
import io
import math
import re

import numpy as np
import pytest

from planner.report import render
from planner.report import plots
from planner.report.curves import dprime_curves, form_residuals
from planner.report.document import headline_block, law_objects
from planner.report.render import CSV_COLUMNS, marginal_text, render_csv, render_html, render_markdown
from test_report_fixtures import LAW_PARAMS, make_law, make_result


def split_additive(n: float, d: float, s: float, dom: str) -> float:
    """L_k = E_k + A / N^alpha + B_k / D^beta + C_k / (D' + D0_k)^gamma_k, written out from the fixture's parameters."""
    p = LAW_PARAMS
    return (p[f"E[{dom}]"] + p["A"] / n ** p["alpha"] + p[f"B[{dom}]"] / d ** p["beta"]
            + p[f"C[{dom}]"] / (s + p[f"D0[{dom}]"]) ** p[f"gamma[{dom}]"])


# --------------------------------------------------------------------------- the headline block
def test_headline_without_a_decision_is_the_plan_with_its_loss_intervals():
    doc = make_result()
    h = headline_block(doc)
    assert h["plan"] == "nominal" and h["is_nominal"]
    assert h["model_size"] == doc["model_size"] and h["pretrain_tokens"] == doc["pretrain_tokens"]
    spec = {d["name"]: d["spec_tokens"] for d in doc["domains"]}
    assert h["spec_tokens"] == spec
    assert h["pretrain_share_of_tokens"] == pytest.approx(doc["pretrain_tokens"] / (doc["pretrain_tokens"] + sum(spec.values())))
    assert h["interval_level"] == doc["laws"]["law"]["interval_level"]
    assert h["intervals"]["loss[code]"] == doc["domains"][0]["loss_interval"]


@pytest.mark.parametrize("which", ["robust-worst", "robust-mean"])
def test_robust_headline_is_the_decisions_plan_with_its_ranges(which):
    doc = make_result(decision=which)
    d = doc["decision"]
    h = doc["headline"]
    assert h["plan"] == which and not h["is_nominal"]
    assert h["model_size"] == d["headline_plan"]["model_size"] and h["spec_tokens"] == d["headline_plan"]["spec_tokens"]
    assert h["interval_level"] == 0.9
    assert h["intervals"]["model_size"] == [d["ranges"]["rows"]["model_size"]["p_low"], d["ranges"]["rows"]["model_size"]["p_high"]]
    # objective under the top law (split-additive) = its optimum (the document's plan, regret 0) + the plan's regret there
    row = d["regret"]["plans"].index(d["headline_plan"]["label"])
    assert h["objective"] == pytest.approx(doc["objective"] + d["regret"]["nominal"][row][0])
    robust = next(r for r in d["robust"] if r["strategy"] == which)
    assert h["expected_objective"] == robust["expected_loss"]


def test_nominal_headline_with_a_decision_keeps_the_documents_plan():
    doc = make_result(decision="nominal")
    h = doc["headline"]
    assert h["plan"] == "nominal" and h["is_nominal"] and h["model_size"] == doc["model_size"] and h["objective"] == doc["objective"]


def test_markdown_and_html_plan_sections_show_the_headline_and_the_level():
    doc = make_result(decision="robust-worst")
    head = doc["decision"]["headline_plan"]
    md = render_markdown(doc)
    plan = md.split("## Plan", 1)[1].split("\n## ", 1)[0]
    assert "Headline: the robust-worst plan" in plan and "central 90 %" in plan
    lo, hi = doc["headline"]["intervals"]["model_size"]
    from planner.report.render import fmt_count

    assert f"| **model size N** | {fmt_count(head['model_size'])} parameters [{fmt_count(lo)}, {fmt_count(hi)}] |" in plan
    assert "nominal plan (beside the headline in the tables below)" in plan
    assert "The headline robust-worst plan beside the nominal plan" in md.split("## Domains", 1)[1]
    assert "per e-fold of compute" in plan  # the marginal value has units
    page = render_html(doc, {})
    cards = page.split('<div class="cards">', 1)[1].split("</div></section>", 1)[0]
    assert fmt_count(head["model_size"]) in cards and "robust-worst" in cards
    assert 'id="headline-note"' in page
    # the two shares say what they are a share of
    assert "pretraining share of training compute (inference excluded)" in md
    assert "share of all compute (training + inference)" in md


def test_marginal_value_has_units():
    doc = make_result()
    text = marginal_text(doc)
    mv = doc["marginal_value"]
    assert text.startswith(f"{mv:.4g} weighted nats/token per e-fold of compute")
    assert f"{mv * math.log(2):.4g} per doubling" in text and f"{mv / doc['budget'] * 1e18:.3g} per 1e18 FLOPs" in text


# --------------------------------------------------------------------------- CSV
def test_csv_has_the_decision_rows_with_headline_and_level():
    doc = make_result(decision="robust-worst")
    rows = list(csv.DictReader(io.StringIO(render_csv(doc))))
    assert list(rows[0]) == CSV_COLUMNS
    sections = {r["section"] for r in rows}
    assert sections == {"plan", "headline", "plan-per-form", "robust", "range", "flatness", "baseline"}
    head = [r for r in rows if r["section"] == "headline"]
    assert all(r["headline"] == "True" and r["plan"] == "robust-worst" for r in head)
    n = next(r for r in head if r["quantity"] == "model_size")
    assert float(n["value"]) == doc["decision"]["headline_plan"]["model_size"] and n["interval_level"] == "0.9"
    assert [float(n["low"]), float(n["high"])] == doc["headline"]["intervals"]["model_size"]
    # the nominal plan's rows are not the headline here; the robust-worst plan's rows are
    assert {r["headline"] for r in rows if r["section"] == "plan" and r["plan"] == "nominal"} == {"False"}
    assert {r["headline"] for r in rows if r["section"] == "plan" and r["plan"] == "robust-worst"} == {"True"}
    assert {r["headline"] for r in rows if r["plan"] == "robust (worst-case regret)"} == {"True"}
    assert {r["headline"] for r in rows if r["plan"] == "plan under split-interaction"} == {"False"}
    weights = {r["plan"]: float(r["form_weight"]) for r in rows if r["section"] == "plan-per-form"}
    assert weights == {"plan under split-additive": 0.7, "plan under split-interaction": 0.3}
    share = next(r for r in rows if r["section"] == "plan-per-form" and r["plan"] == "plan under split-interaction" and r["quantity"] == "pretrain_share")
    p = doc["decision"]["plans"][1]
    assert float(share["value"]) == pytest.approx(p["pretrain_tokens"] / (p["pretrain_tokens"] + sum(p["spec_tokens"].values())))
    rng = next(r for r in rows if r["section"] == "range" and r["quantity"] == "spec_tokens[code]")
    assert rng["domain"] == "code" and rng["interval_level"] == "0.9"
    # baselines: beyond the fitted range above 100x, no figure, the words instead
    mult = {r["plan"]: r for r in rows if r["section"] == "baseline" and r["quantity"] == "compute_multiplier"}
    assert mult["no-split"]["value"] == "" and mult["no-split"]["high"] == "" and float(mult["no-split"]["low"]) == 77.0
    assert mult["no-split"]["note"].startswith("> 100x (beyond the fitted range) [77x (beyond the fitted range), > 100x (beyond the fitted range)]")
    assert float(mult["fixed"]["value"]) == 1.2 and mult["fixed"]["note"].startswith("1.2x [1.1x, 1.4x]")
    gap = next(r for r in rows if r["section"] == "baseline" and r["plan"] == "no-split" and r["quantity"] == "gap")
    assert [float(gap["value"]), float(gap["low"]), float(gap["high"])] == [0.5, 0.1, 0.9]


def test_csv_decision_cells_are_neutralised():
    doc = make_result(decision="nominal")
    doc["decision"]["plans"][0]["label"] = "=HYPERLINK(\"x\")"
    rows = list(csv.DictReader(io.StringIO(render_csv(doc))))
    assert any(r["plan"] == "'=HYPERLINK(\"x\")" for r in rows)
    assert not any(r["plan"].startswith("=") for r in rows)


def test_csv_plan_rows_are_the_nominal_headline_without_a_decision():
    doc = make_result()
    rows = list(csv.DictReader(io.StringIO(render_csv(doc))))
    assert {r["section"] for r in rows} == {"plan"} and {r["headline"] for r in rows} == {"True"}
    assert {r["interval_level"] for r in rows if r["loss_low"]} == {"0.9"}


# --------------------------------------------------------------------------- per-form curves and residuals
def test_dprime_curves_are_the_law_at_the_plan_and_at_the_runs():
    doc = make_result(decision="robust-worst")
    data = dprime_curves(doc, law_objects(doc))
    assert [x["domain"] for x in data] == ["code", "math", "biomedical"]
    n, d = doc["model_size"], doc["pretrain_tokens"]
    for x in data:
        dom = x["domain"]
        (c,) = x["curves"]  # one form: the fixture law has no ensemble
        assert c["form"] == "split-additive" and c["weight"] == 1.0
        planned = next(v["spec_tokens"] for v in doc["domains"] if v["name"] == dom)
        assert c["at_plan"] == pytest.approx(split_additive(n, d, planned, dom), rel=1e-12)
        i = len(c["plan_x"]) // 2
        assert c["plan_y"][i] == pytest.approx(split_additive(n, d, c["plan_x"][i], dom), rel=1e-12)
        # the fit curve runs through the largest model size at its largest branch point
        n_ref, d_ref = x["reference"]
        assert n_ref == 1e9 and d_ref == 40 * 1e9
        assert c["fit_y"][0] == pytest.approx(split_additive(n_ref, d_ref, c["fit_x"][0], dom), rel=1e-12)
        assert (x["points"]["spec_tokens"] > 0).all() and x["points"]["reference"].sum() == 2  # D' = 0.1 D and 0.4 D
        # the headline (robust) plan's D'_k is marked too
        assert x["headline"][0] == doc["decision"]["headline_plan"]["spec_tokens"][dom]


def test_form_residuals_are_in_sample_relative_errors():
    doc = make_result()
    (x,) = form_residuals(doc, law_objects(doc))
    pts = doc["laws"]["law"]["points"]
    fitted = [i for i, h in enumerate(pts["held_out"]) if not h]
    assert len(x["table"]) == len(fitted)
    i = fitted[7]
    expected = (split_additive(pts["model_size"][i], pts["pretrain_tokens"][i], pts["spec_tokens"][i], pts["domain"][i]) - pts["observed"][i]) / pts["observed"][i]
    assert x["table"]["rel_error"].iloc[7] == pytest.approx(expected, rel=1e-9)
    base = [abs(v) for v, s in zip(x["table"]["rel_error"], x["table"]["spec_tokens"]) if s == 0]
    assert x["adequacy"]["base"]["mean"] == pytest.approx(np.mean(base)) and x["adequacy"]["base"]["n"] == len(base)


def test_markdown_has_the_per_form_tables():
    doc = make_result(decision="robust-worst")
    md = render_markdown(doc)
    table = md.split("## Loss against D' under every candidate form", 1)[1].split("\n## ", 1)[0]
    n, d = doc["model_size"], doc["pretrain_tokens"]
    assert f"| code | split-additive (100 %) | 120B | {split_additive(n, d, 0.0, 'code'):.4f} | {split_additive(n, d, 1.2e11, 'code'):.4f} |" in table
    assert "## In-sample residuals of every candidate form" in md
    plans = md.split("### Plans under every candidate law", 1)[1].split("\n### ", 1)[0]
    assert "| plan under split-interaction | 30.0% |" in plans and "| robust (worst-case regret) | robust |" in plans and "| yes |" in plans


# --------------------------------------------------------------------------- plots
@pytest.mark.slow
def test_new_plots_render_as_plain_svg():
    doc = make_result(sweep=True, decision="robust-worst")
    laws = {"law": make_law()}
    for svg, words in ((plots.loss_vs_dprime(doc, laws), ("code", "biomedical", "planned D'_k", "headline plan's D'_k")),
                       (plots.plans_per_form(doc), ("plan under split-interaction", "decision range", "headline")),
                       (plots.residuals_by_form(doc, laws), ("split-additive", "model size N", "specialization tokens D'"))):
        assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
        for w in words:
            assert w.replace("'", "&#x27;") in svg or w in svg, w
        assert "mathdefault" not in svg  # log ticks as plain text
    assert plots.plans_per_form(make_result()) is None  # no decision, no plot


def test_flops_caption_mentions_inference_only_with_inference():
    doc = make_result()
    assert "inference" not in plots.plot_caption("plot-flops", doc).replace("no inference in this plan", "")
    doc["flops"] = {**doc["flops"], "inference": 1e21}
    assert "inference" in plots.plot_caption("plot-flops", doc)
    page = render(make_result(), ["html"])["report.html"]
    assert "and inference (share of all compute)" not in page


def test_a_baseline_that_matches_the_plan_is_said_so_and_drawn_on_top():
    doc = make_result()
    doc["curve"] = [{**c, "baselines": {**c["baselines"], "fixed": c["objective"] * (1 + 1e-4)}} for c in doc["curve"]]
    svg = plots.objective_vs_compute(doc)
    assert "fixed (same as the plan, within 0.1 %)" in svg
    assert "no-split (same as the plan" not in svg


def test_contour_labels_sit_inside_the_axes():
    from matplotlib.figure import Figure

    n = np.geomspace(1e8, 1e10, 40)
    d = np.geomspace(1e10, 1e12, 40)
    nn, dd = np.meshgrid(n, d)
    z = 1 / nn ** 0.3 + 1 / dd ** 0.3
    fig = Figure()
    ax = fig.add_subplot(1, 1, 1)
    cs = ax.contour(nn, dd, z, levels=np.quantile(z, np.linspace(0.02, 0.98, 10)))
    pos = plots._label_positions(cs, (n[0], n[-1]), (d[0], d[-1]))
    assert len(pos) >= 5
    for x, y in pos:
        u = (math.log10(x) - 8) / 2
        v = (math.log10(y) - 10) / 2
        assert min(u, 1 - u, v, 1 - v) > 0.1


def test_plain_log_tick_labels():
    assert plots._plain_log_label(1e9) == "1e9" and plots._plain_log_label(100.0) == "100" and plots._plain_log_label(3e13) == "3e13"
    assert plots._plain_log_label(0.0) == ""


def test_every_plot_id_has_a_caption_and_appears_in_the_page():
    doc = make_result(sweep=True, decision="robust-worst")
    page = render(doc, ["html"])["report.html"]
    for plot_id in plots.PLOTS:
        assert re.search(rf'id="{plot_id}(-missing)?"', page), plot_id


def test_baselines_against_the_headline_name_each_strategy_once():
    """The baseline's text opens with its strategy (it stands alone in the console); in the table the strategy
    has its own column, so the row must not say it twice ("no-split | no-split: gap ...")."""
    doc = make_result(decision="nominal")
    md = render_markdown(doc)
    section = md.split("### Baselines against the headline plan", 1)[1].split("\n### ", 1)[0]
    assert "| no-split | gap +0.5 [+0.1, +0.9]; compute multiplier &gt; 100x (beyond the fitted range) |" in section
    assert "no-split: gap" not in section and "fixed: gap" not in section
    page = render_html(doc, {})
    assert "<td>no-split</td><td>gap +0.5 [+0.1, +0.9]; compute multiplier" in page and "no-split: gap" not in page


def test_rows_of_panels_take_the_whole_width_of_the_page():
    """A plot of one panel per domain (wider than WIDE_PLOT_POINTS) spans the grid's row: in a column its labels
    shrank below reading size. A single-panel plot stays in its column."""
    from planner.report.render import WIDE_PLOT_POINTS

    doc = make_result(decision="nominal")
    narrow = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="16.08 23.9 405.8 242.9"><g/></svg>'
    wide = f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="55.6 -16.2 {WIDE_PLOT_POINTS + 90:.1f} 289.8"><g/></svg>'
    page = render_html(doc, {"plot-compute": narrow, "plot-dprime": wide, "plot-form-residuals": wide})
    assert '<figure class="plot" id="plot-compute">' in page
    assert '<figure class="plot wide" id="plot-dprime">' in page and '<figure class="plot wide" id="plot-form-residuals">' in page
    assert ".plots figure.wide { grid-column: 1 / -1; }" in page


def _with_sensitivity(doc: dict) -> dict:
    """The fixture's decision with a sensitivity block: seven parameters, the first five by plan movement reported."""
    rows = []
    for i, (name, move) in enumerate([("alpha", -0.35), ("C[code]", 0.30), ("A", 0.25), ("beta", -0.2), ("gamma[code]", 0.15),
                                      ("E[code]", 0.0), ("B[math]", 0.01)]):
        rows.append({"param": name, "value": 0.3 + i, "se": 0.05, "se_of": "log", "model_size_rel_per_se": move,
                     "pretrain_tokens_rel_per_se": -move / 2, "spec_tokens[code]_rel_per_se": move / 4,
                     "spec_tokens[math]_rel_per_se": 0.0, "spec_tokens[biomedical]_rel_per_se": 0.0,
                     "objective_per_se": 0.01 * (i + 1), "pinned_by": f"N = 1e+09, with D' ({90 - i} %)"})
    doc["decision"]["sensitivity"] = [{"candidate": "split-additive", "step_in_se": 0.1, "method": "central differences", "rows": rows,
                                       "information": {r["param"]: [["N = 1e+09, with D'", (90 - i) / 100], ["N = 2e+07, no D'", (10 + i) / 100]]
                                                       for i, r in enumerate(rows)},
                                       "information_method": "share of the Gauss-Newton information"}]
    return doc


def test_sensitivity_table_in_markdown_and_html_lists_the_parameters_that_move_the_plan_most():
    doc = _with_sensitivity(make_result(decision="nominal"))
    md = render_markdown(doc)
    section = md.split("### Sensitivity: which parameters the plan rests on", 1)[1].split("\n### ", 1)[0]
    assert "| candidate | parameter | value | std. error | N / SE | D / SE | D'[biomedical] / SE | D'[code] / SE | D'[math] / SE |" in section
    table = [ln for ln in section.splitlines() if ln.startswith("| split-additive |")]
    assert [ln.split(" | ")[1] for ln in table] == ["alpha", "C[code]", "A", "beta", "gamma[code]"]  # the five largest moves, in order
    assert "| -35.0 % | +17.5 % |" in table[0] and "N = 1e+09, with D' (90 %)" in table[0] and "0.05 (log)" in table[0]
    assert "Gauss-Newton" in section
    page = render_html(doc, {})
    html_section = page.split("Sensitivity: which parameters the plan rests on", 1)[1].split("</table>", 1)[0]
    assert "<td>gamma[code]</td>" in html_section and "<td>E[code]</td>" not in html_section


def test_sensitivity_rows_in_the_csv_cover_every_parameter_with_its_information():
    doc = _with_sensitivity(make_result(decision="nominal"))
    rows = [r for r in csv.DictReader(io.StringIO(render_csv(doc))) if r["section"] == "sensitivity"]
    params = {r["quantity"].split(":")[0] for r in rows}
    assert params == {"alpha", "C[code]", "A", "beta", "gamma[code]", "E[code]", "B[math]"}
    alpha = {r["quantity"]: r for r in rows if r["quantity"].startswith("alpha:")}
    assert float(alpha["alpha: model_size (relative)"]["value"]) == pytest.approx(-0.35)
    assert float(alpha["alpha: objective"]["value"]) == pytest.approx(0.01)
    assert alpha["alpha: spec_tokens[code] (relative)"]["domain"] == "code"
    assert "information from N = 1e+09, with D': 90.0 %; N = 2e+07, no D': 10.0 %" in alpha["alpha: model_size (relative)"]["note"]


def test_console_multipliers_are_marked_beyond_the_fitted_range_as_in_the_reports():
    """planner run's plan lines print a baseline's compute multiplier as the reports do: a plain figure inside
    10x the largest fitted compute, marked beyond it and no figure above 100x there (it printed 21451.652)."""
    from planner.allocate.model import Allocation
    from planner.report.render import _fitted_compute, _law, console_multiplier

    doc = make_result()
    fitted, budget = _fitted_compute(_law(doc)), doc["budget"]
    fmt = console_multiplier(doc)
    inside = 0.5 * 10 * fitted / budget  # m x budget below 10x the fitted compute
    if inside > 1:
        assert "beyond" not in fmt(inside)
    assert fmt(21451.652) == "> 100x (beyond the fitted range)"
    assert fmt(float("inf")) == "> 100x (beyond the fitted range)"
    lines = Allocation.from_dict(doc).summary(multiplier=fmt)
    assert all("beyond the fitted range" in ln or "compute multiplier" not in ln for ln in lines.splitlines())
