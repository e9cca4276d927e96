"""Benchmark the allocator: the numpy KKT solver against the cvxpy reference formulations, in the same run.

Cases (medians over the repeats of this process's CPU time, or wall time with ``--wall``, seconds;
ratio = cvxpy / numpy, both measured in the same run):

* full ``optimize()`` with baselines and compute multipliers, K = 2, on the dcp path
  (split-additive with D0 > 0; split-effective, D and D' coupled: :mod:`planner.allocate.kkt_effective`)
  and on the gp path (D0 = 0);
* ``optimize(baselines=False)`` at K = 10, 100, 1,000 domains (split-additive, D0 = 0: a GP);
* a 100-budget ``sweep`` at K = 10;
* many domains with a shared-parameter law (one Chinchilla law for every domain): K = 50 and 1,000;
* the agreement of the two solvers (relative difference of objective and N).

Run:  PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_allocate.py [--repeats 3] [--quick] [--wall] [--effective]

``--against DIR``: old against new instead. The 100-budget sweeps at K = 10, the K = 2 ``optimize()``
with baselines on the dcp path and the K = 1,000 ``optimize()`` are timed in fresh processes, one with
``DIR`` (an older checkout, e.g. ``/work/main``) first on the path and one with this tree, alternately,
``--repeats`` rounds (medians of each process's best-of-5 CPU seconds; ratio = old / new).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np

import planner
from planner.allocate import Domain, optimize, sweep


def _random_law(form: str, K: int, seed: int, spec_params: dict[str, tuple[str, float, float]], fixed: dict[str, float]) -> tuple[planner.FittedLaw, list[Domain]]:
    """A ``form`` law with K domains: Chinchilla's shared A, alpha, beta; per domain E, B, the specialization
    parameters drawn as ``name: (scale "lin" or "log10", low, high)`` and the ``fixed`` ones; random weights."""
    rng = np.random.default_rng(seed)
    names = [f"d{i}" for i in range(K)]
    kw: dict[str, float] = dict(A=406.4, alpha=0.34, beta=0.28)
    for n in names:
        kw[f"E[{n}]"] = 1.0 + rng.uniform(0, 1)
        kw[f"B[{n}]"] = rng.uniform(300, 800)
        for name, (scale, lo, hi) in spec_params.items():
            v = rng.uniform(lo, hi)
            kw[f"{name}[{n}]"] = 10 ** v if scale == "log10" else v
        kw.update({f"{name}[{n}]": v for name, v in fixed.items()})
    law = planner.law(form, domains=names, **kw)
    return law, [Domain(n, float(rng.uniform(0.5, 2.0))) for n in names]


def make_law(K: int, seed: int = 1, d0: float = 0.0) -> tuple[planner.FittedLaw, list[Domain]]:
    """A split-additive law (D0 = 0: a posynomial; D0 > 0: convex in the tokens only) with K domains."""
    return _random_law("split-additive", K, seed, {"C": ("lin", 10, 60), "gamma": ("lin", 0.2, 0.35)}, {"D0": d0})


def make_effective_law(K: int, seed: int = 1) -> tuple[planner.FittedLaw, list[Domain]]:
    """A split-effective law (D' worth s_k D'^eta_k pretraining tokens, eta_k < 1) with K domains."""
    return _random_law("split-effective", K, seed, {"s": ("log10", 0.5, 1.5), "eta": ("lin", 0.7, 0.95)}, {})


#: what the medians measure: "cpu" (time.process_time of this process, the default: the machine is shared
#: and CPU time is less inflated by other jobs than wall time) or "wall" (time.perf_counter)
CLOCK = {"fn": time.process_time, "name": "cpu"}


def median_time(fn: Callable[[], object], repeats: int) -> float:
    clock = CLOCK["fn"]
    times = []
    for _ in range(repeats):
        t = clock()
        fn()
        times.append(clock() - t)
    return statistics.median(times)


def compare(label: str, fn: Callable[[str], object], repeats: int, cvxpy_repeats: int | None = None) -> tuple[float, float]:
    fn("numpy")  # warm-up (imports, caches)
    t_np = median_time(lambda: fn("numpy"), repeats)
    t_cv = median_time(lambda: fn("cvxpy"), cvxpy_repeats or repeats)
    print(f"  {label:<58} numpy {t_np:8.4f} s   cvxpy {t_cv:8.3f} s   ratio {t_cv / t_np:7.1f}x   ({CLOCK['name']})")
    return t_np, t_cv


def agreement(label: str, a: planner.Allocation, b: planner.Allocation) -> None:
    d_obj = abs(a.objective - b.objective) / abs(b.objective)
    d_n = abs(a.model_size - b.model_size) / b.model_size
    print(f"  {label:<58} objective {d_obj:.1e}   N {d_n:.1e}   (numpy {a.path}, cvxpy {b.path})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="skip the slowest cvxpy references (K = 1000, shared law K = 1000)")
    ap.add_argument("--wall", action="store_true", help="time wall-clock (perf_counter) instead of this process's CPU time")
    ap.add_argument("--effective", action="store_true", help="only the split-effective case (K = 2, baselines) and its agreement")
    ap.add_argument("--against", default=None, metavar="DIR", help="an older checkout: time the sweeps and K = 2 / 1,000 plans old against new")
    args = ap.parse_args()
    if args.against:
        against(args.against, args.repeats)
        return
    if args.wall:
        CLOCK.update(fn=time.perf_counter, name="wall")
    r = args.repeats
    budget = 1e23
    with_warnings_off()
    if args.effective:
        law_e, doms_e = make_effective_law(2)
        print("full optimize() with baselines and compute multipliers, K = 2, budget 1e23 FLOPs")
        compare("dcp path (split-effective, eta < 1)", lambda s: optimize(law_e, budget, doms_e, solver=s), r)
        agreement("split-effective, K = 2, 1e23", optimize(law_e, budget, doms_e, solver="numpy"), optimize(law_e, budget, doms_e, solver="cvxpy"))
        return

    print("full optimize() with baselines and compute multipliers, K = 2, budget 1e23 FLOPs")
    law_d, doms2 = make_law(2, d0=1e9)
    law_g, _ = make_law(2, d0=0.0)
    compare("dcp path (split-additive, D0 = 1e9)", lambda s: optimize(law_d, budget, doms2, solver=s), r, max(1, r // 2))
    compare("gp path (split-additive, D0 = 0)", lambda s: optimize(law_g, budget, doms2, solver=s), r)
    law_e, doms_e = make_effective_law(2)
    compare("dcp path (split-effective, eta < 1)", lambda s: optimize(law_e, budget, doms_e, solver=s), r)

    print("\noptimize(baselines=False), split-additive D0 = 0 (a geometric program)")
    for K in (10, 100, 1000):
        if K == 1000 and args.quick:
            law, doms = make_law(K)
            optimize(law, budget, doms, baselines=False)
            t = median_time(lambda: optimize(law, budget, doms, baselines=False), r)
            print(f"  K = {K:<54} numpy {t:8.4f} s")
            continue
        law, doms = make_law(K)
        compare(f"K = {K}", lambda s: optimize(law, budget, doms, baselines=False, solver=s), r, 1 if K >= 100 else r)

    print("\nsweep(): 100 budgets 1e20 .. 1e25, K = 10")
    law, doms = make_law(10)
    budgets = list(np.geomspace(1e20, 1e25, 100))
    compare("100-budget sweep, gp law", lambda s: sweep(law, budgets, doms, solver=s), r, 1)
    law_d10, doms10 = make_law(10, d0=1e9)
    compare("100-budget sweep, dcp law (D0 = 1e9)", lambda s: sweep(law_d10, budgets, doms10, solver=s), r, 1)

    print("\nmany domains, one shared-parameter law (Chinchilla for every domain), baselines off")
    chin = planner.law("chinchilla", E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
    for K in (50, 1000):
        doms = [Domain(f"d{i}", 1.0 + (i % 3)) for i in range(K)]
        if K == 1000 and args.quick:
            optimize(chin, budget, doms, baselines=False)
            t = median_time(lambda: optimize(chin, budget, doms, baselines=False), r)
            print(f"  K = {K:<54} numpy {t:8.4f} s")
            continue
        compare(f"K = {K}", lambda s: optimize(chin, budget, doms, baselines=False, solver=s), r, 1)
    law_s, _ = make_law(1000)
    doms_s = [Domain(f"d{i}") for i in range(1000)]
    optimize(law_s, budget, doms_s, baselines=False)
    t = median_time(lambda: optimize(law_s, budget, doms_s, baselines=False), r)
    print(f"  {'split-additive, tied A/alpha/beta, K = 1000, numpy':<58} {t:8.4f} s")

    print("\nagreement of the numpy and cvxpy solvers (relative differences)")
    agreement("dcp path, K = 2, 1e23", optimize(law_d, budget, doms2, solver="numpy"), optimize(law_d, budget, doms2, solver="cvxpy"))
    agreement("gp path, K = 2, 1e23", optimize(law_g, budget, doms2, solver="numpy"), optimize(law_g, budget, doms2, solver="cvxpy"))
    agreement("split-effective, K = 2, 1e23", optimize(law_e, budget, doms_e, solver="numpy"), optimize(law_e, budget, doms_e, solver="cvxpy"))
    law, doms = make_law(10)
    agreement("gp path, K = 10, 1e21", optimize(law, 1e21, doms, baselines=False, solver="numpy"), optimize(law, 1e21, doms, baselines=False, solver="cvxpy"))


#: the cases of ``--against``, run in a fresh process by ``_AGAINST_SNIPPET``
_AGAINST_CASES = ("sweep gp law, K = 10, 100 budgets", "sweep dcp law (D0 = 1e9), K = 10, 100 budgets",
                  "optimize dcp law, K = 2, baselines", "optimize gp law, K = 1000, no baselines")
_AGAINST_SNIPPET = """
import sys, time, warnings
sys.path.insert(1, {bench!r})
warnings.simplefilter("ignore")
import numpy as np
from bench_allocate import make_law
from planner.allocate import optimize, sweep
budgets = list(np.geomspace(1e20, 1e25, 100))
law_g, doms10 = make_law(10)
law_d, doms10d = make_law(10, d0=1e9)
law_2, doms2 = make_law(2, d0=1e9)
law_k, domsk = make_law(1000)
cases = [lambda: sweep(law_g, budgets, doms10), lambda: sweep(law_d, budgets, doms10d),
         lambda: optimize(law_2, 1e23, doms2), lambda: optimize(law_k, 1e23, domsk, baselines=False)]
