"""Renderers of the allocation report: Markdown, CSV and a self-contained HTML page.

Each takes the result document (the dict written as ``allocation.json``, see
:func:`planner.report.build_result`) and returns text; none writes files.
"""

from __future__ import annotations

import csv
import html
import io
import math
import re
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..constants import SOLUTION_PRESENT
from .curves import plan_rows
from .formatting import fmt_count

__all__ = ["render_markdown", "render_csv", "render_html", "console_headline_lines", "fmt_count", "fmt_flops", "CSV_COLUMNS", "csv_cell",
           "md_text"]


# --------------------------------------------------------------------------- formatting
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


def fmt_gap(x: Any) -> str:
    """An objective difference with its sign: 4 decimals, or 3 significant digits below 1e-3 (a gap of 2.4e-05 is not "+0.0000")."""
    if x is None:
        return "–"
    x = float(x)
    if not math.isfinite(x):
        return "–"
    return f"{x:+.3g}" if 0 < abs(x) < 1e-3 else f"{x:+.4f}"


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
def headline(r: Mapping[str, Any]) -> dict[str, Any]:
    """The document's ``headline`` block, recomputed from the document (the same for a fresh result; a file
    written before the block existed, or edited by hand, renders from its plan and decision)."""
    from .document import headline_block

    return headline_block(r)


def console_headline_lines(doc: Mapping[str, Any]) -> list[str]:
    """The console's first lines: which plan is the headline, its N, D, D'_k with ranges, the interval level and, for a
    robust headline, its losses, FLOPs and baseline gaps beside the nominal plan's (``doc["headline"]``, as
    :func:`.document.headline_document` writes it)."""
    h = doc.get("headline") or {}
    if not h or h.get("model_size") is None:
        return []
    iv = h.get("intervals") or {}
    level = h.get("interval_level")

    def val(key: str, x: Any) -> str:
        r = iv.get(key)
        return f"{float(x):.4g}" + (f" [{float(r[0]):.3g}, {float(r[1]):.3g}]" if r and None not in r else "")

    head = f"headline: the {h.get('plan')} plan ({h.get('label')}): {h.get('meaning')}"
    lvl = (f"intervals: central {100 * float(level):g} % over {h.get('interval_over')}" if level is not None and iv
           else f"intervals: {h.get('interval_over')}")
    lines = [head, "  " + lvl]
    if isinstance(h["model_size"], Mapping):
        lines.append("  N and D per domain (separate models): see the decision tables")
    else:
        lines.append(f"  N = {val('model_size', h['model_size'])} params, D = {val('pretrain_tokens', h['pretrain_tokens'])} tokens")
    spec = h.get("spec_tokens") or {}
    if spec:
        lines.append("  " + ", ".join(f"D'[{k}] = {val(f'spec_tokens[{k}]', v)}" for k, v in spec.items()))
    share = h.get("pretrain_share_of_compute")
    if share is not None:
        r = iv.get("pretrain_share")
        lines.append(f"  pretraining share of training compute (inference excluded) {100 * float(share):.1f} %"
                     + (f" [{100 * float(r[0]):.1f} %, {100 * float(r[1]):.1f} %]" if r and None not in r else ""))
    if h.get("objective") is not None:
        lines.append(f"  objective {float(h['objective']):.6g} under {h.get('objective_under')}"
                     + (f"; expected over every scenario {float(h['expected_objective']):.6g}" if h.get("expected_objective") is not None else ""))
    t = h.get("tables") or {}
    if not h.get("is_nominal", True) and t.get("available"):
        nominal = {str(d.get("name")): d for d in doc.get("domains") or []}
        lines.append(f"  under the {t.get('law')} point estimate (the nominal plan's law), headline | nominal:")
        for d in t.get("domains") or []:
            nd = nominal.get(str(d.get("name")), {})
            lines.append(f"    {str(d.get('name')):<12} D' = {fmt_count(d.get('spec_tokens'))} | {fmt_count(nd.get('spec_tokens'))}"
                         f"  loss {fmt_loss(d.get('loss'))} | {fmt_loss(nd.get('loss'))}  FLOPs {fmt_flops(d.get('flops'))} | {fmt_flops(nd.get('flops'))}")
        fl, nf = t.get("flops") or {}, doc.get("flops") or {}
        lines.append(f"    FLOPs: pretraining {fmt_flops(fl.get('pretrain'))} | {fmt_flops(nf.get('pretrain'))}, specialization "
                     f"{fmt_flops(fl.get('specialization'))} | {fmt_flops(nf.get('specialization'))}"
                     + (f", inference {fmt_flops(fl.get('inference'))} | {fmt_flops(nf.get('inference'))}" if fl.get("inference") or nf.get("inference") else ""))
        for b in t.get("baselines") or []:
            m = b.get("compute_multiplier_to_nominal")
            bound = _bound_text(doc, m)
            lines.append(f"    vs {str(b.get('strategy')):<9} objective {fmt_loss(b.get('objective'), 5)}  gap {fmt_gap(b.get('gap'))} | "
                         f"{fmt_gap(b.get('gap_to_nominal'))}  compute to match {bound} | {_mult_text(doc, m)}")
    return lines


def _with_range(text: str, iv: Any, f: Any) -> str:
    if not iv or len(iv) != 2 or iv[0] is None or iv[1] is None:
        return text
    return f"{text} [{f(iv[0])}, {f(iv[1])}]"


