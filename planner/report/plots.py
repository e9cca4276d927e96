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
    "loss_vs_dprime",
    "plans_per_form",
    "residuals_by_form",
    "plot_caption",
    "render_plots",
]

#: plot id -> (title, caption); :func:`plot_caption` adapts a caption to the result (e.g. no inference)
PLOTS: dict[str, tuple[str, str]] = {
    "plot-compute": ("Objective against compute", "Predicted objective (weighted loss) of the plan and of each baseline across budgets around the chosen one; "
                     "baselines are drawn dashed with hollow markers on top of the plan, so a baseline that matches the plan stays visible."),
    "plot-flops": ("FLOPs per phase", "How the compute is split between general pretraining, each domain's specialization and inference (share of all compute)."),
    "plot-dprime": ("Loss against specialization tokens D' per domain", "Each domain's loss against D' (log scale). Points: the runs with D' > 0 "
                    "(filled: the largest model size at its largest branch point, whose fit curves are the thin dashed lines; grey: other runs). "
                    "Solid lines: each candidate form's prediction at the plan's N and D (line width by weight). The star marks the planned D'_k."),
    "plot-plans": ("Plans under every candidate form", "N, D and each D'_k of every candidate form's own plan and of the robust plans, relative to the headline plan "
                   "(log scale; 1 = the headline). Grey bars: the decision ranges over forms and draws."),
    "plot-fit-parity": ("Fit quality: predicted against observed", "Each run of the law's data; held-out points (not used to score the form) are marked with crosses."),
    "plot-fit-residuals": ("Fit quality: residuals against model size", "Relative error of the law on every run; held-out points marked with crosses."),
    "plot-form-residuals": ("In-sample residuals of every candidate form", "Mean relative error (predicted / observed - 1) of each candidate form on the rows it was "
                            "fitted to (held-out rows left out), by model size N, pretraining tokens D and specialization tokens D' (D' > 0 rows only). "
                            "A form that misses its own runs by several percent cannot be trusted to extrapolate."),
    "plot-isoloss": ("Iso-loss contours in (N, D)", "Weighted objective for model size N and pretraining tokens D, with each domain's D' at the plan; the dashed line is the plan's pretraining compute, the star the plan."),
}


def plot_caption(plot_id: str, result: Mapping[str, Any]) -> str:
    """The caption of a plot for this result (the inference phase is mentioned only where there is inference)."""
    title, caption = PLOTS[plot_id]
    if plot_id == "plot-flops" and not any(float(((p.get("flops") or {}).get("inference")) or 0.0) > 0
                                           for p in (result.get("sweep") or []) + [result]):
        caption = "How the training compute is split between general pretraining and each domain's specialization (no inference in this plan)."
    if plot_id == "plot-dprime":
        from .document import headline_block

        h = headline_block(result)
        if h and not h.get("is_nominal", True):
            caption += f" The diamond marks the headline ({h.get('plan')}) plan's D'_k."
    return caption


_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]
_RC = {
    "svg.fonttype": "none",
    "text.parse_math": False,  # labels are plain text: a domain named "$x^$" is not mathtext
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titley": 1.0,  # titles at the top edge (and its pad): no search of the tick labels for a place, at every draw
    "axes.spines.top": False,
    "axes.spines.right": False,
}


#: how :func:`figure_to_svg` renders: "single-draw" (one draw, the tight box applied as the SVG's viewBox, minor
#: ticks of log axes drawn as one marker line per axis) or "savefig" (matplotlib's ``savefig(bbox_inches="tight")``,
#: which draws the figure twice, with a Tick object per minor tick: the reference, kept for the benchmark and tests)
SVG_RENDERER = "single-draw"
#: margin around the tight box (inches), as ``savefig``'s default ``pad_inches``
PAD_INCHES = 0.1


