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
import contextlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Iterator

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


@contextlib.contextmanager
def _recording_backtests() -> Iterator[dict[str, Any]]:
    """Within the block, every ``form="auto"`` fit leaves its candidates' per-row backtest log errors in the
    yielded dict (``"fold_errors"``: form -> one array per fold, None where the fold failed), by wrapping
    ``planner.fitting.core._weigh_candidates`` (benchmark only: the rule study reads auto's own folds)."""
    import planner.fitting.core as core

    seen: dict[str, Any] = {}
    original = core._weigh_candidates

    def wrapped(results, skipped, folds, method, notes):
        seen["fold_errors"] = {r["form"].name: list(r["fold_errors"]) for r in results if r["law"] is not None}
        seen["folds"] = list(folds)
        return original(results, skipped, folds, method, notes)

    core._weigh_candidates = wrapped
    try:
        yield seen
    finally:
        core._weigh_candidates = original


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


def split_lab_extrapolation(n_train_sizes: int = 3, n_jobs: int | None = -1, keep: bool = False) -> dict[str, Any]:
    """Fit on the ``n_train_sizes`` smallest sizes, predict the others: ARE per form on base and specialized rows.

    ``keep``: also return ``"kept"``: the held-out rows and observations, every law's held-out
    predictions, the backtest table's scored rows and auto's per-row backtest log errors (for :func:`rule_study`).
    """
    runs = load_split_lab()
    sizes = np.sort(runs["model_size"].unique())
    cut = float(sizes[n_train_sizes - 1])
    rule = f"model_size <= {cut:g}"
    start = time.perf_counter()
    with _recording_backtests() as seen:
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
    out = {
        "rule": rule, "n_train": int(len(train)), "n_test": int(len(test)), "n_base": int(base.sum()), "n_specialized": int(spec.sum()),
        "errors": rows, "weights": dict(zip(auto_law.candidates.names, auto_law.candidates.weights)),
        "best_candidate": best, "ensemble_over_best": rows["ensemble"]["all"] / rows[best]["all"],
        "selected": auto_law.form.name, "seconds": seconds,
    }
    if keep:
        out["kept"] = _kept(auto_law, seen, train.reset_index(drop=True), obs, preds)
    return out


def _kept(auto_law: planner.FittedLaw, seen: dict[str, Any], train: pd.DataFrame, obs: np.ndarray,
          preds: dict[str, np.ndarray]) -> dict[str, Any]:
    """What :func:`rule_study` needs of one extrapolation (auto's one backtest fold: the largest fitted size)."""
    ens = auto_law.candidates
    assert len(seen["folds"]) == 1  # 3 fitted sizes: one fold, the 2 smallest -> the third
    errors = np.column_stack([seen["fold_errors"][n][0] for n in ens.names])
    scored = train[train["model_size"] == train["model_size"].max()].reset_index(drop=True)
    assert len(scored) == len(errors)  # the fold's scored rows (cross-domain rows are not in ``train``)
    return {"names": list(ens.names), "sigmas": list(ens.sigmas), "obs": obs,
            "predictions": np.vstack([preds[n] for n in ens.names]), "fold_errors": errors, "fold_rows": scored}


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


def finetune_extrapolation(family: str, domain: str, n_jobs: int | None = -1, keep: bool = False) -> dict[str, Any]:
    """Fit the smaller sizes of a family, predict the largest size's curve; baseline: the next size down.
    ``keep``: as in :func:`split_lab_extrapolation`."""
    runs = load_finetune(family, domain)
    sizes = np.sort(runs["model_size"].unique())
    rule = f"model_size < {sizes[-1]:g}"
    start = time.perf_counter()
    with _recording_backtests() as seen:
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
    out = {
        "family": family, "domain": domain, "rule": rule, "n_test": int(len(test)), "errors": errors,
        "weights": dict(zip(auto_law.candidates.names, auto_law.candidates.weights)),
        "failed": {s.form: s.reason for s in auto_law.candidates.scores if s.status == "failed"},
        "best_candidate": best, "ensemble_over_best": errors["ensemble"] / errors[best],
        "beats_baseline": sorted(n for n in candidates + ["ensemble"] if errors[n] < errors["copy next size down"]),
        "selected": auto_law.form.name, "seconds": seconds,
    }
    if keep:
        out["kept"] = _kept(auto_law, seen, runs[runs["model_size"] < sizes[-1]].reset_index(drop=True), obs, preds)
    return out


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


