"""Reports from a hand-made result document: Markdown, CSV, self-contained HTML with inline SVG
plots, atomic writing, re-reading a result."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

import planner.report as report
from planner.report import REPORT_FILES, ReportError, load_result, render, write_reports
from planner.report import plots
from planner.report.render import fmt_count, render_csv, render_html, render_markdown
from test_report_fixtures import make_law, make_law_dict, make_result

PLOT_IDS = ["plot-compute", "plot-flops", "plot-dprime", "plot-plans", "plot-fit-parity", "plot-fit-residuals", "plot-form-residuals", "plot-isoloss"]
EXTERNAL = re.compile(r"""(?:src|href|xlink:href|action|poster|data)\s*=\s*["']?\s*(?:https?:|//|ftp:)|url\(\s*["']?\s*(?:https?:|//)|@import""", re.I)


@pytest.fixture(scope="module")
def result() -> dict:
    return make_result(sweep=True, decision="robust-worst")


@pytest.fixture(scope="module")
def html_page(result) -> str:
    return render(result, ["html"])["report.html"]


# --------------------------------------------------------------------------- formatting
@pytest.mark.parametrize("value, text", [(3.5e9, "3.5B"), (1.2e12, "1.2T"), (999.99e9, "1T"), (2.5e7, "25M"), (0, "0"), (None, "–"), (float("inf"), "∞")])
def test_fmt_count(value, text):
    assert fmt_count(value) == text


# --------------------------------------------------------------------------- markdown and csv
def test_markdown_has_every_section(result):
    md = render_markdown(result)
    for heading in ("# Fixture plan", "## Plan", "## Domains", "## FLOPs per phase", "## Against the usual baselines",
                    "## Constraints", "## Sweep over budgets", "## Scaling law", "## Warnings"):
        assert heading in md, heading
    # the headline is the robust-worst plan (N x 0.8, D / 0.8, D' x 0.8): its columns beside the nominal plan's
    assert "| code | 2 | 96B | 120B | yes / yes |" in md and "| 1.6200 | [1.6000, 1.6500] |" in md
    nominal = render_markdown(make_result(sweep=True))
    assert "| code | 2 | 120B | yes | 1.6200 | [1.6000, 1.6500] |" in nominal
    # the fixture law was fitted up to 4.1e19 FLOPs: at 1e22 every multiplier is beyond its range (docs/decisions.md)
    assert "| no-split | 7.55000 | +0.1300 | 2.4× (beyond the fitted range) |" in nominal
    assert "| ≤ 2.4× (beyond the fitted range) | 2.4× (beyond the fitted range) |" in md
    assert "held out (auto): 27 rows; ARE 0.81%" in md
    assert "**law/few-model-sizes**" in md and "**plan/spec-floor**" in md


def test_markdown_of_infeasible_plan():
    md = render_markdown(make_result(status="infeasible"))
    assert "infeasible — max_model_size and min_tokens_per_param conflict" in md


def test_csv_one_row_per_phase_and_domain(result):
    rows = [r for r in csv.DictReader(io.StringIO(render_csv(result))) if r["section"] == "plan" and r["plan"] == "nominal"]
    assert len(rows) == 3 * 4  # three budgets x (pretrain + three domains); then the headline plan's rows and the decision's
    assert [r["phase"] for r in rows[:4]] == ["pretrain", "specialize", "specialize", "specialize"]
    assert rows[1]["domain"] == "code" and float(rows[1]["tokens"]) == 1.2e11 and float(rows[1]["loss_low"]) == 1.6
    assert {float(r["budget"]) for r in rows} == {1e21, 1e22, 1e23}
    single = list(csv.DictReader(io.StringIO(render_csv(make_result(sweep=False)))))
    assert len(single) == 4 and {float(r["budget"]) for r in single} == {1e22}


def test_csv_inference_row():
    doc = make_result()
    doc["flops"]["inference"] = 4e21
    rows = list(csv.DictReader(io.StringIO(render_csv(doc))))
    assert rows[-1]["phase"] == "inference" and float(rows[-1]["tokens"]) == pytest.approx(4e21 / (2 * doc["model_size"]))
    assert rows[-1]["domain"] == "all domains (serving)"  # not a domain named "all"


# --------------------------------------------------------------------------- html
def test_html_has_every_plot_inline(html_page):
    for plot_id in PLOT_IDS:
        m = re.search(rf'<figure class="plot(?: wide)?" id="{plot_id}">(.*?)</figure>', html_page, re.S)
        assert m, plot_id
        assert "<svg" in m.group(1) and "</svg>" in m.group(1)
    assert len(re.findall(r'<figure class="plot(?: wide)?"', html_page)) == len(PLOT_IDS)
    assert "<?xml" not in html_page and "<!DOCTYPE svg" not in html_page


def test_html_is_self_contained(html_page):
    assert not EXTERNAL.findall(html_page)
    assert "<script" not in html_page and "<link" not in html_page and "<img" not in html_page
    assert "default-src 'none'" in html_page  # the browser refuses any request the page might make


def test_html_ids_referenced_by_svg_are_unique(html_page):
    ids = re.findall(r'\sid="([^"]+)"', html_page)
    referenced = set(re.findall(r'url\(#([^)]+)\)', html_page)) | set(re.findall(r'href="#([^"]+)"', html_page))
    assert referenced
    for ref in referenced:
        assert ids.count(ref) == 1, ref


def test_html_summary_and_tables(html_page):
    assert "<h1>Fixture plan</h1>" in html_page
    assert 'id="domains"' in html_page and "<td>biomedical</td>" in html_page
    assert 'id="baselines"' in html_page and 'id="sweep"' in html_page and 'id="law"' in html_page
    assert "Fit quality" in html_page and "Iso-loss" in html_page


def test_html_without_fit_points_marks_missing_plots():
    doc = make_result(with_points=False)
    page = render(doc, ["html"])["report.html"]
    # compute, FLOPs, iso-loss, and loss against D' (the law's curves, without runs)
    assert len(re.findall(r'<figure class="plot(?: wide)?"', page)) == 4
    assert 'id="plot-fit-parity-missing"' in page and 'id="plot-fit-residuals-missing"' in page
    assert 'id="plot-form-residuals-missing"' in page and 'id="plot-plans-missing"' in page


def test_html_escapes_text():
    doc = make_result()
    doc["title"] = "<script>alert(1)</script>"
    page = render_html(doc, {})
    assert "<script>" not in page and "&lt;script&gt;" in page


# --------------------------------------------------------------------------- plots
@pytest.mark.slow
def test_plot_functions(result):
    law = make_law()
    svgs = plots.render_plots(result, {"law": law})
    assert set(svgs) == set(PLOT_IDS)
    for plot_id, svg in svgs.items():
        assert svg and svg.startswith("<svg") and svg.rstrip().endswith("</svg>"), plot_id
    assert plots.objective_vs_compute({"curve": []}) is None
    assert plots.fit_parity(make_law_dict(with_points=False)) is None
    assert plots.isoloss_contours(result, None) is None


# --------------------------------------------------------------------------- writing
@pytest.mark.slow
def test_write_reports_every_format(result, tmp_path):
    written = write_reports(result, tmp_path / "out")
    assert [p.name for p in written] == list(REPORT_FILES.values())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(REPORT_FILES.values())  # no temp files left
    again = load_result(tmp_path / "out" / "allocation.json")
    assert again == json.loads(json.dumps(result))


def test_write_reports_rejects_unknown_format(result, tmp_path):
    with pytest.raises(ReportError, match="unknown report format 'pdf'"):
        write_reports(result, tmp_path / "out", ["md", "pdf"])
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_failed_renderer_leaves_no_file(result, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("renderer failed mid-way")

    monkeypatch.setattr(report.writing, "render_html", broken)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="mid-way"):
        write_reports(result, out)
    assert not out.exists()
    # into an existing folder: nothing written, nothing half written, the old files untouched
    out.mkdir()
    (out / "report.md").write_text("old report")
    with pytest.raises(RuntimeError):
        write_reports(result, out)
    assert sorted(p.name for p in out.iterdir()) == ["report.md"]
    assert (out / "report.md").read_text() == "old report"


@pytest.mark.slow
def test_failure_while_writing_files_leaves_no_file(result, tmp_path, monkeypatch):
    import os

    calls = {"n": 0}
    real_fsync = os.fsync

    def failing_fsync(fd):
        calls["n"] += 1
        if calls["n"] == 3:  # the third file: two are already written to the temp folder
            raise OSError(28, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(report.writing.os, "fsync", failing_fsync)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(OSError, match="No space left"):
        write_reports(result, out)
    assert list(out.iterdir()) == []


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else None


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "two-renames"])
def test_a_failure_at_any_step_leaves_the_old_set_or_the_new_set(result, tmp_path, monkeypatch, exchange):
    """Fail the k-th file-system operation of a write, for every k: the folder holds the complete old set
    or the complete new set, and no temporary folder is left beside it."""
    import os
    import shutil
    import tempfile

    from planner.report import writing

    formats = ["json", "md", "csv"]
    out = tmp_path / "out"
    old_doc = make_result(sweep=False)
    write_reports(old_doc, out, formats)
    (out / "notes.txt").write_text("a file of the user's, carried over")
    old = _snapshot(out)
    new = {**{name: text.encode() for name, text in render(result, formats).items()}, "notes.txt": old["notes.txt"]}
    assert new != old
    if not exchange:
        monkeypatch.setattr(writing, "_exchange", lambda a, b: False)
    state = {"calls": 0, "fail_at": 0}

    def failing(module, name):
        real = getattr(module, name)

        def op(*args, **kwargs):
            state["calls"] += 1
            if state["calls"] == state["fail_at"]:
                # alternate between an I/O error and an interrupt (what SIGINT raises; SIGTERM raises SystemExit)
                raise KeyboardInterrupt() if state["fail_at"] % 2 else OSError(5, "simulated failure")
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, op)

    for module, name in [(os, "link"), (shutil, "copy2"), (os, "fsync"), (os, "rename"), (tempfile, "mkdtemp"), (writing, "_exchange")]:
        failing(module, name)
    outcomes = []
    for k in range(1, 60):
        state.update(calls=0, fail_at=k)
        try:
            write_reports(result, out, formats)
            outcomes.append("done")
        except (OSError, KeyboardInterrupt):
            outcomes.append("failed")
        now = _snapshot(out)
        assert now in (old, new), f"mixed set after failing operation {k}"
        assert [p.name for p in tmp_path.iterdir() if p.name != "out"] == [], f"temporary folder left after operation {k}"
        if outcomes[-1] == "done" and state["calls"] < k:
            break  # every operation of a whole write has been failed once
        if now == new:  # start the next attempt from the old set again
            state["fail_at"] = 0
            shutil.rmtree(out)
            write_reports(old_doc, out, formats)
            (out / "notes.txt").write_text("a file of the user's, carried over")
    assert outcomes[-1] == "done" and outcomes.count("failed") >= 5


