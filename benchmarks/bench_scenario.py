"""Benchmark what a user waits for: whole scenarios end to end, and the CLI's start-up.

Run:  .venv/bin/python benchmarks/bench_scenario.py [--repeats 3] [--heavy-repeats 1] [--skip-heavy]
      (``make bench`` runs it after bench_fit.py and bench_allocate.py)

Every measurement is a fresh subprocess of this checkout's code (``python -m planner`` with the
repository first on ``PYTHONPATH``), timed by wall clock; the script prints the median over the
repeats, in seconds:

1. ``planner run scenarios/three-domains.toml`` end to end (fit with ``form = "auto"``, calibrated
   intervals, the plan, three baselines, a three-budget sweep, all four report formats);
2. the same scenario with ``bootstrap = 200`` under ``[law]`` and ``robust = "mean"`` under
   ``[optimizer]`` (``calibrate = true`` is already set), written to a temporary folder;
3. ``planner --help``;
4. ``import planner`` (``python -c "import planner"``), beside a bare interpreter start
   (``python -c pass``) and the modules ``-X importtime`` finds slowest to import;
5. the import floor of ``planner run``: the libraries it needs (numpy, pandas, scipy.optimize,
   pydantic, click, joblib, matplotlib's figure and SVG backend) imported in a fresh process, no
   planner code: no end-to-end run is faster than that.

After each scenario's median the script prints where one ``planner run -v`` spends its time (the
phases of its ``timings:`` line) and what is left for imports, loading and writing.

Last, fit once and plan many: the main scenario's law is fitted as ``planner run`` fits it, saved,
and the scenario is run again from the file (``[law] file = ...``), with the Markdown, JSON and CSV
reports and then with every format, beside the plan of the fitted run (it must be the same).

Scenarios 1 and 2 are also run on the previous fitting path (``--old-fit``, the default: every
subset fit a cold multi-start, no solve reused within a fit, a process pool for any map worth a
second; set in the subprocess through ``planner.fitting.core.REUSE_SOLVES``, the fitter's
``warm_start`` default and ``planner._parallel.MIN_COLD_POOL_SECONDS``): the script prints the ratio
and the largest relative plan difference. CPU seconds (the subprocess and the worker processes it
waited for) are printed beside the wall-clock medians: on a shared machine they are the steadier
figure.

Where the scenario schema accepts ``solver = "cvxpy"`` under ``[optimizer]`` (the cvxpy reference
path of the optimizer), scenarios 1 and 2 are also run on that path and the script prints the ratio
and the largest relative difference between the two plans (N, D and every D'_k at every budget);
otherwise it prints the medians alone and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAIN_SCENARIO = ROOT / "scenarios" / "three-domains.toml"
TIMEOUT = 3600.0  # seconds per subprocess: generous, a loaded machine is slow but should not fail the run


def planner_env() -> dict[str, str]:
    """The environment of every subprocess: this checkout first on the path, one BLAS thread unless set."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    return env


#: run the CLI with the previous fitting path (see the module docstring)
OLD_FIT_PRELUDE = (
    "import planner.fitting.core as c, planner._parallel as p; c.REUSE_SOLVES = False; "
    "c.LawFitter.__init__.__kwdefaults__['warm_start'] = False; p.MIN_COLD_POOL_SECONDS = p.MIN_PARALLEL_SECONDS; "
    "from planner.cli import cli; cli(prog_name='planner')"
)

LAST_CPU: list[float] = []


def _children_cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed(cmd: list[str], cwd: Path | None = None) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    cpu0 = _children_cpu()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=planner_env(), cwd=cwd)
    elapsed = time.perf_counter() - start
    LAST_CPU.append(_children_cpu() - cpu0)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return elapsed, proc


def median_wall(cmd: list[str], repeats: int, cwd: Path | None = None) -> tuple[float, list[float]]:
    LAST_CPU.clear()
    times = [timed(cmd, cwd)[0] for _ in range(repeats)]
    return statistics.median(times), times