def marginal_text(r: Mapping[str, Any]) -> str | None:
    """The marginal value with its units: objective units per e-fold of compute, per doubling and per 1e18 FLOPs."""
    mv, budget = r.get("marginal_value"), r.get("budget")
    if mv is None:
        return None
    mv = float(mv)
    unit = "weighted error" if r.get("mode") == "min-error" else "weighted nats/token"
    out = f"{mv:.4g} {unit} per e-fold of compute ({mv * math.log(2):.4g} per doubling of the budget"
    if budget:
        out += f"; {mv / float(budget) * 1e18:.3g} per 1e18 FLOPs at this budget"
    return out + ")"


def headline_note(r: Mapping[str, Any]) -> str:
    """One sentence: which plan is the headline and the interval level (every output states both)."""
    h = headline(r)
    level = h.get("interval_level")
    iv = (f"intervals are central {100 * float(level):g} % over {h.get('interval_over')}" if level is not None and h.get("intervals")
          else f"intervals: {h.get('interval_over')}")
    return f"Headline: the {h.get('plan')} plan ({h.get('label')}), {h.get('meaning')}; {iv}."


def _summary_rows(r: Mapping[str, Any]) -> list[tuple[str, str]]:
    h = headline(r)
    iv = h.get("intervals") or {}
    rows = [
        ("status", f"{r.get('status', '?')}" + (f" — {r['message']}" if r.get("message") else "")),
        ("budget", f"{fmt_flops(r.get('budget'))} FLOPs"),
        ("headline plan", f"{h.get('plan')}: {h.get('label')} ({h.get('meaning')})"),
        ("intervals", (f"central {100 * float(h['interval_level']):g} % over {h.get('interval_over')}"
                       if h.get("interval_level") is not None and iv else str(h.get("interval_over")))),
        ("model size N", _with_range(f"{fmt_count(h.get('model_size'))} parameters", iv.get("model_size"), fmt_count)),
        ("general pretraining tokens D", _with_range(f"{fmt_count(h.get('pretrain_tokens'))} tokens", iv.get("pretrain_tokens"), fmt_count)),
    ]
    for name, v in (h.get("spec_tokens") or {}).items():
        rows.append((f"specialization tokens D'[{name}]", _with_range(f"{fmt_count(v)} tokens", iv.get(f"spec_tokens[{name}]"), fmt_count)))
    n, d = h.get("model_size"), h.get("pretrain_tokens")
    if n and d and not isinstance(n, Mapping):
        rows.append(("tokens per parameter D/N", f"{float(d) / float(n):.1f}"))
    if h.get("spec_tokens"):
        rows.append(("pretraining share of training tokens D / (D + Σ D')", fmt_pct(h.get("pretrain_share_of_tokens"))))
    rows.append(("pretraining share of training compute (inference excluded)",
                 _with_range(fmt_pct(h.get("pretrain_share_of_compute")), iv.get("pretrain_share"), fmt_pct)))
    rows.append((f"{objective_label(r)} under {h.get('objective_under')}", fmt_loss(h.get("objective"), 5)))
    if h.get("expected_objective") is not None:
        rows.append((f"{objective_label(r)}, expected over every scenario", fmt_loss(h.get("expected_objective"), 5)))
    if not h.get("is_nominal", True):
        rows.append(("nominal plan (beside the headline in the tables below)",
                     f"optimal under the point estimate: N = {fmt_count(r.get('model_size'))}, D = {fmt_count(r.get('pretrain_tokens'))}, "
                     + ", ".join(f"D'[{dd.get('name')}] = {fmt_count(dd.get('spec_tokens'))}" for dd in r.get("domains") or [])
                     + f"; objective {fmt_loss(r.get('objective'), 5)}"))
    rows += [
        ("certified global optimum" + ("" if h.get("is_nominal", True) else " (nominal plan)"), "yes" if r.get("certified") else "no"),
        ("solver path" + ("" if h.get("is_nominal", True) else " (nominal plan)"), str(r.get("path") or "–")),
    ]
    mv = marginal_text(r)
    if mv is not None:
        rows.append(("marginal value d objective / d ln C" + ("" if h.get("is_nominal", True) else " (nominal plan)"), mv))
    law = _law(r)
    if law:
        rows.append(("law", f"{law.get('form')}: {law.get('equation', '')}"))
    return rows


def _nominal_note(r: Mapping[str, Any], ht: Mapping[str, Any] | None = None) -> str:
    """Said above the detail tables when the headline is another plan than the nominal one."""
    h = headline(r)
    if h.get("is_nominal", True):
        return ""
    if ht is not None and not ht.get("available", True):
        return (f"These tables detail the nominal plan (optimal under the law's point estimate), not the headline {h.get('plan')} plan "
                f"summarised above ({ht.get('reason')}); the headline plan's N, D and D'_k are in the Plan section and in the decision tables.")
    law = (ht or {}).get("law") or "the law"
    return (f"The headline {h.get('plan')} plan beside the nominal plan (optimal under the {law} point estimate): the headline plan's "
            f"losses, FLOPs and gaps are evaluated under the same law ({law}, point estimate) as the nominal plan's. "
            "The constraints and sweep tables detail the nominal plan.")


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