def test_sigterm_while_writing_leaves_the_old_set_and_no_temporary_folder(result, tmp_path, monkeypatch):
    import os
    import signal

    from planner.report import writing

    out = tmp_path / "out"
    write_reports(make_result(sweep=False), out, ["json", "md"])
    old = _snapshot(out)
    handler_before = signal.getsignal(signal.SIGTERM)
    real_write = writing._write_file
    calls = {"n": 0}

    def write_then_terminate(path, text):
        calls["n"] += 1
        real_write(path, text)
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler installed while writing raises SystemExit

    monkeypatch.setattr(writing, "_write_file", write_then_terminate)
    with pytest.raises(SystemExit) as info:
        write_reports(result, out, ["json", "md", "csv"])
    assert info.value.code == 128 + signal.SIGTERM
    assert _snapshot(out) == old
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert signal.getsignal(signal.SIGTERM) == handler_before  # the handler is restored


def test_write_reports_refuses_a_folder_of_folders_and_the_current_folder(result, tmp_path, monkeypatch):
    (tmp_path / "project" / "src").mkdir(parents=True)
    with pytest.raises(ReportError, match="holds a folder"):
        write_reports(result, tmp_path / "project", ["md"])
    monkeypatch.chdir(tmp_path / "project")
    with pytest.raises(ReportError, match="current folder"):
        write_reports(result, ".", ["md"])
    assert sorted(p.name for p in (tmp_path / "project").iterdir()) == ["src"]


