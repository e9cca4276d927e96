"""Renderers of the allocation report: Markdown, CSV and a self-contained HTML page.

Each takes the result document (the dict written as ``allocation.json``, see
:func:`planner.report.build_result`) and returns text; none writes files.
"""

from __future__ import annotations

import csv
import html
import io
import math
from typing import Any, Mapping, Sequence

import numpy as np

from ..constants import SOLUTION_PRESENT

__all__ = ["render_markdown", "render_csv", "render_html", "fmt_count", "fmt_flops", "CSV_COLUMNS", "csv_cell", "md_text"]


# --------------------------------------------------------------------------- formatting
def fmt_count(x: Any, digits: int = 3) -> str:
    """12_300_000_000 -> "12.3B" (K, M, B, T, P)."""
    if x is None:
        return "–"
    x = float(x)
    if not math.isfinite(x):
        return "∞" if x > 0 else "–"
    if x == 0:
        return "0"
    x = float(f"{x:.{digits}g}")  # round first, so 999.99e9 becomes 1T, not 1e+03B
    for suffix, scale in (("P", 1e15), ("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.{digits}g}{suffix}"
    return f"{x:.{digits}g}"


def fmt_flops(x: Any) -> str:
    if x is None:
        return "–"
    x = float(x)
    return f"{x:.3g}" if math.isfinite(x) else "–"


def fmt_loss(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    x = float(x)
    return f"{x:.{digits}f}" if math.isfinite(x) else "–"


def fmt_pct(x: Any, digits: int = 1) -> str:
    if x is None:
        return "–"
    x = float(x)
    return f"{100 * x:.{digits}f}%" if math.isfinite(x) else "–"


def fmt_mult(x: Any) -> str:
    if x is None:
        return "∞ (never reaches the plan)"
    x = float(x)
    return f"{x:.2f}×" if math.isfinite(x) else "∞"


def objective_label(r: Mapping[str, Any]) -> str:
    """What the objective is: weighted loss, or weighted downstream error (``mode == "min-error"``)."""
    return "objective Σ w_k Err_k (downstream error)" if r.get("mode") == "min-error" else "objective Σ w_k L_k"


def _interval(d: Mapping[str, Any]) -> str:
    iv = d.get("loss_interval")
    if not iv or iv[0] is None or iv[1] is None:
        return "–"
    kind = d.get("interval_kind")
    return f"[{fmt_loss(iv[0])}, {fmt_loss(iv[1])}]" + (f" ({kind})" if kind else "")


def _law(result: Mapping[str, Any]) -> Mapping[str, Any] | None:
    laws = result.get("laws") or {}
    return next(iter(laws.values()), None)


# --------------------------------------------------------------------------- shared content
def _summary_rows(r: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = [
        ("status", f"{r.get('status', '?')}" + (f" — {r['message']}" if r.get("message") else "")),
        ("budget", f"{fmt_flops(r.get('budget'))} FLOPs"),
        ("model size N", f"{fmt_count(r.get('model_size'))} parameters"),
        ("general pretraining tokens D", f"{fmt_count(r.get('pretrain_tokens'))} tokens"),
    ]
    n, d = r.get("model_size"), r.get("pretrain_tokens")
    if n and d:
        rows.append(("tokens per parameter D/N", f"{float(d) / float(n):.1f}"))
    rows += [
        ("pretraining share of training compute", fmt_pct(r.get("pretrain_fraction"))),
        (objective_label(r), fmt_loss(r.get("objective"), 5)),
        ("certified global optimum", "yes" if r.get("certified") else "no"),
        ("solver path", str(r.get("path") or "–")),
    ]
    mv = r.get("marginal_value")
    if mv is not None:
        rows.append(("marginal value d objective / d log C", f"{float(mv):.4g}"))
    law = _law(r)
    if law:
        rows.append(("law", f"{law.get('form')}: {law.get('equation', '')}"))
    return rows


def _has_error(r: Mapping[str, Any]) -> bool:
    return any(d.get("error") is not None for d in r.get("domains") or [])


def _domain_rows(r: Mapping[str, Any]) -> list[list[str]]:
    out = []
    with_error = _has_error(r)
    for d in r.get("domains") or []:
        row = [
            str(d.get("name")), f"{float(d.get('weight') or 0):g}", fmt_count(d.get("spec_tokens")),
            "yes" if d.get("specialize", (d.get("spec_tokens") or 0) > 0) else "no",
            fmt_loss(d.get("loss")), _interval(d), fmt_loss(d.get("target_loss")) if d.get("target_loss") is not None else "–",
            fmt_flops(d.get("flops")),
        ]
        if with_error:
            row.insert(6, "–" if d.get("error") is None else f"{float(d['error']):.4f}")
        out.append(row)
    return out


DOMAIN_HEADER = ["domain", "weight", "D' (tokens)", "specialize", "predicted loss", "interval", "target", "FLOPs"]


def domain_header(r: Mapping[str, Any]) -> list[str]:
    """The domain table's columns (a "predicted error" column when domains have downstream laws)."""
    header = list(DOMAIN_HEADER)
    if _has_error(r):
        header.insert(6, "predicted error")
    return header


def _phase_rows(r: Mapping[str, Any]) -> list[list[str]]:
    flops = r.get("flops") or {}
    total = sum(float(flops.get(k) or 0.0) for k in ("pretrain", "specialization", "inference")) or None
    rows = []
    for key, label in (("pretrain", "general pretraining"), ("specialization", "specialization (all domains)"), ("inference", "inference")):
        v = flops.get(key)
        if v is None or (key == "inference" and not v):
            continue
        rows.append([label, fmt_flops(v), fmt_pct(float(v) / total) if total else "–"])
    return rows


def _fitted_compute(law: Mapping[str, Any] | None) -> float | None:
    """Largest training compute 6 N (D + D') the law was fitted to (FLOPs), from its calibration or its fit points."""
    if not law:
        return None
    cal = law.get("calibration") or {}
    if cal.get("reference_compute"):
        return float(cal["reference_compute"])
    pts = law.get("points") or {}
    try:
        n, d = pts["model_size"], pts["pretrain_tokens"]
        sp = pts.get("spec_tokens") or [0.0] * len(n)
        held = pts.get("held_out") or [False] * len(n)
        vals = [6.0 * float(a) * (float(b) + float(c or 0.0)) for a, b, c, h in zip(n, d, sp, held) if not h and a is not None and b is not None]
        return max(vals) if vals else None
    except (KeyError, TypeError, ValueError):
        return None


def _mult_text(r: Mapping[str, Any], m: Any) -> str:
    """A compute multiplier, marked (and bounded at 100x) when m x budget is beyond 10x the largest fitted compute."""
    from ..decision.baselines import multiplier_text

    fitted = _fitted_compute(_law(r))
    budget = r.get("budget")
    if m is None:  # JSON null: never reaches the plan (infinite)
        return multiplier_text(math.inf, True).replace("x", "×", 1) if fitted and budget else fmt_mult(m)
    beyond = bool(fitted and budget and math.isfinite(float(m)) and float(m) * float(budget) > 10.0 * fitted)
    if not beyond and math.isfinite(float(m)):
        return fmt_mult(m)
    return multiplier_text(float(m), beyond).replace("x", "×", 1)


def _baseline_rows(r: Mapping[str, Any]) -> list[list[str]]:
    out = []
    for b in r.get("baselines") or []:
        obj = b.get("objective")
        gap = None if obj is None or r.get("objective") is None else float(obj) - float(r["objective"])
        out.append([str(b.get("strategy")), fmt_loss(obj, 5), "–" if gap is None else f"{gap:+.4f}",
                    _mult_text(r, b.get("compute_multiplier")), str(b.get("note") or "")])
    return out


BASELINE_HEADER = ["strategy", "objective", "vs plan", "compute to match the plan", "note"]


def _binding_rows(r: Mapping[str, Any]) -> list[list[str]]:
    out = []
    for c in r.get("binding") or []:
        out.append([str(c.get("name")), str(c.get("kind", "")), f"{c['value']:.4g}" if c.get("value") is not None else "–",
                    f"{c['limit']:.4g}" if c.get("limit") is not None else "–", "**binding**" if c.get("binding") else "slack",
                    fmt_pct(c.get("slack")) if c.get("limit") else "–"])  # relative slack means nothing against a limit of 0
    return out


BINDING_HEADER = ["constraint", "kind", "value", "limit", "binding", "slack"]


def _sweep_rows(r: Mapping[str, Any]) -> list[list[str]]:
    out = []
    for p in r.get("sweep") or []:
        spec = ", ".join(f"{d.get('name')} {fmt_count(d.get('spec_tokens'))}" for d in p.get("domains") or [])
        out.append([fmt_flops(p.get("budget")), fmt_count(p.get("model_size")), fmt_count(p.get("pretrain_tokens")), spec or "–",
                    fmt_pct(p.get("pretrain_fraction")), fmt_loss(p.get("objective"), 5), str(p.get("status"))])
    return out


SWEEP_HEADER = ["budget (FLOPs)", "N", "D", "D' per domain", "pretraining share", "objective", "status"]


def _param_rows(law: Mapping[str, Any]) -> list[list[str]]:
    ivs = law.get("intervals") or {}
    ses = law.get("standard_errors") or {}
    fixed = set(law.get("fixed") or [])
    out = []
    for name, value in (law.get("params") or {}).items():
        iv = ivs.get(name)
        se = ses.get(name)
        out.append([name, f"{float(value):.5g}", "–" if se is None else f"{float(se):.3g}",
                    "–" if not iv else f"[{float(iv[0]):.4g}, {float(iv[1]):.4g}]",
                    "fixed" if name in fixed and law.get("status") != "given" else ""])
    return out


PARAM_HEADER = ["parameter", "value", "std. error", "interval", ""]


def _holdout_text(law: Mapping[str, Any]) -> str | None:
    h = law.get("holdout")
    if not h:
        return None
    are = h.get("are")
    r2 = h.get("r2")
    return (f"held out ({h.get('rule')}): {h.get('n_test', '?')} rows; ARE "
            f"{'–' if are is None else f'{100 * float(are):.2f}%'}, R² {'–' if r2 is None else f'{float(r2):.4f}'}")


def _all_warnings(r: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for w in r.get("warnings") or []:
        out.append((str(w.get("source", "plan")), str(w.get("code", "")), str(w.get("message", ""))))
    return out


# --------------------------------------------------------------------------- Markdown
def md_text(x: Any) -> str:
    """Text for Markdown: HTML escaped (a title or name cannot inject tags), on one line."""
    return html.escape(" ".join(str(x).split()), quote=False)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(s: str) -> str:
        return md_text(s).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _decision_tables(r: Mapping[str, Any]) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """The [uncertainty] analysis (``result["decision"]``) as (title, note, header, rows) tables."""
    d = r.get("decision")
    if not d:
        return []
    pct = int(round(100 * float(d.get("interval_level", 0.9))))
    out = []
    cands = ", ".join(f"{c['name']} ({100 * float(c['weight']):.0f} %)" for c in d.get("candidates", []))
    h = d.get("headline_plan") or {}
    head_note = (f"Headline: the {d.get('headline')} plan ({h.get('label')}); intervals are central {pct} % over "
                 f"{(d.get('ranges') or {}).get('over', 'draws and forms')} ({d.get('n_scenarios')} scenarios). Candidates: {cands}.")
    rows = []
    for p in d.get("plans", []) + [x["plan"] for x in d.get("robust", [])]:
        spec = p.get("spec_tokens") or {}
        rows.append([str(p.get("label")), fmt_count(p.get("model_size")), fmt_count(p.get("pretrain_tokens"))] + [fmt_count(spec.get(k)) for k in spec])
    spec_names = list(((d.get("plans") or [{}])[0].get("spec_tokens") or {}).keys())
    out.append(("Plans under every candidate law", head_note, ["plan", "N", "D"] + [f"D'[{k}]" for k in spec_names], rows))
    g = d.get("regret") or {}
    laws = g.get("laws", [])
    rows = []
    for i, plan in enumerate(g.get("plans", [])):
        cells = [f"{fmt_loss(g['nominal'][i][j])} ({fmt_pct(g['nominal_relative'][i][j], 2)}) / {fmt_loss(g['draws_worst'][i][j])}" for j in range(len(laws))]
        rows.append([str(plan)] + cells + [fmt_loss(g["expected"][i]), fmt_loss(g["worst"][i])])
    out.append(("Cross-regret", "Regret of each plan (rows) under each law (columns): objective of the plan minus the law's optimum, in objective units "
                "(weighted nats/token) and relative, at the point estimate / worst over the law's draws; expected and worst over every scenario.",
                ["plan"] + [f"under {x} (nominal / worst draw)" for x in laws] + ["expected", "worst"], rows))
    rows = [[x["strategy"], fmt_loss(x.get("expected_regret")), fmt_loss(x.get("worst_regret")), "yes" if x.get("certified") else "no", str(x.get("method"))]
            for x in d.get("robust", [])]
    if rows:
        out.append(("Robust plans", "", ["strategy", "expected regret", "worst regret", "certified", "method"], rows))
    rg = d.get("ranges") or {}
    rows = []
    for k, v in (rg.get("rows") or {}).items():
        f = (lambda x: fmt_pct(x)) if k == "pretrain_share" else fmt_count
        rows.append([k, f(v.get("median")), f"[{f(v.get('p_low'))}, {f(v.get('p_high'))}]"])
    out.append(("Decision ranges", f"Optimal plan of every scenario: median and central {pct} % interval over {rg.get('over')}; "
                "pretrain_share = pretraining FLOPs / training FLOPs.", ["quantity", "median", f"{pct} % interval"], rows))
    fb = d.get("flatness")
    if fb:
        rows = [[k, fmt_count(v.get("optimum")), f"[{fmt_count(v.get('low'))}{' (bound)' if v.get('low_at_bound') else ''}, "
                 f"{fmt_count(v.get('high'))}{' (bound)' if v.get('high_at_bound') else ''}]"] for k, v in (fb.get("rows") or {}).items()]
        out.append(("Flatness band", f"Coordinates whose re-optimised {fb.get('objective')} stays within {100 * float(fb.get('epsilon', 0)):g} % of the optimum. "
                    f"Method: {fb.get('method')}.", ["coordinate", "optimum", "band"], rows))
    rows = [[b["strategy"], str(b.get("text", ""))] for b in d.get("baselines", [])]
    if rows:
        out.append(("Baselines against the headline plan", "Gap: baseline objective minus the headline plan's (> 0: the baseline is worse); "
                    "compute multipliers beyond 10x the largest fitted compute are marked, and above 100x not given as a figure.", ["strategy", "gap and compute multiplier"], rows))
    notes = [[n["code"], n["message"]] for n in d.get("notes", [])]
    if notes:
        out.append(("Uncertainty notes", "", ["code", "note"], notes))
    return out



def render_markdown(result: Mapping[str, Any]) -> str:
    """The report as Markdown (for a pull request or a wiki)."""
    r = result
    title = r.get("title") or "Allocation report"
    out = [f"# {md_text(title)}", ""]
    desc = (r.get("scenario") or {}).get("description")
    if desc:
        out += [md_text(desc), ""]
    out += ["## Plan", "", _md_table(["", ""], [[f"**{k}**", v] for k, v in _summary_rows(r)]), ""]
    if r.get("domains"):
        out += ["## Domains", "", _md_table(domain_header(r), _domain_rows(r)), ""]
    if _phase_rows(r):
        out += ["## FLOPs per phase", "", _md_table(["phase", "FLOPs", "share"], _phase_rows(r)), ""]
    if r.get("baselines"):
        out += ["## Against the usual baselines", "",
                "Compute to match the plan: how many times the budget the baseline needs to reach the plan's objective.", "",
                _md_table(BASELINE_HEADER, _baseline_rows(r)), ""]
    if r.get("binding"):
        out += ["## Constraints", "", _md_table(BINDING_HEADER, _binding_rows(r)), ""]
    if r.get("sweep"):
        out += ["## Sweep over budgets", "", _md_table(SWEEP_HEADER, _sweep_rows(r)), ""]
    law = _law(r)
    if law:
        out += ["## Scaling law", "", f"Form `{md_text(law.get('form'))}`: `{md_text(law.get('equation', ''))}` (status {md_text(law.get('status'))}).", ""]
        ho = _holdout_text(law)
        if ho:
            out += [md_text(ho) + ".", ""]
        if law.get("selection"):
            out += ["Form selection by held-out error (ARE):", "",
                    _md_table(["form", "ARE", "note"], [[str(s.get("form")), "–" if s.get("are") is None else f"{100 * float(s['are']):.3f}%", str(s.get("note") or "")] for s in law["selection"]]), ""]
        out += [_md_table(PARAM_HEADER, _param_rows(law)), ""]
    dec = _decision_tables(r)
    if dec:
        out += ["## Decisions under an uncertain law", ""]
        for title_, note, header, rows in dec:
            out += [f"### {md_text(title_)}", ""] + ([md_text(note), ""] if note else []) + [_md_table(header, rows), ""]
    warns = _all_warnings(r)
    if warns:
        out += ["## Warnings", ""] + [f"- **{md_text(src)}/{md_text(code)}**: {md_text(msg)}" for src, code, msg in warns] + [""]
    out += [f"_Generated by planner {md_text(r.get('planner_version', ''))}; schema {md_text(r.get('schema'))}._", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- CSV
CSV_COLUMNS = ["budget", "phase", "domain", "model_size", "tokens", "flops", "loss", "loss_low", "loss_high", "error", "weight", "specialize", "status"]
#: a text cell starting with one of these is read as a formula by spreadsheets
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """One CSV cell: numbers as numbers (``repr`` of the float), text neutralised against formulas.

    A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading
    ``'`` (OWASP's advice for CSV injection), so a domain named ``=cmd|' /C calc'!A0`` stays text.
    """
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        x = float(value)
        return "" if math.isnan(x) else repr(x)
    text = str(value)
    if text.startswith(_FORMULA_START):
        text = "'" + text
    return text.replace("\r\n", "\n").replace("\r", "\n")  # the writer quotes cells with a line break


def render_csv(result: Mapping[str, Any]) -> str:
    """One row per phase and domain (``Allocation.to_frame``), for every budget of a sweep, with budget and status."""
    from ..allocate.model import Allocation

    plans = result.get("sweep") or [result]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for plan in plans:
        frame = Allocation.from_dict(plan).to_frame()
        frame["budget"] = plan.get("budget")
        frame["status"] = plan.get("status")
        for row in frame[CSV_COLUMNS].itertuples(index=False):
            writer.writerow([csv_cell(v) for v in row])
    return buf.getvalue()


# --------------------------------------------------------------------------- HTML
_CSS = """
:root { --fg: #1d2329; --muted: #5f6b76; --line: #d8dee4; --accent: #1f6feb; --bg: #ffffff; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg); background: var(--bg); }
main { max-width: 1080px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
p.lead { color: var(--muted); margin: 0 0 16px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 12px; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.num, th.num { text-align: right; }
table.kv th { width: 38%; background: none; font-weight: 500; color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; margin: 16px 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; background: var(--soft); }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 22px; font-weight: 600; }
.status-ok { color: #1a7f37; } .status-bad { color: #cf222e; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 18px; }
figure.plot { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 10px; background: #fff; }
figure.plot svg { width: 100%; height: auto; display: block; }
figure.plot figcaption { color: var(--muted); font-size: 12.5px; margin-top: 6px; }
figure.plot h3 { font-size: 14px; margin: 0 0 6px; }
.missing { color: var(--muted); font-style: italic; }
ul.warnings li { margin: 2px 0; }
code { background: var(--soft); padding: 1px 4px; border-radius: 4px; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
"""


def _h(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "", numeric: Sequence[int] = ()) -> str:
    num = ' class="num"'
    head = "".join(f"<th{num if i in numeric else ''}>{_h(c)}</th>" for i, c in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f"<td{num if i in numeric else ''}>{_h(str(c).replace('**', ''))}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _kv_table(rows: Sequence[tuple[str, str]]) -> str:
    return '<table class="kv"><tbody>' + "".join(f"<tr><th>{_h(k)}</th><td>{_h(v)}</td></tr>" for k, v in rows) + "</tbody></table>"


def render_html(result: Mapping[str, Any], plots: Mapping[str, str | None]) -> str:
    """ONE self-contained page: summary, a table per domain, the plots as inline SVG. No network requests."""
    from .plots import PLOTS

    r = result
    title = r.get("title") or "Allocation report"
    ok = str(r.get("status", "")).lower() in SOLUTION_PRESENT
    cards = [
        ("status", str(r.get("status", "?")), "status-ok" if ok else "status-bad"),
        ("budget", f"{fmt_flops(r.get('budget'))} FLOPs", ""),
        ("model size N", fmt_count(r.get("model_size")), ""),
        ("pretraining D", f"{fmt_count(r.get('pretrain_tokens'))} tokens", ""),
        ("pretraining share", fmt_pct(r.get("pretrain_fraction")), ""),
        ("objective", fmt_loss(r.get("objective"), 4), ""),
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # forbid every network request: the page must stand alone
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:\">",
        f"<title>{_h(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head><body><main>",
        f"<h1>{_h(title)}</h1>",
    ]
    desc = (r.get("scenario") or {}).get("description")
    parts.append(f'<p class="lead">{_h(desc)}</p>' if desc else f'<p class="lead">Allocation plan, schema {_h(r.get("schema"))}</p>')
    if r.get("message") and not ok:
        parts.append(f'<p class="status-bad">{_h(r.get("message"))}</p>')
    parts.append('<section id="summary"><div class="cards">' + "".join(
        f'<div class="card"><div class="label">{_h(k)}</div><div class="value {c}">{_h(v)}</div></div>' for k, v, c in cards) + "</div>")
    parts.append(_kv_table(_summary_rows(r)) + "</section>")
    if r.get("domains"):
        parts.append('<section id="domains"><h2>Domains</h2>' + _html_table(domain_header(r), _domain_rows(r), "domains", numeric=(1, 2, 4, 6, 7, 8) if _has_error(r) else (1, 2, 4, 6, 7)) + "</section>")
    if _phase_rows(r):
        parts.append('<section id="phases"><h2>FLOPs per phase</h2>' + _html_table(["phase", "FLOPs", "share"], _phase_rows(r), numeric=(1, 2)) + "</section>")
    if r.get("baselines"):
        parts.append('<section id="baselines"><h2>Against the usual baselines</h2>'
                     "<p>Compute to match the plan: how many times the budget each baseline needs to reach the plan's objective.</p>"
                     + _html_table(BASELINE_HEADER, _baseline_rows(r), numeric=(1, 2, 3)) + "</section>")
    if r.get("binding"):
        parts.append('<section id="constraints"><h2>Constraints</h2>' + _html_table(BINDING_HEADER, _binding_rows(r), numeric=(2, 3, 5)) + "</section>")
    if r.get("sweep"):
        parts.append('<section id="sweep"><h2>Sweep over budgets</h2>' + _html_table(SWEEP_HEADER, _sweep_rows(r), numeric=(0, 1, 2, 4, 5)) + "</section>")
    parts.append('<section id="plots"><h2>Plots</h2><div class="plots">')
    for plot_id, (plot_title, caption) in PLOTS.items():
        svg = plots.get(plot_id)
        if svg:
            parts.append(f'<figure class="plot" id="{plot_id}"><h3>{_h(plot_title)}</h3>{svg}<figcaption>{_h(caption)}</figcaption></figure>')
        else:
            parts.append(f'<figure class="plot-missing" id="{plot_id}-missing"><h3>{_h(plot_title)}</h3>'
                         f'<p class="missing">Not available: the result has no data for this plot (e.g. a law given by parameters has no fit points).</p></figure>')
    parts.append("</div></section>")
    law = _law(r)
    if law:
        parts.append('<section id="law"><h2>Scaling law</h2>')
        parts.append(f"<p>Form <code>{_h(law.get('form'))}</code>: <code>{_h(law.get('equation', ''))}</code> (status {_h(law.get('status'))}).</p>")
        ho = _holdout_text(law)
        if ho:
            parts.append(f"<p>{_h(ho)}.</p>")
        if law.get("selection"):
            parts.append("<p>Form selection by held-out error (ARE):</p>" + _html_table(
                ["form", "ARE", "note"],
                [[str(s.get("form")), "–" if s.get("are") is None else f"{100 * float(s['are']):.3f}%", str(s.get("note") or "")] for s in law["selection"]],
                numeric=(1,)))
        parts.append(_html_table(PARAM_HEADER, _param_rows(law), "params", numeric=(1, 2)) + "</section>")
    dec = _decision_tables(r)
    if dec:
        parts.append('<section id="uncertainty"><h2>Decisions under an uncertain law</h2>' + "".join(
            f"<h3>{_h(t)}</h3>" + (f"<p>{_h(n)}</p>" if n else "") + _html_table(hd, rows) for t, n, hd, rows in dec) + "</section>")
    warns = _all_warnings(r)
    if warns:
        parts.append('<section id="warnings"><h2>Warnings</h2><ul class="warnings">' + "".join(
            f"<li><strong>{_h(src)}/{_h(code)}</strong>: {_h(msg)}</li>" for src, code, msg in warns) + "</ul></section>")
    parts.append(f"<footer>Generated by planner {_h(r.get('planner_version', ''))} — schema {_h(r.get('schema'))}. "
                 "Self-contained page: no external resources.</footer>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"
