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
# the evidence of docs/validation.md is for the shrunk-stacking weighting (fit's default is plain
# stacking; see planner/fitting/ensemble.py for why); the weighting study compares every scheme
FIT_OPTIONS: dict[str, Any] = {"max_starts": 32}
AUTO_OPTIONS: dict[str, Any] = {**FIT_OPTIONS, "ensemble": "shrunk-stacking"}


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
    auto_law = planner.fit(runs, "auto", train_on=rule, n_jobs=n_jobs, **AUTO_OPTIONS)
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
    auto_law = planner.fit(runs, "auto", train_on=rule, n_jobs=n_jobs, **AUTO_OPTIONS)
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


# --------------------------------------------------------------- weighting schemes
#: training-only backtest folds of the weighting study (3 fitted sizes s1 < s2 < s3)
STUDY_FOLD_SETS = {"one size fold (auto's)": ("up",), "three size folds": ("up", "down", "mid"),
                   "size folds + within-curve": ("up", "down", "mid", "curve")}


def _study_folds(train: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Boolean (fit, score) masks over ``train``: s1,s2 -> s3 ("up", auto's fold), s2,s3 -> s1 ("down"),
    s1,s3 -> s2 ("mid"), and "curve": every curve's first 70 % of checkpoints -> the rest (a curve is one run,
    domain and branch point; its position is D' on a branch, D on the pretraining curve)."""
    s = np.sort(train["model_size"].unique())
    m = train["model_size"].to_numpy()
    spec = train["spec_tokens"].to_numpy(dtype=float)
    key = train["run"].astype(str) + "|" + train["domain"].astype(str) + "|" + np.where(spec > 0, train["pretrain_tokens"].astype(str), "base")
    pos = np.where(spec > 0, spec, train["pretrain_tokens"].to_numpy(dtype=float))
    rank = pd.Series(pos).groupby(key.to_numpy()).rank(method="dense", pct=True).to_numpy()
    early = rank <= 0.7 + 1e-9
    return {"up": (m <= s[1], m == s[2]), "down": (m >= s[1], m == s[0]), "mid": (m != s[1], m == s[1]), "curve": (early, ~early)}


def _study_weights(blocks: list[np.ndarray], scheme: str) -> np.ndarray:
    """Weights of one scheme from per-fold log errors (one (n_f, J) array per fold)."""
    from scipy.optimize import minimize

    from planner.fitting.ensemble import _normal_logpdf, ensemble_weights

    n_cand = blocks[0].shape[1]
    sigma = np.array([max(np.sqrt(np.mean([np.mean(b[:, j] ** 2) for b in blocks])), 1e-4) for j in range(n_cand)])
    log_dens = [np.column_stack([_normal_logpdf(b[:, j], sigma[j]) for j in range(n_cand)]) for b in blocks]
    if scheme in ("shrunk-stacking", "stacking", "pseudo-bma", "equal"):
        return ensemble_weights(log_dens, scheme)
    if scheme == "BB-pseudo-BMA":  # Yao et al. 2018: Bayesian bootstrap over the folds, 1000 draws, seed 0
        per_fold = np.vstack([b.mean(axis=0) for b in log_dens])
        rng, acc = np.random.default_rng(0), np.zeros(n_cand)
        for _ in range(1000):
            z = len(per_fold) * (rng.dirichlet(np.ones(len(per_fold))) @ per_fold)
            w = np.exp(z - z.max())
            acc += w / w.sum()
        return acc / 1000
    if scheme == "inverse MSE":  # Bates & Granger 1969
        w = 1.0 / sigma ** 2
        return w / w.sum()
    if scheme == "point stacking":  # Breiman 1996: simplex weights minimising the mixture mean's squared log error
        def loss(w: np.ndarray) -> float:
            return float(np.mean([np.mean(np.log(np.maximum(np.exp(b) @ w, 1e-300)) ** 2) for b in blocks]))
        r = minimize(loss, np.full(n_cand, 1.0 / n_cand), bounds=[(0.0, 1.0)] * n_cand,
                     constraints=({"type": "eq", "fun": lambda w: w.sum() - 1.0},), method="SLSQP")
        w = np.clip(r.x, 0.0, None)
        return w / w.sum()
    raise ValueError(scheme)


STUDY_SCHEMES = ("shrunk-stacking", "equal", "stacking", "pseudo-bma", "BB-pseudo-BMA", "inverse MSE", "point stacking")


def _case_rows(case: str) -> tuple[pd.DataFrame, pd.DataFrame, tuple[str, ...]]:
    if case == "split_lab":
        runs = load_split_lab()
        runs = runs[~runs["cross_domain"]].reset_index(drop=True)
        cut = np.sort(runs["model_size"].unique())[2]
        forms = SPLIT_FORMS
    else:
        family, domain = case.split(" ")
        runs = load_finetune(family, domain).reset_index(drop=True)
        cut = np.sort(runs["model_size"].unique())[-2]
        forms = ("chinchilla", "overtrain") + SPLIT_FORMS
    return runs[runs["model_size"] <= cut].reset_index(drop=True), runs[runs["model_size"] > cut].reset_index(drop=True), forms


def weighting_study(case: str) -> dict[str, Any]:
    """Every weighting scheme on every training-only fold set: the held-out mixture's ARE over the best form's.

    Each candidate is fitted (seed 0, FIT_OPTIONS) on each fold's training rows and scored on its test rows
    (log errors), and fitted on all training rows to predict the held-out rows; a scheme turns the fold
    errors into weights (sigma_j = the candidate's RMS fold log error, as in auto), and the mixture of the
    held-out predictions is scored. Nothing held out enters a weight.
    """
    import warnings

    train, test, forms = _case_rows(case)
    folds = _study_folds(train)
    obs, final, fold_err = test["loss"].to_numpy(), {}, {f: {} for f in folds}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for form in forms:
            final[form] = planner.fit(train, form, **FIT_OPTIONS).predict(test)
            for name, (fit_rows, score_rows) in folds.items():
                pred = planner.fit(train[fit_rows], form, **FIT_OPTIONS).predict(train[score_rows])
                fold_err[name][form] = np.log(pred) - np.log(train["loss"].to_numpy()[score_rows])
    errors = {f: _are(final[f], obs) for f in forms}
    best = min(errors.values())
    ratios: dict[str, dict[str, float]] = {}
    for set_name, names in STUDY_FOLD_SETS.items():
        blocks = [np.column_stack([fold_err[n][f] for f in forms]) for n in names]
        ratios[set_name] = {}
        for scheme in STUDY_SCHEMES:
            w = _study_weights(blocks, scheme)
            ratios[set_name][scheme] = _are(w @ np.vstack([final[f] for f in forms]), obs) / best
    fold_are = {n: {f: float(np.mean(np.abs(np.expm1(fold_err[n][f])))) for f in forms} for n in folds}
    return {"case": case, "errors": errors, "best": min(errors, key=errors.get), "fold_are": fold_are, "ratios": ratios}


STUDY_CASES = ("split_lab", "Cerebras flan", "Cerebras wmt19", "OPT flan", "OPT wmt19")


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
    if "weighting" in results:
        lines += _markdown_weighting(results["weighting"])
    return "\n".join(lines)


def _markdown_weighting(study: list[dict[str, Any]]) -> list[str]:
    lines = ["### Weighting schemes: the ensemble's held-out ARE over the best single candidate's", "",
             "| folds (training rows only) | scheme | " + " | ".join(r["case"] for r in study) + " | within 1.1x |",
             "|---|---|" + "---:|" * (len(study) + 1)]
    for set_name in STUDY_FOLD_SETS:
        for scheme in STUDY_SCHEMES:
            vals = [r["ratios"][set_name][scheme] for r in study]
            lines.append(f"| {set_name} | {scheme} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {sum(v <= 1.1 for v in vals)} of {len(vals)} |")
    lines += ["", "Each candidate's ARE on each training-only fold (the evidence the weights see) and on the held-out rows:", "",
              "| case | fold | " + " | ".join(_short(f) for f in study[-1]["errors"]) + " |", "|---|---|" + "---:|" * len(study[-1]["errors"])]
    for r in study:
        for name, row in list(r["fold_are"].items()) + [("held out", r["errors"])]:
            lines.append(f"| {r['case']} | {name} | " + " | ".join(_pct(row.get(f)) for f in study[-1]["errors"]) + " |")
    return lines + [""]


def _short(form: str) -> str:
    return form.replace("split-", "")


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
    if "weighting" in parts:
        out["weighting"] = []
        for case in STUDY_CASES:
            _progress(f"weighting study {case}")
            out["weighting"].append(weighting_study(case))
    if "adequacy" in parts:
        _progress("adequacy")
        out["adequacy"] = {"none": split_lab_adequacy(None), "min_tokens=1e6": split_lab_adequacy(1e6)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, help="also write the numbers as JSON here")
    ap.add_argument("--n-jobs", type=int, default=-1)
    ap.add_argument("--parts", default="split_lab,finetune,adequacy", help="comma-separated: split_lab, finetune, adequacy, weighting (the last refits every form on 4 folds per case: minutes)")
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
