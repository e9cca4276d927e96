"""Candidate-form ensembles: every applicable form fitted, weighted by size backtests (``form="auto"``).

Nobody knows the right D' term (BRIEF §2), so ``fit(runs, form="auto")`` fits every candidate form
that applies to the runs and keeps them all in a :class:`LawEnsemble`:

1. **Backtest folds** (:func:`size_folds`). Model sizes s_1 < ... < s_n. For every k with
   3 <= k < n: fit on the sizes s_1..s_k, predict the next size s_(k+1) (the extrapolation a plan
   makes, one step at a time). With exactly 3 sizes there is no such k: one fold fits the 2 smallest
   and predicts the third. With 1 or 2 sizes: one fold fits the first 70 % of each run's checkpoints
   (by D + D') and predicts the rest.
2. **Predictive densities.** Candidate j predicts log loss with a normal density centred on its
   backtest prediction, scale sigma_j = the RMS of its backtest log errors over the folds (each fold
   counted equally; floored at its in-sample residual RMS and at 1e-4): a form that extrapolates badly
   is a wide, low density, not only a shifted one.
3. **Weights: stacking** (the default, ``method="stacking"``), **or stacking shrunk toward equal
   weights by the number of folds** (``method="shrunk-stacking"``). Stacking (Yao, Vehtari, Simpson & Gelman 2018, "Using Stacking to
   Average Bayesian Predictive Distributions") finds s on the simplex maximising the mean held-out log
   score of the mixture, sum_f (1/n_f) sum_(i in fold f) log sum_j s_j p_j(y_i), solved by EM (each fold
   weighs the same). With F folds and J candidates the weights are

       w_j = ((F - 1) s_j + 1) / (F - 1 + J),

   the posterior mean of a uniform Dirichlet(1, ..., 1) prior over the J candidates updated with F - 1
   fold-observations allotted as stacking allots them. One fold only *proposes* a ranking: nothing in
   the data says how reliable it is; each further fold can confirm or contradict it, so F - 1 folds count
   as evidence. With one fold (3 or 4 model sizes) the weights are equal; as folds accumulate they tend
   to stacking's. Why it is not the default: with equal weights every candidate, however its plan
   extrapolates, enters bootstraps and decisions (on the three-domain scenario, the [uncertainty]
   analysis then took 8x the CPU and its ranges spanned N = 1e6 .. 3e9). Ties are broken by the backtest log score (the top-ranked candidate, ``best``, is then
   stacking's choice). Why: on the five real extrapolations of ``benchmarks/validate_split.py`` (one fold
   each), the single fold ranked the forms wrongly on four of five, and plain stacking's mixture was up
   to 4.9x the best candidate's error, equal weights at most 3.7x (docs/validation.md, "Weighting
   schemes"): the forecast-combination puzzle (equal weights are hard to beat when the weights are
   estimated from little data; Smith & Wallis 2009, Claeskens et al. 2016). Pseudo-BMA+ (the Bayesian bootstrap of
   Yao et al. 2018), Student-t densities, refitted scales, stacking on the final checkpoints only, and
   folds weighted by extrapolation distance or penalised for instability did no better: on four of the five
   the one fold ranks the forms backwards (docs/validation.md, "Weighting rules").
   ``method="stacking"`` gives s itself; ``method="pseudo-bma"`` gives w_j proportional to exp(elpd_j),
   elpd_j the same fold-balanced log score summed over folds (Yao et al.'s pseudo-BMA, without the
   Bayesian bootstrap); ``method="equal"`` gives 1/J whatever the folds.

A candidate that fails to fit (in a fold or on all rows) gets weight 0 and its reason in the score
table; the ensemble fails only when every candidate does, with every reason. The ensemble's point
prediction is the weighted mixture mean sum_j w_j L_j; its interval mixes the candidates and their
bootstrap draws.

``fit(form="auto")`` returns the best candidate's :class:`~planner.fitting.law.FittedLaw` (largest
weight), usable wherever a FittedLaw is, with ``law.candidates`` holding the whole ensemble.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .._records import json_number as _num, to_jsonable as _jsonable
from .layout import FitError, FitWarning

if TYPE_CHECKING:  # pragma: no cover - law.py imports this module to read saved ensembles
    from .law import FittedLaw

__all__ = ["Fold", "CandidateScore", "LawEnsemble", "size_folds", "stacking_weights", "shrunk_stacking_weights", "pseudo_bma_weights",
           "ensemble_weights",
           "WEIGHTING_METHODS"]

WEIGHTING_METHODS = ("shrunk-stacking", "stacking", "pseudo-bma", "equal")
_SIGMA_FLOOR = 1e-4
_LOG_2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------- folds
@dataclass(frozen=True)
class Fold:
    """One backtest: fit the rows in ``train``, score the rows in ``test`` (boolean masks over a table)."""

    name: str
    train: np.ndarray
    test: np.ndarray

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "n_train": int(self.train.sum()), "n_test": int(self.test.sum())}


def size_folds(table: pd.DataFrame) -> list[Fold]:
    """Backtest folds over the model sizes of ``table`` (see the module docstring for the rule)."""
    n_rows = len(table)
    sizes = np.unique(table["model_size"].to_numpy(dtype=float)) if "model_size" in table else np.array([])
    size_col = table["model_size"].to_numpy(dtype=float) if "model_size" in table else np.zeros(n_rows)
    folds: list[Fold] = []
    if len(sizes) >= 4:
        for k in range(3, len(sizes)):
            train = size_col <= sizes[k - 1]
            folds.append(Fold(f"sizes <= {sizes[k - 1]:.4g} -> {sizes[k]:.4g}", train, size_col == sizes[k]))
    elif len(sizes) == 3:
        folds.append(Fold(f"sizes <= {sizes[1]:.4g} -> {sizes[2]:.4g}", size_col <= sizes[1], size_col == sizes[2]))
    else:
        tokens = table.get("pretrain_tokens", pd.Series(0.0, index=table.index)).astype(float) + table.get("spec_tokens", pd.Series(0.0, index=table.index)).astype(float)
        key = table["run"].astype(str) if "run" in table else pd.Series("all", index=table.index)
        rank = tokens.groupby(key).rank(method="dense", pct=True).to_numpy()
        train = rank <= 0.7
        if train.any() and (~train).any():
            folds.append(Fold("each run's first 70 % of checkpoints -> the rest", train, ~train))
    return folds


# ------------------------------------------------------------------------- weights
def _normal_logpdf(err: np.ndarray, sigma: float) -> np.ndarray:
    return -0.5 * (err / sigma) ** 2 - math.log(sigma) - 0.5 * _LOG_2PI


def stacking_weights(log_dens: Sequence[np.ndarray], *, iterations: int = 2000, tol: float = 1e-12) -> np.ndarray:
    """Simplex weights maximising sum_f mean_(i in f) log sum_j w_j exp(log_dens[f][i, j]) (EM updates).

    ``log_dens``: one (n_f, J) array per fold of log predictive densities of the held-out points.
    """
    blocks = [np.asarray(b, dtype=float) for b in log_dens if len(b)]
    n_cand = blocks[0].shape[1]
    # responsibilities need exp(log p - max): stable for any scale
    rows = np.vstack(blocks)
    row_w = np.concatenate([np.full(len(b), 1.0 / len(b)) for b in blocks])
    row_w = row_w / row_w.sum()
    shifted = np.exp(rows - rows.max(axis=1, keepdims=True))
    w = np.full(n_cand, 1.0 / n_cand)
    last = -math.inf
    for _ in range(iterations):
        mix = shifted @ w
        score = float(np.sum(row_w * np.log(mix)))
        resp = shifted * w / mix[:, None]
        w = row_w @ resp
        w = w / w.sum()
        if score - last < tol:
            break
        last = score
    return w


def pseudo_bma_weights(log_dens: Sequence[np.ndarray]) -> np.ndarray:
    """w_j proportional to exp(elpd_j), elpd_j = sum over folds of the fold's mean log density times its size."""
    blocks = [np.asarray(b, dtype=float) for b in log_dens if len(b)]
    elpd = sum(b.sum(axis=0) for b in blocks)
    elpd = np.asarray(elpd, dtype=float)
    w = np.exp(elpd - elpd.max())
    return w / w.sum()


