"""The fast SVG path of the report's plots against matplotlib's own ``savefig(bbox_inches="tight")``.

``figure_to_svg`` draws a figure once and writes its tight box as the SVG's viewBox, and draws the
minor ticks of log axes as one marker line per axis (``renderer="single-draw"``, the default). The
reference is the same figure through ``savefig`` (``renderer="savefig"``): both must give the same
crop (viewBox size), the same texts, and every tick mark at the same place relative to the crop.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from matplotlib.figure import Figure

from planner.report import law_objects, plots
from test_report_fixtures import make_result

_USE = re.compile(r'<use xlink:href="#(m[0-9a-f]+)" x="([-0-9.e]+)" y="([-0-9.e]+)"')


def _view_box(svg: str) -> np.ndarray:
    return np.array([float(v) for v in re.search(r'<svg[^>]*viewBox="([^"]*)"', svg).group(1).split()])


def _marks(svg: str) -> dict[str, np.ndarray]:
    """Marker id (a hash of the marker's path) -> sorted positions relative to the viewBox's top left corner, of the
    marks inside the viewBox (the backend may or may not write markers that fall outside the picture)."""
    x0, y0, w, h = _view_box(svg)
    out: dict[str, list[tuple[float, float]]] = {}
    for mid, x, y in _USE.findall(svg):
        x, y = float(x) - x0, float(y) - y0
        if 0.0 <= x <= w and 0.0 <= y <= h:
            out.setdefault(mid, []).append((round(x, 3), round(y, 3)))
    return {k: np.array(sorted(v)) for k, v in out.items()}


def _texts(svg: str) -> list[str]:
    return sorted(re.findall(r">([^<>]+)</text>", svg))


def _log_figure() -> Figure:
    fig = Figure(figsize=(4.0, 3.0))
    ax = fig.add_subplot()
    ax.plot([1e2, 1e5], [1e-1, 3e1], "-o")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(1e2, 1e5)
    ax.set_title("a title")
    ax.legend(["a line"], loc="upper center", bbox_to_anchor=(0.5, -0.2))  # outside the axes: the crop must include it
    return fig


def _same_picture(fast: str, reference: str) -> None:
    assert np.allclose(_view_box(fast)[2:], _view_box(reference)[2:], atol=1e-3)
    assert _texts(fast) == _texts(reference)
    a, b = _marks(fast), _marks(reference)
    assert a.keys() == b.keys()
    for mid in a:
        assert a[mid].shape == b[mid].shape and np.allclose(a[mid], b[mid], atol=2e-3), mid


def test_single_draw_gives_savefigs_crop_texts_and_tick_marks():
    fast = plots.figure_to_svg(_log_figure(), "t", renderer="single-draw")
    reference = plots.figure_to_svg(_log_figure(), "t", renderer="savefig")
    _same_picture(fast, reference)
    # 2..9 x 1e2, 1e3, 1e4 on x; 2..9 x 1e-1, 1e0 and 2, 3 x 1e1 on y (y runs to about 30): minor marks of 2 pt
    minor_x = next(mid for mid in _marks(fast) if re.search(rf'<path id="{mid}" d="M 0 0 \s*L 0 2 ', fast))
    minor_y = next(mid for mid in _marks(fast) if re.search(rf'<path id="{mid}" d="M 0 0 \s*L -2 0 ', fast))
    assert len(_marks(fast)[minor_x]) == 24
    ylim = _log_figure().axes[0].get_ylim()
    expected_y = [m * 10.0 ** e for e in range(-2, 3) for m in range(2, 10) if ylim[0] <= m * 10.0 ** e <= ylim[1]]
    assert len(_marks(fast)[minor_y]) == len(expected_y)
    # the legend below the axes is inside the crop: the viewBox reaches below the figure's own canvas (3 in = 216 pt)
    x0, y0, w, h = _view_box(fast)
    assert y0 + h > 216.0


def test_unknown_renderer_is_refused():
    with pytest.raises(ValueError, match="unknown SVG renderer"):
        plots.figure_to_svg(_log_figure(), "t", renderer="png")


@pytest.mark.slow
def test_every_report_plot_is_the_same_picture_on_both_paths(monkeypatch):
    doc = make_result(sweep=True, decision="robust-worst")
    laws = law_objects(doc)
    monkeypatch.setattr(plots, "SVG_RENDERER", "savefig")
    reference = plots.render_plots(doc, laws)
    monkeypatch.setattr(plots, "SVG_RENDERER", "single-draw")
    fast = plots.render_plots(doc, laws)
    assert fast.keys() == reference.keys()
    for plot_id in fast:
        assert (fast[plot_id] is None) == (reference[plot_id] is None), plot_id
        if fast[plot_id] is not None:
            _same_picture(fast[plot_id], reference[plot_id])
