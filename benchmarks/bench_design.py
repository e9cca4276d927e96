"""Benchmark: designed ladder vs Choshen et al.'s default ladder vs a uniform grid, by simulation.

    python benchmarks/bench_design.py                       # 200 truths per setting (tens of minutes)
    python benchmarks/bench_design.py --truths 20 --settings shipped

For each setting (a "truth family"): the design is made from zero runs with the published prior
(``planner.design(..., n_simulations=0, spend_options=(1.0,))``: the designed ladder spends the whole
experiment budget, so all three ladders use the same compute, 1 % of the 1e22-FLOP target). Then
``--truths`` truths are drawn around the family's law (amplitudes and offsets x exp(N(0, 0.1^2)),
exponents x exp(N(0, 0.03^2)), seed fixed), and each ladder is simulated on each truth: its
losses with 1 % log-normal noise, MAP fits of the three split forms with ``auto``'s held-out
selection, a plan at 1e22, and the regret under the truth (compute-equivalent waste: regret /
|dObj*/dlog C|, a share of the target budget).

Settings: ``shipped`` is the split-additive law of the shipped scenarios (scenarios/README.md:
code, math, biomedical); ``effective`` and ``interaction`` are the split-effective and
split-interaction truths of ``tests/synthetic.py`` (code, math).

Printed per setting and ladder: mean waste with a 90 % bootstrap interval, median, the share of
truths whose form was selected, and the ratio designed / default of the means and medians.

``--oracle`` instead asks what *any* ladder of the search family could reach on a setting: the
criterion (selection-risk term included) is evaluated at 12 of the setting's own truths (which no
design knows) for every ladder of a grid of ``LadderSpec`` values at the same compute, and the best
ones are printed with their ratio to the default ladder. It is a ceiling for the design, by the
criterion's own model (the simulation checks that model; see docs/design.md):

    python benchmarks/bench_design.py --oracle --settings shipped,interaction
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import planner  # noqa: E402
from planner.experiments._model import LawVec  # noqa: E402
from planner.experiments._plan import PlanProblem  # noqa: E402
from planner.experiments.prior import FormPrior, Prior, gaussian_sampler, published_prior  # noqa: E402
from planner.experiments.simulate import simulate_ladders  # noqa: E402

SHIPPED = {"A": 406.4, "alpha": 0.34, "beta": 0.28,
           "E[code]": 1.20, "E[math]": 1.45, "E[biomedical]": 1.85, "B[code]": 380.0, "B[math]": 420.0, "B[biomedical]": 450.0,
           "C[code]": 220.0, "C[math]": 160.0, "C[biomedical]": 110.0, "gamma[code]": 0.36, "gamma[math]": 0.33, "gamma[biomedical]": 0.30,
           "D0[code]": 1e8, "D0[math]": 1e8, "D0[biomedical]": 1e8}
TEST_TRUTHS = {
    "effective": ("split-effective", {"E[code]": 1.4, "E[math]": 1.6, "A": 480.0, "alpha": 0.35, "B[code]": 2100.0, "B[math]": 1500.0,
                                      "beta": 0.37, "s[code]": 30.0, "s[math]": 5.0, "eta[code]": 0.85, "eta[math]": 0.9}),
    "interaction": ("split-interaction", {"E[code]": 1.4, "E[math]": 1.6, "A": 480.0, "alpha": 0.35, "B[code]": 2100.0, "B[math]": 1500.0,
                                          "beta": 0.37, "c[code]": 0.05, "c[math]": 0.1, "gamma[code]": 0.3, "gamma[math]": 0.4}),
}
SETTINGS = {"shipped": ("split-additive", SHIPPED, ("code", "math", "biomedical"), (2.0, 1.0, 1.0)), **{
    k: (f, p, ("code", "math"), (1.0, 1.0)) for k, (f, p) in TEST_TRUTHS.items()}}
EXPONENTS = ("alpha", "beta", "gamma", "eta")


def truth_prior(form: str, params: dict, domains: tuple[str, ...]) -> Prior:
    vec, theta = LawVec.of_law(planner.law(form, **params), domains)
    sd = np.array([0.03 if s.split("[")[0] in EXPONENTS else 0.1 for s in vec.slots])
    cov = np.diag(sd ** 2)
    return Prior((FormPrior(vec, 1.0, theta, cov, gaussian_sampler(theta, cov)),), f"{form} around the given law", 0.01)


def run(setting: str, n_truths: int, seed: int, n_jobs: int | None, target: float, fraction: float, n_design_truths: int, chunk: int = 25,
        selection_risk: bool = True, select_simulations: int = 24, all_candidates: bool = False) -> dict:
    form, params, domains, weights = SETTINGS[setting]
    doms = [planner.Domain(d, weight=w) for d, w in zip(domains, weights)]
    t0, c0 = time.perf_counter(), time.process_time()
    print(f"== {setting}: designing ...", flush=True)
    des = planner.design(doms, target, fraction * target, n_truths=n_design_truths, n_simulations=0, spend_options=(1.0,), seed=seed, n_jobs=n_jobs,
                         selection_risk=selection_risk, select_simulations=select_simulations, curve_fractions=())
    t_design, c_design = time.perf_counter() - t0, time.process_time() - c0
    print(f"   designed in {t_design:.0f} s wall, {c_design:.0f} s CPU: {des.ladder.description}", flush=True)
    for row in des.selection:
        print(f"   selection: {row['ladder']:<12} waste {100 * row['expected_waste']:.3g} % + spend {100 * row['flops'] / target:.3g} %"
              f"{'  <- chosen' if row.get('chosen') else ''}  ({row['description']})", flush=True)
    ladders = [s.ladder for s in des.comparison]
    if all_candidates:  # every ladder the selection step considered, on the setting's own truths (hindsight: a ceiling)
        ladders += [l for l in des.candidates if l.name.startswith("candidate-")]
    prob = PlanProblem(target, np.arange(len(domains)), np.asarray(weights, float), np.full(len(domains), np.inf))
    tp = truth_prior(form, params, domains)
    truths = tp.draw(n_truths, seed + 7)
    fit_prior = published_prior(domains, seed=seed)
    per_truth: list[dict] = []
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, n_truths, chunk):
        sim = simulate_ladders(ladders, fit_prior, prob, truths=truths[start:start + chunk], seed=seed + start, truth_prior=tp,
                               noise=0.01, n_jobs=n_jobs)
        per_truth.extend(sim.per_truth)
        if start + chunk < n_truths:
            w = {n: np.mean([r["waste"][n] for r in per_truth]) for n in ("designed", "default")}
            print(f"   ... {len(per_truth)} truths: designed {100 * w['designed']:.3g} %, default {100 * w['default']:.3g} % "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    t_sim, c_sim = time.perf_counter() - t0, time.process_time() - c0
    out = {"setting": setting, "truth_form": form, "n_truths": len(per_truth), "design_seconds": t_design, "simulation_seconds": t_sim,
           "design_cpu_seconds": c_design, "simulation_cpu_seconds": c_sim, "spec": des.ladder.description,
           "selection": list(des.selection), "ladders": {}}
    from planner.experiments.simulate import _boot_interval

    lin = {s.name: s.linearized for s in des.comparison}
    for lad in ladders:
        w = np.array([r["waste"][lad.name] for r in per_truth])
        out["ladders"][lad.name] = {"flops": lad.flops(), "runs": lad.n_new_runs, "linearized": lin.get(lad.name), "mean": float(np.mean(w)),
                                    "interval": _boot_interval(w, seed), "median": float(np.median(w)),
                                    "form_right": float(np.mean([r["selected"][lad.name] == r["form"] for r in per_truth])),
                                    "description": lad.description}
    L = out["ladders"]
    out["ratio_mean"] = L["designed"]["mean"] / L["default"]["mean"]
    out["ratio_median"] = L["designed"]["median"] / L["default"]["median"]
    return out


ORACLE_GRID = dict(n_sizes=(4, 5), size_step=(2.0, 3.0), tokens_per_param=(10.0, 20.0, 40.0), branch_top=(2, 5),
                   branch_points=((0.25, 1.0), (0.25, 0.5, 1.0)), branch_ratio=(0.3, 1.0, 3.0, 10.0), long_factor=(1.0, 2.0),
                   tilt=(0.0, 1.0), branch_bottom=(False,))


def oracle(setting: str, seed: int, target: float, fraction: float, min_size: float, top: int = 5) -> None:
    """The criterion at the setting's own truths for every ladder of ORACLE_GRID (module doc)."""
    import itertools

    from planner._parallel import parallel_map
    from planner.experiments.criterion import linearized_regret, sensitivity
    from planner.experiments.ladder import LadderSpec, default_ladder, designed_ladder, uniform_grid
    from planner.experiments._model import Points

    form, params, domains, weights = SETTINGS[setting]
    budget = fraction * target
    prob = PlanProblem(target, np.arange(len(domains)), np.asarray(weights, float), np.full(len(domains), np.inf))
    tp, fp = truth_prior(form, params, domains), published_prior(domains, seed=seed)
    default = default_ladder(budget, domains, min_size=1e7)
    grid = uniform_grid(budget, domains, min_size=1e6)
    ref = Points.concat([default.points(domains)] + ([grid.points(domains)] if grid is not None else []))
    comps = fp.components
    fi = [c.vec.form.name for c in comps].index(form)
    rivals = tuple((c.vec, c.mean, c.precision) for j, c in enumerate(comps) if j != fi)
    items = [(fi, comps[fi].vec, th, comps[fi].precision, prob, rivals, ref, 0.01) for _, th in tp.draw(12, seed + 7)]
    sens = parallel_map(sensitivity, items)
    base = {d: linearized_regret(default, sens, 0.01, discriminate=d) for d in (True, False)}
    t0 = time.perf_counter()
    rows = []
    keys = list(ORACLE_GRID)
    for values in itertools.product(*ORACLE_GRID.values()):
        spec = LadderSpec(**dict(zip(keys, values)))
        if spec.branch_bottom and spec.branch_top >= spec.n_sizes:
            continue
        lad = designed_ladder(spec, budget, domains, min_size=min_size)
        if lad is not None:
            rows.append((linearized_regret(lad, sens, 0.01), linearized_regret(lad, sens, 0.01, discriminate=False), spec.label()))
    rows.sort()
    print(f"== oracle {setting} ({form}): {len(rows)} ladders from {min_size:.3g} parameters at {budget:.3g} FLOPs, criterion at 12 of the "
          f"setting's truths ({time.perf_counter() - t0:.0f} s)")
    print(f"   default: criterion {100 * base[True]:.3g} % (quadratic term alone {100 * base[False]:.3g} %)")
    for full, quad, label in rows[:top]:
        print(f"   {100 * full:7.3g} % (ratio {full / base[True]:.3f}; quadratic {100 * quad:.3g} %, ratio {quad / base[False]:.3f})  {label}")
    best_quad = min(rows, key=lambda r: r[1])
    print(f"   best by the quadratic term alone: ratio {best_quad[1] / base[False]:.3f}  {best_quad[2]}")
    sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--truths", type=int, default=200)
    ap.add_argument("--settings", default="shipped,effective,interaction")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-jobs", type=int, default=None)
    ap.add_argument("--fraction", type=float, default=0.01)
    ap.add_argument("--design-truths", type=int, default=16)
    ap.add_argument("--chunk", type=int, default=25, help="print running means every CHUNK truths")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--oracle", action="store_true", help="the best ladders of a grid, by the criterion at each setting's own truths")
    ap.add_argument("--min-size", type=float, default=1e7, help="smallest ladder size for --oracle")
    ap.add_argument("--no-selection-risk", action="store_true", help="design with the quadratic criterion alone")
    ap.add_argument("--all-candidates", action="store_true", help="also simulate every ladder the selection considered (a hindsight ceiling)")
    ap.add_argument("--select-simulations", type=int, default=24, help="truths of the design's selection by simulation (0: the linearized search alone)")
    a = ap.parse_args()
    if a.oracle:
        for setting in a.settings.split(","):
            oracle(setting, a.seed, 1e22, a.fraction, a.min_size)
        return
    results = []
    for setting in a.settings.split(","):
        r = run(setting, a.truths, a.seed, a.n_jobs, 1e22, a.fraction, a.design_truths, a.chunk, not a.no_selection_risk, a.select_simulations, a.all_candidates)
        results.append(r)
        print(f"== {setting} ({r['truth_form']}), {r['n_truths']} truths, experiment budget {100 * a.fraction:g} % of 1e22 "
              f"(design {r['design_seconds']:.0f} s wall, {r['design_cpu_seconds']:.0f} s CPU; simulation {r['simulation_seconds']:.0f} s wall, "
              f"{r['simulation_cpu_seconds']:.0f} s CPU; load average {os.getloadavg()[0]:.1f})")
        print(f"   designed: {r['spec']}")
        for name, v in r["ladders"].items():
            print(f"   {name:<9} {v['runs']:>3} runs {v['flops']:.3g} FLOPs  waste mean {100 * v['mean']:7.3g} % "
                  f"[{100 * v['interval'][0]:.3g}, {100 * v['interval'][1]:.3g}]  median {100 * v['median']:7.3g} %  "
                  f"linearized {'n/a' if v['linearized'] is None else format(100 * v['linearized'], '.3g')} %  form right {100 * v['form_right']:.0f} %  "
                  f"ratio to default {v['mean'] / r['ladders']['default']['mean']:.3f}")
        print(f"   designed / default: mean {r['ratio_mean']:.3f}, median {r['ratio_median']:.3f}")
        sys.stdout.flush()
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
