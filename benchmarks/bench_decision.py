"""Benchmark the decision analysis on the main scenario's runs (issue 11: bootstrap 200 + forms + robust plan).

Fits the shipped three-domain runs (``scenarios/data/three_domain_runs.csv``) with split-additive,
split-interaction and split-effective (``--bootstrap`` draws each, timed separately: fitting is
not part of ``planner.decision``), then times ``planner.decision.decide`` at 1e22 FLOPs with the
scenario's domains and size cap: every candidate's plan, per-draw plans, robust plans (expected
and worst-case regret), cross-regret, ranges, flatness band, baselines and sensitivity, each
stage reported. Prints medians over ``--repeats`` (no assertion; timings depend on the machine).

Run:  PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_decision.py [--bootstrap 200] [--max-draws 200] [--n-jobs 2]
      [--repeats 1] [--laws FILE.pkl]   (--laws caches the fitted laws between runs)
"""

from __future__ import annotations

import argparse
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
    args = ap.parse_args()
    warnings.simplefilter("ignore")
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


if __name__ == "__main__":
    main()
