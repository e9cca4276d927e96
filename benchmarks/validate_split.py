"""Evidence on real D' data (issue 11.7, 11.8): every candidate form and the form="auto" ensemble.

1. split_lab (real split training of tiny byte-level GPTs): fit on the 3 smallest model sizes,
   predict the 2 largest; error on base rows (D' = 0, every domain) and on specialized rows (python
   branches, evaluated on python); baselines "copy the largest fitted size" and "no D' term".
2. finetune_lin2024 (Lin et al. 2024 fine-tuning curves): for Cerebras-GPT and OPT (known pretraining
   tokens) on flan and wmt19, fit the smaller sizes and predict the largest size's curve; baseline
   "copy the next size down".
3. Adequacy: every form fitted to all of split_lab, in-sample error on base and specialized rows,
   with and without the early-checkpoint cut (Choshen et al.: drop the earliest tokens).

    PYTHONPATH=$PWD python benchmarks/validate_split.py            # Markdown tables
    PYTHONPATH=$PWD python benchmarks/validate_split.py --json out.json

The numbers go into docs/validation.md ("Real D' data") and are pinned in tests/test_validation_split.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import planner
from planner.fitting.adequacy import adequacy, residual_summary, residual_table

#: the published data shipped with the repository (data/published, see data/README.md)
DATA = Path(__file__).resolve().parents[1] / "data" / "published"
SPLIT_LAB = DATA / "split_lab" / "split_runs_python.csv"
FINETUNE = DATA / "finetune_lin2024" / "finetune_long.csv"

SPLIT_FORMS = ("split-additive", "split-interaction", "split-effective", "split-transfer", "split-multiplicative", "split-prelearned")
#: Lin et al.'s families with pretraining tokens on the model card (finetune_lin2024/SOURCE.md)
FAMILIES = ("Cerebras", "OPT")
FINETUNE_DOMAINS = ("flan", "wmt19")
#: the fit options of every experiment (a moderate multi-start keeps the whole script to minutes)
FIT_OPTIONS: dict[str, Any] = {"max_starts": 32}


def _are(pred: np.ndarray, obs: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(pred) - np.asarray(obs)) / np.asarray(obs)))


def _heldout_predictions(auto_law: planner.FittedLaw, test: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each candidate's training-only fit (``law.holdout['params']``) on the held-out rows, and the ensemble's mixture."""
    ens = auto_law.candidates
    out: dict[str, np.ndarray] = {}
    for cand in ens.candidates:
        held = planner.law(cand.form.name, domains=cand.domains, tie=cand.tied, **cand.holdout["params"])
        out[cand.form.name] = held.predict(test)
    w = np.asarray(ens.weights)
    out["ensemble"] = w @ np.vstack([out[n] for n in ens.names])
    return out


# ------------------------------------------------------------------------ split_lab
def load_split_lab() -> pd.DataFrame:
    return planner.load_runs(SPLIT_LAB)


def split_lab_extrapolation(n_train_sizes: int = 3, n_jobs: int | None = -1) -> dict[str, Any]:
    """Fit on the ``n_train_sizes`` smallest sizes, predict the others: ARE per form on base and specialized rows."""
    runs = load_split_lab()
    sizes = np.sort(runs["model_size"].unique())
    cut = float(sizes[n_train_sizes - 1])
    rule = f"model_size <= {cut:g}"
    start = time.perf_counter()
    auto_law = planner.fit(runs, "auto", train_on=rule, n_jobs=n_jobs, **FIT_OPTIONS)
    seconds = time.perf_counter() - start
    used = runs[~runs["cross_domain"]]
    test = used[used["model_size"] > cut].reset_index(drop=True)
    train = used[used["model_size"] <= cut]
    base, spec = (test["spec_tokens"] == 0).to_numpy(), (test["spec_tokens"] > 0).to_numpy()
    preds = _heldout_predictions(auto_law, test)
    # baseline 1: the largest fitted size's loss at the same (D, D', domain)
    largest = train[train["model_size"] == cut].set_index(["pretrain_tokens", "spec_tokens", "domain"])["loss"]
    preds["copy largest fitted size"] = largest.reindex(pd.MultiIndex.from_frame(test[["pretrain_tokens", "spec_tokens", "domain"]])).to_numpy()
    # baseline 2: no D' term: a Chinchilla law per domain (shared A, alpha, beta) on the pretraining rows,
    # predicting a specialized row as its base model
    no_spec = planner.fit(train[train["spec_tokens"] == 0], "split-additive", fix={"C": 0.0, "gamma": 0.3, "D0": 1e6}, **FIT_OPTIONS)
    preds["no D' term"] = no_spec.predict(test.assign(spec_tokens=0.0))
    obs = test["loss"].to_numpy()
    rows = {name: {"base": _are(p[base], obs[base]), "specialized": _are(p[spec], obs[spec]), "all": _are(p, obs)} for name, p in preds.items()}
    candidates = [n for n in auto_law.candidates.names]
    best = min(candidates, key=lambda n: rows[n]["all"])
    return {
        "rule": rule, "n_train": int(len(train)), "n_test": int(len(test)), "n_base": int(base.sum()), "n_specialized": int(spec.sum()),
        "errors": rows, "weights": dict(zip(auto_law.candidates.names, auto_law.candidates.weights)),
        "best_candidate": best, "ensemble_over_best": rows["ensemble"]["all"] / rows[best]["all"],
        "selected": auto_law.form.name, "seconds": seconds,
    }