def test_csv_is_the_allocations_own_frame_and_neutralises_formulas():
    from planner.allocate import Allocation

    doc = make_result()
    doc["domains"][0]["name"] = "=cmd|' /C calc'!A0"
    doc["spec_tokens"] = {d["name"]: d["spec_tokens"] for d in doc["domains"]}
    rows = list(csv.reader(io.StringIO(render_csv(doc))))
    frame = Allocation.from_dict(doc).to_frame()
    assert len(rows) == 1 + len(frame)
    assert rows[2][2] == "'=cmd|' /C calc'!A0"  # text, not a formula
    assert [float(r[4]) for r in rows[1:]] == pytest.approx(list(frame["tokens"]))
    for name in ("+1", "-x", "@SUM(A1)", "\tx", "\rx"):
        doc["domains"][0]["name"] = name
        assert list(csv.reader(io.StringIO(render_csv(doc), newline="")))[2][2] == "'" + name.replace("\r", "\n")
    doc["domains"][0]["loss"] = -0.5  # a negative number stays a number
    assert list(csv.reader(io.StringIO(render_csv(doc))))[2][6] == "-0.5"


def test_markdown_escapes_html():
    doc = make_result()
    doc["title"] = "<script>alert(1)</script>"
    doc["domains"][0]["name"] = "<img src=x onerror=alert(1)>"
    md = render_markdown(doc)
    assert "<script>" not in md and "<img" not in md
    assert "&lt;script&gt;" in md and "&lt;img src=x onerror=alert(1)&gt;" in md