# ----------------------------------------------------------------------------- scenario variants
def _set_key(text: str, table: str, key: str, value: str) -> str:
    """Set ``key = value`` in ``[table]`` of a TOML text (the table is appended if it is missing)."""
    header = re.compile(rf"^\[{re.escape(table)}\]\s*(#.*)?$", re.M)
    m = header.search(text)
    if m is None:
        return text.rstrip("\n") + f"\n\n[{table}]\n{key} = {value}\n"
    end = re.compile(r"^\[", re.M).search(text, m.end())
    body_end = end.start() if end else len(text)
    body = text[m.end():body_end]
    line = re.compile(rf"^{re.escape(key)}\s*=.*$", re.M)
    body = line.sub(f"{key} = {value}", body, count=1) if line.search(body) else f"\n{key} = {value}" + body
    return text[:m.end()] + body + text[body_end:]


def write_variant(folder: Path, name: str, *, uncertain: bool, solver: str | None) -> Path:
    """The main scenario, optionally with bootstrap 200 + robust "mean", and/or an explicit solver path.

    The runs path is made absolute, so the variant runs from any folder.
    """
    text = MAIN_SCENARIO.read_text()
    runs = tomllib.loads(text)["law"]["runs"]
    text = _set_key(text, "law", "runs", json.dumps(str((MAIN_SCENARIO.parent / runs).resolve())))
    if uncertain:
        text = _set_key(text, "law", "bootstrap", "200")
        text = _set_key(text, "law", "calibrate", "true")
        text = _set_key(text, "optimizer", "robust", '"mean"')
    if solver is not None:
        text = _set_key(text, "optimizer", "solver", json.dumps(solver))
    doc = tomllib.loads(text)  # the variant is still valid TOML with what we set
    assert doc["law"]["runs"].endswith(runs.split("/")[-1])
    if uncertain:
        assert doc["law"]["bootstrap"] == 200 and doc["law"]["calibrate"] is True and doc["optimizer"]["robust"] == "mean"
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def write_saved_law_variant(folder: Path) -> Path:
    """The main scenario planned from its law saved to a file (fit once, plan many): the law is fitted here
    exactly as ``planner run`` fits it (``resolve_law`` on the scenario) and saved; the variant's ``[law]``
    is ``file = ...`` alone. The script checks the plan is the same as the main scenario's."""
    sys.path.insert(0, str(ROOT))
    from planner.scenario import load_scenario, resolve_law

    law_path = folder / "three-domains-law.json"
    resolve_law(load_scenario(MAIN_SCENARIO), n_jobs=1).save(law_path)
    text = MAIN_SCENARIO.read_text()
    start = text.index("[law]")
    end = re.compile(r"^\[", re.M).search(text, start + 1)
    text = text[:start] + f"[law]\nfile = {json.dumps(str(law_path))}\n\n" + text[end.start():]
    path = folder / "three-domains-saved-law.toml"
    path.write_text(text)
    assert tomllib.loads(text)["law"] == {"file": str(law_path)}
    return path


def planner_cmd(*args: str, old_fit: bool = False) -> list[str]:
    if old_fit:
        return [sys.executable, "-c", OLD_FIT_PRELUDE, *args]
    return [sys.executable, "-m", "planner", *args]


def accepts_cvxpy_solver(folder: Path) -> bool:
    """Does this checkout's scenario schema accept ``[optimizer] solver = "cvxpy"``? (``planner validate``)"""
    def valid(path: Path) -> bool:
        proc = subprocess.run(planner_cmd("validate", str(path)), capture_output=True, text=True, timeout=TIMEOUT, env=planner_env())
        return proc.returncode == 0

    if not valid(write_variant(folder, "probe-base", uncertain=False, solver=None)):
        raise SystemExit(f"planner validate refuses the main scenario variant (runs path made absolute): {MAIN_SCENARIO}")
    return valid(write_variant(folder, "probe-solver", uncertain=False, solver="cvxpy"))


def plan_numbers(out: Path) -> dict[str, float]:
    """N, D and every D'_k of the plan and of each budget of the sweep, from allocation.json."""
    doc = json.loads((out / "allocation.json").read_text())
    numbers: dict[str, float] = {}
    for i, plan in enumerate([doc, *doc.get("sweep", [])]):
        numbers[f"{i}:N"] = float(plan["model_size"])
        numbers[f"{i}:D"] = float(plan["pretrain_tokens"])
        for dom in plan.get("domains", []):
            numbers[f"{i}:D'[{dom['name']}]"] = float(dom["spec_tokens"])
    return numbers