def _head_tables(r: Mapping[str, Any], laws: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """:func:`.document.headline_tables` when the headline is a robust plan that can be evaluated; else None (nominal tables)."""
    if headline(r).get("is_nominal", True):
        return None
    from .document import headline_tables

    ht = headline_tables(r, laws)
    return ht if ht.get("available") else None


def domain_table(r: Mapping[str, Any], ht: Mapping[str, Any] | None = None) -> tuple[list[str], list[list[str]], tuple[int, ...]]:
    """The Domains table (header, rows, numeric columns): the nominal plan's, or with a robust headline
    (``ht``: :func:`.document.headline_tables`) the headline plan's columns beside the nominal plan's."""
    if ht is None:
        return domain_header(r), _domain_rows(r), (1, 2, 4, 6, 7, 8) if _has_error(r) else (1, 2, 4, 6, 7)
    plan = ht.get("plan")
    nominal = {str(d.get("name")): d for d in r.get("domains") or []}
    with_error = _has_error(r)
    header = ["domain", "weight", f"D' (tokens), headline ({plan})", "D', nominal", "specialize (headline / nominal)",
              "predicted loss, headline", "interval, headline", "predicted loss, nominal", "interval, nominal"]
    header += ["predicted error, nominal"] if with_error else []
    with_target = any(d.get("target_loss") is not None for d in list(ht.get("domains") or []) + list(nominal.values()))
    header += (["target"] if with_target else []) + ["FLOPs, headline", "FLOPs, nominal"]
    yes = lambda d: "yes" if d.get("specialize", (d.get("spec_tokens") or 0) > 0) else "no"  # noqa: E731
    rows = []
    for d in ht.get("domains") or []:
        nd = nominal.get(str(d.get("name")), {})
        row = [str(d.get("name")), f"{float(d.get('weight') or 0):g}", fmt_count(d.get("spec_tokens")), fmt_count(nd.get("spec_tokens")),
               f"{yes(d)} / {yes(nd)}", fmt_loss(d.get("loss")), _interval(d), fmt_loss(nd.get("loss")), _interval(nd)]
        row += (["–" if nd.get("error") is None else f"{float(nd['error']):.4f}"] if with_error else [])
        row += ([fmt_loss(d.get("target_loss")) if d.get("target_loss") is not None else "–"] if with_target else [])
        row += [fmt_flops(d.get("flops")), fmt_flops(nd.get("flops"))]
        rows.append(row)
    return header, rows, tuple(i for i, h in enumerate(header) if i in (1, 2, 3) or h.startswith(("predicted", "target", "FLOPs")))


def _phase_cells(flops: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    total = sum(float(flops.get(k) or 0.0) for k in ("pretrain", "specialization", "inference")) or None
    out = {}
    for key in ("pretrain", "specialization", "inference"):
        v = flops.get(key)
        if v is not None:
            out[key] = (fmt_flops(v), fmt_pct(float(v) / total) if total else "–")
    return out


def phase_table(r: Mapping[str, Any], ht: Mapping[str, Any] | None = None) -> tuple[list[str], list[list[str]], tuple[int, ...]]:
    """The FLOPs-per-phase table (header, rows, numeric columns), the headline plan's beside the nominal's with a robust headline."""
    if ht is None:
        return PHASE_HEADER, _phase_rows(r), (1, 2)
    plan = ht.get("plan")
    head, nom = _phase_cells(ht.get("flops") or {}), _phase_cells(r.get("flops") or {})
    rows = []
    for key, label in (("pretrain", "general pretraining"), ("specialization", "specialization (all domains)"), ("inference", "inference")):
        if key not in head and key not in nom:
            continue
        if key == "inference" and not float((ht.get("flops") or {}).get(key) or 0.0) and not float((r.get("flops") or {}).get(key) or 0.0):
            continue
        rows.append([label, *head.get(key, ("–", "–")), *nom.get(key, ("–", "–"))])
    header = ["phase", f"FLOPs, headline ({plan})", "headline: share of all compute (training + inference)", "FLOPs, nominal",
              "nominal: share of all compute (training + inference)"]
    return header, rows, (1, 2, 3, 4)


def _bound_text(r: Mapping[str, Any], m: Any) -> str:
    """The compute to match the headline plan: not solved; at most the nominal plan's figure."""
    text = _mult_text(r, m)
    return f"≤ {text}" if text[:1].isdigit() else "not solved (at most the nominal plan's)"


def baseline_table(r: Mapping[str, Any], ht: Mapping[str, Any] | None = None) -> tuple[list[str], list[list[str]], tuple[int, ...]]:
    """The baselines table (header, rows, numeric columns): against the nominal plan, or with a robust headline against the
    headline plan (objective gap at the law's point estimate and over forms and draws) and the nominal plan."""
    if ht is None:
        return BASELINE_HEADER, _baseline_rows(r), (1, 2, 3)
    plan = ht.get("plan")
    level = next((b.get("gap_level") for b in ht.get("baselines") or [] if b.get("gap_level") is not None), None)
    pct = f"{100 * float(level):g} % interval, " if level is not None else ""
    header = ["strategy", "objective", f"vs headline plan ({plan})", "vs nominal plan", f"vs headline over forms and draws (mean [{pct}])".replace(", ]", "]"),
              f"compute to match the headline plan ({plan})", "compute to match the nominal plan", "note"]
    rows = []
    for b in ht.get("baselines") or []:
        gi = b.get("gap_interval") or [None, None]
        over = "–" if b.get("gap_over_scenarios") is None else (
            fmt_gap(b["gap_over_scenarios"]) + (f" [{fmt_gap(gi[0])}, {fmt_gap(gi[1])}]" if None not in gi else ""))
        rows.append([str(b.get("strategy")), fmt_loss(b.get("objective"), 5), fmt_gap(b.get("gap")), fmt_gap(b.get("gap_to_nominal")), over,
                     _bound_text(r, b.get("compute_multiplier_to_nominal")), _mult_text(r, b.get("compute_multiplier_to_nominal")), str(b.get("note") or "")])
    return header, rows, (1, 2, 3, 4)


#: said above the baselines table
BASELINE_INTRO = "Compute to match the plan: how many times the budget each baseline needs to reach the plan's objective."
BASELINE_INTRO_HEADLINE = (BASELINE_INTRO + " It is solved for the nominal plan only: the headline plan's objective is no lower than the "
                           "nominal optimum under the law's point estimate, so the nominal figure bounds it from above (≤).")


#: the phase table's share is of ALL compute (training + inference); the summary's pretraining share is of training compute only
PHASE_HEADER = ["phase", "FLOPs", "share of all compute (training + inference)"]


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


def console_multiplier(r: Mapping[str, Any]) -> Callable[[float], str]:
    """How the console prints the compute multipliers of result ``r``: as the reports do (marked beyond 10x the
    largest fitted compute, no figure above 100x there), with a plain "x"."""
    return lambda m: _mult_text(r, None if m is None or not math.isfinite(float(m)) else m).replace("×", "x")


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


SWEEP_HEADER = ["budget (FLOPs)", "N", "D", "D' per domain", "pretraining share of training compute", "objective", "status"]


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


# --------------------------------------------------------------------------- per-form tables
def _laws(r: Mapping[str, Any]) -> Mapping[str, Any]:
    from .document import law_objects

    return law_objects(r)


def dprime_table(r: Mapping[str, Any], laws: Mapping[str, Any] | None = None) -> tuple[list[str], list[list[str]]] | None:
    """Loss at the plan's (N, D) with D' = 0, the planned D'_k and 2 D'_k, per domain and candidate form (Markdown fallback of the plot)."""
    from .curves import candidate_laws, predict_at

    laws = _laws(r) if laws is None else laws
    cands = candidate_laws(laws, r)
    n, d = r.get("model_size"), r.get("pretrain_tokens")
    if not cands or not n or not d or not r.get("domains"):
        return None
    rows = []
    for dom in r.get("domains") or []:
        k = float(dom.get("spec_tokens") or 0.0)
        for form, law, w in cands:
            y = predict_at(law, str(dom.get("name")), np.full(3, float(n)), np.full(3, float(d)), np.array([0.0, k, 2 * k]))
            if y is None:
                continue
            rows.append([str(dom.get("name")), f"{form} ({100 * w:.0f} %)", fmt_count(k), fmt_loss(y[0]), fmt_loss(y[1]), fmt_loss(y[2])])
    if not rows:
        return None
    return ["domain", "form (weight)", "planned D'", "loss at D' = 0", "loss at planned D'", "loss at 2x planned D'"], rows


def residual_table_rows(r: Mapping[str, Any], laws: Mapping[str, Any] | None = None,
                        residuals: list[dict[str, Any]] | None = None) -> tuple[list[str], list[list[str]]] | None:
    """Each candidate's in-sample |relative error| on base and specialized rows (Markdown fallback of the residual plot).

    ``residuals``: :func:`.curves.form_residuals` of ``r`` if already computed (the HTML page's plot uses the same)."""
    from .curves import form_residuals

    data = residuals if residuals is not None else form_residuals(r, _laws(r) if laws is None else laws)
    if not data:
        return None
    rows = []
    for x in data:
        a = x["adequacy"]
        cell = lambda v: "–" if v is None else f"{100 * float(v):.2f}%"  # noqa: E731
        rows.append([x["form"], f"{100 * x['weight']:.0f} %", cell(a["base"]["mean"]), cell(a["base"]["max"]), str(a["base"]["n"]),
                     cell(a["specialized"]["mean"]), cell(a["specialized"]["max"]), str(a["specialized"]["n"])])
    return ["form", "weight", "base: mean", "base: worst", "base rows", "specialized: mean", "specialized: worst", "specialized rows"], rows


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


def plans_per_form(r: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The plans-per-form table: N, D, D'_k and the pretraining share of every candidate (with its weight) and robust plan."""
    rows = plan_rows(r)
    names: list[str] = []
    for row in rows:
        names += [k for k in row["spec_tokens"] if k not in names]
    header = ["plan", "weight", "N", "D"] + [f"D'[{k}]" for k in names] + ["pretraining share (tokens)", "headline"]
    table = []
    for row in rows:
        w = "robust" if row["kind"] == "robust" else ("–" if row["weight"] is None else f"{100 * float(row['weight']):.1f}%")
        n = row["model_size"]
        table.append([str(row["plan"]), w, fmt_count(n) if not isinstance(n, Mapping) else "per domain",
                      fmt_count(row["pretrain_tokens"]) if not isinstance(row["pretrain_tokens"], Mapping) else "per domain"]
                     + [fmt_count(row["spec_tokens"].get(k)) for k in names] + [fmt_pct(row["pretrain_share"]), "yes" if row["headline"] else ""])
    return header, table


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
                 f"{(d.get('ranges') or {}).get('over', 'draws and forms')} ({d.get('n_scenarios')} scenarios). Candidates: {cands}. "
                 "Pretraining share: D / (D + Σ D'), the share of training tokens, which is also the share of training compute "
                 "for one shared model (inference excluded).")
    header, rows = plans_per_form(r)
    out.append(("Plans under every candidate law", head_note, header, rows))
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
                "pretrain_share = pretraining FLOPs / training FLOPs. Percentiles of the discrete distribution over the scenarios "
                "(each bound is a scenario's value): a scenario of small probability can lie outside the interval; every form's own plan "
                "is in the plans table above.", ["quantity", "median", f"{pct} % interval"], rows))
    fb = d.get("flatness")
    if fb:
        rows = [[k, fmt_count(v.get("optimum")), f"[{fmt_count(v.get('low'))}{' (bound)' if v.get('low_at_bound') else ''}, "
                 f"{fmt_count(v.get('high'))}{' (bound)' if v.get('high_at_bound') else ''}]"] for k, v in (fb.get("rows") or {}).items()]
        out.append(("Flatness band", f"Coordinates whose re-optimised {fb.get('objective')} stays within {100 * float(fb.get('epsilon', 0)):g} % of the optimum. "
                    f"Method: {fb.get('method')}.", ["coordinate", "optimum", "band"], rows))
    header, rows = sensitivity_rows(d)
    if rows:
        sens = d.get("sensitivity") or [{}]
        out.append(("Sensitivity: which parameters the plan rests on",
                    f"The {SENSITIVITY_TOP} parameters of each candidate with draws that move the plan most: the change of N, D and each D'_k "
                    "(relative; D'_k as a share of all training tokens) and of the objective per standard error of the parameter "
                    f"(of log theta for positive parameters). Method: {sens[0].get('method', '')}. Pinned by: the groups of fitted runs that "
                    f"carry most of the parameter's information ({sens[0].get('information_method', '')}).", header, rows))
    # the text opens with "<strategy>: " (it stands alone in the console); the table has the strategy in its own column
    rows = [[b["strategy"], str(b.get("text", "")).removeprefix(f"{b['strategy']}: ")] for b in d.get("baselines", [])]
    if rows:
        out.append(("Baselines against the headline plan", "Gap: baseline objective minus the headline plan's (> 0: the baseline is worse); "
                    "compute multipliers beyond 10x the largest fitted compute are marked, and above 100x not given as a figure.", ["strategy", "gap and compute multiplier"], rows))
    notes = [[n["code"], n["message"]] for n in d.get("notes", [])]
    if notes:
        out.append(("Uncertainty notes", "", ["code", "note"], notes))
    return out