def test_dollar_signs_in_names_are_plain_text_in_plots():
    doc = make_result(sweep=True)
    doc["domains"][0]["name"] = "$x^$ \\frac{"
    page = render(doc, ["html"])["report.html"]  # mathtext would fail to parse this label
    assert 'id="plot-flops"' in page and 'id="plot-fit-parity"' in page
    assert "$x^$" in page  # drawn as text


def test_load_result_errors(tmp_path):
    with pytest.raises(ReportError, match="result file not found"):
        load_result(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ReportError, match="not a planner result"):
        load_result(bad)


def test_result_reloads_through_the_allocator():
    from planner.allocate import Allocation

    doc = json.loads(json.dumps(make_result()))
    plan = Allocation.from_dict(doc)
    assert plan.domain("code").spec_tokens == 1.2e11
    assert plan.baseline("fixed").compute_multiplier == 1.3


def test_infeasible_plan_renders_without_plan_plots(tmp_path):
    doc = make_result(status="infeasible")
    for key in ("model_size", "pretrain_tokens", "objective", "pretrain_fraction"):
        doc[key] = None
    doc["flops"] = {}
    doc["domains"] = [{**d, "spec_tokens": None, "loss": None, "flops": None} for d in doc["domains"]]
    doc["curve"] = [{**c, "objective": None} for c in doc["curve"]]
    written = write_reports(json.loads(json.dumps(doc)), tmp_path / "out")
    page = (tmp_path / "out" / "report.html").read_text()
    assert 'class="value status-bad">infeasible' in page
    assert 'id="plot-isoloss-missing"' in page and 'id="plot-fit-parity"' in page
    assert len(written) == 4
