"""Plots of an allocation report, rendered to inline SVG strings (matplotlib's SVG canvas, no pyplot).

Every function takes the JSON-able result document (``allocation.json``) or a part of it and
returns an SVG string, or None when the data for the plot is absent (e.g. fit quality for a
law given by parameters). No plotting lives in ``planner.fit`` or ``planner.allocate``.
"""

from __future__ import annotations

import io
import math
import re
from typing import Any, Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "PLOTS",
    "figure_to_svg",
    "objective_vs_compute",
    "flops_split",
    "fit_parity",
    "fit_residuals",
    "isoloss_contours",
    "render_plots",
]

#: plot id -> (title, caption)
PLOTS: dict[str, tuple[str, str]] = {
    "plot-compute": ("Objective against compute", "Predicted objective (weighted loss) of the plan and of each baseline across budgets around the chosen one."),
    "plot-flops": ("FLOPs per phase", "How the compute is split between general pretraining, each domain's specialization and inference."),
    "plot-fit-parity": ("Fit quality: predicted against observed", "Each run of the law's data; held-out points (not used to score the form) are marked with crosses."),
    "plot-fit-residuals": ("Fit quality: residuals against model size", "Relative error of the law on every run; held-out points marked with crosses."),
    "plot-isoloss": ("Iso-loss contours in (N, D)", "Weighted objective for model size N and pretraining tokens D, with each domain's D' at the plan; the dashed line is the plan's pretraining compute, the star the plan."),
}

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]
_RC = {
    "svg.fonttype": "none",
    "text.parse_math": False,  # labels are plain text: a domain named "$x^$" is not mathtext
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def figure_to_svg(fig: Figure, plot_id: str) -> str:
    """The figure as an ``<svg>`` element string (no XML prolog), ids salted by ``plot_id``.

    Salting keeps element ids unique and deterministic when several SVGs are inlined in one HTML page
    (matplotlib references clip paths and markers by id).
    """
    buf = io.StringIO()
    # a fixed salt and no date: the same plot gives the same bytes on every run
    with matplotlib.rc_context({"svg.hashsalt": plot_id, "svg.fonttype": "none", "text.parse_math": False}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    start = text.find("<svg")
    svg = text[start:] if start >= 0 else text
    # drop the fixed pixel size so the figure scales with the page (the viewBox keeps the ratio)
    svg = re.sub(r'(<svg[^>]*?)\swidth="[^"]*"\sheight="[^"]*"', r'\1', svg, count=1)
    return svg.strip()


def _new_figure(width: float = 6.4, height: float = 3.6) -> tuple[Figure, Any]:
    # a bare Figure (no pyplot): no global backend switch, nothing to close, safe in notebooks
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height))
        ax = fig.add_subplot(1, 1, 1)
    return fig, ax