def shrunk_stacking_weights(log_dens: Sequence[np.ndarray]) -> np.ndarray:
    """Stacking weights s shrunk toward equal: w_j = ((F - 1) s_j + 1) / (F - 1 + J), F the non-empty folds.

    The posterior mean of a Dirichlet(1, ..., 1) prior over the J candidates after F - 1 fold-observations
    allotted as stacking allots them (one fold proposes a ranking, the others confirm or contradict it):
    equal weights with one fold, stacking's as F grows (see the module docstring).
    """
    blocks = [np.asarray(b, dtype=float) for b in log_dens if len(b)]
    n_cand = blocks[0].shape[1]
    evidence = len(blocks) - 1
    if evidence <= 0:
        return np.full(n_cand, 1.0 / n_cand)
    return (evidence * stacking_weights(blocks) + 1.0) / (evidence + n_cand)


def ensemble_weights(log_dens: Sequence[np.ndarray], method: str = "stacking") -> np.ndarray:
    """Candidate weights from per-fold log predictive densities (one (n_f, J) array per fold) by ``method``."""
    if method == "shrunk-stacking":
        return shrunk_stacking_weights(log_dens)
    if method == "stacking":
        return stacking_weights(log_dens)
    if method == "pseudo-bma":
        return pseudo_bma_weights(log_dens)
    if method == "equal":
        n_cand = next(np.asarray(b).shape[1] for b in log_dens if len(b))
        return np.full(n_cand, 1.0 / n_cand)
    raise FitError(f"ensemble weighting must be one of {', '.join(WEIGHTING_METHODS)}, not {method!r}")