def figure_to_svg(fig: Figure, plot_id: str, renderer: str | None = None) -> str:
    """The figure as an ``<svg>`` element string (no XML prolog), ids salted by ``plot_id``, cropped to its tight box.

    Salting keeps element ids unique and deterministic when several SVGs are inlined in one HTML page
    (matplotlib references clip paths and markers by id). ``renderer`` (default :data:`SVG_RENDERER`):

    - ``"single-draw"``: the figure is drawn once at 72 dpi; its tight bounding box (every artist, the
      legends outside the axes included), padded by :data:`PAD_INCHES`, becomes the SVG's ``viewBox``, so
      the page shows exactly the crop ``bbox_inches="tight"`` gives without the second draw. The minor
      ticks of log axes (unlabelled marks) are drawn as one marker line per axis at the positions the
      axis' own minor locator gives, instead of one matplotlib ``Tick`` object each: the same marks for a
      fraction of the cost (ticks were about half of a figure's drawing time).
    - ``"savefig"``: ``fig.savefig(format="svg", bbox_inches="tight")`` (two draws).

    Text is kept as text (``svg.fonttype = "none"``): smaller files than glyph paths, selectable in the page.
    """
    mode = renderer or SVG_RENDERER
    if mode not in ("single-draw", "savefig"):
        raise ValueError(f"unknown SVG renderer {mode!r}: choose single-draw or savefig")
    buf = io.StringIO()
    # a fixed salt and no date: the same plot gives the same bytes on every run
    with matplotlib.rc_context({"svg.hashsalt": plot_id, "svg.fonttype": "none", "text.parse_math": False}):
        if mode == "savefig":
            fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=PAD_INCHES, metadata={"Date": None})
        else:
            _draw_svg_once(fig, buf)
    text = buf.getvalue()
    start = text.find("<svg")
    svg = text[start:] if start >= 0 else text
    # drop the fixed pixel size so the figure scales with the page (the viewBox keeps the ratio)
    svg = re.sub(r'(<svg[^>]*?)\swidth="[^"]*"\sheight="[^"]*"', r'\1', svg, count=1)
    return svg.strip()


def _draw_svg_once(fig: Figure, out: io.StringIO) -> None:
    """Draw ``fig`` once into ``out`` as SVG (points: 72 per inch) and set its viewBox to the padded tight box."""
    from matplotlib.backends.backend_mixed import MixedModeRenderer
    from matplotlib.backends.backend_svg import RendererSVG

    _minor_ticks_as_markers(fig)
    dpi = fig.dpi
    width, height = fig.get_size_inches()
    fig.dpi = 72.0  # the SVG canvas's units are points
    try:
        svg_renderer = RendererSVG(width * 72.0, height * 72.0, out, image_dpi=dpi, metadata={"Date": None})
        renderer = MixedModeRenderer(fig, width, height, dpi, svg_renderer)
        fig.draw(renderer)
        box = fig.get_tightbbox(renderer)  # inches, origin bottom left
        renderer.finalize()
    finally:
        fig.dpi = dpi
    if box is None or not np.all(np.isfinite(box.extents)):
        return
    box = box.padded(PAD_INCHES)
    view = (box.x0 * 72.0, (height - box.y1) * 72.0, box.width * 72.0, box.height * 72.0)  # SVG: origin top left
    text = out.getvalue()
    text = re.sub(r'(<svg[^>]*?\sviewBox=")[^"]*(")', lambda m: m.group(1) + " ".join(f"{v:.6f}" for v in view) + m.group(2), text, count=1)
    text = re.sub(r'(<svg[^>]*?\swidth=")[^"]*("\sheight=")[^"]*(")',
                  lambda m: f"{m.group(1)}{view[2]:.6f}pt{m.group(2)}{view[3]:.6f}pt{m.group(3)}", text, count=1)
    out.seek(0)
    out.truncate()
    out.write(text)