def render_markdown(result: Mapping[str, Any], *, laws: Mapping[str, Any] | None = None,
                    residuals: list[dict[str, Any]] | None = None) -> str:
    """The report as Markdown (for a pull request or a wiki).

    ``laws`` (:func:`.document.law_objects` of the result) and ``residuals`` (:func:`.curves.form_residuals`)
    may be passed when already computed; by default they are computed from the document."""
    r = result
    title = r.get("title") or "Allocation report"
    out = [f"# {md_text(title)}", ""]
    desc = (r.get("scenario") or {}).get("description")
    if desc:
        out += [md_text(desc), ""]
    out += ["## Plan", "", md_text(headline_note(r)), "", _md_table(["", ""], [[f"**{k}**", v] for k, v in _summary_rows(r)]), ""]
    laws = _laws(r) if laws is None else laws
    ht = _head_tables(r, laws)
    note = _nominal_note(r, ht)
    if r.get("domains"):
        header, rows, _ = domain_table(r, ht)
        out += ["## Domains", ""] + ([md_text(note), ""] if note else []) + [_md_table(header, rows), ""]
    if _phase_rows(r):
        header, rows, _ = phase_table(r, ht)
        out += ["## FLOPs per phase", "", _md_table(header, rows), ""]
    if r.get("baselines"):
        header, rows, _ = baseline_table(r, ht)
        out += ["## Against the usual baselines", "", md_text(BASELINE_INTRO_HEADLINE if ht else BASELINE_INTRO), "", _md_table(header, rows), ""]
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
    dtab = dprime_table(r, laws)
    if dtab:
        out += ["## Loss against D' under every candidate form", "",
                md_text("Predicted loss per domain at the plan's N and D, for no specialization, the planned D'_k and twice it, under each "
                        "candidate form (the HTML report plots the curves with the runs)."), "", _md_table(*dtab), ""]
    rtab = residual_table_rows(r, laws, residuals)
    if rtab:
        out += ["## In-sample residuals of every candidate form", "",
                md_text("Mean and worst |predicted / observed - 1| on the rows each form was fitted to (held-out rows left out), "
                        "for base rows (D' = 0) and specialized rows (D' > 0); the HTML report plots them by N, D and D'."), "", _md_table(*rtab), ""]
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
#: the plan's columns (one row per phase and domain, ``Allocation.to_frame``; with a robust headline also the
#: headline plan's rows in that layout, ``plan`` its name), then the decision's:
#: ``section`` (plan, headline, plan-per-form, robust, range, flatness, baseline), ``plan`` (which plan),
#: ``quantity``/``value``/``low``/``high`` (a number and its interval), ``interval_level`` (central
#: probability of low..high; empty when low..high is not a probability interval), ``headline`` (True on
#: the rows of the headline plan), ``form_weight`` (a candidate form's weight) and ``note``.
CSV_COLUMNS = ["budget", "phase", "domain", "model_size", "tokens", "flops", "loss", "loss_low", "loss_high", "error", "weight", "specialize", "status",
               "section", "plan", "quantity", "value", "low", "high", "interval_level", "headline", "form_weight", "note"]
