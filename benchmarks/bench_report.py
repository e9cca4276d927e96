"""Benchmark the reports of the main scenario: the SVG plots drawn once (the default) against matplotlib's savefig.

Run:  .venv/bin/python benchmarks/bench_report.py [--repeats 5] [--result out/three-domains/allocation.json]

The result document is the main scenario's (``scenarios/three-domains.toml``, solved here once with
``n_jobs=1``, or read from ``--result``). In one process, alternating, the script renders the whole
report set (json, md, csv and the HTML page with its eight plots, ``planner.report.render``) with each
SVG path of ``planner.report.plots.figure_to_svg``:

- ``savefig``: matplotlib's ``savefig(format="svg", bbox_inches="tight")``, the previous path: the
  figure is drawn twice (once to measure the tight box) and every minor tick of a log axis is a
  ``Tick`` object;
- ``single-draw``: one draw, the tight box written as the SVG's viewBox, the minor ticks of log axes as
  one marker line per axis (the default).

It prints the median CPU seconds (``time.process_time``: steadier than wall clock on a shared machine)
and wall seconds of each, their ratio, the median per plot, the one-off import of matplotlib, and the
load average before and after. Both paths must give the same json, md and csv bytes, and pages of the
same size to within 5 % (the SVG numbers differ only by the crop's offset); the script checks that.
What the ``savefig`` column does not undo: the in-sample residuals are computed once for Markdown and
HTML on both paths (they were computed twice before, about 0.2 s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MAIN_SCENARIO = ROOT / "scenarios" / "three-domains.toml"
MODES = ("savefig", "single-draw")


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="renders of the report set per path (default 5)")
    ap.add_argument("--result", type=Path, help="an allocation.json to render (default: solve the main scenario here)")
    args = ap.parse_args()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    print(_load(), flush=True)

    from planner.report import law_objects, load_result, render

    if args.result:
        doc = load_result(args.result)
        print(f"result: {args.result}")
    else:
        from planner.scenario import run_scenario

        t0 = time.process_time()
        doc = run_scenario(MAIN_SCENARIO, n_jobs=1).to_dict()
        print(f"result: {MAIN_SCENARIO.relative_to(ROOT)} solved in {time.process_time() - t0:.1f} s CPU (not part of the timings)")

    t0 = time.process_time()
    from planner.report import plots  # matplotlib

    print(f"import matplotlib (once per process, both paths): {time.process_time() - t0:.3f} s CPU", flush=True)

    cpu: dict[str, list[float]] = {m: [] for m in MODES}
    wall: dict[str, list[float]] = {m: [] for m in MODES}
    texts: dict[str, dict[str, str]] = {}
    render(doc)  # warm-up: caches of fonts and text metrics, first-use imports
    for _ in range(args.repeats):
        for mode in MODES:
            plots.SVG_RENDERER = mode
            c, w = time.process_time(), time.perf_counter()
            texts[mode] = render(doc)
            cpu[mode].append(time.process_time() - c)
            wall[mode].append(time.perf_counter() - w)
    plots.SVG_RENDERER = "single-draw"

    for name in texts["savefig"]:
        if name != "report.html" and texts["savefig"][name] != texts["single-draw"][name]:
            raise SystemExit(f"{name} differs between the two SVG paths")
    sizes = {m: len(texts[m]["report.html"]) for m in MODES}
    if abs(sizes["single-draw"] - sizes["savefig"]) > 0.05 * sizes["savefig"]:
        raise SystemExit(f"report.html sizes differ by more than 5 %: {sizes}")

    print(f"\nwhole report set (json, md, csv, html with 8 plots), median of {args.repeats}:")
    print(f"  {'path':<14}{'CPU s':>9}{'wall s':>9}{'html kB':>9}")
    for mode in MODES:
        print(f"  {mode:<14}{statistics.median(cpu[mode]):9.3f}{statistics.median(wall[mode]):9.3f}{sizes[mode] / 1000:9.0f}")
    ratio_cpu = statistics.median(cpu["savefig"]) / statistics.median(cpu["single-draw"])
    ratio_wall = statistics.median(wall["savefig"]) / statistics.median(wall["single-draw"])
    print(f"  savefig / single-draw: {ratio_cpu:.2f}x CPU, {ratio_wall:.2f}x wall")

    laws = law_objects(doc)
    law_dict = next(iter((doc.get("laws") or {}).values()), None)
    law_obj = next(iter(laws.values()), None)
    per_plot = {
        "plot-compute": lambda: plots.objective_vs_compute(doc),
        "plot-flops": lambda: plots.flops_split(doc),
        "plot-dprime": lambda: plots.loss_vs_dprime(doc, laws),
        "plot-plans": lambda: plots.plans_per_form(doc),
        "plot-fit-parity": lambda: plots.fit_parity(law_dict),
        "plot-fit-residuals": lambda: plots.fit_residuals(law_dict),
        "plot-form-residuals": lambda: plots.residuals_by_form(doc, laws),
        "plot-isoloss": lambda: plots.isoloss_contours(doc, law_obj),
    }
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeats):
        for plot_id, draw in per_plot.items():
            for mode in MODES:
                plots.SVG_RENDERER = mode
                c = time.process_time()
                draw()
                times.setdefault((plot_id, mode), []).append(time.process_time() - c)
    plots.SVG_RENDERER = "single-draw"
    print(f"\nper plot (CPU s, median of {args.repeats}; includes the plot's own data preparation):")
    print(f"  {'plot':<22}{'savefig':>9}{'single':>9}{'ratio':>8}")
    for plot_id in per_plot:
        a, b = statistics.median(times[(plot_id, 'savefig')]), statistics.median(times[(plot_id, 'single-draw')])
        print(f"  {plot_id:<22}{a:9.3f}{b:9.3f}{a / b:7.2f}x")
    print("\n" + _load())


if __name__ == "__main__":
    main()