def split_lab_adequacy(min_tokens: float | None = None, forms: tuple[str, ...] = SPLIT_FORMS) -> dict[str, Any]:
    """Every form fitted to all of split_lab: in-sample |relative error| on base and specialized rows.

    ``min_tokens``: the early-checkpoint cut (rows with D + D' below it are neither fitted nor scored).
    """
    runs = load_split_lab()
    out: dict[str, Any] = {}
    for name in forms:
        law = planner.fit(runs, name, min_tokens=min_tokens, **FIT_OPTIONS)
        scored = runs if min_tokens is None else runs[runs["pretrain_tokens"] + runs["spec_tokens"] >= min_tokens]
        out[name] = adequacy(law, scored)
    return out


def kaplan_effective_form() -> planner.laws.Form:
    """Exploratory (not registered by the package): Kaplan et al. 2020's non-separable joint law with effective tokens.

    L_k = E_k + ((Nc/N)^(alpha/beta) + Dc_k/(D + s_k D'^eta_k))^beta

    Kaplan's L(N, D) = ((Nc/N)^(alpha_N/alpha_D) + Dc/D)^alpha_D does not separate N and D, which is what
    the far-from-converged split_lab models need (SOURCE.md: "N and D are not separable"); specialization
    enters as split-effective's extra tokens. Built as a user form (finite-difference gradients) to test
    adequacy, as any user could.
    """
    from planner.laws import CallableForm, Param

    def predict(x, E, Nc, alpha, Dc, beta, s, eta):
        eff = x.pretrain_tokens + s * np.where(x.spec_tokens > 0, x.spec_tokens, 0.0) ** eta
        return E + ((Nc / x.model_size) ** (alpha / beta) + Dc / eff) ** beta

    params = [
        Param("E", 1e-3, 20.0, "nats/token", per_domain=True, linear=True, start=1.0),
        Param("Nc", 1e-2, 1e12, "params", start=1e4, grid=(1e2, 1e4, 1e6)),
        Param("alpha", 0.01, 2.0, start=0.3, grid=(0.15, 0.3, 0.6)),
        Param("Dc", 1e-2, 1e14, "tokens", per_domain=True, start=1e5, grid=(1e3, 1e5, 1e7)),
        Param("beta", 0.01, 2.0, start=0.3, grid=(0.15, 0.3, 0.6)),
        Param("s", 1e-6, 1e9, per_domain=True, start=1.0, grid=(0.3, 3.0), needs_spec=True),
        Param("eta", 0.05, 1.0, per_domain=True, start=0.9, grid=(0.7, 0.95), needs_spec=True),
    ]
    return CallableForm("kaplan-effective", predict, params, equation="L_k = E_k + ((Nc/N)^(alpha/beta) + Dc_k/(D + s_k*D'^eta_k))^beta",
                        inputs=("model_size", "pretrain_tokens", "spec_tokens"), has_spec=True)


def split_lab_residuals(form: str, min_tokens: float | None = None, by: str = "model_size") -> pd.DataFrame:
    """The in-sample residual table of one form on all of split_lab, averaged by ``by`` (for plots)."""
    runs = load_split_lab()
    law = planner.fit(runs, form, min_tokens=min_tokens, **FIT_OPTIONS)
    return residual_summary(residual_table(law, runs), by=by)


# ------------------------------------------------------------------- finetune_lin2024
def load_finetune(family: str, domain: str) -> pd.DataFrame:
    """One family's curves on one dataset, examples as D' (the 0-example rows are left out: see the docs)."""
    d = pd.read_csv(FINETUNE)
    d = d[(d["family"] == family) & (d["domain"] == domain) & (d["spec_examples"] > 0)]
    d = d.rename(columns={"spec_examples": "spec_tokens", "model": "run"})[["run", "model_size", "pretrain_tokens", "spec_tokens", "domain", "loss"]]
    return planner.load_runs(d.reset_index(drop=True))