def _study_weights(blocks: list[np.ndarray], scheme: str, steps: list[float | None] | None = None, target_step: float | None = None) -> np.ndarray:
    """Weights of one scheme from per-fold log errors (one (n_f, J) array per fold).

    ``steps``: each fold's signed extrapolation step in log model size (log of the scored size over the
    nearest fitted one, 0 for interpolation, None for a within-curve fold); ``target_step``: the real
    extrapolation's (the smallest held-out size over the largest fitted); for "distance-weighted stacking".
    """
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
    if scheme == "stability-penalised stacking":
        # a form whose fold errors move from fold to fold is less predictable: sigma_j^2 = its mean fold MSE
        # plus the variance across folds of its mean fold log error (no change with one fold)
        bias = np.vstack([b.mean(axis=0) for b in blocks])
        wide = np.sqrt(sigma ** 2 + bias.var(axis=0))
        return ensemble_weights([np.column_stack([_normal_logpdf(b[:, j], wide[j]) for j in range(n_cand)]) for b in blocks], "stacking")
    if scheme == "distance-weighted stacking":
        # every size fold, its rows weighted by a Gaussian kernel in (its step - the real step) / the real step:
        # the folds that extrapolate as far as the plan does count most (a within-curve fold: weight 0)
        if steps is None or target_step is None:
            return ensemble_weights(log_dens, "stacking")
        h = max(abs(target_step), 1e-9)
        kern = np.array([0.0 if st is None else math.exp(-0.5 * ((st - target_step) / h) ** 2) for st in steps])
        rows = np.vstack(log_dens)
        row_w = np.concatenate([np.full(len(b), k / len(b)) for b, k in zip(log_dens, kern)])
        row_w = row_w / row_w.sum()
        shifted = np.exp(rows - rows.max(axis=1, keepdims=True))
        w = np.full(n_cand, 1.0 / n_cand)
        for _ in range(3000):  # EM on the kernel-weighted mixture log score (stacking_weights' updates)
            resp = shifted * w / (shifted @ w)[:, None]
            w_new = row_w @ resp
            w_new = w_new / w_new.sum()
            if np.max(np.abs(w_new - w)) < 1e-12:
                w = w_new
                break
            w = w_new
        return w
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


STUDY_SCHEMES = ("shrunk-stacking", "equal", "stacking", "pseudo-bma", "BB-pseudo-BMA", "inverse MSE", "point stacking",
                 "stability-penalised stacking", "distance-weighted stacking")


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
    final, fold_err = {}, {f: {} for f in folds}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for form in forms:
            final[form] = planner.fit(train, form, **FIT_OPTIONS).predict(test)
            for name, (fit_rows, score_rows) in folds.items():
                pred = planner.fit(train[fit_rows], form, **FIT_OPTIONS).predict(train[score_rows])
                fold_err[name][form] = np.log(pred) - np.log(train["loss"].to_numpy()[score_rows])
    return _study_scores(case, train, test, forms, final, fold_err)


