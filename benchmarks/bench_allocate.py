"""Benchmark the allocator: vectorised geometric program at K = 1 ... 1000 domains, budget sweeps,
and peer comparisons (a naive one-expression-per-domain cvxpy GP; 100 separate optimize calls).

Run:  .venv/bin/python benchmarks/bench_allocate.py [--repeats 3]
Prints medians over the repeats (seconds) and ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np

import planner
from planner.allocate import Domain, optimize, sweep
from planner.allocate.gp import GPModel
from planner.allocate._context import build_context
from planner.allocate._options import check_options


def make_law(K: int, seed: int = 1) -> tuple[planner.FittedLaw, list[Domain]]:
    """A split-additive law with D0 = 0 (a posynomial) and K domains with varied constants."""
    rng = np.random.default_rng(seed)
    names = [f"d{i}" for i in range(K)]
    kw: dict[str, float] = dict(A=406.4, alpha=0.34, beta=0.28)
    for n in names:
        kw[f"E[{n}]"] = 1.0 + rng.uniform(0, 1)
        kw[f"B[{n}]"] = rng.uniform(300, 800)
        kw[f"C[{n}]"] = rng.uniform(10, 60)
        kw[f"gamma[{n}]"] = rng.uniform(0.2, 0.35)
        kw[f"D0[{n}]"] = 0.0
    law = planner.law("split-additive", domains=names, **kw)
    return law, [Domain(n, float(rng.uniform(0.5, 2.0))) for n in names]


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def naive_gp(law: planner.FittedLaw, doms: list[Domain], budget: float) -> float:
    """Peer: cvxpy's gp=True with one posynomial expression per domain (what a first attempt looks like)."""
    import cvxpy as cp

    s = 1e9
    N = cp.Variable(pos=True)
    D = cp.Variable(pos=True)
    Ds = cp.Variable(len(doms), pos=True)
    obj = 0
    for k, d in enumerate(doms):
        p = law.domain_params(d.name)
        obj = obj + d.weight * (p["E"] + p["A"] * s ** -p["alpha"] * N ** -p["alpha"] + p["B"] * s ** -p["beta"] * D ** -p["beta"]
                                + p["C"] * s ** -p["gamma"] * Ds[k] ** -p["gamma"])
    cons = [6 * s * s * N * (D + cp.sum(Ds)) / budget <= 1]
    prob = cp.Problem(cp.Minimize(obj), cons)
    prob.solve(gp=True, solver="CLARABEL")
    return float(prob.value)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    r = args.repeats
    budget = 1e23

    # warm-up (imports, first cvxpy compilation)
    law1, doms1 = make_law(1)
    optimize(law1, budget, doms1, baselines=False)

    print("vectorised geometric program, split-additive law (D0 = 0), budget 1e23 FLOPs")
    print(f"{'K':>6} {'build (s)':>10} {'solve (s)':>10} {'build+solve':>12} {'optimize() total':>17}  status / certified")
    for K in (1, 10, 100, 1000):
        law, doms = make_law(K)
        ctx = build_context(law, budget, doms, None, check_options("bench"), {})
        builds, solves = [], []
        for _ in range(r):
            t = time.perf_counter()
            model = GPModel(ctx.problem)
            t1 = time.perf_counter()
            sol = model.solve(budget)
            t2 = time.perf_counter()
            builds.append(t1 - t)
            solves.append(t2 - t1)
        total = median_time(lambda: optimize(law, budget, doms, baselines=False), r)
        plan = optimize(law, budget, doms, baselines=False)
        b, s_ = statistics.median(builds), statistics.median(solves)
        print(f"{K:>6} {b:>10.3f} {s_:>10.3f} {b + s_:>12.3f} {total:>17.3f}  {sol.status} / {plan.certified}")

    print("\npeer: naive cvxpy gp=True, one posynomial expression per domain")
    for K in (10, 100):
        law, doms = make_law(K)
        naive = median_time(lambda: naive_gp(law, doms, budget), max(1, r // 2) if K >= 100 else r)
        ctx = build_context(law, budget, doms, None, check_options("bench"), {})
        vec = median_time(lambda: GPModel(ctx.problem).solve(budget), r)
        val_naive = naive_gp(law, doms, budget)
        val_vec = optimize(law, budget, doms, baselines=False).objective
        print(f"  K={K:>4}: naive {naive:.3f} s, vectorised {vec:.3f} s, ratio {naive / vec:.1f}x; objectives {val_naive:.8f} vs {val_vec:.8f}")

    print("\nbudget sweep: 100 budgets 1e20 .. 1e25, K = 10 (compiled once, log budget a cvxpy Parameter)")
    law, doms = make_law(10)
    budgets = list(np.geomspace(1e20, 1e25, 100))
    t_sweep = median_time(lambda: sweep(law, budgets, doms), r)
    t_loop = median_time(lambda: [optimize(law, b, doms, baselines=False) for b in budgets], max(1, r // 2))
    res = sweep(law, budgets, doms)
    print(f"  sweep():                 {t_sweep:.3f} s  ({1000 * t_sweep / len(budgets):.1f} ms per budget; all certified: {all(a.certified for a in res)})")
    print(f"  100 separate optimize(): {t_loop:.3f} s  -> sweep is {t_loop / t_sweep:.1f}x faster")

    print("\nfull optimize() with baselines and compute multipliers, K = 2")
    law, doms = make_law(2)
    t_full = median_time(lambda: optimize(law, budget, doms), r)
    print(f"  gp path: {t_full:.3f} s")
    law_d = planner.law("split-additive", domains=["d0", "d1"], **{k: v for k, v in law.params.items() if not k.startswith("D0")}, **{"D0[d0]": 1e9, "D0[d1]": 1e9})
    t_dcp = median_time(lambda: optimize(law_d, budget, doms), max(1, r // 2))
    print(f"  dcp+search path (D0 = 1e9): {t_dcp:.3f} s")


if __name__ == "__main__":
    main()