# ---------------------------------------------------------------------- the result
@dataclass(frozen=True)
class CandidateScore:
    """One row of the candidate table: how a form did in the backtests and what weight it got.

    status: "fitted" (in the ensemble), "failed" (could not be fitted: ``reason`` says why) or
    "skipped" (does not apply to these runs). fold_are: ARE of each backtest fold (None where the
    fit failed). backtest_are: their mean. log_score: fold-balanced mean held-out log density of
    log loss. sigma: the predictive scale on log loss. holdout_are: ARE on the rows held out by
    ``train_on`` (None without).
    """

    form: str
    status: str
    weight: float = 0.0
    backtest_are: float | None = None
    fold_are: tuple[float | None, ...] = ()
    log_score: float | None = None
    sigma: float | None = None
    holdout_are: float | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"form": self.form, "status": self.status, "weight": float(self.weight), "backtest_are": _num(self.backtest_are),
                "fold_are": [_num(v) for v in self.fold_are], "log_score": _num(self.log_score), "sigma": _num(self.sigma),
                "holdout_are": _num(self.holdout_are), "reason": self.reason}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CandidateScore":
        def opt(v: Any) -> float | None:
            return None if v is None else float(v)

        return cls(form=str(d["form"]), status=str(d.get("status", "fitted")), weight=float(d.get("weight", 0.0)),
                   backtest_are=opt(d.get("backtest_are")), fold_are=tuple(opt(v) for v in d.get("fold_are", ())),
                   log_score=opt(d.get("log_score")), sigma=opt(d.get("sigma")), holdout_are=opt(d.get("holdout_are")),
                   reason=str(d.get("reason", "")))


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Quantiles of each column of ``values`` (m, n) under row weights (m,), by interpolating the weighted CDF."""
    order = np.argsort(values, axis=0)
    sorted_v = np.take_along_axis(values, order, axis=0)
    w = weights[order]
    cdf = np.cumsum(w, axis=0) - 0.5 * w
    cdf = cdf / np.sum(weights)
    out = np.empty((len(qs), values.shape[1]))
    for j in range(values.shape[1]):
        out[:, j] = np.interp(qs, cdf[:, j], sorted_v[:, j])
    return out


@dataclass(frozen=True, eq=False)
class LawEnsemble:
    """Candidate laws with weights from size backtests (see the module docstring).

    Attributes
    ----------
    candidates: the fitted laws (every candidate that could be fitted, on the same rows).
    weights: one weight per candidate, summing to 1.
    scores: the table of every candidate considered, fitted or not (:class:`CandidateScore`).
    method: one of :data:`WEIGHTING_METHODS` ("shrunk-stacking", "stacking", "pseudo-bma", "equal").
    sigmas: per candidate, the backtest scale of log-loss errors (the predictive density's scale).
    folds: the backtest folds (name, rows fitted, rows scored).
    holdout: the ensemble's own held-out metrics when the fit had ``train_on`` (else None).
    notes: remarks on the weighting (no backtest possible, candidates left out of a fold, ...).
    """

    candidates: tuple[FittedLaw, ...]
    weights: tuple[float, ...]
    scores: tuple[CandidateScore, ...] = ()
    method: str = "stacking"
    sigmas: tuple[float, ...] = ()
    folds: tuple[Mapping[str, Any], ...] = ()
    holdout: Mapping[str, Any] | None = None
    notes: tuple[FitWarning, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.candidates:
            raise FitError("an ensemble needs at least one candidate law")
        if len(self.weights) != len(self.candidates):
            raise FitError(f"{len(self.weights)} weights for {len(self.candidates)} candidates")
        w = np.asarray(self.weights, dtype=float)
        if np.any(~np.isfinite(w)) or np.any(w < 0) or abs(w.sum() - 1.0) > 1e-6:
            raise FitError(f"ensemble weights must be non-negative and sum to 1, got {list(w)}")
        if self.sigmas and len(self.sigmas) != len(self.candidates):
            raise FitError("one sigma per candidate")

    # ------------------------------------------------------------- structure
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.form.name for c in self.candidates)

    @property
    def best(self) -> FittedLaw:
        """The candidate with the largest weight; among equal weights, the best backtest log score."""
        return self.candidates[self.ranking[0]]

    @property
    def ranking(self) -> tuple[int, ...]:
        """Candidate indices, best first: by weight, ties (within 1e-9) broken by the backtest log score."""
        score = {s.form: s.log_score for s in self.scores if s.status == "fitted" and s.log_score is not None}
        w = np.asarray(self.weights, dtype=float)
        key = [(-round(float(wi) / 1e-9), -score.get(name, -math.inf), i) for i, (wi, name) in enumerate(zip(w, self.names))]
        return tuple(k[2] for k in sorted(key))

    def weight_of(self, form: str) -> float:
        return dict(zip(self.names, self.weights)).get(form, 0.0)

    def __len__(self) -> int:
        return len(self.candidates)

    # ------------------------------------------------------------ prediction
    def predict_candidates(self, runs: pd.DataFrame | None = None, **arrays: Any) -> np.ndarray:
        """Each candidate's prediction, shape (J, n)."""
        return np.vstack([c.predict(runs, **arrays) for c in self.candidates])

    def predict(self, runs: pd.DataFrame | None = None, **arrays: Any) -> np.ndarray:
        """Weighted mixture mean sum_j w_j L_j (the same inputs as :meth:`FittedLaw.predict`)."""
        preds = self.predict_candidates(runs, **arrays)
        w = np.asarray(self.weights)
        keep = w > 0
        return np.asarray(w[keep] @ preds[keep], dtype=float)

    def predict_interval(self, runs: pd.DataFrame | None = None, *, level: float = 0.9, kind: str = "parameter",
                         n_samples: int = 4000, seed: int = 0, **arrays: Any) -> tuple[np.ndarray, np.ndarray]:
        """Central ``level`` interval of the mixture over candidates and their bootstrap draws.

        ``kind="parameter"``: candidate j contributes its bootstrap draws' predictions (its point
        prediction without draws), each with weight w_j / B_j: the spread between forms plus each
        form's parameter uncertainty. ``kind="predictive"``: ``n_samples`` draws of the mixture, each
        multiplied by exp(e), e ~ Normal(0, sigma_j), sigma_j the candidate's backtest error scale: the
        interval for a new run at one extrapolation step beyond the data.
        """
        if not 0 < level < 1:
            raise FitError(f"level must be in (0, 1), not {level}")
        blocks, bw, sig = [], [], []
        sigmas = self.sigmas or (math.nan,) * len(self.candidates)
        for c, w, s in zip(self.candidates, self.weights, sigmas):
            if w <= 0:
                continue
            if c.draws is not None and len(c.draws):
                p = c.predict_draws(runs, **arrays)
                p = p[np.all(np.isfinite(p), axis=1)]
            else:
                p = c.predict(runs, **arrays)[None, :]
            if not len(p):
                p = c.predict(runs, **arrays)[None, :]
            blocks.append(p)
            bw.append(np.full(len(p), w / len(p)))
            sig.append(np.full(len(p), s))
        values, weights = np.vstack(blocks), np.concatenate(bw)
        qs = [0.5 * (1 - level), 0.5 * (1 + level)]
        if kind == "parameter":
            lo, hi = _weighted_quantiles(values, weights, qs)
            return lo, hi
        if kind != "predictive":
            raise FitError(f"kind must be 'parameter' or 'predictive', not {kind!r}")
        if not self.sigmas:
            raise FitError("kind='predictive' needs the candidates' backtest scales (an ensemble fitted with backtests)")
        rng = np.random.default_rng(seed)
        row_sigma = np.concatenate(sig)
        pick = rng.choice(len(values), size=n_samples, p=weights / weights.sum())
        samples = values[pick] * np.exp(rng.normal(size=(n_samples, 1)) * row_sigma[pick][:, None])
        lo, hi = np.percentile(samples, [100 * q for q in qs], axis=0)
        return lo, hi

    # -------------------------------------------------------------- reporting
    def score_table(self) -> pd.DataFrame:
        """One row per candidate considered: status, weight, backtest error, log score, held-out error, reason."""
        return pd.DataFrame([s.to_dict() for s in self.scores]) if self.scores else pd.DataFrame(
            {"form": self.names, "status": "fitted", "weight": self.weights})

    def selection_rows(self) -> tuple[dict[str, Any], ...]:
        """The ``FittedLaw.selection`` ranking: fitted candidates by weight, then the others."""
        rows = []
        best = self.best.form.name
        order = {self.names[i]: r for r, i in enumerate(self.ranking)}
        for s in sorted(self.scores, key=lambda s: (s.status != "fitted", order.get(s.form, math.inf), s.backtest_are if s.backtest_are is not None else math.inf)):
            if s.status == "fitted":
                note = ("selected, " if s.form == best else "") + f"weight {s.weight:.3f}"
            else:
                note = f"{s.status}: {s.reason}"
            rows.append({"form": s.form, "are": s.backtest_are if s.status == "fitted" else None, "weight": s.weight,
                         "holdout_are": s.holdout_are, "note": note})
        return tuple(rows)

    def summary_lines(self) -> list[str]:
        lines = [f"candidate forms: {len(self.candidates)} fitted, weights by {self.method} of size-backtest log scores "
                 f"({len(self.folds)} fold{'s' if len(self.folds) != 1 else ''})"]
        if self.method == "shrunk-stacking" and len(self.folds) <= 1 and len(self.candidates) > 1:
            lines[0] += ": equal, as one fold only proposes a ranking (listed by backtest log score)"
        header = f"  {'form':<22}{'weight':>8}{'backtest ARE':>14}{'sigma':>9}  note"
        lines.append(header)
        order = {self.names[i]: r for r, i in enumerate(self.ranking)}
        for s in sorted(self.scores, key=lambda s: (s.status != "fitted", order.get(s.form, math.inf))):
            are = "" if s.backtest_are is None else f"{100 * s.backtest_are:.3f}%"
            sig = "" if s.sigma is None else f"{s.sigma:.4f}"
            note = "" if s.status == "fitted" else f"{s.status}: {s.reason}"
            lines.append(f"  {s.form:<22}{s.weight:>8.3f}{are:>14}{sig:>9}  {note}")
        if self.holdout:
            lines.append(f"  ensemble held out: ARE {100 * float(self.holdout['are']):.3f}% on {self.holdout.get('n_test')} rows")
        return lines

    # ----------------------------------------------------------- serialization
    def to_dict(self) -> dict[str, Any]:
        cands = []
        for c in self.candidates:
            d = c.to_dict()
            d.pop("points", None)  # the per-row table lives on the top-level law only
            d.pop("candidates", None)
            cands.append(d)
        return {
            "method": self.method,
            "weights": [float(w) for w in self.weights],
            "sigmas": [float(s) for s in self.sigmas],
            "candidates": cands,
            "scores": [s.to_dict() for s in self.scores],
            "folds": [_jsonable(dict(f)) for f in self.folds],
            "holdout": None if self.holdout is None else _jsonable(dict(self.holdout)),
            "notes": [n.to_dict() for n in self.notes],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, load_candidate: Callable[..., "FittedLaw"],
                  source: str = "<dict>") -> "LawEnsemble":
        """The ensemble of a saved law file; ``load_candidate`` reads one candidate
        (``FittedLaw.from_dict``, passed in by ``law.py``, so this module needs no import of it:
        saved ensembles are read through ``load_law``/``FittedLaw.from_dict``)."""
        cands = tuple(load_candidate(c, source=f"{source} (candidate {i})") for i, c in enumerate(d.get("candidates") or ()))
        return cls(
            candidates=cands,
            weights=tuple(float(w) for w in d.get("weights", ())),
            scores=tuple(CandidateScore.from_dict(s) for s in d.get("scores") or ()),
            method=str(d.get("method", "stacking")),
            sigmas=tuple(float(s) for s in d.get("sigmas") or ()),
            folds=tuple(d.get("folds") or ()),
            holdout=d.get("holdout"),
            notes=tuple(FitWarning(n["code"], n["message"]) for n in d.get("notes") or ()),
        )