#: the domain column of the inference row: serving covers every domain (not a domain named "all")
INFERENCE_DOMAIN = "all domains (serving)"
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


#: parameters per candidate in the reports' sensitivity table (all of them in the CSV and JSON)
SENSITIVITY_TOP = 5


def sensitivity_rows(d: Mapping[str, Any], top: int | None = SENSITIVITY_TOP) -> tuple[list[str], list[list[str]]]:
    """The decision's sensitivity table: per candidate, its ``top`` parameters by how much they move the plan
    (:func:`planner.decision.sensitivity.plan_move`, the rule of ``Sensitivity.top``)."""
    from ..decision.sensitivity import plan_move

    blocks = d.get("sensitivity") or []
    spec = sorted({k[:-len("_rel_per_se")] for b in blocks for r in b.get("rows", []) for k in r
                   if k.startswith("spec_tokens[") and k.endswith("_rel_per_se")})
    header = (["candidate", "parameter", "value", "std. error", "N / SE", "D / SE"] + ["D'" + k.removeprefix("spec_tokens") + " / SE" for k in spec]
              + ["objective / SE", "pinned by (runs)"])
    rows = []

    def pct(v: Any) -> str:
        return "–" if v is None or not math.isfinite(float(v)) else f"{100 * float(v):+.1f} %"

    for b in blocks:
        ranked = sorted(b.get("rows", []), key=lambda r: -plan_move(r))
        for r in ranked[:top] if top else ranked:
            se = r.get("se")
            se_text = "–" if se is None else (f"{float(se):.3g} (log)" if r.get("se_of") == "log" else f"{float(se):.4g}")
            obj = r.get("objective_per_se")
            rows.append([str(b.get("candidate")), str(r.get("param")), fmt_loss(r.get("value"), 5), se_text, pct(r.get("model_size_rel_per_se")),
                         pct(r.get("pretrain_tokens_rel_per_se"))] + [pct(r.get(f"{k}_rel_per_se")) for k in spec]
                        + ["–" if obj is None else f"{float(obj):+.4g}", str(r.get("pinned_by") or "–")])
    return header, rows