def max_rel_diff(a: dict[str, float], b: dict[str, float]) -> float:
    if set(a) != set(b):
        return float("inf")
    return max(abs(a[k] - b[k]) / max(abs(b[k]), 1e-300) if (a[k] or b[k]) else 0.0 for k in a)


def bench_scenario(label: str, scenario: Path, repeats: int, work: Path, old_fit: bool = False) -> tuple[float, float, dict[str, float]]:
    """Median wall and CPU seconds of ``planner run`` on ``scenario``, and the plan's numbers."""
    out = work / f"out-{scenario.stem}{'-old' if old_fit else ''}"
    med, times = median_wall(planner_cmd("run", str(scenario), "-o", str(out), "-q", old_fit=old_fit), repeats)
    cpu = statistics.median(LAST_CPU)
    print(f"{label:<58} median {med:8.2f} s, CPU {cpu:8.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times)})", flush=True)
    return med, cpu, plan_numbers(out)


# ----------------------------------------------------------------------------- start-up
def slowest_imports(top: int = 6) -> list[tuple[str, float]]:
    """The packages whose own modules take longest to import under ``import planner`` (``-X importtime``, one run).

    Sums each module's self time by top-level package, so ``cvxpy`` counts every ``cvxpy.*`` module it loads.
    """
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import planner"], capture_output=True, text=True,
                          timeout=TIMEOUT, env=planner_env())
    self_time: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+)\s+\|\s+\d+\s+\|\s*(\S+)", line)
        if m:
            name = m.group(2).split(".")[0]
            self_time[name] = self_time.get(name, 0.0) + int(m.group(1)) / 1e6
    return sorted(self_time.items(), key=lambda kv: -kv[1])[:top]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the main scenario (default 3)")
    ap.add_argument("--heavy-repeats", type=int, default=1, help="repeats of the bootstrap-200 scenario (default 1)")
    ap.add_argument("--startup-repeats", type=int, default=7, help="repeats of --help and import (default 7)")
    ap.add_argument("--skip-heavy", action="store_true", help="leave out the bootstrap-200 + calibrate + robust scenario")
    ap.add_argument("--no-old-fit", action="store_true", help="leave out the runs on the previous fitting path")
    ap.add_argument("--skip-startup", action="store_true", help="leave out the start-up timings")
    ap.add_argument("--skip-saved-law", action="store_true", help="leave out the main scenario planned from its saved law")
    args = ap.parse_args()

    print(f"benchmarks/bench_scenario.py: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"load average {os.getloadavg()[0]:.1f}; wall-clock medians of fresh subprocesses", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-scenario-") as tmp:
        work = Path(tmp)
        cvxpy_path = accepts_cvxpy_solver(work)

        if not args.skip_startup:
            startup(args)
        run_cases(args, work, cvxpy_path)


#: what ``planner run`` must import whatever planner itself does: fitting (scipy.optimize), tables (pandas),
#: the scenario schema (pydantic), the CLI (click), parallel maps (joblib) and the HTML report's plots (matplotlib)
RUN_LIBRARIES = ("numpy", "pandas", "scipy.optimize", "pydantic", "click", "joblib", "matplotlib.figure", "matplotlib.backends.backend_svg")


def phase_seconds(scenario: Path, work: Path) -> dict[str, float]:
    """One ``planner run -v`` of ``scenario`` and the seconds of each phase it reports (its ``timings:`` line)."""
    proc = subprocess.run(planner_cmd("run", str(scenario), "-o", str(work / "out-phases"), "-v"), capture_output=True, text=True,
                          timeout=TIMEOUT, env=planner_env())
    line = next((ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("timings:")), "")
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"(\w+)_seconds ([0-9.]+)s", line)}