def _style(ax: Any) -> None:
    ax.grid(True, alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _finite(values: Sequence[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


# --------------------------------------------------------------------------- objective vs compute
def objective_vs_compute(result: Mapping[str, Any]) -> str | None:
    """Plan and baselines' objective against budget (log x), the chosen budget marked."""
    curve = result.get("curve") or []
    if not curve:
        return None
    budgets = _finite([c.get("budget") for c in curve])
    plan = _finite([c.get("objective") for c in curve])
    if not np.isfinite(plan).any():
        return None
    fig, ax = _new_figure()
    with matplotlib.rc_context(_RC):
        ax.plot(budgets, plan, "-o", color=_COLORS[0], lw=2, ms=4, label="plan (split)", zorder=3)
        strategies: list[str] = []
        for c in curve:
            for s in (c.get("baselines") or {}):
                if s not in strategies:
                    strategies.append(s)
        for i, s in enumerate(strategies):
            ys = _finite([(c.get("baselines") or {}).get(s) for c in curve])
            if np.isfinite(ys).any():
                ax.plot(budgets, ys, "--s", color=_COLORS[(i + 1) % len(_COLORS)], lw=1.2, ms=3, label=s)
        chosen = result.get("budget")
        if chosen is not None and result.get("objective") is not None:
            ax.axvline(float(chosen), color="#555", lw=0.8, ls=":")
            ax.plot([float(chosen)], [float(result["objective"])], marker="*", ms=12, color=_COLORS[0], zorder=4, label="chosen budget")
        ax.set_xscale("log")
        ax.set_xlabel("training budget C (FLOPs)")
        ax.set_ylabel("objective  Σ w_k Err_k (error)" if result.get("mode") == "min-error" else "objective  Σ w_k L_k (nats/token)")
        ax.legend(fontsize=8, frameon=False)
        _style(ax)
    return figure_to_svg(fig, "plot-compute")


# --------------------------------------------------------------------------- FLOPs per phase
def _phase_flops(alloc: Mapping[str, Any]) -> list[tuple[str, float]]:
    flops = alloc.get("flops") or {}
    out = [("pretraining", float(flops.get("pretrain") or 0.0))]
    for d in alloc.get("domains") or []:
        out.append((f"spec: {d.get('name')}", float(d.get("flops") or 0.0)))
    inf = flops.get("inference") or 0.0
    if inf:
        out.append(("inference", float(inf)))
    return out


def flops_split(result: Mapping[str, Any]) -> str | None:
    """Stacked bars of FLOPs per phase: the plan, and every budget of a sweep."""
    plans = [p for p in (result.get("sweep") or []) if p.get("flops")] or [result]
    plans = [p for p in plans if (p.get("flops") or {}).get("pretrain") is not None]
    if not plans:
        return None
    phases: list[str] = []
    for p in plans:
        for name, _ in _phase_flops(p):
            if name not in phases:
                phases.append(name)
    fig, ax = _new_figure(6.4, 0.9 + 0.45 * len(plans) + 0.15 * len(phases))
    with matplotlib.rc_context(_RC):
        labels = [f"{float(p.get('budget') or 0):.3g} FLOPs" for p in plans]
        left = np.zeros(len(plans))
        for j, phase in enumerate(phases):
            vals = np.array([dict(_phase_flops(p)).get(phase, 0.0) for p in plans])
            totals = np.array([sum(v for _, v in _phase_flops(p)) or 1.0 for p in plans])
            share = 100.0 * vals / totals
            color = "#4c72b0" if phase == "pretraining" else "#999999" if phase == "inference" else _COLORS[(j + 1) % len(_COLORS)]
            bars = ax.barh(labels, share, left=left, color=color, edgecolor="white", label=phase)
            for bar, s in zip(bars, share):
                if s >= 7:
                    ax.text(bar.get_x() + bar.get_width() / 2, bar.get_y() + bar.get_height() / 2, f"{s:.0f}%", ha="center", va="center", fontsize=8, color="white")
            left += share
        ax.set_xlim(0, 100)
        ax.set_xlabel("share of compute (%)")
        ax.invert_yaxis()
        ax.legend(fontsize=8, frameon=False, ncol=min(4, len(phases)), loc="upper center", bbox_to_anchor=(0.5, -0.35 if len(plans) < 3 else -0.15))
        _style(ax)
    return figure_to_svg(fig, "plot-flops")


# --------------------------------------------------------------------------- fit quality
def _points(law: Mapping[str, Any] | None) -> dict[str, np.ndarray] | None:
    if not law or not law.get("points"):
        return None
    pts = law["points"]
    if not pts.get("observed") or not pts.get("predicted"):
        return None
    n = len(pts["observed"])
    out = {
        "observed": _finite(pts["observed"]),
        "predicted": _finite(pts["predicted"]),
        "model_size": _finite(pts.get("model_size") or [math.nan] * n),
        "held_out": np.array([bool(v) for v in (pts.get("held_out") or [False] * n)], dtype=bool),
        "domain": np.array([str(v) for v in (pts.get("domain") or ["general"] * n)], dtype=object),
    }
    return out


def fit_parity(law: Mapping[str, Any] | None) -> str | None:
    """Predicted against observed loss, per domain, held-out points as crosses."""
    pts = _points(law)
    if pts is None:
        return None
    fig, ax = _new_figure(5.2, 4.2)
    with matplotlib.rc_context(_RC):
        for i, dom in enumerate(sorted(set(pts["domain"]))):
            sel = pts["domain"] == dom
            c = _COLORS[i % len(_COLORS)]
            tr, ho = sel & ~pts["held_out"], sel & pts["held_out"]
            ax.scatter(pts["observed"][tr], pts["predicted"][tr], s=14, color=c, alpha=0.75, label=f"{dom}")
            if ho.any():
                ax.scatter(pts["observed"][ho], pts["predicted"][ho], s=40, color=c, marker="x", linewidths=1.5, label=f"{dom} (held out)")
        both = np.concatenate([pts["observed"], pts["predicted"]])
        both = both[np.isfinite(both)]
        lo, hi = float(both.min()), float(both.max())
        pad = 0.03 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="#333", lw=0.8, ls="--", label="y = x")
        ax.set_xlabel("observed loss (nats/token)")
        ax.set_ylabel("predicted loss (nats/token)")
        ax.set_title(f"{law.get('form', '')}", fontsize=9)
        ax.legend(fontsize=7, frameon=False, ncol=2)
        _style(ax)
    return figure_to_svg(fig, "plot-fit-parity")


def fit_residuals(law: Mapping[str, Any] | None) -> str | None:
    """Relative residual (predicted / observed - 1) against model size, held-out points as crosses."""
    pts = _points(law)
    if pts is None or not np.isfinite(pts["model_size"]).any():
        return None
    rel = 100.0 * (pts["predicted"] / pts["observed"] - 1.0)
    fig, ax = _new_figure()
    with matplotlib.rc_context(_RC):
        rng = np.random.default_rng(0)
        jitter = np.exp(rng.uniform(-0.04, 0.04, size=len(rel)))
        for i, dom in enumerate(sorted(set(pts["domain"]))):
            sel = pts["domain"] == dom
            c = _COLORS[i % len(_COLORS)]
            tr, ho = sel & ~pts["held_out"], sel & pts["held_out"]
            ax.scatter(pts["model_size"][tr] * jitter[tr], rel[tr], s=12, color=c, alpha=0.75, label=dom)
            if ho.any():
                ax.scatter(pts["model_size"][ho] * jitter[ho], rel[ho], s=36, color=c, marker="x", linewidths=1.5, label=f"{dom} (held out)")
        ax.axhline(0.0, color="#333", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("model size N (parameters)")
        ax.set_ylabel("predicted / observed - 1 (%)")
        ax.legend(fontsize=7, frameon=False, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.16))
        _style(ax)
    return figure_to_svg(fig, "plot-fit-residuals")


# --------------------------------------------------------------------------- iso-loss contours
def isoloss_contours(result: Mapping[str, Any], law: Any) -> str | None:
    """Contours of the weighted objective over (N, D) at the plan's D'_k, the plan marked.

    ``law`` is a :class:`~planner.FittedLaw` (built from the result's law JSON).
    """
    n_plan, d_plan = result.get("model_size"), result.get("pretrain_tokens")
    if law is None or not n_plan or not d_plan:
        return None
    n_plan, d_plan = float(n_plan), float(d_plan)
    domains = [d for d in (result.get("domains") or []) if d.get("name")]
    n_grid = np.geomspace(n_plan / 30, n_plan * 30, 60)
    d_grid = np.geomspace(d_plan / 30, d_plan * 30, 60)
    nn, dd = np.meshgrid(n_grid, d_grid)
    try:
        if domains:
            total_w = sum(float(d.get("weight") or 1.0) for d in domains)
            z = np.zeros_like(nn)
            for d in domains:
                pred = law.predict(model_size=nn.ravel(), pretrain_tokens=dd.ravel(),
                                   spec_tokens=np.full(nn.size, float(d.get("spec_tokens") or 0.0)), domain=d["name"])
                z += float(d.get("weight") or 1.0) / total_w * np.asarray(pred).reshape(nn.shape)
            label = "Σ w_k L_k / Σ w_k at the plan's D'_k"
        else:
            z = np.asarray(law.predict(model_size=nn.ravel(), pretrain_tokens=dd.ravel())).reshape(nn.shape)
            label = "loss"
    except Exception:  # a custom form that cannot predict on a grid: no plot, not a failed report
        return None
    if not np.isfinite(z).any():
        return None
    fig, ax = _new_figure(5.6, 4.4)
    with matplotlib.rc_context(_RC):
        finite = z[np.isfinite(z)]
        levels = np.unique(np.quantile(finite, np.linspace(0.02, 0.98, 14)))
        cs = ax.contour(nn, dd, z, levels=levels, cmap="viridis", linewidths=1.0)
        ax.clabel(cs, inline=True, fontsize=7, fmt="%.3f")
        pre_flops = float(((result.get("flops") or {}).get("pretrain")) or 6.0 * n_plan * d_plan)
        per_param = pre_flops / (n_plan * d_plan)
        ax.plot(n_grid, pre_flops / (per_param * n_grid), color="#444", ls="--", lw=1.0, label=f"plan's pretraining compute ({pre_flops:.2g} FLOPs)")
        ax.plot([n_plan], [d_plan], marker="*", ms=14, color="#d62728", zorder=5, label=f"plan: N = {n_plan:.3g}, D = {d_plan:.3g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(n_grid[0], n_grid[-1])
        ax.set_ylim(d_grid[0], d_grid[-1])
        ax.set_xlabel("model size N (parameters)")
        ax.set_ylabel("pretraining tokens D")
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1)
        _style(ax)
    return figure_to_svg(fig, "plot-isoloss")


def render_plots(result: Mapping[str, Any], law_objects: Mapping[str, Any]) -> dict[str, str | None]:
    """Every plot of the report: plot id -> SVG (None when its data is absent)."""
    law_dict = next(iter((result.get("laws") or {}).values()), None)
    law_obj = next(iter(law_objects.values()), None)
    return {
        "plot-compute": objective_vs_compute(result),
        "plot-flops": flops_split(result),
        "plot-fit-parity": fit_parity(law_dict),
        "plot-fit-residuals": fit_residuals(law_dict),
        "plot-isoloss": isoloss_contours(result, law_obj),
    }