def _decision_csv_rows(r: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The decision's rows of the CSV (see :data:`CSV_COLUMNS`): headline, plans per form, robust plans, ranges,
    flatness band, baselines with their gap and multiplier intervals, and the sensitivity of the plan to every parameter
    (relative moves per standard error, with the groups of fitted runs that carry the parameter's information)."""
    from ..decision.baselines import multiplier_text

    d = r.get("decision")
    if not d:
        return []
    level = d.get("interval_level")
    h = headline(r)
    head_label = (d.get("headline_plan") or {}).get("label")
    budget = r.get("budget")
    out: list[dict[str, Any]] = []

    def row(section: str, plan: Any, quantity: str, value: Any, low: Any = None, high: Any = None, lvl: Any = None,
            is_head: bool = False, form_weight: Any = None, note: str = "", domain: str = "") -> None:
        out.append({"budget": budget, "domain": domain, "section": section, "plan": plan, "quantity": quantity, "value": value, "low": low,
                    "high": high, "interval_level": lvl, "headline": is_head, "form_weight": form_weight, "note": note})

    iv = h.get("intervals") or {}
    note = f"headline: {h.get('plan')} ({h.get('meaning')}); intervals over {h.get('interval_over')}"
    hlevel = h.get("interval_level")
    row("headline", h.get("plan"), "model_size", h.get("model_size"), *(iv.get("model_size") or [None, None]), hlevel, True, note=note)
    row("headline", h.get("plan"), "pretrain_tokens", h.get("pretrain_tokens"), *(iv.get("pretrain_tokens") or [None, None]), hlevel, True, note=note)
    for k, v in (h.get("spec_tokens") or {}).items():
        row("headline", h.get("plan"), f"spec_tokens[{k}]", v, *(iv.get(f"spec_tokens[{k}]") or [None, None]), hlevel, True, note=note, domain=k)
    row("headline", h.get("plan"), "pretrain_share_of_compute", h.get("pretrain_share_of_compute"), *(iv.get("pretrain_share") or [None, None]),
        hlevel, True, note="pretraining FLOPs / training FLOPs (inference excluded); " + note)
    row("headline", h.get("plan"), "objective", h.get("objective"), None, None, None, True, note=f"under {h.get('objective_under')}")
    if h.get("expected_objective") is not None:
        row("headline", h.get("plan"), "expected_objective", h.get("expected_objective"), None, None, None, True, note="mean over every scenario")
    for p in plan_rows(r):
        section = "robust" if p["kind"] == "robust" else "plan-per-form"
        for q, v in (("model_size", p["model_size"]), ("pretrain_tokens", p["pretrain_tokens"])):
            row(section, p["plan"], q, v if not isinstance(v, Mapping) else None, is_head=p["headline"], form_weight=p["weight"],
                note="per domain" if isinstance(v, Mapping) else "")
        for k, v in p["spec_tokens"].items():
            row(section, p["plan"], f"spec_tokens[{k}]", v, is_head=p["headline"], form_weight=p["weight"], domain=k)
        row(section, p["plan"], "pretrain_share", p["pretrain_share"], is_head=p["headline"], form_weight=p["weight"],
            note="D / (D + sum D'): share of training tokens (= of training compute for one shared model)")
    for x in d.get("robust") or []:
        label = x["plan"].get("label")
        method = f"{'certified' if x.get('certified') else 'not certified'}: {x.get('method')}"
        row("robust", label, "expected_regret", x.get("expected_regret"), is_head=label == head_label, note=method)
        row("robust", label, "worst_regret", x.get("worst_regret"), is_head=label == head_label, note=method)
    rg = d.get("ranges") or {}
    for k, v in (rg.get("rows") or {}).items():
        row("range", "optimal plan of every scenario", k, v.get("median"), v.get("p_low"), v.get("p_high"), rg.get("level", level),
            note=f"median and central interval over {rg.get('over')}", domain=k[12:-1] if k.startswith("spec_tokens[") else "")
    fb = d.get("flatness")
    if fb:
        for k, v in (fb.get("rows") or {}).items():
            ends = [e for e, at in (("low", v.get("low_at_bound")), ("high", v.get("high_at_bound"))) if at]
            row("flatness", head_label, k, v.get("optimum"), v.get("low"), v.get("high"), None, True,
                note=f"re-optimised {fb.get('objective')} within {100 * float(fb.get('epsilon', 0)):g} % of the optimum"
                     + (f"; {' and '.join(ends)} end at a bound" if ends else ""), domain=k[12:-1] if k.startswith("spec_tokens[") else "")
    for b in d.get("sensitivity") or []:
        info = b.get("information") or {}
        for r in b.get("rows", []):
            pinned = "; ".join(f"{g}: {100 * float(v):.1f} %" for g, v in info.get(r.get("param"), []))
            note = (f"per standard error of {'log ' if r.get('se_of') == 'log' else ''}{r.get('param')} (SE {r.get('se')}); "
                    f"information from {pinned or 'no fitted runs'}")
            for k, v in r.items():
                if k.endswith("_rel_per_se") or k == "objective_per_se":
                    q = k.removesuffix("_per_se").removesuffix("_rel")
                    label = f"{r.get('param')}: {q}" + (" (relative)" if k.endswith("_rel_per_se") else "")
                    row("sensitivity", b.get("candidate"), label, v, note=note, domain=q[12:-1] if q.startswith("spec_tokens[") else "")
    for b in d.get("baselines") or []:
        gi = b.get("gap_interval") or [None, None]
        row("baseline", b.get("strategy"), "gap", b.get("gap"), gi[0], gi[1], b.get("level", level),
            note=f"baseline objective minus the headline plan's ({h.get('plan')}); > 0: the baseline is worse")
        beyond = bool(b.get("beyond_fitted_range"))
        m = b.get("multiplier")
        mi = list(b.get("multiplier_interval") or [None, None])

        def precise(x: Any) -> Any:  # beyond the fitted range, no figure above 100x
            if x is None:
                return None
            x = float(x)
            return None if (not math.isfinite(x) or (beyond and x > 100.0)) else x

        texts = [multiplier_text(math.inf if x is None else float(x), beyond) for x in [m] + mi]
        row("baseline", b.get("strategy"), "compute_multiplier", precise(m), precise(mi[0]), precise(mi[1]), b.get("level", level),
            note=f"{texts[0]} [{texts[1]}, {texts[2]}]" + (f"; binds only in the scaled problem: {', '.join(b['scaled_binding'])}"
                                                          if b.get("scaled_binding") else ""))
    return out


def render_csv(result: Mapping[str, Any], *, laws: Mapping[str, Any] | None = None) -> str:
    """One row per phase and domain (``Allocation.to_frame``), for every budget of a sweep, with budget and status (``plan``
    "nominal"); with a robust headline, the headline plan's rows in the same layout (``plan`` its name, ``headline`` True)
    and each baseline's objective and gaps; then, with an ``[uncertainty]`` analysis, the decision's rows (see
    :data:`CSV_COLUMNS`). ``laws``: :func:`.document.law_objects` of the result, when already built."""
    from ..allocate.model import Allocation

    plans = result.get("sweep") or [result]
    h = headline(result)
    primary = result.get("budget")
    law = _law(result) or {}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for plan in plans:
        frame = Allocation.from_dict(plan).to_frame()
        frame["budget"] = plan.get("budget")
        frame["status"] = plan.get("status")
        frame.loc[frame["phase"] == "inference", "domain"] = INFERENCE_DOMAIN
        is_primary = plan.get("budget") == primary
        has_iv = frame["loss_low"].notna() & frame["loss_high"].notna()
        frame["section"] = "plan"
        frame["plan"] = "nominal"
        frame["headline"] = bool(is_primary and h.get("is_nominal", True))
        frame["interval_level"] = np.where(has_iv, float(law.get("interval_level") or 0.9), np.nan)
        frame["note"] = np.where(frame["phase"] == "inference", "inference serves every domain", "")
        for col in CSV_COLUMNS:
            if col not in frame:
                frame[col] = None
        for row in frame[CSV_COLUMNS].itertuples(index=False):
            writer.writerow([csv_cell(v) for v in row])
    for rec in _headline_csv_rows(result, laws):
        writer.writerow([csv_cell(rec.get(c)) for c in CSV_COLUMNS])
    for rec in _decision_csv_rows(result):
        writer.writerow([csv_cell(rec.get(c)) for c in CSV_COLUMNS])
    return buf.getvalue()


def _headline_csv_rows(r: Mapping[str, Any], laws: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """With a robust headline: the headline plan's rows in the plan's layout (one per phase and domain, ``section`` "plan",
    ``plan`` the headline's name, ``headline`` True), evaluated under the nominal plan's law; then, for every
    baseline, its objective and its gap to the headline plan and to the nominal plan (``section`` "baseline")."""
    ht = _head_tables(r, laws)
    if ht is None:
        return []
    budget, plan = r.get("budget"), ht.get("plan")
    law = _law(r) or {}
    note = f"the headline plan evaluated under the {ht.get('law')} point estimate (the nominal plan's law)"
    h = headline(r)
    flops = ht.get("flops") or {}
    base = {"budget": budget, "section": "plan", "plan": plan, "headline": True, "model_size": h.get("model_size"), "note": note}
    out = [{**base, "phase": "pretrain", "domain": "general", "tokens": h.get("pretrain_tokens"), "flops": flops.get("pretrain")}]
    for d in ht.get("domains") or []:
        iv = d.get("loss_interval") or [None, None]
        out.append({**base, "phase": "specialize", "domain": d.get("name"), "tokens": d.get("spec_tokens"), "flops": d.get("flops"),
                    "loss": d.get("loss"), "loss_low": iv[0], "loss_high": iv[1], "weight": d.get("weight"), "specialize": d.get("specialize"),
                    "interval_level": float(law.get("interval_level") or 0.9) if None not in iv else None})
    if flops.get("inference"):
        out.append({**base, "phase": "inference", "domain": INFERENCE_DOMAIN, "tokens": float(flops["inference"]) / (2.0 * float(h["model_size"])),
                    "flops": flops.get("inference"), "note": "inference serves every domain; " + note})
    for b in ht.get("baselines") or []:
        row = {"budget": budget, "section": "baseline", "plan": b.get("strategy"), "headline": False}
        out.append({**row, "quantity": "objective", "value": b.get("objective"), "note": f"under the {ht.get('law')} point estimate"})
        out.append({**row, "quantity": "gap_to_headline_point_estimate", "value": b.get("gap"),
                    "note": f"baseline objective minus the headline plan's ({plan}), both under the {ht.get('law')} point estimate"})
        out.append({**row, "quantity": "gap_to_nominal", "value": b.get("gap_to_nominal"),
                    "note": "baseline objective minus the nominal plan's (the headline is not the nominal plan)"})
    return out


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
.table-wrap { overflow-x: auto; }
table.domains { font-size: 13px; }
table.kv th { width: 38%; background: none; font-weight: 500; color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; margin: 16px 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; background: var(--soft); }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 22px; font-weight: 600; }
.status-ok { color: #1a7f37; } .status-bad { color: #cf222e; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 18px; }
.plots { grid-auto-flow: row dense; }
.plots figure.wide { grid-column: 1 / -1; }
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
    # wide tables (a robust headline beside the nominal plan) scroll inside the page instead of overflowing it
    return f'<div class="table-wrap"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _kv_table(rows: Sequence[tuple[str, str]]) -> str:
    return '<table class="kv"><tbody>' + "".join(f"<tr><th>{_h(k)}</th><td>{_h(v)}</td></tr>" for k, v in rows) + "</tbody></table>"


#: an SVG wider than this (points, its viewBox) is a row of panels: it gets the whole width of the page,
#: where a grid column would shrink its labels below reading size (the D' and residual panels per domain)
WIDE_PLOT_POINTS = 560.0
_VIEWBOX = re.compile(r'viewBox="[-0-9.eE+]+ [-0-9.eE+]+ ([0-9.eE+]+) [0-9.eE+]+"')


def _plot_class(svg: str) -> str:
    """``plot``, or ``plot wide`` for an SVG wider than :data:`WIDE_PLOT_POINTS` (read from the head of its tag)."""
    m = _VIEWBOX.search(svg[:400])
    return "plot wide" if m and float(m.group(1)) > WIDE_PLOT_POINTS else "plot"


def render_html(result: Mapping[str, Any], plots: Mapping[str, str | None], *, laws: Mapping[str, Any] | None = None) -> str:
    """ONE self-contained page: summary, a table per domain, the plots as inline SVG. No network requests.
    ``laws``: :func:`.document.law_objects` of the result, when already built."""
    from .plots import PLOTS, plot_caption

    r = result
    title = r.get("title") or "Allocation report"
    ok = str(r.get("status", "")).lower() in SOLUTION_PRESENT
    h = headline(r)
    cards = [
        ("status", str(r.get("status", "?")), "status-ok" if ok else "status-bad"),
        ("budget", f"{fmt_flops(r.get('budget'))} FLOPs", ""),
        ("headline plan", str(h.get("plan")), ""),
        ("model size N", fmt_count(h.get("model_size")), ""),
        ("pretraining D", f"{fmt_count(h.get('pretrain_tokens'))} tokens", ""),
        ("pretraining share of training compute", fmt_pct(h.get("pretrain_share_of_compute")), ""),
        ("objective", fmt_loss(h.get("objective"), 4), ""),
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
    parts.append(f'<p id="headline-note">{_h(headline_note(r))}</p>' + _kv_table(_summary_rows(r)) + "</section>")
    ht = _head_tables(r, laws)
    note = _nominal_note(r, ht)
    if r.get("domains"):
        header, rows, numeric = domain_table(r, ht)
        parts.append('<section id="domains"><h2>Domains</h2>' + (f'<p class="headline-tables">{_h(note)}</p>' if note else "")
                     + _html_table(header, rows, "domains", numeric=numeric) + "</section>")
    if _phase_rows(r):
        header, rows, numeric = phase_table(r, ht)
        parts.append('<section id="phases"><h2>FLOPs per phase</h2>' + _html_table(header, rows, numeric=numeric) + "</section>")
    if r.get("baselines"):
        header, rows, numeric = baseline_table(r, ht)
        parts.append('<section id="baselines"><h2>Against the usual baselines</h2>'
                     f"<p>{_h(BASELINE_INTRO_HEADLINE if ht else BASELINE_INTRO)}</p>" + _html_table(header, rows, numeric=numeric) + "</section>")
    if r.get("binding"):
        parts.append('<section id="constraints"><h2>Constraints</h2>' + _html_table(BINDING_HEADER, _binding_rows(r), numeric=(2, 3, 5)) + "</section>")
    if r.get("sweep"):
        parts.append('<section id="sweep"><h2>Sweep over budgets</h2>' + _html_table(SWEEP_HEADER, _sweep_rows(r), numeric=(0, 1, 2, 4, 5)) + "</section>")
    parts.append('<section id="plots"><h2>Plots</h2><div class="plots">')
    for plot_id, (plot_title, _) in PLOTS.items():
        svg = plots.get(plot_id)
        caption = plot_caption(plot_id, r)
        if svg:
            parts.append(f'<figure class="{_plot_class(svg)}" id="{plot_id}"><h3>{_h(plot_title)}</h3>{svg}<figcaption>{_h(caption)}</figcaption></figure>')
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
