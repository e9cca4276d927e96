"""Benchmark the decision analysis on the main scenario's runs (issue 11: bootstrap 200 + forms + robust plan).

Fits the shipped three-domain runs (``scenarios/data/three_domain_runs.csv``) with split-additive,
split-interaction and split-effective (``--bootstrap`` draws each, timed separately: fitting is
not part of ``planner.decision``), then times ``planner.decision.decide`` at 1e22 FLOPs with the
scenario's domains and size cap: every candidate's plan, per-draw plans, robust plans (expected
and worst-case regret), cross-regret, ranges, flatness band, baselines and sensitivity, each
stage reported. Prints medians over ``--repeats`` (no assertion; timings depend on the machine).

Run:  PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_decision.py [--bootstrap 200] [--max-draws 200] [--n-jobs 2]
      [--repeats 1] [--laws FILE.pkl]   (--laws caches the fitted laws between runs)

``--compare``: the main scenario's solves instead (``scenarios/three-domains.toml``, its law fitted once:
the plan with baselines, the 3-budget curve of every strategy, and the ``[uncertainty]`` decision at
``n_jobs=1``), each stage timed with this session's shortcuts and without them, alternately in this
process (CPU seconds, medians; ratio = old / new), and the largest relative difference between the two
runs' numbers. "Old" runs every multi-start start (``multistart.AGREE = None``) and the general
gradient routes (``problem.DIRECT_GRADIENTS = False``, ``LocalSolver.DIRECT = False``).

      PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_decision.py --compare [--repeats 5] [--laws FILE.pkl]
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import statistics
import time
import warnings

import planner
from planner.decision import decide

FORMS = ("split-additive", "split-interaction", "split-effective")
DOMAINS = [planner.Domain("code", weight=2.0), planner.Domain("math"), planner.Domain("biomedical", unique_tokens=60e9, max_epochs=4)]


def fit_laws(bootstrap: int, max_starts: int) -> tuple[dict[str, planner.FittedLaw], dict[str, float]]:
    runs = planner.load_runs(os.path.join(os.path.dirname(__file__), "..", "scenarios", "data", "three_domain_runs.csv"))
    laws, times = {}, {}
    for f in FORMS:
        t = time.perf_counter()
        laws[f] = planner.fit(runs, form=f, bootstrap=bootstrap, max_starts=max_starts, seed=0)
        times[f] = time.perf_counter() - t
    return laws, times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--max-starts", type=int, default=32)
    ap.add_argument("--max-draws", type=int, default=200)
    ap.add_argument("--multiplier-draws", type=int, default=2)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--laws", default=None, help="pickle file caching the fitted laws")
    ap.add_argument("--headline", default="robust-worst")
    ap.add_argument("--no-extras", action="store_true", help="only plans, per-draw plans, robust plans and regret")
    ap.add_argument("--compare", action="store_true", help="the main scenario's solves, old and new side by side (see module docstring)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    if args.compare:
        compare_scenario(args.repeats, args.laws)
        return
    if args.laws and os.path.exists(args.laws):
        with open(args.laws, "rb") as fh:
            laws, fit_times = pickle.load(fh)
    else:
        laws, fit_times = fit_laws(args.bootstrap, args.max_starts)
        if args.laws:
            with open(args.laws, "wb") as fh:
                pickle.dump((laws, fit_times), fh)
    for f, t in fit_times.items():
        print(f"fit {f:<18} bootstrap {args.bootstrap}: {t:8.2f} s")
    cands = [(f, law, 1.0) for f, law in laws.items()]
    totals, cpus, last = [], [], None
    for _ in range(args.repeats):
        t = time.perf_counter()
        c = time.process_time()
        last = decide(cands, 1e22, DOMAINS, {"max_model_size": 30e9}, max_draws=args.max_draws, headline=args.headline,
                      n_jobs=args.n_jobs, multiplier_draws=args.multiplier_draws,
                      baselines=None if args.no_extras else ("no-split", "fixed", "separate"),
                      sensitivity=not args.no_extras, flatness=not args.no_extras)
        totals.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    assert last is not None
    print(f"decide: {last.n_scenarios} scenarios ({args.max_draws} draws max per form), n_jobs={args.n_jobs}, "
          f"median {statistics.median(totals):.2f} s wall over {len(totals)} run(s) "
          f"(this process's CPU {statistics.median(cpus):.2f} s; workers not counted); issue 11's target: under 60 s on 2 cores")
    for stage, t in last.timings.items():
        print(f"  {stage:<16} {t:8.2f} s")
    for r in last.robust:
        print(f"  {r.strategy}: expected regret {r.expected_regret:.4g}, worst {r.worst_regret:.4g}, certified {r.certified}")
    print(f"  fit total {sum(fit_times.values()):.1f} s + decide {statistics.median(totals):.1f} s")


def _numbers(x: object, path: str = "") -> dict[str, float]:
    """Every finite number of a nested JSON-able structure by its path (timings left out)."""
    out: dict[str, float] = {}
    if isinstance(x, dict):
        for k, v in x.items():
            if "timing" not in str(k) and "seconds" not in str(k):
                out.update(_numbers(v, f"{path}/{k}"))
    elif isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            out.update(_numbers(v, f"{path}[{i}]"))
    elif isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        out[path] = float(x)
    return out


def compare_scenario(repeats: int, laws_file: str | None) -> None:
    from planner.allocate import multistart, optimize, problem, sweep
    from planner.decision.candidates import LocalSolver
    from planner.scenario import load_scenario
    from planner.scenario.running import constraints_for, curve_budgets, domains_for, resolve_law

    root = os.path.join(os.path.dirname(__file__), "..")
    sc = load_scenario(os.path.join(root, "scenarios", "three-domains.toml"))
    if laws_file and os.path.exists(laws_file):
        with open(laws_file, "rb") as fh:
            law = pickle.load(fh)
    else:
        law = resolve_law(sc, n_jobs=1)
        if laws_file:
            with open(laws_file, "wb") as fh:
                pickle.dump(law, fh)
    doms, cons = domains_for(sc), constraints_for(sc) or None
    budgets = curve_budgets(sc, sweep=False)
    strategies = list(sc.compare.strategies)
    u = sc.uncertainty

    def run() -> tuple[dict[str, float], dict[str, float]]:
        t: dict[str, float] = {}
        c = time.process_time()
        plan = optimize(law, sc.budget.primary, doms, cons)
        t["plan + baselines"] = time.process_time() - c
        c = time.process_time()
        curve = [sweep(law, budgets, doms, cons, strategy=s, check=False) for s in ["split"] + strategies]
        t["curve (sweeps)"] = time.process_time() - c
        c = time.process_time()
        d = decide(law, sc.budget.primary, doms, cons, draws=True, max_draws=u.max_draws, robust=tuple(u.robust), headline=u.headline,
                   epsilon=u.epsilon, level=u.level, multiplier_draws=u.multiplier_draws, baselines=tuple(strategies), budgets=budgets, n_jobs=1)
        t["decision"] = time.process_time() - c
        for k, v in d.timings.items():
            t[f"  decision: {k}"] = v  # wall inside this process's CPU-timed run
        nums = _numbers({"plan": plan.to_dict(), "curve": [[a.to_dict() for a in cv] for cv in curve], "decision": d.to_dict()})
        return t, nums

    def setting(old: bool) -> None:
        multistart.AGREE = None if old else 3
        problem.DIRECT_GRADIENTS = not old
        LocalSolver.DIRECT = not old

    times: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
    nums: dict[str, dict[str, float]] = {}
    run()  # warm-up: imports, caches
    for _ in range(repeats):
        for mode in ("old", "new"):
            setting(mode == "old")
            t, nums[mode] = run()
            for k, v in t.items():
                times[mode].setdefault(k, []).append(v)
    setting(False)
    print(f"main scenario (scenarios/three-domains.toml, law fitted once), medians of {repeats}, CPU s of this process")
    for k in times["new"]:
        o, n = statistics.median(times["old"][k]), statistics.median(times["new"][k])
        print(f"  {k:<34} old {o:7.3f}   new {n:7.3f}   ratio {o / n if n > 0 else math.nan:6.2f}x")
    o = sum(statistics.median(times["old"][k]) for k in ("plan + baselines", "curve (sweeps)", "decision"))
    n = sum(statistics.median(times["new"][k]) for k in ("plan + baselines", "curve (sweeps)", "decision"))
    print(f"  {'total solve time':<34} old {o:7.3f}   new {n:7.3f}   ratio {o / n:6.2f}x")
    common = set(nums["old"]) & set(nums["new"])
    rel = {k: abs(nums["old"][k] - nums["new"][k]) / max(abs(nums["old"][k]), abs(nums["new"][k]), 1e-300) for k in common}
    worst = sorted(rel, key=rel.get, reverse=True)[:3]
    print(f"  {len(common)} numbers compared (plan, curve, decision); largest relative differences old/new:")
    for k in worst:
        print(f"    {rel[k]:.1e}  {k}")


if __name__ == "__main__":
    main()