out = []
for fn in cases:
    fn()
    best = float("inf")
    for _ in range(5):
        t = time.process_time(); fn(); best = min(best, time.process_time() - t)
    out.append(best)
print(" ".join(repr(x) for x in out))
"""


def against(old_dir: str, repeats: int) -> None:
    import os
    import subprocess
    import sys

    here = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    code = _AGAINST_SNIPPET.format(bench=os.path.join(here, "benchmarks"))
    times: dict[str, list[list[float]]] = {"old": [], "new": []}
    for _ in range(max(repeats, 1)):
        for label, tree in (("old", os.path.abspath(old_dir)), ("new", here)):
            env = {**os.environ, "PYTHONPATH": tree}
            res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            times[label].append([float(x) for x in res.stdout.split()])
    print(f"old ({old_dir}) against new ({here}): medians over {repeats} process pairs of each process's best-of-5 CPU seconds")
    for i, case in enumerate(_AGAINST_CASES):
        o = statistics.median(t[i] for t in times["old"])
        n = statistics.median(t[i] for t in times["new"])
        print(f"  {case:<48} old {o:8.4f} s   new {n:8.4f} s   ratio {o / n:5.2f}x")


def with_warnings_off() -> None:
    import warnings

    from planner.errors import PlannerWarning

    warnings.simplefilter("ignore", PlannerWarning)


if __name__ == "__main__":
    main()