def finetune_extrapolation(family: str, domain: str, n_jobs: int | None = -1) -> dict[str, Any]:
    """Fit the smaller sizes of a family, predict the largest size's curve; baseline: the next size down."""
    runs = load_finetune(family, domain)
    sizes = np.sort(runs["model_size"].unique())
    rule = f"model_size < {sizes[-1]:g}"
    start = time.perf_counter()
    auto_law = planner.fit(runs, "auto", train_on=rule, n_jobs=n_jobs, **FIT_OPTIONS)
    seconds = time.perf_counter() - start
    test = runs[runs["model_size"] == sizes[-1]].reset_index(drop=True)
    preds = _heldout_predictions(auto_law, test)
    below = runs[runs["model_size"] == sizes[-2]].set_index("spec_tokens")["loss"]
    preds["copy next size down"] = below.reindex(test["spec_tokens"]).to_numpy()
    obs = test["loss"].to_numpy()
    errors = {name: _are(p, obs) for name, p in preds.items()}
    candidates = list(auto_law.candidates.names)
    best = min(candidates, key=lambda n: errors[n])
    return {
        "family": family, "domain": domain, "rule": rule, "n_test": int(len(test)), "errors": errors,
        "weights": dict(zip(auto_law.candidates.names, auto_law.candidates.weights)),
        "failed": {s.form: s.reason for s in auto_law.candidates.scores if s.status == "failed"},
        "best_candidate": best, "ensemble_over_best": errors["ensemble"] / errors[best],
        "beats_baseline": sorted(n for n in candidates + ["ensemble"] if errors[n] < errors["copy next size down"]),
        "selected": auto_law.form.name, "seconds": seconds,
    }


# --------------------------------------------------------------------------- report
def _pct(v: float | None) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{100 * v:.2f} %"


def markdown(results: dict[str, Any]) -> str:
    lines: list[str] = []
    if "split_lab" in results:
        lines += _markdown_split(results["split_lab"])
    if "finetune" in results:
        lines += _markdown_finetune(results["finetune"])
    if "adequacy" in results:
        lines += _markdown_adequacy(results["adequacy"])
    return "\n".join(lines)


def _markdown_split(s: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    lines += [f"### split_lab: fit the 3 smallest sizes, predict the 2 largest ({s['n_base']} base rows, {s['n_specialized']} specialized rows)", "",
              "| law | weight | base rows ARE | specialized rows ARE | all held-out ARE |", "|---|---:|---:|---:|---:|"]
    for name, e in sorted(s["errors"].items(), key=lambda kv: kv[1]["all"]):
        w = s["weights"].get(name)
        lines.append(f"| {name} | {'' if w is None else f'{w:.3f}'} | {_pct(e['base'])} | {_pct(e['specialized'])} | {_pct(e['all'])} |")
    lines += ["", f"Ensemble / best single candidate ({s['best_candidate']}): {s['ensemble_over_best']:.3f}. Auto's top-weighted form: {s['selected']}.", ""]
    return lines


def _markdown_finetune(finetune: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    results = {"finetune": finetune}
    lines += ["### finetune_lin2024: fit the smaller sizes, predict the largest size's curve (ARE)", ""]
    names = sorted({n for r in results["finetune"] for n in r["errors"]})
    lines += ["| law | " + " | ".join(f"{r['family']} {r['domain']}" for r in results["finetune"]) + " |", "|---|" + "---:|" * len(results["finetune"])]
    for n in names:
        lines.append(f"| {n} | " + " | ".join(_pct(r["errors"].get(n)) for r in results["finetune"]) + " |")
    lines += ["| ensemble / best candidate | " + " | ".join(f"{r['ensemble_over_best']:.3f}" for r in results["finetune"]) + " |", ""]
    for r in results["finetune"]:
        beat = ", ".join(r["beats_baseline"]) or "nothing"
        lines.append(f"- {r['family']} {r['domain']}: beats copying the next size down: {beat}.")
    return lines + [""]


def _markdown_adequacy(adequacy_results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    results = {"adequacy": adequacy_results}
    lines += ["### split_lab adequacy: every size fitted, in-sample mean (max) |relative error|", "",
              "| law | cut | base rows | specialized rows |", "|---|---|---:|---:|"]
    for cut, table in results["adequacy"].items():
        for name, a in table.items():
            lines.append(f"| {name} | {cut} | {_pct(a['base']['mean'])} ({_pct(a['base']['max'])}) | {_pct(a['specialized']['mean'])} ({_pct(a['specialized']['max'])}) |")
    return lines


def _progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_all(n_jobs: int | None = -1, parts: tuple[str, ...] = ("split_lab", "finetune", "adequacy"),
            families: tuple[str, ...] = FAMILIES) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "split_lab" in parts:
        _progress("split_lab extrapolation")
        out["split_lab"] = split_lab_extrapolation(n_jobs=n_jobs)
    if "finetune" in parts:
        out["finetune"] = []
        for f in families:
            for d in FINETUNE_DOMAINS:
                _progress(f"finetune {f} {d}")
                out["finetune"].append(finetune_extrapolation(f, d, n_jobs=n_jobs))
    if "adequacy" in parts:
        _progress("adequacy")
        out["adequacy"] = {"none": split_lab_adequacy(None), "min_tokens=1e6": split_lab_adequacy(1e6)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, help="also write the numbers as JSON here")
    ap.add_argument("--n-jobs", type=int, default=-1)
    ap.add_argument("--parts", default="split_lab,finetune,adequacy", help="comma-separated: split_lab, finetune, adequacy")
    ap.add_argument("--families", default=",".join(FAMILIES), help="finetune families, comma-separated")
    args = ap.parse_args(argv)
    results = run_all(n_jobs=args.n_jobs, parts=tuple(p.strip() for p in args.parts.split(",")),
                      families=tuple(f.strip() for f in args.families.split(",")))
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