def _minor_ticks_as_markers(fig: Figure) -> None:
    """Replace the minor ticks of every log axis by one marker line at the same positions (see :func:`figure_to_svg`).

    The positions are the axis' own (``Axis.get_minorticklocs``: the minor locator, ticks on major ones
    removed) inside the final view limits; the marks take the tick's marker (out of the axes), size,
    width and colour from the rc settings in force, like the ``Tick`` objects they replace.
    """
    from matplotlib import transforms
    from matplotlib.lines import TICKDOWN, TICKLEFT, TICKRIGHT, TICKUP, Line2D
    from matplotlib.ticker import NullLocator

    markers = {"x": {"out": TICKDOWN, "in": TICKUP}, "y": {"out": TICKLEFT, "in": TICKRIGHT}}
    for ax in fig.axes:
        for axis, name in ((ax.xaxis, "x"), (ax.yaxis, "y")):
            marker = markers[name].get(matplotlib.rcParams[f"{name}tick.direction"])
            if (axis.get_scale() != "log" or isinstance(axis.get_minor_locator(), NullLocator) or marker is None
                    or not (axis.get_visible() and matplotlib.rcParams[f"{name}tick.minor.bottom" if name == "x" else f"{name}tick.minor.left"])):
                continue  # anything else keeps matplotlib's own ticks
            locs = np.asarray(axis.get_minorticklocs(), dtype=float)
            # the ticks matplotlib would draw: inside the view limits, compared in the axis' scale (Axis._update_ticks)
            to_scale = axis.get_transform()
            view = to_scale.transform(sorted(axis.get_view_interval()))
            with np.errstate(divide="ignore", invalid="ignore"):
                locs = np.array([x for x in locs[locs > 0] if transforms._interval_contains_close(view, to_scale.transform(x))])
            axis.set_minor_locator(NullLocator())
            if not len(locs):
                continue
            zeros = np.zeros(len(locs))
            xy = (locs, zeros) if name == "x" else (zeros, locs)
            line = Line2D(*xy, linestyle="none", marker=marker,
                          markersize=matplotlib.rcParams[f"{name}tick.minor.size"], markeredgewidth=matplotlib.rcParams[f"{name}tick.minor.width"],
                          color=matplotlib.rcParams[f"{name}tick.color"], transform=ax.get_xaxis_transform() if name == "x" else ax.get_yaxis_transform(),
                          clip_on=False, zorder=axis.get_zorder())
            line.set_in_layout(False)  # like tick marks, not part of the tight box (only tick labels are)
            ax.add_artist(line)  # not add_line: the marks must not move the data limits


def _new_figure(width: float = 6.4, height: float = 3.6) -> tuple[Figure, Any]:
    # a bare Figure (no pyplot): no global backend switch, nothing to close, safe in notebooks
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height))
        ax = fig.add_subplot(1, 1, 1)
    return fig, ax


def _plain_log_label(x: float, _pos: Any = None) -> str:
    """A log-axis tick as plain text ("1e9"): the default labels are mathtext, shown raw under text.parse_math = False."""
    if not (x > 0 and math.isfinite(x)):
        return ""
    e = math.log10(x)
    if abs(e - round(e)) < 1e-9:
        return f"1e{int(round(e))}" if abs(e) >= 3 else f"{x:g}"
    m = x / 10 ** math.floor(e)
    return f"{m:.2g}e{int(math.floor(e))}" if abs(e) >= 3 else f"{x:.3g}"


def _style(ax: Any) -> None:
    from matplotlib.ticker import FuncFormatter, NullFormatter

    for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
        if scale == "log":
            axis.set_major_formatter(FuncFormatter(_plain_log_label))
            axis.set_minor_formatter(NullFormatter())
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
        ax.plot(budgets, plan, "-o", color=_COLORS[0], lw=2.6, ms=5, label="plan (split)", zorder=2, alpha=0.85)
        strategies: list[str] = []
        for c in curve:
            for s in (c.get("baselines") or {}):
                if s not in strategies:
                    strategies.append(s)
        markers = ["s", "^", "D", "v", "P", "X"]
        for i, s in enumerate(strategies):
            ys = _finite([(c.get("baselines") or {}).get(s) for c in curve])
            if np.isfinite(ys).any():
                both = np.isfinite(ys) & np.isfinite(plan)
                # a baseline within 0.1 % of the plan at every budget would hide under the plan's line: said in the legend
                same = bool(both.any() and np.all(np.abs(ys[both] - plan[both]) <= 1e-3 * np.abs(plan[both])))
                ax.plot(budgets, ys, linestyle="--", marker=markers[i % len(markers)], color=_COLORS[(i + 1) % len(_COLORS)], lw=1.3, ms=6,
                        markerfacecolor="none", markeredgewidth=1.3, zorder=5, label=s + (" (same as the plan, within 0.1 %)" if same else ""))
        chosen = result.get("budget")
        if chosen is not None and result.get("objective") is not None:
            ax.axvline(float(chosen), color="#555", lw=0.8, ls=":")
            ax.plot([float(chosen)], [float(result["objective"])], marker="*", ms=12, color=_COLORS[0], zorder=6, label="chosen budget")
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
        positions = _label_positions(cs, (n_grid[0], n_grid[-1]), (d_grid[0], d_grid[-1]), avoid=(n_plan, d_plan))
        if positions:
            # not inline (cutting the lines at hand-placed labels breaks them on log axes): a white box behind each label
            for text in ax.clabel(cs, inline=False, fontsize=7, fmt="%.3f", manual=positions) or []:
                text.set_bbox({"facecolor": "white", "edgecolor": "none", "pad": 0.6, "alpha": 0.85})
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