def startup(args: argparse.Namespace) -> None:
    print("\n== start-up")
    bare, _ = median_wall([sys.executable, "-c", "pass"], args.startup_repeats)
    imp, _ = median_wall([sys.executable, "-c", "import planner"], args.startup_repeats)
    helpt, _ = median_wall(planner_cmd("--help"), args.startup_repeats)
    floor, _ = median_wall([sys.executable, "-c", "import " + ", ".join(RUN_LIBRARIES)], args.startup_repeats)
    for label, med in (("python -c pass (interpreter start)", bare), ('python -c "import planner"', imp),
                       ("planner --help (python -m planner --help)", helpt)):
        print(f"{label:<58} median {med:8.3f} s")
    print(f"{'import planner alone (difference of the first two)':<58}        {imp - bare:8.3f} s")
    print(f"{'import floor of planner run (its libraries, no planner code)':<58} median {floor:8.3f} s")
    print(f"  (the libraries a run with an HTML report cannot do without: {', '.join(RUN_LIBRARIES)}; "
          "no end-to-end run in a fresh process is faster than this)")
    print("packages slowest to import under `import planner` (self time summed per package, one run): "
          + ", ".join(f"{name} {sec:.3f} s" for name, sec in slowest_imports()))


def saved_law_cases(args: argparse.Namespace, work: Path, main_plan: dict[str, float]) -> None:
    """Fit once, plan many: the main scenario from its saved law, without and with the HTML report."""
    print("\n== fit once, plan many (the main scenario's law saved by planner fit / FittedLaw.save; [law] file = ...)")
    scenario = write_saved_law_variant(work)
    for formats, label in (("md,json,csv", "planner run (saved law), md,json,csv"), ("md,json,csv,html", "planner run (saved law), every format")):
        out = work / f"out-saved-{formats.count(',')}"
        med, times = median_wall(planner_cmd("run", str(scenario), "-o", str(out), "-q", "--format", formats), args.repeats)
        same = max_rel_diff(plan_numbers(out), main_plan) if "json" in formats else float("nan")
        print(f"{label:<58} median {med:8.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times)}); "
              f"largest relative plan difference from the fitted run: {same:.1e}", flush=True)


def run_cases(args: argparse.Namespace, work: Path, cvxpy_path: bool) -> None:
    cases = [("main", "planner run scenarios/three-domains.toml", False, args.repeats)]
    if not args.skip_heavy:
        cases.append(("uncertain", "same + bootstrap 200, calibrate, robust = \"mean\"", True, args.heavy_repeats))
    print("\n== scenarios end to end (planner run ... -q, all report formats)")
    if not cvxpy_path:
        print("(the scenario schema has no [optimizer] solver = \"cvxpy\" reference path here: medians alone)")
    for name, label, uncertain, repeats in cases:
        scenario = MAIN_SCENARIO if not uncertain else write_variant(work, "three-domains-uncertain", uncertain=True, solver=None)
        med, cpu, plan = bench_scenario(label, scenario, repeats, work)
        if name == "main":
            main_plan = plan
        phases = phase_seconds(scenario, work)
        if phases:
            # solve_seconds includes the [uncertainty] decision, whose parts are listed after it
            main_phases = {k: phases[k] for k in ("law", "solve", "report") if k in phases}
            decision = {k.removeprefix("decision_"): v for k, v in phases.items() if k.startswith("decision_")}
            print("  where one run's time goes (planner run -v): " + ", ".join(f"{k} {v:.2f} s" for k, v in main_phases.items())
                  + (" (solve includes the decision: " + ", ".join(f"{k} {v:.2f} s" for k, v in decision.items()) + ")" if decision else "")
                  + f"; the rest (imports, loading, writing) {med - sum(main_phases.values()):.2f} s of the median", flush=True)
        if not args.no_old_fit:
            med_old, cpu_old, plan_old = bench_scenario("  the same on the previous fitting path", scenario, repeats, work, old_fit=True)
            print(f"  ratio previous fit path / default: {med_old / med:.2f}x wall, {cpu_old / cpu:.2f}x CPU; largest relative plan "
                  f"difference (N, D, D'_k over every budget): {max_rel_diff(plan, plan_old):.1e}", flush=True)
        if cvxpy_path:
            ref = write_variant(work, f"{name}-cvxpy", uncertain=uncertain, solver="cvxpy")
            med_ref, _, plan_ref = bench_scenario("  the same on the cvxpy reference path", ref, repeats, work)
            print(f"  ratio cvxpy / default: {med_ref / med:.1f}x; largest relative plan difference "
                  f"(N, D, D'_k over every budget): {max_rel_diff(plan, plan_ref):.1e}")
    if not args.skip_saved_law:
        saved_law_cases(args, work, main_plan)


if __name__ == "__main__":
    main()