def _study_scores(case: str, train: pd.DataFrame, test: pd.DataFrame, forms: tuple[str, ...], final: dict[str, np.ndarray],
                  fold_err: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
    """The weighting study's table from the fits (``final``: held-out predictions; ``fold_err``: fold -> form -> log errors)."""
    obs = test["loss"].to_numpy()
    errors = {f: _are(final[f], obs) for f in forms}
    best = min(errors.values())
    s = np.log(np.sort(train["model_size"].unique()))
    steps = {"up": s[2] - s[1], "down": s[0] - s[1], "mid": 0.0, "curve": None}
    target_step = float(np.log(test["model_size"].min()) - s[-1])
    ratios: dict[str, dict[str, float]] = {}
    for set_name, names in STUDY_FOLD_SETS.items():
        blocks = [np.column_stack([fold_err[n][f] for f in forms]) for n in names]
        ratios[set_name] = {}
        for scheme in STUDY_SCHEMES:
            w = _study_weights(blocks, scheme, [steps[n] for n in names], target_step)
            ratios[set_name][scheme] = _are(w @ np.vstack([final[f] for f in forms]), obs) / best
    fold_are = {n: {f: float(np.mean(np.abs(np.expm1(fold_err[n][f])))) for f in forms} for n in fold_err}
    # choosing the scheme by a cross-validation inside the training sizes: weights from the "down" and "mid"
    # folds, scored on the "up" fold (the mixture of the up fold's predictions, exp(log error) * observed);
    # the scheme with the smallest such ratio is then used with every size fold on the held-out rows
    up_obs = train["loss"].to_numpy()[_study_folds(train)["up"][1]]
    up_pred = np.vstack([np.exp(fold_err["up"][f]) * up_obs for f in forms])
    up_best = min(_are(p, up_obs) for p in up_pred)
    inner = [np.column_stack([fold_err[n][f] for f in forms]) for n in ("down", "mid")]
    inner_ratio = {sc: _are(_study_weights(inner, sc, [steps["down"], steps["mid"]], steps["up"]) @ up_pred, up_obs) / up_best
                   for sc in STUDY_SCHEMES}
    chosen = min(STUDY_SCHEMES, key=lambda sc: (round(inner_ratio[sc], 9), STUDY_SCHEMES.index(sc)))
    return {"case": case, "errors": errors, "best": min(errors, key=errors.get), "fold_are": fold_are, "ratios": ratios,
            "inner_cv": {"ratios_on_up_fold": inner_ratio, "chosen": chosen, "heldout_ratio": ratios["three size folds"][chosen]}}


STUDY_CASES = ("split_lab", "Cerebras flan", "Cerebras wmt19", "OPT flan", "OPT wmt19")


# ------------------------------------------------------------------ rules on auto's own fold
def _curves(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each row's curve (run, domain, branch point: D' on a branch, D on the pretraining curve) and its position on it."""
    spec = rows["spec_tokens"].to_numpy(dtype=float)
    key = (rows["run"].astype(str) + "|" + rows["domain"].astype(str) + "|"
           + np.where(spec > 0, rows["pretrain_tokens"].astype(str), "base")).to_numpy()
    return key, np.where(spec > 0, spec, rows["pretrain_tokens"].to_numpy(dtype=float))


def _student_t_logpdf(err: np.ndarray, sigma: float, nu: float = 3.0) -> np.ndarray:
    from scipy.special import gammaln

    z = err / sigma
    return (gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * math.log(nu * math.pi) - math.log(sigma)
            - (nu + 1) / 2 * np.log1p(z * z / nu))


def _bayesian_bootstrap_pbma(units: list[np.ndarray], draws: int = 1000, seed: int = 0) -> np.ndarray:
    """Pseudo-BMA+ (Yao et al. 2018, sec. 3.2): w = E_alpha[softmax(n * sum_u alpha_u elpd_u)], alpha ~ Dirichlet(1, ..., 1)
    over the n independent units (``units``: one (rows, J) array of log densities per unit; a unit's elpd is their sum)."""
    elpd = np.vstack([u.sum(axis=0) for u in units])
    rng, acc = np.random.default_rng(seed), np.zeros(elpd.shape[1])
    for _ in range(draws):
        z = len(elpd) * (rng.dirichlet(np.ones(len(elpd))) @ elpd)
        w = np.exp(z - z.max())
        acc += w / w.sum()
    return acc / draws


#: the rules of :func:`rule_study`, each from auto's one backtest fold (fit the 2 smallest fitted sizes, score the third)
RULES = ("stacking (fit's default)", "equal (= shrunk stacking with one fold)", "pseudo-BMA", "pseudo-BMA+ (bootstrap over rows)",
         "pseudo-BMA+ (bootstrap over curves)", "stacking, Student-t(3) densities", "stacking, scales refitted jointly",
         "stacking on the final checkpoints", "inverse MSE", "point stacking")


def rule_weights(kept: dict[str, Any]) -> dict[str, np.ndarray]:
    """Every rule of :data:`RULES` on auto's own backtest log errors ``kept["fold_errors"]`` (rows x candidates).

    Densities are normal with auto's scales (each candidate's RMS fold log error, floored at its in-sample RMS)
    unless the rule says otherwise. Nothing held out enters a weight.
    """
    from planner.fitting.ensemble import _normal_logpdf, pseudo_bma_weights, stacking_weights

    err = np.asarray(kept["fold_errors"], dtype=float)
    sigma = np.asarray(kept["sigmas"], dtype=float)
    n_cand = err.shape[1]
    dens = np.column_stack([_normal_logpdf(err[:, j], sigma[j]) for j in range(n_cand)])
    key, pos = _curves(kept["fold_rows"])
    last = pd.Series(pos).groupby(key).transform("max").to_numpy() == pos
    out = {RULES[0]: stacking_weights([dens]), RULES[1]: np.full(n_cand, 1.0 / n_cand), RULES[2]: pseudo_bma_weights([dens]),
           RULES[3]: _bayesian_bootstrap_pbma([dens[i:i + 1] for i in range(len(dens))]),
           RULES[4]: _bayesian_bootstrap_pbma([dens[key == k] for k in np.unique(key)])}
    out[RULES[5]] = stacking_weights([np.column_stack([_student_t_logpdf(err[:, j], sigma[j]) for j in range(n_cand)])])
    # one factor c on every scale, chosen with the weights by the mixture's log score (a grid over c in [0.3, 10])
    best_score, best_w = -math.inf, None
    for c in np.geomspace(0.3, 10.0, 31):
        d = np.column_stack([_normal_logpdf(err[:, j], c * sigma[j]) for j in range(n_cand)])
        w = stacking_weights([d])
        score = float(np.mean(np.log(np.exp(d) @ w)))
        if score > best_score:
            best_score, best_w = score, w
    out[RULES[6]] = best_w
    fin_sigma = np.maximum(np.sqrt(np.mean(err[last] ** 2, axis=0)), 1e-4)
    out[RULES[7]] = stacking_weights([np.column_stack([_normal_logpdf(err[last, j], fin_sigma[j]) for j in range(n_cand)])])
    out[RULES[8]] = (1.0 / sigma ** 2) / np.sum(1.0 / sigma ** 2)
    from scipy.optimize import minimize

    r = minimize(lambda w: float(np.mean(np.log(np.maximum(np.exp(err) @ w, 1e-300)) ** 2)), np.full(n_cand, 1.0 / n_cand),
                 bounds=[(0.0, 1.0)] * n_cand, constraints=({"type": "eq", "fun": lambda w: w.sum() - 1.0},), method="SLSQP")
    w = np.clip(r.x, 0.0, None)
    out[RULES[9]] = w / w.sum()
    return out


def rule_study(kept_by_case: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each rule's held-out mixture ARE over the best candidate's, per case, with its weights; and the bound
    on what any weights of a subset of forms could reach (a linear program on the held-out rows: an oracle,
    used only to show what is reachable, never as a weight)."""
    out: dict[str, Any] = {}
    for case, k in kept_by_case.items():
        preds, obs = np.asarray(k["predictions"]), np.asarray(k["obs"])
        errs = np.array([_are(p, obs) for p in preds])
        rules = rule_weights(k)
        fold_are = np.mean(np.abs(np.expm1(k["fold_errors"])), axis=0)
        out[case] = {"names": k["names"], "heldout_are": dict(zip(k["names"], errs)), "fold_are": dict(zip(k["names"], fold_are)),
                     "ratios": {r: _are(w @ preds, obs) / errs.min() for r, w in rules.items()},
                     "weights": {r: dict(zip(k["names"], w)) for r, w in rules.items()},
                     "n_weighted": {r: int(np.sum(w >= 0.01)) for r, w in rules.items()}}
        from scipy.stats import spearmanr

        out[case]["rank_agreement"] = float(spearmanr(fold_are, errs).correlation)  # Spearman: fold ARE vs held-out ARE
        with_d_term = [n for n in k["names"] if n.startswith("split-")]
        if len(with_d_term) < len(k["names"]):
            out[case]["oracle_d_term_forms_only"] = _oracle_ratio(preds, obs, [n in with_d_term for n in k["names"]]) / errs.min()
            out[case]["least_no_d_weight_for_1_1"] = _least_weight_for(preds, obs, [n not in with_d_term for n in k["names"]], 1.1 * errs.min())
    return out


def _least_weight_for(preds: np.ndarray, obs: np.ndarray, subset: list[bool], are_cap: float) -> float:
    """The least total weight on the ``subset`` candidates of any simplex weights whose held-out ARE is at most
    ``are_cap`` (an LP on the held-out rows: an oracle, to show what a rule would have to do)."""
    from scipy.optimize import linprog

    n_cand, n = preds.shape
    a_ub = np.block([[(preds / obs).T, -np.eye(n)], [-(preds / obs).T, -np.eye(n)], [np.zeros((1, n_cand)), np.full((1, n), 1.0 / n)]])
    b_ub = np.r_[np.ones(n), -np.ones(n), are_cap]
    r = linprog(np.r_[np.asarray(subset, dtype=float), np.zeros(n)], A_ub=a_ub, b_ub=b_ub, A_eq=np.r_[np.ones(n_cand), np.zeros(n)][None],
                b_eq=[1.0], bounds=[(0.0, 1.0)] * n_cand + [(0.0, None)] * n, method="highs")
    return float(r.fun) if r.status == 0 else math.nan


def _oracle_ratio(preds: np.ndarray, obs: np.ndarray, allowed: list[bool]) -> float:
    """The smallest held-out ARE any simplex weights on the ``allowed`` candidates reach (an LP; an oracle)."""
    from scipy.optimize import linprog

    n_cand, n = preds.shape
    a_ub = np.block([[(preds / obs).T, -np.eye(n)], [-(preds / obs).T, -np.eye(n)]])
    b_ub = np.r_[np.ones(n), -np.ones(n)]
    r = linprog(np.r_[np.zeros(n_cand), np.full(n, 1.0 / n)], A_ub=a_ub, b_ub=b_ub, A_eq=np.r_[np.ones(n_cand), np.zeros(n)][None],
                b_eq=[1.0], bounds=[(0.0, 1.0 if ok else 0.0) for ok in allowed] + [(0.0, None)] * n, method="highs")
    return float(r.fun)


def _markdown_rules(study: dict[str, Any]) -> list[str]:
    cases = list(study)
    lines = ["### Weighting rules on auto's own backtest fold: the ensemble's held-out ARE over the best single candidate's", "",
             "| rule | " + " | ".join(cases) + " | within 1.1x | forms with weight >= 0.01 |", "|---|" + "---:|" * (len(cases) + 2)]
    for rule in RULES:
        vals = [study[c]["ratios"][rule] for c in cases]
        lines.append(f"| {rule} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {sum(v <= 1.1 for v in vals)} of {len(vals)} | "
                     + ", ".join(str(study[c]["n_weighted"][rule]) for c in cases) + " |")
    lines += ["", "| case | " + " | ".join(_short(n) for n in study[cases[-1]]["names"]) + " |", "|---|" + "---:|" * len(study[cases[-1]]["names"])]
    for c in cases:
        for label, key in (("auto's fold ARE", "fold_are"), ("held-out ARE", "heldout_are")):
            lines.append(f"| {c}: {label} | " + " | ".join(_pct(study[c][key].get(n)) for n in study[cases[-1]]["names"]) + " |")
        w = study[c]["weights"][RULES[0]]
        lines.append(f"| {c}: stacking weight | " + " | ".join("–" if n not in w else f"{w[n]:.3f}" for n in study[cases[-1]]["names"]) + " |")
    lines.append("")
    lines.append("Rank agreement (Spearman) of auto's fold ARE with the held-out ARE: "
                 + ", ".join(f"{c} {study[c]['rank_agreement']:+.2f}" for c in cases) + ".")
    for c in cases:
        if study[c].get("least_no_d_weight_for_1_1", 0.0) > 1e-6:
            lines.append(f"- {c} (oracle, held-out rows): any weights on the six forms with a D' term reach at best "
                         f"{study[c]['oracle_d_term_forms_only']:.2f}x; 1.1x needs at least {study[c]['least_no_d_weight_for_1_1']:.2f} "
                         "of the weight on the two forms without one.")
    return lines + [""]


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
    if "rules" in results:
        lines += _markdown_rules(results["rules"])
    return "\n".join(lines)


def _markdown_weighting(study: list[dict[str, Any]]) -> list[str]:
    lines = ["### Weighting schemes: the ensemble's held-out ARE over the best single candidate's", "",
             "| folds (training rows only) | scheme | " + " | ".join(r["case"] for r in study) + " | within 1.1x |",
             "|---|---|" + "---:|" * (len(study) + 1)]
    for set_name in STUDY_FOLD_SETS:
        for scheme in STUDY_SCHEMES:
            vals = [r["ratios"][set_name][scheme] for r in study]
            lines.append(f"| {set_name} | {scheme} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {sum(v <= 1.1 for v in vals)} of {len(vals)} |")
    if all("inner_cv" in r for r in study):
        lines += ["", "Choosing the scheme by a cross-validation inside the training sizes (weights from the down and mid folds, "
                  "scored on the up fold; the chosen scheme then weighs with the three size folds):", "",
                  "| case | scheme chosen | its ratio on the up fold | its held-out ratio |", "|---|---|---:|---:|"]
        for r in study:
            cv = r["inner_cv"]
            lines.append(f"| {r['case']} | {cv['chosen']} | {cv['ratios_on_up_fold'][cv['chosen']]:.2f} | {cv['heldout_ratio']:.2f} |")
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
    if "rules" in parts:
        kept = {}
        for case in STUDY_CASES:
            _progress(f"rule study {case}")
            r = split_lab_extrapolation(n_jobs=n_jobs, keep=True) if case == "split_lab" else finetune_extrapolation(*case.split(" "), n_jobs=n_jobs, keep=True)
            kept[case] = r["kept"]
        out["rules"] = rule_study(kept)
    if "adequacy" in parts:
        _progress("adequacy")
        out["adequacy"] = {"none": split_lab_adequacy(None), "min_tokens=1e6": split_lab_adequacy(1e6)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, help="also write the numbers as JSON here")
    ap.add_argument("--n-jobs", type=int, default=-1)
    ap.add_argument("--parts", default="split_lab,finetune,adequacy", help="comma-separated: split_lab, finetune, adequacy, weighting (refits every form on 4 folds per case: minutes), rules (weighting rules on auto's own fold)")
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
