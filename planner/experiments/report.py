"""Write a :class:`~planner.experiments.Design`: ``runs.csv``, ``design.json``, ``design.md``, ``design.html`` (regret plot inline),
``measurements.csv`` (one row per checkpoint to evaluate, ``loss`` empty: fill it in and fit), configs.

Rendering works on the JSON dict (``Design.to_dict()``), so a saved ``design.json`` re-renders.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from .config import config_texts, design_config

__all__ = ["design_texts", "write_design", "render_design_markdown", "render_design_html", "regret_curve_svg"]

_NAMES = {"designed": "designed ladder", "default": "default (Choshen et al.)", "uniform": "uniform grid"}


def _pct(x: Any, digits: int = 3) -> str:
    return "n/a" if x is None else f"{100 * float(x):.{digits}g} %"


def _interval(iv: Any) -> str:
    return "" if not iv or iv[0] is None else f" [{_pct(iv[0])}, {_pct(iv[1])}]"


def _comparison_rows(d: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for s in d.get("comparison") or []:
        rows.append([_NAMES.get(s["name"], s["name"]), str(s["n_new_runs"]), f"{s['flops']:.3g}",
                     _pct(s["expected_waste_linearized"]) + _interval(s.get("expected_waste_linearized_interval")),
                     (_pct(s["expected_waste_simulated"]) + _interval(s.get("expected_waste_simulated_interval"))) if s.get("expected_waste_simulated") is not None else "not run",
                     s.get("description", "")])
    return rows


def _selection_rows(d: Mapping[str, Any]) -> list[list[str]]:
    return [[r["ladder"] + (" (chosen)" if r.get("chosen") else ""), str(r["n_new_runs"]), f"{r['flops']:.3g}", _pct(r["expected_waste"]),
             _pct(r["median_waste"]), f"{100 * r['selected_true_form']:.0f} %", _pct(r["cost"]),
             "" if r.get("vs_default") is None else f"{100 * r['vs_default']:+.3g} % ± {100 * r['vs_default_se']:.3g} %", r.get("description", "")]
            for r in d.get("selection") or []]


_SEL_HEADER = ["ladder", "new runs", "FLOPs", "mean waste (capped at 100 %)", "median waste", "right form", "waste + spend",
               "minus the default's (± se, paired)", "what it is"]
_SEL_TITLE = "Selection by simulation (short list of the linearized search and the baselines, same truths of the prior)"
_COMP_HEADER = ["ladder", "new runs", "FLOPs", "expected waste (linearized) [90 %]", "expected waste (simulated) [90 %]", "what it is"]
_RUN_HEADER = ["run", "N", "shape (L x d, heads, d_ff)", "pretrain tokens", "branch: domain, from D_b, D'", "FLOPs"]


def _run_rows(d: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    shapes = d.get("shapes") or {}
    for s in (d.get("ladder") or {}).get("segments") or []:
        sh = shapes.get(f"{s['model_size']:.6g}")
        shp = "" if not sh else f"{sh['n_layers']} x {sh['d_model']}, {sh['n_heads']}, {sh['d_ff']}"
        br = "" if not s["spec_domain"] else f"{s['spec_domain']}, {s['branch_from_tokens']:.3g}, {s['spec_tokens']:.3g}"
        rows.append([s["run"], f"{s['model_size']:.3g}", shp, f"{s['pretrain_tokens']:.3g}" if not s["spec_domain"] else "", br, f"{s['flops']:.3g}"])
    return rows


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cell = lambda x: str(x).replace("|", "\\|")  # noqa: E731
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"] +
                     ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows])


def _curve_rows(d: Mapping[str, Any]) -> list[list[str]]:
    return [[f"{100 * c['fraction']:g} %", f"{c['experiment_budget']:.3g}", _pct(c.get("designed")), _pct(c.get("default")), _pct(c.get("uniform"))]
            for c in d.get("curve") or []]


def _lead(d: Mapping[str, Any]) -> list[str]:
    spec = d.get("spec") or {}
    return [
        f"Target budget {d['target_budget']:.3g} FLOPs on {', '.join(d['domains']) or 'general pretraining'}; experiment budget "
        f"{d['experiment_budget']:.3g} FLOPs ({100 * d['experiment_budget'] / d['target_budget']:.2g} % of the target).",
        f"Designed ladder: {(d.get('ladder') or {}).get('description') or spec.get('label', '')}; {d['experiment_flops']:.3g} FLOPs used.",
        f"Prior: {d['prior']}. Noise: {100 * d['noise']:.2g} % (sd of log loss). Existing measurements used: {d['existing_measurements']}.",
        f"Schedule assumption: {d['schedule']} (constant learning rate after warmup, or WSD with a short decay: every checkpoint is usable).",
        "Expected waste = expected regret of the final plan as a share of the target budget (the compute that would buy the same loss).",
    ]


def render_design_markdown(d: Mapping[str, Any]) -> str:
    parts = ["# Experiment design", "", *[f"- {x}" for x in _lead(d)], "", "## Against the habits (equal experiment compute)", "",
             _md_table(_COMP_HEADER, _comparison_rows(d)), "",
             *([f"## {_SEL_TITLE}", "", _md_table(_SEL_HEADER, _selection_rows(d)), ""] if d.get("selection") else []),
             "## Expected waste against experiment budget (linearized)", "",
             _md_table(["budget share", "FLOPs", "designed", "default", "uniform"], _curve_rows(d)), "", "## Runs to train", "",
             _md_table(_RUN_HEADER, _run_rows(d)), ""]
    return "\n".join(parts)


def regret_curve_svg(d: Mapping[str, Any]) -> str | None:
    """Expected waste (linearized) against experiment budget, one line per ladder (log-log)."""
    curve = d.get("curve") or []
    if not curve:
        return None
    import matplotlib
    from matplotlib.figure import Figure

    from ..report.plots import figure_to_svg

    with matplotlib.rc_context({"font.size": 9, "svg.fonttype": "none"}):
        fig = Figure(figsize=(6.4, 3.6))
        ax = fig.add_subplot(1, 1, 1)
        x = [c["experiment_budget"] for c in curve]
        for name, style in (("designed", "o-"), ("default", "s--"), ("uniform", "^:")):
            y = [None if c.get(name) is None else 100 * c[name] for c in curve]
            pts = [(a, b) for a, b in zip(x, y) if b is not None and b > 0]
            if pts:
                ax.plot(*zip(*pts), style, label=_NAMES[name])
        ax.axvline(d["experiment_budget"], color="0.6", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("experiment budget (FLOPs)")
        ax.set_ylabel("expected waste (% of target budget)")
        ax.grid(True, alpha=0.3)
        ax.legend(frameon=False)
        return figure_to_svg(fig, "design-regret")


_CSS = ("body{font:14px/1.5 system-ui,sans-serif;color:#1d2329;margin:0}main{max-width:1100px;margin:0 auto;padding:1.5rem}"
        "table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:13px}th,td{border-bottom:1px solid #d8dee4;padding:.25rem .6rem;text-align:left}"
        "th{background:#f6f8fa}svg{max-width:100%;height:auto}.lead li{margin:.2rem 0}")


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    h = html.escape
    return ("<table><thead><tr>" + "".join(f"<th>{h(c)}</th>" for c in header) + "</tr></thead><tbody>" +
            "".join("<tr>" + "".join(f"<td>{h(str(c))}</td>" for c in r) + "</tr>" for r in rows) + "</tbody></table>")


def render_design_html(d: Mapping[str, Any], svg: str | None = None) -> str:
    h = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">",
             "<title>Experiment design</title>", f"<style>{_CSS}</style></head><body><main>", "<h1>Experiment design</h1>",
             '<ul class="lead">' + "".join(f"<li>{h(x)}</li>" for x in _lead(d)) + "</ul>",
             "<h2>Against the habits (equal experiment compute)</h2>", _html_table(_COMP_HEADER, _comparison_rows(d)),
             *([f"<h2>{h(_SEL_TITLE)}</h2>", _html_table(_SEL_HEADER, _selection_rows(d))] if d.get("selection") else []),
             "<h2>Expected waste against experiment budget</h2>", svg or "<p>(no curve)</p>",
             _html_table(["budget share", "FLOPs", "designed", "default", "uniform"], _curve_rows(d)),
             "<h2>Runs to train</h2>", _html_table(_RUN_HEADER, _run_rows(d)), "</main></body></html>"]
    return "\n".join(parts)


def design_texts(design: Any, context: int = 2048) -> dict[str, str]:
    """Every output file of ``planner design`` as ``{file name: text}``, rendered in memory."""
    d = design.to_dict()
    texts = {
        "runs.csv": design.runs_frame().to_csv(index=False),
        "design.json": json.dumps(d, indent=2) + "\n",
        "design.md": render_design_markdown(d),
        "design.html": render_design_html(d, regret_curve_svg(d)),
    }
    if design.ladder is not None:
        # one row per checkpoint to evaluate: fill in `loss`, then `planner fit`
        texts["measurements.csv"] = design.ladder.measurement_table(list(design.domains) or ["general"]).to_csv(index=False)
        texts.update(config_texts(design_config(design, context)))
    return texts


def write_design(design: Any, out_dir: str | Path, context: int = 2048) -> list[Path]:
    """Write every output of ``planner design`` into ``out_dir`` as one all-or-nothing set; returns the paths."""
    from ..report.writing import write_file_set

    return write_file_set(out_dir, design_texts(design, context))
