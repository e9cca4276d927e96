"""Benchmark: fitting speed paths, and our default Chinchilla fit vs the `chinchilla` PyPI package (0.2.0).

    python benchmarks/bench_fit.py                # speed paths, then the package's full 4,500-start grid (minutes)
    python benchmarks/bench_fit.py --grid small   # 243-start grid for the package, for a quick look
    python benchmarks/bench_fit.py --only speed   # speed paths only (about a minute)
    python benchmarks/bench_fit.py --only package # package comparison only
    python benchmarks/bench_fit.py --only scenario-fit  # the scenario's fit (and with bootstrap 200), new vs old path

Speed paths (medians of ``--repeats`` calls, wall and CPU seconds, each beside the previous L-BFGS-B
polish or the serial run measured in the same process, with the ratio):

* Epoch's 240 points, default options, polish least squares vs L-BFGS-B;
* the three-domain runs (``scenarios/data/three_domain_runs.csv``, 525 rows) with
  ``form="split-additive"`` and with ``form="auto"`` (holdout "auto"), ``max_starts=32`` as in
  ``scenarios/three-domains.toml``, both polishes;
* ``calibrate=True`` on the three-domain runs (4 size backtests), both polishes, and n_jobs=1 vs -1;
* 200 bootstrap draws on the three-domain runs, ``n_jobs=1`` vs ``n_jobs=-1`` (one run each);
* the scenario's fit (below) with the cold multi-start's agreement stop (``n_agree=2``, opt-in)
  and the amplitude columns from one gradient call, beside every one of the ``n_polish`` starts
  polished (the default) with one prediction per amplitude column (``multistart.ANALYTIC_COLUMNS
  = False``): the path before them;
* the scenario's own fit (``form="auto"``, ``train_on="auto"``, ``calibrate=True``, ``max_starts=32``:
  ``scenarios/three-domains.toml``) and the same with ``bootstrap=200`` (the uncertainty-heavy
  variant), both at ``n_jobs=1``, beside the previous path in the same process: every subset fit a
  cold multi-start (``warm_start=False``), no solve reused (``planner.fitting.core.REUSE_SOLVES
  = False``) and one prediction per amplitude column. "Same result" gives the largest change of the ensemble weights (absolute) and of the
  chosen law's parameters (relative);
* the scenario's fit at ``n_jobs=-1`` vs ``n_jobs=1`` (the process pool is used only when the
  work outweighs its start-up, see ``planner/_parallel.py``).

Both sides get the same 240 points (Epoch's digitised Chinchilla points minus the 5 highest
losses), the same objective (mean Huber loss with delta = 1e-3 on log-loss residuals: the
package's own ``log_huber`` passed as ``loss_fn``) and the same held-out split (fit on
N <= 1.1e9, test on the larger models, metric ARE = mean |pred - actual| / actual).

The package is driven in-process as its README shows: a ``Chinchilla`` instance on a temporary
project directory, its database filled with the points, ``fit()`` with its default
``parallel=True`` (a multiprocessing pool over all cores, BFGS from every grid point, long-double
arithmetic). Its grid is Hoffmann et al.'s: e in {-1, -.5, 0, .5, 1}, a, b in {0, 5, ..., 25},
alpha, beta in {0, .5, 1, 1.5, 2} (log A = a, log B = b, E = exp(e)): 5 x 6 x 6 x 5 x 5 = 4,500
starts. Our side is ``planner.fit(points)`` with default options, timed as the median of
``--repeats`` calls (each includes validating the table); the package's fit is timed once (it
takes minutes) and includes its own set-up and its one diagnostic plot. Wall and CPU times are
both printed (CPU time includes the package's worker processes and is robust to other load);
BLAS runs single-threaded on both sides (see below).
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")  # the package saves a PNG and calls plt.show()
# One BLAS thread for both sides (set before numpy is imported; override by exporting the variables).
# Multi-threaded OpenBLAS on the tiny matrices of a fit busy-waits: on a machine shared with other
# jobs it made our fit 5-10x slower (0.8-1.2 s instead of 0.1 s); the package's long-double
# arithmetic does not use BLAS, so this does not slow it down.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import planner  # noqa: E402
from planner.fitting import holdout_metrics  # noqa: E402
from validate import DataMissing, load_epoch  # noqa: E402

SPLIT = 1.1e9
NAMES = ("E", "A", "B", "alpha", "beta")


def hoffmann_grid(kind: str = "full") -> dict[str, np.ndarray]:
    if kind == "full":
        return dict(e=np.linspace(-1, 1, 5), a=np.linspace(0, 25, 6), b=np.linspace(0, 25, 6),
                    alpha=np.linspace(0, 2, 5), beta=np.linspace(0, 2, 5))
    return dict(e=np.linspace(-1, 1, 3), a=np.linspace(0, 25, 3), b=np.linspace(0, 25, 3),
                alpha=np.linspace(0, 2, 3), beta=np.linspace(0, 2, 3))


def package_fit(points: pd.DataFrame, grid: dict[str, np.ndarray], parallel: bool = True) -> tuple[dict[str, float], float, float]:
    """Fit with the `chinchilla` package; returns (params, wall seconds, CPU seconds incl. its worker processes)."""
    from chinchilla import Chinchilla
    from chinchilla._metrics import log_huber

    with tempfile.TemporaryDirectory() as tmp:
        c0 = _cpu()
        t0 = time.perf_counter()
        cc = Chinchilla(os.path.join(tmp, "project"), param_grid=grid, loss_fn=functools.partial(log_huber, delta=1e-3), log_level=40)
        n, d = points["model_size"].to_numpy(), points["pretrain_tokens"].to_numpy()
        cc.database.df = pd.DataFrame({"C": 6 * n * d, "N": n, "D": d, "loss": points["loss"].to_numpy()})
        cc.fit(parallel=parallel)
        seconds = time.perf_counter() - t0
        cpu = _cpu() - c0
        params = {k: float(v) for k, v in cc.params.items()}
    return params, seconds, cpu


def _cpu() -> float:
    """CPU seconds of this process plus its finished children (the package's worker pool)."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def package_predict(params: dict[str, float], points: pd.DataFrame) -> np.ndarray:
    return planner.law("chinchilla", **params).predict(points)


def run(grid_kind: str = "full", repeats: int = 7, parallel: bool = True) -> dict[str, object]:
    points = load_epoch()
    train = points[points["model_size"] <= SPLIT].reset_index(drop=True)
    test = points[points["model_size"] > SPLIT].reset_index(drop=True)

    times, cpus = [], []
    for _ in range(repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        ours = planner.fit(points)
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    ours_time = statistics.median(times)
    ours_held = planner.fit(train)
    ours_are = holdout_metrics(test["loss"], ours_held.predict(test))["are"]

    grid = hoffmann_grid(grid_kind)
    n_starts = int(np.prod([len(v) for v in grid.values()]))
    pkg_params, pkg_time, pkg_cpu = package_fit(points, grid, parallel)
    pkg_held, pkg_held_time, _ = package_fit(train, grid, parallel)
    pkg_are = holdout_metrics(test["loss"], package_predict(pkg_held, test))["are"]

    def objective(params: dict[str, float], pts: pd.DataFrame) -> float:
        r = np.log(package_predict(params, pts)) - np.log(pts["loss"].to_numpy())
        a = np.abs(r)
        return float(np.mean(np.where(a <= 1e-3, 0.5 * r * r, 1e-3 * (a - 0.5e-3))))

    return {
        "n_points": len(points), "n_train": len(train), "n_test": len(test), "n_starts": n_starts, "cores": os.cpu_count(),
        "ours_time": ours_time, "ours_times": times, "ours_cpu": statistics.median(cpus), "pkg_cpu": pkg_cpu, "ours_params": dict(ours.params), "ours_are": ours_are,
        "ours_objective": objective(dict(ours.params), points), "ours_held_params": dict(ours_held.params),
        "ours_held_objective": objective(dict(ours_held.params), train),
        "pkg_time": pkg_time, "pkg_held_time": pkg_held_time, "pkg_params": pkg_params, "pkg_are": pkg_are,
        "pkg_objective": objective(pkg_params, points), "pkg_held_params": pkg_held,
        "pkg_held_objective": objective(pkg_held, train),
        "speedup": pkg_time / ours_time,
    }


def report(r: dict[str, object]) -> str:
    lines = [
        f"Epoch points: {r['n_points']} (held out: fit N <= {SPLIT:g} on {r['n_train']}, test {r['n_test']}); {r['cores']} cores",
        f"objective: mean Huber(delta=1e-3) of log residuals on both sides; package grid {r['n_starts']} BFGS starts",
        "",
        f"{'':<22}{'planner (ours)':>20}{'chinchilla 0.2.0':>20}",
        f"{'wall time, full fit':<22}{r['ours_time']:>19.3f}s{r['pkg_time']:>19.1f}s",
        f"{'CPU time, full fit':<22}{r['ours_cpu']:>19.3f}s{r['pkg_cpu']:>19.1f}s",
    ]
    for k in NAMES:
        lines.append(f"{k:<22}{r['ours_params'][k]:>20.6g}{r['pkg_params'][k]:>20.6g}")
    lines += [
        f"{'objective (240 pts)':<22}{r['ours_objective']:>20.7e}{r['pkg_objective']:>20.7e}",
        "held-out fit (N <= 1.1e9):",
    ]
    for k in NAMES:
        lines.append(f"{'  ' + k:<22}{r['ours_held_params'][k]:>20.6g}{r['pkg_held_params'][k]:>20.6g}")
    diff = r["ours_are"] - r["pkg_are"]
    same_optimum = abs(diff) <= 1e-4  # 0.01 percentage points: the two optimisers' tolerance, not a different law
    verdict = "no worse" if diff <= 0 else ("equal within optimiser tolerance (|difference| <= 0.01 points)" if same_optimum else "WORSE")
    lines += [
        f"{'  train objective':<22}{r['ours_held_objective']:>20.7e}{r['pkg_held_objective']:>20.7e}",
        f"{'  held-out ARE':<22}{100 * r['ours_are']:>19.4f}%{100 * r['pkg_are']:>19.4f}%",
        f"{'  fit time':<22}{'':>20}{r['pkg_held_time']:>19.1f}s",
        "",
        f"our fit times (s): {', '.join(f'{t:.3f}' for t in r['ours_times'])} (median {r['ours_time']:.3f}, min {min(r['ours_times']):.3f})",
        f"speed-up (package wall time / our median): {r['speedup']:.0f}x "
        f"(vs our min: {r['pkg_time'] / min(r['ours_times']):.0f}x)   target >= 100x: {'met' if r['speedup'] >= 100 else 'NOT met'}",
        f"CPU-time ratio (package incl. workers / our median): {r['pkg_cpu'] / r['ours_cpu']:.0f}x  (robust to other load on the machine)",
        f"held-out ARE, ours - package: {100 * diff:+.4f} points: {verdict}",
    ]
    return "\n".join(lines)


THREE_DOMAIN = HERE.parent / "scenarios" / "data" / "three_domain_runs.csv"


def _timed(call, repeats: int) -> tuple[float, float, object]:
    """Median wall and CPU seconds of ``repeats`` calls, and the last result."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        out = call()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), out


def speed(repeats: int = 5, n_boot: int = 200, scenario_only: bool = False) -> list[str]:
    """The speed-path table (see the module docstring)."""
    import warnings

    warnings.simplefilter("ignore", planner.errors.PlannerWarning)  # the fits' data warnings are not the subject here
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    say(f"{'case':<44}{'new wall':>10}{'new CPU':>9}{'old wall':>10}{'old CPU':>9}{'wall x':>8}{'CPU x':>7}  same result")
    say(f"{'':<44}{'(s)':>10}{'(s)':>9}{'(s)':>10}{'(s)':>9}")

    def row(name: str, new, old, reps: int, same) -> None:
        nw, nc, a = _timed(new, reps)
        ow, oc, b = _timed(old, reps)
        say(f"{name:<44}{nw:>10.3f}{nc:>9.3f}{ow:>10.3f}{oc:>9.3f}{ow / nw:>8.1f}{oc / nc:>7.1f}  {same(a, b)}")

    def same_objective(a, b) -> str:
        return f"objective rel. diff {abs(a.objective - b.objective) / b.objective:.1e}"

    runs = planner.load_runs(THREE_DOMAIN)
    opts = dict(max_starts=32, n_jobs=1)
    try:
        if scenario_only:
            raise DataMissing("--only scenario-fit")
        epoch = load_epoch()
        row("Epoch 240 points: lsq vs L-BFGS-B polish", lambda: planner.fit(epoch, polish="auto"),
            lambda: planner.fit(epoch, polish="l-bfgs-b"), repeats, same_objective)
    except DataMissing as exc:
        say(f"Epoch points: skipped ({exc})")
    if not scenario_only:
        _speed_rows(row, runs, opts, repeats, n_boot, same_objective)
    _scenario_fit_rows(row, runs, repeats, n_boot)
    say(f"{os.cpu_count()} cores; load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} (wall times on a shared machine: compare CPU; "
        "the CPU of an n_jobs=-1 row is this process only, its workers are not counted)")
    return lines


def _speed_rows(row, runs, opts, repeats: int, n_boot: int, same_objective) -> None:
    row("3-domain split-additive: lsq vs L-BFGS-B", lambda: planner.fit(runs, "split-additive", **opts),
        lambda: planner.fit(runs, "split-additive", polish="l-bfgs-b", **opts), repeats, same_objective)
    row("3-domain auto (holdout auto): lsq vs L-BFGS-B", lambda: planner.fit(runs, "auto", train_on="auto", **opts),
        lambda: planner.fit(runs, "auto", train_on="auto", polish="l-bfgs-b", **opts), max(1, repeats // 2),
        lambda a, b: f"{a.form.name} / {b.form.name}, " + same_objective(a, b))
    row("3-domain calibrate: lsq vs L-BFGS-B (n_jobs=1)", lambda: planner.fit(runs, "split-additive", calibrate=True, **opts),
        lambda: planner.fit(runs, "split-additive", calibrate=True, polish="l-bfgs-b", **opts), max(1, repeats // 2),
        lambda a, b: f"slope {a.calibration['slope_per_decade']:.4g} / {b.calibration['slope_per_decade']:.4g}")
    row("3-domain calibrate: n_jobs=-1 vs 1", lambda: planner.fit(runs, "split-additive", max_starts=32, calibrate=True, n_jobs=-1),
        lambda: planner.fit(runs, "split-additive", calibrate=True, **opts), max(1, repeats // 2),
        lambda a, b: f"identical: {a.calibration == b.calibration}")
    row(f"3-domain bootstrap {n_boot}: n_jobs=-1 vs 1", lambda: planner.fit(runs, "split-additive", max_starts=32, bootstrap=n_boot, n_jobs=-1),
        lambda: planner.fit(runs, "split-additive", bootstrap=n_boot, **opts), 1,
        lambda a, b: f"identical draws: {np.array_equal(a.draws, b.draws, equal_nan=True)}")


def _scenario_fit_rows(row, runs, repeats: int, n_boot: int) -> None:
    import planner.fitting.core as fitting_core
    import planner.fitting.multistart as multistart

    scenario_fit = dict(form="auto", train_on="auto", max_starts=32, calibrate=True)

    def old_path(**extra):
        def call():
            fitting_core.REUSE_SOLVES = False
            multistart.ANALYTIC_COLUMNS = False
            try:
                return planner.fit(runs, warm_start=False, **scenario_fit, **extra)
            finally:
                fitting_core.REUSE_SOLVES = True
                multistart.ANALYTIC_COLUMNS = True
        return call

    def same_ensemble(a, b) -> str:
        dw = max(abs(x - y) for x, y in zip(a.candidates.weights, b.candidates.weights))
        dp = max(abs(a.params[k] - b.params[k]) / abs(b.params[k]) for k in b.params if b.params[k])
        do = abs(a.objective - b.objective) / b.objective
        return f"{a.form.name}; weights abs diff {dw:.1e}, law params rel diff {dp:.1e}, objective rel diff {do:.1e}"

    def every_start(**extra):
        def call():
            multistart.ANALYTIC_COLUMNS = False
            try:
                return planner.fit(runs, **scenario_fit, **extra)
            finally:
                multistart.ANALYTIC_COLUMNS = True
        return call

    row("scenario fit: n_agree=2 vs every start polished", lambda: planner.fit(runs, n_jobs=1, n_agree=2, **scenario_fit),
        every_start(n_jobs=1), repeats, same_ensemble)
    row("scenario fit (auto+calibrate): new vs old path", lambda: planner.fit(runs, n_jobs=1, **scenario_fit),
        old_path(n_jobs=1), max(1, repeats // 2), same_ensemble)
    row(f"scenario fit + bootstrap {n_boot}: new vs old path", lambda: planner.fit(runs, n_jobs=1, bootstrap=n_boot, **scenario_fit),
        old_path(n_jobs=1, bootstrap=n_boot), 1, same_ensemble)
    row("scenario fit: n_jobs=-1 vs 1", lambda: planner.fit(runs, n_jobs=-1, **scenario_fit),
        lambda: planner.fit(runs, n_jobs=1, **scenario_fit), max(1, repeats // 2),
        lambda a, b: f"identical weights: {a.candidates.weights == b.candidates.weights}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grid", choices=("full", "small"), default="full", help="package start grid: Hoffmann's 4,500 (full) or 243 (small)")
    ap.add_argument("--repeats", type=int, default=7, help="repeats of our fit (median reported)")
    ap.add_argument("--serial", action="store_true", help="run the package without its multiprocessing pool")
    ap.add_argument("--only", choices=("speed", "package", "scenario-fit"), help="run one part only (scenario-fit: the scenario's fit rows of the speed part)")
    ap.add_argument("--bootstrap", type=int, default=200, help="draws in the bootstrap timing")
    args = ap.parse_args(argv)
    if args.only != "package":
        speed(max(1, min(args.repeats, 5)), args.bootstrap, scenario_only=args.only == "scenario-fit")
        print()
    if args.only in ("speed", "scenario-fit"):
        return 0
    try:
        r = run(args.grid, args.repeats, parallel=not args.serial)
    except DataMissing as exc:
        print(f"bench_fit.py: {exc}", file=sys.stderr)
        return 2
    print(report(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