# --------------------------------------------------------------------------- loss against D'
def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return (n + cols - 1) // cols, cols


def loss_vs_dprime(result: Mapping[str, Any], law_objects: Mapping[str, Any]) -> str | None:
    """Loss against D' per domain: the runs as points, each candidate's curves, the planned D'_k marked (see :mod:`.curves`)."""
    from .curves import candidate_laws, dprime_curves, predict_at

    data = [x for x in dprime_curves(result, law_objects) if any(c["plan_y"] is not None for c in x["curves"])]
    if not data:
        return None
    rows, cols = _grid(len(data))
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(3.4 * cols + 0.6, 3.0 * rows + 1.2))
        axes = [fig.add_subplot(rows, cols, i + 1) for i in range(len(data))]
        handles: dict[str, Any] = {}
        for ax, x in zip(axes, data):
            pts = x["points"]
            if len(pts):
                other = pts[~pts["reference"].astype(bool)]
                ref = pts[pts["reference"].astype(bool)]
                ax.scatter(other["spec_tokens"], other["observed"], s=9, color="#bbbbbb", zorder=2, label="other runs (D' > 0)")
                h = ax.scatter(ref["spec_tokens"], ref["observed"], s=18, color="#333333", zorder=4,
                               label=f"runs at N = {x['reference'][0]:.3g}, D = {x['reference'][1]:.3g}")
                handles.setdefault("runs", h)
            top = max(x["curves"], key=lambda c: c["weight"])
            for j, c in enumerate(x["curves"]):
                color = _COLORS[j % len(_COLORS)]
                lw = 0.8 + 2.2 * float(c["weight"])
                if c["fit_y"] is not None:
                    ax.plot(c["fit_x"], c["fit_y"], color=color, lw=0.9, ls="--", zorder=3)
                if c["plan_y"] is not None:
                    line, = ax.plot(c["plan_x"], c["plan_y"], color=color, lw=lw, zorder=3, label=f"{c['form']} (weight {100 * c['weight']:.0f} %)")
                    handles.setdefault(c["form"], line)
            if x["planned"] > 0 and top["at_plan"] is not None:
                star, = ax.plot([x["planned"]], [top["at_plan"]], marker="*", ms=13, color="#d62728", ls="none", zorder=6,
                                label=f"planned D'_k (at the plan's N, D; under {top['form']})")
                handles.setdefault("planned", star)
            elif x["planned"] <= 0:
                ax.text(0.03, 0.04, "plan: no specialization (D' = 0)", transform=ax.transAxes, fontsize=7, color="#d62728")
            if x["headline"] is not None:
                hv, hn, hd = x["headline"]
                top_law = dict((f, law) for f, law, _ in candidate_laws(law_objects, result))[top["form"]]
                y = predict_at(top_law, x["domain"], np.array([hn]), np.array([hd]), np.array([max(hv, 1.0)]))
                if y is not None and hv > 0:
                    dia, = ax.plot([hv], [float(y[0])], marker="D", ms=7, color="#ff7f0e", ls="none", zorder=6,
                                   label=f"headline plan's D'_k (at its N, D; under {top['form']})")
                    handles.setdefault("headline", dia)
            ys = [float(v) for c in x["curves"] for arr in (c["plan_y"], c["fit_y"]) if arr is not None for v in arr if math.isfinite(v)]
            if len(pts):
                ys += [float(v) for v in pts.loc[pts["reference"].astype(bool), "observed"]]
            if ys:  # the runs of small models sit far above: the view keeps the curves and the reference runs
                lo, hi = min(ys), max(ys)
                pad = 0.08 * (hi - lo or abs(hi) * 0.05 or 1.0)
                ax.set_ylim(lo - pad, hi + pad)
            ax.set_xscale("log")
            ax.set_title(f"{x['domain']}", fontsize=9)
            ax.set_xlabel("specialization tokens D'")
            ax.set_ylabel("loss (nats/token)")
            _style(ax)
        labels = [h.get_label() for h in handles.values()]
        fig.legend(list(handles.values()), labels, loc="lower center", ncol=2, fontsize=7, frameon=False, bbox_to_anchor=(0.5, 0.0))
        fig.subplots_adjust(bottom=0.12 + 0.05 * ((len(handles) + 1) // 2) / max(rows, 1), hspace=0.45, wspace=0.35)
    return figure_to_svg(fig, "plot-dprime")


# --------------------------------------------------------------------------- plans per form
def plans_per_form(result: Mapping[str, Any]) -> str | None:
    """N, D, D'_k of every candidate's plan and of the robust plans, as ratios to the headline plan (log x)."""
    from .curves import plan_rows
    from .formatting import fmt_count

    rows = [r for r in plan_rows(result) if not isinstance(r["model_size"], Mapping)]
    dec = result.get("decision") or {}
    head = dec.get("headline_plan") or {}
    if len(rows) < 2 or head.get("model_size") is None or isinstance(head.get("model_size"), Mapping):
        return None
    spec_names = list((head.get("spec_tokens") or {}).keys())
    coords = [("model_size", "N", lambda p: p["model_size"]), ("pretrain_tokens", "D", lambda p: p["pretrain_tokens"])]
    coords += [(f"spec_tokens[{k}]", f"D'[{k}]", (lambda k: lambda p: (p["spec_tokens"] or {}).get(k))(k)) for k in spec_names]
    ref = {"model_size": head.get("model_size"), "pretrain_tokens": head.get("pretrain_tokens"), "spec_tokens": head.get("spec_tokens") or {}}
    ranges = (dec.get("ranges") or {}).get("rows") or {}
    fig, ax = _new_figure(6.4, 1.2 + 0.42 * len(coords) + 0.12 * len(rows))
    with matplotlib.rc_context(_RC):
        ylabels = []
        for i, (key, label, get) in enumerate(coords):
            r0 = get(ref)
            ylabels.append(f"{label} (headline {fmt_count(r0)})")
            if not r0 or float(r0) <= 0:
                continue
            rg = ranges.get(key)
            if rg and rg.get("p_low") and rg.get("p_high"):
                lo, hi = float(rg["p_low"]) / float(r0), float(rg["p_high"]) / float(r0)
                ax.plot([lo, hi], [i, i], color="#cccccc", lw=7, solid_capstyle="butt", zorder=1,
                        label="decision range" if i == 0 else None)
        markers = ["o", "s", "^", "v", "P", "X", "D", "h"]
        offsets = np.linspace(-0.22, 0.22, len(rows)) if len(rows) > 1 else np.zeros(1)
        for j, row in enumerate(rows):
            xs, ys = [], []
            for i, (key, label, get) in enumerate(coords):
                r0, v = get(ref), get(row)
                if r0 and v and float(r0) > 0 and float(v) > 0:
                    xs.append(float(v) / float(r0))
                    ys.append(i + offsets[j])
            w = "" if row["kind"] == "robust" else f" (weight {100 * float(row['weight'] or 0):.0f} %)"
            ax.plot(xs, ys, ls="none", marker=markers[j % len(markers)], ms=6 if not row["headline"] else 9,
                    color=_COLORS[j % len(_COLORS)], markerfacecolor="none" if row["kind"] == "robust" else _COLORS[j % len(_COLORS)],
                    markeredgewidth=1.4, zorder=3, label=f"{row['plan']}{w}" + (" - headline" if row["headline"] else ""))
        ax.axvline(1.0, color="#555", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yticks(range(len(coords)))
        ax.set_yticklabels(ylabels)
        ax.invert_yaxis()
        ax.set_xlabel("value / headline plan's value")
        ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
        _style(ax)
    return figure_to_svg(fig, "plot-plans")


# --------------------------------------------------------------------------- residuals per form
def residuals_by_form(result: Mapping[str, Any], law_objects: Mapping[str, Any], residuals: list[dict[str, Any]] | None = None) -> str | None:
    """Each candidate's mean in-sample relative error by N, D and D' (three panels; see :func:`.curves.form_residuals`,
    whose output ``residuals`` is, when already computed)."""
    from .curves import form_residuals

    data = residuals if residuals is not None else form_residuals(result, law_objects)
    if not data:
        return None
    panels = [("model_size", "model size N (parameters)"), ("pretrain_tokens", "pretraining tokens D"), ("spec_tokens", "specialization tokens D' (D' > 0)")]
    if not any((x["table"]["spec_tokens"] > 0).any() for x in data):
        panels = panels[:2]
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(3.3 * len(panels) + 0.6, 3.6))
        axes = [fig.add_subplot(1, len(panels), i + 1) for i in range(len(panels))]
        for j, x in enumerate(data):
            color = _COLORS[j % len(_COLORS)]
            base, spec = x["adequacy"]["base"]["mean"], x["adequacy"]["specialized"]["mean"]
            label = (f"{x['form']} (weight {100 * x['weight']:.0f} %; mean |error| base "
                     f"{'–' if base is None else f'{100 * base:.1f} %'}, specialized {'–' if spec is None else f'{100 * spec:.1f} %'})")
            for k, (ax, (key, xlabel)) in enumerate(zip(axes, panels)):
                t = x["table"]
                if key == "spec_tokens":
                    t = t[t["spec_tokens"] > 0]
                if t.empty:
                    continue
                g = t.groupby(key, sort=True)["rel_error"].mean()
                ax.plot(g.index.to_numpy(dtype=float), 100.0 * g.to_numpy(dtype=float), "-o", color=color, lw=1.2, ms=3.5,
                        label=label if k == 0 else None)
        for ax, (key, xlabel) in zip(axes, panels):
            ax.axhline(0.0, color="#333", lw=0.8)
            ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            _style(ax)
        axes[0].set_ylabel("mean of predicted / observed - 1 (%)")
        fig.legend(loc="lower center", ncol=1 if len(data) > 3 else 2, fontsize=7, frameon=False, bbox_to_anchor=(0.5, 0.0))
        fig.subplots_adjust(bottom=0.2 + 0.045 * len(data), wspace=0.35)
    return figure_to_svg(fig, "plot-form-residuals")


def _label_positions(cs: Any, xlim: tuple[float, float], ylim: tuple[float, float], margin: float = 0.1,
                     avoid: tuple[float, float] | None = None, clearance: float = 0.08) -> list[tuple[float, float]]:
    """One label position per contour level, on the level's line as far from the axes' edges as possible (log axes).

    matplotlib's automatic placement may put a label across the edge, where it is clipped; a level
    whose line never comes more than ``margin`` (of the axis span, in log) inside the edges gets no label.
    Points within ``clearance`` (same units) of ``avoid`` (the plan's marker) are not used.
    """
    lx, ly = np.log10(xlim), np.log10(ylim)
    av = None if avoid is None else ((math.log10(avoid[0]) - lx[0]) / (lx[1] - lx[0]), (math.log10(avoid[1]) - ly[0]) / (ly[1] - ly[0]))
    out = []
    try:
        segs_per_level = cs.allsegs
    except AttributeError:
        return []
    for segs in segs_per_level:
        best, best_d = None, margin
        for seg in segs:
            seg = np.asarray(seg, dtype=float)
            if seg.ndim != 2 or len(seg) == 0:
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                u = (np.log10(seg[:, 0]) - lx[0]) / (lx[1] - lx[0])
                v = (np.log10(seg[:, 1]) - ly[0]) / (ly[1] - ly[0])
            dist = np.minimum.reduce([u, 1 - u, v, 1 - v])
            if av is not None:
                dist[np.hypot(u - av[0], v - av[1]) < clearance] = -1.0
            dist[~np.isfinite(dist)] = -1.0
            j = int(np.argmax(dist))
            if dist[j] > best_d:
                best, best_d = (float(seg[j, 0]), float(seg[j, 1])), float(dist[j])
        if best is not None:
            out.append(best)
    return out


def render_plots(result: Mapping[str, Any], law_objects: Mapping[str, Any], residuals: list[dict[str, Any]] | None = None) -> dict[str, str | None]:
    """Every plot of the report: plot id -> SVG (None when its data is absent). ``residuals``: :func:`.curves.form_residuals`
    of the result, when already computed."""
    law_dict = next(iter((result.get("laws") or {}).values()), None)
    law_obj = next(iter(law_objects.values()), None)
    return {
        "plot-compute": objective_vs_compute(result),
        "plot-flops": flops_split(result),
        "plot-dprime": loss_vs_dprime(result, law_objects),
        "plot-plans": plans_per_form(result),
        "plot-fit-parity": fit_parity(law_dict),
        "plot-fit-residuals": fit_residuals(law_dict),
        "plot-form-residuals": residuals_by_form(result, law_objects, residuals),
        "plot-isoloss": isoloss_contours(result, law_obj),
    }
