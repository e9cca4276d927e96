"""The fitter: data preparation, multi-start fit, bootstrap, held-out evaluation, form selection.

``LawFitter`` follows scikit-learn's estimator convention: the constructor only
stores options; ``fit(runs)`` does the work and stores the result in
``law_``. ``planner.fit(runs, form=..., **options)`` is the one-call version.
"""

from __future__ import annotations

import functools
import hashlib
import math
import numbers
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..laws.base import Form, Inputs
from ..laws.registry import get_form, list_forms
from .._parallel import parallel_map
from .._threads import blas_single_threaded
from .._warnings import warn_user
from ..constants import MAX_BOOTSTRAP, MAX_STARTS
from ..runs import SANITY_CODES, load_runs, summarize_runs, table_fingerprint
from ..selection import SelectionError, select_rows
from .calibration import _compute, calibrate_extrapolation, extrapolation_distance
from .ensemble import _SIGMA_FLOOR, WEIGHTING_METHODS, CandidateScore, Fold, LawEnsemble, _normal_logpdf, ensemble_weights, size_folds
from .identifiability import wide_interval_warnings
from .law import FittedLaw, FitWarning, check_values
from .layout import FitError, ParamLayout, parse_slot_name
from .multistart import POLISH_METHODS, multistart, polish
from .objective import Objective, make_loss

__all__ = ["LawFitter", "fit", "train_on_mask", "holdout_metrics", "validate_options", "OPTION_RULES", "FitError"]


# --------------------------------------------------------------------------- data
@dataclass(frozen=True)
class _Prepared:
    table: pd.DataFrame           # rows used by the fit
    x: Inputs
    observed: np.ndarray
    domain_index: np.ndarray
    domains: tuple[str, ...]
    weights: np.ndarray
    notes: tuple[FitWarning, ...]


def _as_table(runs: Any, form: Form, columns: Mapping[str, str] | None, filters: Mapping[str, Any] | None = None) -> pd.DataFrame:
    filters = {k: v for k, v in (filters or {}).items() if v is not None}
    if (isinstance(runs, pd.DataFrame) and "notes" in runs.attrs and columns is None and not filters
            and runs.attrs.get("fingerprint") == table_fingerprint(runs)):
        return runs  # checked by load_runs and unchanged since: no second pass
    require = tuple(c for c in form.inputs if c not in ("spec_tokens", "unique_tokens")) + (form.target,)
    return load_runs(runs, columns=columns, require=require, warn=False, **filters)


def _prepare(table: pd.DataFrame, form: Form, *, domain: str | Sequence[str] | None, weights: Any) -> _Prepared:
    notes: list[FitWarning] = []
    df = table
    if form.target not in df:
        raise FitError(f"form {form.name!r} predicts {form.target!r}, which the runs do not have (columns: {', '.join(map(str, df.columns))})")
    for col in form.inputs:
        if col in ("spec_tokens", "unique_tokens"):
            continue
        if col not in df:
            raise FitError(f"form {form.name!r} needs column {col!r}, which the runs do not have")
    if domain is not None:
        wanted = [domain] if isinstance(domain, str) else list(domain)
        have = set(df["domain"].astype(str)) if "domain" in df else {"general"}
        unknown = [d for d in wanted if d not in have]
        if unknown:
            raise FitError(f"domain {', '.join(unknown)} not in the runs (domains: {', '.join(sorted(have))})")
        df = df[df["domain"].astype(str).isin(wanted)] if "domain" in df else df
    if "cross_domain" in df and not form.uses_cross_domain and bool(df["cross_domain"].any()):
        n = int(df["cross_domain"].sum())
        notes.append(FitWarning("rows-excluded", f"{n} rows measure forgetting (specialized on another domain than evaluated); form {form.name!r} ignores them"))
        df = df[~df["cross_domain"].astype(bool)]
    if len(df) == 0:
        raise FitError("no rows left to fit")
    if "domain" in df and form.kind != "downstream":
        doms = tuple(sorted(set(df["domain"].astype(str))))
    else:
        doms = ("general",)
    has_domain_params = any(q.per_domain for q in form.params)
    if len(doms) > 1 and not has_domain_params:
        raise FitError(
            f"form {form.name!r} has no per-domain parameters but the runs have domains {', '.join(doms)}: "
            "select one with domain=... or use a split-* form"
        )
    dom_col = df["domain"].astype(str).to_numpy() if ("domain" in df and len(doms) > 1) else np.full(len(df), doms[0])
    index = np.array([doms.index(d) for d in dom_col], dtype=int)
    cols = {c: df[c].to_numpy(dtype=float) for c in ("model_size", "pretrain_tokens", "spec_tokens", "unique_tokens", "loss") if c in df}
    if "unique_tokens" in cols:
        cols["unique_tokens"] = np.where(np.isnan(cols["unique_tokens"]), np.inf, cols["unique_tokens"])
    x = Inputs.build(len(df), **cols)
    observed = df[form.target].to_numpy(dtype=float)
    if np.any(~np.isfinite(observed)) or np.any(observed <= 0):
        bad = np.flatnonzero(~np.isfinite(observed) | (observed <= 0))[:10]
        raise FitError(f"column {form.target!r} must be positive and finite (log residuals); bad at rows {', '.join(str(i + 1) for i in bad)}")
    if weights is None:
        w = np.ones(len(df))
    elif isinstance(weights, str):
        if weights not in df:
            raise FitError(f"weights: no column {weights!r} in the runs")
        w = df[weights].to_numpy(dtype=float)
    else:
        w = np.asarray(weights, dtype=float)
        if len(w) == len(table) and len(df) != len(table):
            w = w[table.index.get_indexer(df.index)]
    if w.shape != (len(df),) or np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise FitError(f"weights must be {len(df)} finite non-negative numbers with a positive sum")
    return _Prepared(df, x, observed, index, doms, w, tuple(notes))


# ----------------------------------------------------------------------- holdout
def train_on_mask(runs: pd.DataFrame, rule: str | Callable[[pd.DataFrame], Any] | np.ndarray | None) -> np.ndarray:
    """Boolean mask of the rows that are *fitted* for a ``train_on`` rule; the others are held out.

    ``rule`` is a row-selection rule (:mod:`planner.selection`: comparisons, and/or/not, quantities)
    over the run columns plus the virtual columns ``tokens`` (D + D'), ``token_fraction`` (tokens /
    the run's maximum), ``compute`` (6 N tokens) and ``largest`` (the largest model size), e.g.
    ``"model_size <= 1e9"`` or ``"token_fraction <= 0.7"``; or a callable returning a mask; or a
    boolean mask. ``"auto"`` holds out the largest model size (or, with fewer than 4 sizes, each
    run's last 30 % of tokens). A rule is never passed to ``eval`` or pandas.
    """
    if rule is None:
        return np.ones(len(runs), dtype=bool)
    if isinstance(rule, np.ndarray):
        mask = rule.astype(bool)
    elif callable(rule):
        mask = np.asarray(rule(runs), dtype=bool)
    else:
        rule = str(rule).strip() if isinstance(rule, str) else rule
        if rule == "auto":
            sizes = np.unique(runs["model_size"]) if "model_size" in runs else np.array([])
            rule = "not largest" if len(sizes) >= 4 else "token_fraction <= 0.7"
        try:
            mask = select_rows(runs, rule)
        except SelectionError as exc:
            raise FitError(f"train_on: {exc}") from None
    if mask.shape != (len(runs),):
        raise FitError(f"train_on rule must select rows of the table (got shape {mask.shape}, expected ({len(runs)},))")
    if mask.all():
        raise FitError(f"train_on rule {rule!r} keeps every row for training: nothing is held out")
    if not mask.any():
        raise FitError(f"train_on rule {rule!r} leaves no training rows")
    return mask


def holdout_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """ARE (mean |pred - actual| / actual), R^2 on the raw values, RMSE of log residuals, max relative error."""
    actual = np.asarray(actual, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    rel = np.abs(predicted - actual) / actual
    ss_res = float(np.sum((actual - predicted) ** 2))
    ss_tot = float(np.sum((actual - actual.mean()) ** 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_res = np.log(predicted) - np.log(actual)
    return {
        "are": float(np.mean(rel)),
        "max_rel_error": float(np.max(rel)),
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
        "rmse_log": float(np.sqrt(np.mean(log_res ** 2))),
        "n_test": int(len(actual)),
    }


# ----------------------------------------------------------------------- options
@dataclass(frozen=True)
class _Interval:
    """Legal values of a numeric option: ``kind`` (int or float) in [low, high] (open where said)."""

    kind: type
    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def problem(self, value: Any) -> str | None:
        integral = isinstance(value, numbers.Integral)
        if isinstance(value, bool) or not (integral or (self.kind is float and isinstance(value, numbers.Real))):
            return f"must be {'an integer' if self.kind is int else 'a number'}"
        x = float(value)
        if math.isnan(x) or (x < self.low or (self.low_open and x == self.low)) or (x > self.high or (self.high_open and x == self.high)):
            return f"must be in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        return None


@dataclass(frozen=True)
class _OneOf:
    """Legal values of an option given as a list (strings, True/False)."""

    values: tuple[Any, ...]

    def problem(self, value: Any) -> str | None:
        if not any(value is v or (type(value) is type(v) and value == v) for v in self.values):
            return f"must be one of {', '.join(map(repr, self.values))}"
        return None


@dataclass(frozen=True)
class _OrNone:
    """None, or a value legal for ``rule``."""

    rule: Any

    def problem(self, value: Any) -> str | None:
        why = None if value is None else self.rule.problem(value)
        return None if why is None else f"{why} (or None)"


class _NJobs:
    def problem(self, value: Any) -> str | None:
        ok = value is None or (isinstance(value, numbers.Integral) and not isinstance(value, bool) and value != 0)
        return None if ok else "must be a nonzero integer (-1: every core, 1: in this process) or None"


class _CallableOrNone:
    def problem(self, value: Any) -> str | None:
        return None if value is None or callable(value) else "must be a callable(done, total) or None"


#: legal values of the LawFitter options (scikit-learn's ``_parameter_constraints``): checked by one
#: validator at the top of ``fit``, so every option error reads the same
OPTION_RULES: dict[str, Any] = {
    "loss": _OneOf(("huber", "ls", "over")),
    "delta": _Interval(float, 0.0, math.inf, low_open=True, high_open=True),
    "over_weight": _Interval(float, 0.0, math.inf, low_open=True, high_open=True),
    "bootstrap": _Interval(int, 0, MAX_BOOTSTRAP),
    "calibrate": _OneOf((True, False)),
    "interval_level": _Interval(float, 0.0, 1.0, low_open=True, high_open=True),
    "refit": _OneOf((True, False)),
    "max_starts": _Interval(int, 1, MAX_STARTS),
    "n_polish": _Interval(int, 1, MAX_STARTS),
    "n_agree": _OrNone(_Interval(int, 1, MAX_STARTS)),
    "seed": _Interval(int, 0, 2**63 - 1),
    "progress": _CallableOrNone(),
    "polish": _OneOf(POLISH_METHODS),
    "n_jobs": _NJobs(),
    "ensemble": _OneOf(WEIGHTING_METHODS),
    "warm_start": _OneOf((True, False)),
}


def validate_options(options: Mapping[str, Any]) -> None:
    """Check fit options against :data:`OPTION_RULES`; one :class:`FitError` lists every problem."""
    problems = []
    for name, rule in OPTION_RULES.items():
        if name in options:
            why = rule.problem(options[name])
            if why is not None:
                problems.append(f"{name}={options[name]!r} {why}")
    tie = options.get("tie", ())
    if isinstance(tie, str) or not all(isinstance(t, str) for t in tie):
        problems.append(f"tie={tie!r} must be a list of parameter names, e.g. ['eta', 'gamma']")
    fix = options.get("fix")
    if fix is not None and not isinstance(fix, (FittedLaw, Mapping)):
        problems.append(f"fix= must be a mapping {{slot: value}} or a fitted law, not {type(fix).__name__}")
    elif isinstance(fix, Mapping):
        for k, v in fix.items():
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
                problems.append(f"fix[{k!r}]={v!r} must be a finite number")
    if problems:
        raise FitError("invalid fit option" + ("s" if len(problems) > 1 else "") + ": " + "; ".join(problems))


def _at_public_boundary(method: Callable[..., "LawFitter"]) -> Callable[..., "LawFitter"]:
    """Validate options before ``fit``; after it, add the data's sanity notes to ``law_.warnings``
    and raise every fit warning once through :func:`warnings.warn` (PlannerWarning)."""

    @functools.wraps(method)
    def fit(self: "LawFitter", runs: Any) -> "LawFitter":
        validate_options(self.get_params())
        out = method(self, runs)
        law = self.law_
        have = {(w.code, w.message) for w in law.warnings}
        data_notes = tuple(
            FitWarning(str(n["code"]), f"data: {n['message']}") for n in (law.data or {}).get("notes", [])
            if isinstance(n, Mapping) and n.get("code") in SANITY_CODES and (n.get("code"), f"data: {n['message']}") not in have
        )
        if data_notes:
            self.law_ = law = replace(law, warnings=law.warnings + data_notes)
        for w in law.warnings:
            warn_user(f"[{w.code}] {w.message}")
        return out

    return fit


# --------------------------------------------------------------------- the fitter
class LawFitter:
    """Fits one form to a run table (scikit-learn style: options in, ``law_`` out).

    Parameters
    ----------
    form: registry name or Form. ``"auto"``: every applicable loss form is fitted and kept in a
        :class:`~planner.fitting.ensemble.LawEnsemble` weighted by size backtests; the returned law is
        the candidate with the largest weight, with the ensemble in ``law.candidates``.
    loss: "huber" (default), "ls" or "over" (penalise over-prediction).
    delta: Huber threshold on log residuals (1e-3).
    fix: slot -> value held fixed ("borrowed"): ``{"alpha": 0.34}`` or ``{"B[code]": 300}``,
        or a FittedLaw whose parameters (all or those in ``borrow``) are taken.
    borrow: with a FittedLaw in ``fix``: the parameter names to take (e.g. ["alpha", "beta"]).
    tie: per-domain parameters shared across domains (e.g. ["eta", "gamma"]).
    bounds: param -> (lower, upper) overriding the form's.
    weights: per-row weights (array) or a column name.
    domain: evaluation domain(s) to fit on.
    min_tokens: drop checkpoints with fewer tokens (D + D') than this, as the Hitchhiker's
        guide does with 1e10; reported in the data notes.
    max_token_fraction: keep only each run's checkpoints up to this fraction of its tokens
        (fit on a partially trained target).
    where: a row-selection rule (:mod:`planner.selection`) choosing the rows to fit on.
    bootstrap: number of bootstrap draws (whole runs resampled within each domain).
    calibrate: run size backtests (fit on the smaller model sizes, predict the larger ones) and
        store how the error grows with extrapolation distance, for
        ``predict_interval(kind="extrapolation")`` (see :func:`calibrate_extrapolation`).
    interval_level: central probability of the percentile intervals (0.9).
    train_on: rule selecting the rows that are *fitted* (see :func:`train_on_mask`), e.g.
        ``"model_size <= 1e9"``; the other rows are held out and scored (``law.holdout``), and the
        reported parameters are refitted on all rows unless ``refit=False``. ``"auto"`` holds out the
        largest model size. (Renamed from ``holdout=``, which read as the rows held out.)
    max_starts, n_polish: multi-start budget.
    n_agree: None (the default) polishes every one of the ``n_polish`` best starts of a cold
        multi-start; an integer k stops once k of them reached the best optimum (k = 2: the basin
        was found twice). Faster (1.7-1.9x less CPU on the main scenario's fit, the same plan to 4e-8) but a lower
        basin that a later start would find is missed: seen on 2 of the 30 candidate fits of the
        real fine-tuning validation (docs/methods.md), so it is opt-in.
    polish: "auto" (default: :func:`scipy.optimize.least_squares`, trust-region reflective on the
        log residuals with the form's analytic Jacobian; L-BFGS-B for forms on finite differences),
        "least-squares" or "l-bfgs-b" (the previous polish, kept for comparison). Both reach the
        same optimum (``tests/test_fit_speed_paths.py``).
    seed: makes everything deterministic.
    n_jobs: workers for the bootstrap draws and the calibration backtests, scikit-learn's
        convention (-1, the default: every core; 1 or None: in this process; k: k workers),
        through joblib, so ``joblib.parallel_config(backend="dask")`` sends them to a Dask cluster.
        Results do not depend on it: each draw takes its seed from its index. With ``form="auto"``
        the candidate forms are the parallel tasks of the ranking (one per form), then each chosen
        candidate's bootstrap draws and calibration backtests. The default process pool is started
        only for maps that outweigh its start-up (:mod:`planner._parallel`).
    progress: optional callable(done, total) for bootstrap progress.
    ensemble: how ``form="auto"`` weighs its candidates from size-backtest log scores:
        "stacking" (the default), "shrunk-stacking" (stacking shrunk toward equal weights when
        folds are few: equal weights with one fold; the better predictor on the real extrapolations
        of docs/validation.md, but every candidate then carries weight into bootstraps and decisions),
        "pseudo-bma" or "equal" (see :mod:`planner.fitting.ensemble`).
    warm_start: fits on a subset of the rows of another fit of the same call (backtest folds, the
        training rows of ``train_on``, calibration cutoffs) start from that fit's optimum and stop
        once a grid start confirms it (True, the default); False: each is a cold multi-start (the
        previous path, for comparison). The fit on every row is always a cold multi-start.
    """

    def __init__(
        self,
        form: Form | str = "chinchilla",
        *,
        loss: str = "huber",
        delta: float = 1e-3,
        over_weight: float = 4.0,
        fix: Mapping[str, float] | FittedLaw | None = None,
        borrow: Sequence[str] | None = None,
        tie: Iterable[str] = (),
        bounds: Mapping[str, tuple[float, float]] | None = None,
        weights: Any = None,
        domain: str | Sequence[str] | None = None,
        columns: Mapping[str, str] | None = None,
        min_tokens: float | None = None,
        max_token_fraction: float | None = None,
        where: str | None = None,
        bootstrap: int = 0,
        calibrate: bool = False,
        interval_level: float = 0.9,
        train_on: Any = None,
        holdout: Any = None,
        refit: bool = True,
        max_starts: int = 256,
        n_polish: int = 6,
        n_agree: int | None = None,
        polish: str = "auto",
        seed: int = 0,
        n_jobs: int | None = -1,
        progress: Callable[[int, int], None] | None = None,
        ensemble: str = "stacking",
        warm_start: bool = True,
    ) -> None:
        self.form = form
        self.loss = loss
        self.delta = delta
        self.over_weight = over_weight
        self.fix = fix
        self.borrow = borrow
        self.tie = tie
        self.bounds = bounds
        self.weights = weights
        self.domain = domain
        self.columns = columns
        self.min_tokens = min_tokens
        self.max_token_fraction = max_token_fraction
        self.where = where
        self.bootstrap = bootstrap
        self.calibrate = calibrate
        self.interval_level = interval_level
        self.train_on = train_on
        self.holdout = holdout  # the old name: an error at fit time, with what to write
        self.refit = refit
        self.max_starts = max_starts
        self.n_polish = n_polish
        self.n_agree = n_agree
        self.polish = polish
        self.seed = seed
        self.n_jobs = n_jobs
        self.progress = progress
        self.ensemble = ensemble
        self.warm_start = warm_start

    def _filters(self) -> dict[str, Any]:
        return {"min_tokens": self.min_tokens, "max_token_fraction": self.max_token_fraction, "where": self.where}

    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.endswith("_")}

    def _clone(self, form: Form | str, *, share_solves: bool = True, **changes: Any) -> "LawFitter":
        """A fitter with the same options but ``changes``; it shares this fit call's solve cache
        (``share_solves``; a clone sent to another process takes a copy of it)."""
        params = {**self.get_params(), **changes}
        params.pop("form")
        clone = LawFitter(form, **params)
        if share_solves:
            clone._solves_ = getattr(self, "_solves_", None)
        return clone

    # ---------------------------------------------------------------- helpers
    def _fixed_values(self, form: Form) -> dict[str, float]:
        if self.fix is None:
            if self.borrow:
                raise FitError("borrow= names parameters to take from a fitted law passed as fix=")
            return {}
        if isinstance(self.fix, FittedLaw):
            src = self.fix
            names = list(self.borrow) if self.borrow else list(src.params)
            out = {}
            for name in names:
                if name in src.params:
                    out[name] = float(src.params[name])
                else:
                    matches = {k: v for k, v in src.params.items() if parse_slot_name(k)[0] == name}
                    if not matches:
                        raise FitError(f"borrow: the {src.form.name} law has no parameter {name!r} (it has {', '.join(src.params)})")
                    out.update({k: float(v) for k, v in matches.items()})
            return out
        fixed = {str(k): float(v) for k, v in dict(self.fix).items()}
        known = {k: v for k, v in fixed.items() if parse_slot_name(k)[0] in form.param_names}
        check_values(form, known, "fix=", bounds={k: tuple(v) for k, v in (self.bounds or {}).items()})
        return fixed

    def _options(self, form: Form) -> dict[str, Any]:
        fixed = self._fixed_values(form)
        return {
            "form": form.name, "loss": self.loss, "delta": self.delta, "fix": fixed, "tie": sorted(self.tie),
            "bounds": {k: list(v) for k, v in (self.bounds or {}).items()}, "domain": self.domain,
            "bootstrap": self.bootstrap, "calibrate": self.calibrate, "interval_level": self.interval_level,
            "train_on": self.train_on if isinstance(self.train_on, (str, type(None))) else "<custom>",
            "max_starts": self.max_starts, "n_polish": self.n_polish, "seed": self.seed,
            "min_tokens": self.min_tokens, "max_token_fraction": self.max_token_fraction, "where": self.where,
        }

    def _layout(self, form: Form, prep: _Prepared, notes: list[FitWarning]) -> ParamLayout:
        fixed = self._fixed_values(form)
        # a borrowed per-domain slot for a domain absent here is simply not used
        fixed = {k: v for k, v in fixed.items() if parse_slot_name(k)[1] is None or parse_slot_name(k)[1] in prep.domains}
        tie = set(self.tie)
        with_spec = {prep.domains[k] for k in np.unique(prep.domain_index[prep.x.spec_tokens > 0])}
        for q in form.params:
            if not q.needs_spec:
                continue
            value = q.start if q.absent_value is None else q.absent_value
            if q.name in tie or not q.per_domain:
                if not with_spec and q.name not in fixed:
                    fixed[q.name] = value
                    notes.append(FitWarning("unidentified", f"{q.name} is fixed at {value:g}: no run has specialization tokens"))
                continue
            for dom in prep.domains:
                slot = f"{q.name}[{dom}]"
                if dom not in with_spec and slot not in fixed and q.name not in fixed:
                    fixed[slot] = value
                    notes.append(FitWarning("unidentified", f"{slot} is fixed at {value:g}: domain {dom!r} has no runs with specialization tokens"))
        return ParamLayout(form, prep.domains, fix=fixed, tie=tie, bounds=self.bounds)

    def _solve(self, form: Form, prep: _Prepared, seed: int, start: Mapping[str, float] | None = None, mode: str = "cold") -> FittedLaw:
        """One fit of ``form`` to the prepared rows; the modes say where the polish starts:

        * ``"cold"``: the variable-projection multi-start (``max_starts`` grid points, the best
          ``n_polish`` polished, or until ``n_agree`` of them agree; ``start`` is one more candidate start);
        * ``"warm"``: ``start`` is the optimum of a fit on more rows (a backtest, a held-out fit or a
          calibration backtest inside the same data): it is polished first, then grid starts until
          one confirms the best optimum (:func:`~planner.fitting.multistart.multistart`), usually
          two polishes instead of ``n_polish``;
        * ``"quick"``: one polish from ``start`` as given (bootstrap draws).

        Within one fit call the solves are cached (``self._solves_``, keyed by :meth:`_solve_key`: form,
        options, start and a digest of the rows): ``form="auto"``'s ranking, its calibration and its
        bootstrap refit of the chosen form fit the same rows once. Quick solves are never cached.
        """
        notes: list[FitWarning] = list(prep.notes)
        layout = self._layout(form, prep, notes)
        if len(prep.observed) < len(layout.free):
            raise FitError(f"form {form.name!r} has {len(layout.free)} free parameters but only {len(prep.observed)} rows to fit: "
                           "add runs, fix parameters (fix=) or tie per-domain ones (tie=)")
        if mode not in ("cold", "warm", "quick") or (mode != "cold" and start is None):
            raise ValueError(f"_solve: mode {mode!r} needs a start" if mode in ("warm", "quick") else f"_solve: unknown mode {mode!r}")
        cache = getattr(self, "_solves_", None) if mode != "quick" else None
        key = None
        if cache is not None:
            key = self._solve_key(form, layout, prep, seed, start, mode, notes)
            hit = cache.get(key)
            if hit is not None:
                return hit
        loss = make_loss(self.loss, self.delta, self.over_weight)
        obj = Objective(form, layout, prep.x, prep.observed, prep.domain_index, prep.weights, loss)
        if mode == "quick":
            res = polish(obj, {k: start[k] for k in layout.names}, method=self.polish)  # type: ignore[index]
            n_starts = 1
        elif mode == "warm":
            res, n_starts = multistart(obj, max_starts=self.max_starts, n_polish=self.n_polish, seed=seed, method=self.polish,
                                       warm={k: start[k] for k in layout.names})  # type: ignore[index]
        else:
            extra = [dict(start)] if start is not None else None
            res, n_starts = multistart(obj, max_starts=self.max_starts, n_polish=self.n_polish, seed=seed, extra_starts=extra, method=self.polish,
                                       n_agree=self.n_agree)
        values = layout.from_theta(res.x)
        f = obj.value(res.x)
        resid = obj.residuals(res.x)
        warnings = list(notes)
        status = "converged"
        message = str(getattr(res, "message", ""))
        if not np.isfinite(f) or f >= 1e29 or not np.all(np.isfinite(resid)):
            status = "failed"
            warnings.append(FitWarning("non-finite", "the fitted law gives non-finite or non-positive predictions on the data"))
        elif res.status == 1:
            status = "not-converged"
            warnings.append(FitWarning("not-converged", f"the polish stopped at its iteration limit ({message})"))
        for s, th in zip(layout.free, res.x):
            lo, hi = layout.theta_bounds()[layout.free.index(s)]
            span = (hi - lo) if not s.log else 1.0
            if min(th - lo, hi - th) < 1e-4 * span:
                side = "lower" if th - lo < hi - th else "upper"
                warnings.append(FitWarning("bound-hit", f"{s.name} = {values[s.name]:.4g} sits at its {side} bound ({s.param.lower if side == 'lower' else s.param.upper:g})"))
        near = getattr(res, "near_optima", None) or []
        if near and status == "converged":
            warnings.append(_near_optimum_warning(layout, res, near))
        if "model_size" in form.inputs:
            n_sizes = len(np.unique(prep.x.model_size))
            if n_sizes < 3:
                warnings.append(FitWarning("few-model-sizes", f"only {n_sizes} distinct model size(s): exponents in N are poorly determined (use 3 or more, ideally about 5)"))
        fitted = FittedLaw(
            form=form,
            params=values,
            domains=prep.domains,
            tied=tuple(sorted(set(self.tie))),
            fixed=tuple(s.name for s in layout.slots if s.fixed is not None),
            status=status,
            message=message + f"; {n_starts} starts, {obj.loss.name}" + ("" if obj.analytic else ", finite-difference gradients"),
            warnings=tuple(warnings),
            objective=f,
            residuals=resid,
            interval_level=self.interval_level,
        )
        if cache is not None:
            cache[key] = fitted
        return fitted

    def _solve_key(self, form: Form, layout: ParamLayout, prep: _Prepared, seed: int, start: Mapping[str, float] | None, mode: str,
                   notes: list[FitWarning]) -> tuple:
        """Everything a solve's result depends on: form, layout (fixed slots, bounds, ties), loss and
        multi-start options, seed, start, mode, and a digest of the rows (inputs, targets, domains, weights)."""
        digest = hashlib.blake2b(digest_size=16)
        for arr in (prep.x.model_size, prep.x.pretrain_tokens, prep.x.spec_tokens, prep.x.unique_tokens, prep.x.loss,
                    prep.observed, prep.weights, prep.domain_index):
            a = np.ascontiguousarray(arr)
            digest.update(str((a.dtype.str, a.shape)).encode())
            digest.update(a.tobytes())
        slots = tuple((sl.name, sl.fixed, sl.param.lower, sl.param.upper, sl.param.start) for sl in layout.slots)
        start_key = None if start is None else tuple(sorted((str(k), float(v)) for k, v in start.items()))
        return (form.name, form.param_names, slots, layout.tied, prep.domains,
                self.loss, self.delta, self.over_weight, self.max_starts, self.n_polish, self.n_agree, self.polish, self.interval_level, tuple(sorted(set(self.tie))),
                seed, start_key, mode, tuple(notes), digest.hexdigest())

    def _solve_subset(self, form: Form, prep: _Prepared, full: FittedLaw | None) -> FittedLaw:
        """A fit on a subset of the rows ``full`` was fitted on (a backtest, the training rows of
        ``train_on``, a calibration cutoff): warm-started from ``full``'s optimum unless
        ``warm_start=False`` (then the cold multi-start, as before)."""
        if not self.warm_start or full is None or full.status == "failed":
            return self._solve(form, prep, self.seed)
        return self._solve(form, prep, self.seed, start=full.params, mode="warm")

    # ---------------------------------------------------------------- public
    @_at_public_boundary
    @blas_single_threaded
    def fit(self, runs: Any) -> "LawFitter":
        if self.holdout is not None:
            raise FitError(f"holdout= was renamed train_on= because the rule selects the rows that are fitted: "
                           f"write train_on={self.holdout!r}")
        form_spec = self.form
        self._solves_: dict[tuple, FittedLaw] | None = {} if REUSE_SOLVES else None
        try:
            if isinstance(form_spec, str) and form_spec == "auto":
                self.law_ = self._fit_auto(runs)
                return self
            form = get_form(form_spec)
            table = _as_table(runs, form, self.columns, self._filters())
            self.law_ = self._fit_form(form, table)
            return self
        finally:
            self._solves_ = None

    def _fit_form(self, form: Form, table: pd.DataFrame, *, selection: tuple = (), bootstrap_share: float = 1.0) -> FittedLaw:
        """One form fitted to ``table`` (held-out score, bootstrap, calibration as the options say).
        ``bootstrap_share``: the bootstrap map's share of a batch of maps (:func:`~planner._parallel.parallel_map`)."""
        prep_all = _prepare(table, form, domain=self.domain, weights=self.weights)
        holdout_info = None
        train_mask: np.ndarray | None = None
        held_law: FittedLaw | None = None
        if self.train_on is not None:
            train_mask = train_on_mask(prep_all.table, self.train_on)
            prep_train = _prepare(prep_all.table[train_mask], form, domain=None, weights=prep_all.weights[train_mask])
            missing = set(prep_all.domains) - set(prep_train.domains)
            if missing:
                raise FitError(f"train_on rule {self.train_on!r} leaves no training rows for domain(s) {', '.join(sorted(missing))}")
            if self.refit:
                # the reported fit on every row first: the training-only fit starts from its optimum
                fitted = self._solve(form, prep_all, self.seed)
                held_law = self._solve_subset(form, prep_train, fitted)
            else:
                held_law = self._solve(form, prep_train, self.seed)
            test = prep_all.table[~train_mask]
            holdout_info = {"rule": self.train_on if isinstance(self.train_on, str) else "<custom>", "n_train": int(train_mask.sum()),
                            **holdout_metrics(test[form.target].to_numpy(dtype=float), held_law.predict(test)),
                            "params": dict(held_law.params)}
        if held_law is not None and not self.refit:
            # report the training-only fit: no second solve of the same rows
            fitted, prep_all = held_law, prep_train
        elif held_law is None:
            fitted = self._solve(form, prep_all, self.seed)
        notes: list[FitWarning] = []
        draws, intervals = None, {}
        if self.bootstrap:
            draws = self._bootstrap(form, prep_all, fitted, work_share=bootstrap_share)
            lo_q, hi_q = 50 * (1 - self.interval_level), 50 * (1 + self.interval_level)
            lo, hi = np.nanpercentile(draws, [lo_q, hi_q], axis=0)
            intervals = {name: (float(a), float(b)) for name, a, b in zip(fitted.params, lo, hi)}
            notes += wide_interval_warnings(fitted.params, intervals, draws, fitted.fixed, self.interval_level)
            failed = int(np.isnan(draws).any(axis=1).sum())
            if failed:
                notes.append(FitWarning("bootstrap-failures", f"{failed} of {self.bootstrap} bootstrap refits failed and are left out of the intervals"))
            n_runs = len(np.unique(prep_all.table["run"].astype(str))) if "run" in prep_all.table else len(prep_all.table)
            if n_runs < 10:
                notes.append(FitWarning("few-runs", f"bootstrap over only {n_runs} runs: resamples repeat the same few runs, so intervals are rough"))
        calibration = None
        if self.calibrate:
            calibration, note = self._calibrate(form, prep_all, fitted)
            notes += [note] if note is not None else []
        summary = summarize_runs(prep_all.table) if "model_size" in prep_all.table else {"n_rows": len(prep_all.table)}
        held_out = None if train_mask is None or not self.refit else ~train_mask
        return replace(fitted, warnings=fitted.warnings + tuple(notes), draws=draws, intervals=intervals, data=summary,
                       options=self._options(form), holdout=holdout_info, selection=selection,
                       points=self._points(form, prep_all.table, fitted, held_out), calibration=calibration)

    @staticmethod
    def _points(form: Form, used: pd.DataFrame, fitted: FittedLaw, held_out: np.ndarray | None) -> pd.DataFrame:
        """Per-row inputs, observed and predicted values, and which rows were held out."""
        cols = [c for c in ("model_size", "pretrain_tokens", "spec_tokens", "domain", "loss", "error", "run") if c in used]
        pts = used[cols].copy().reset_index(drop=True)
        pts["observed"] = used[form.target].to_numpy(dtype=float)
        pts["predicted"] = fitted.predict(used)
        pts["held_out"] = False if held_out is None else held_out
        if len(pts) > 5000:
            pts = pts.sample(5000, random_state=0).sort_index()
        return pts

    def _worker(self, share_solves: bool = True) -> "LawFitter":
        """A copy for one task of a parallel map: no progress callback, no nested bootstrap or backtests."""
        return self._clone(self.form, share_solves=share_solves, bootstrap=0, calibrate=False, progress=None, n_jobs=1)

    def _calibrate(self, form: Form, prep: _Prepared, fitted: FittedLaw) -> tuple[dict[str, Any] | None, FitWarning | None]:
        """Size backtests inside the data: up to 4 cutoffs, each fit on sizes <= cutoff, scored above it.

        The backtest fits are independent: they run through :func:`~planner._parallel.parallel_map`
        (``n_jobs``), each with the fit's seed, so the result does not depend on ``n_jobs``.
        """
        if "model_size" not in form.inputs:
            return None, FitWarning("no-calibration", f"calibrate: form {form.name!r} does not extrapolate in model size")
        sizes = np.unique(prep.x.model_size)
        if len(sizes) < 4:
            return None, FitWarning("no-calibration", f"calibrate: needs 4 or more model sizes, the runs have {len(sizes)}")
        # keep at least 3 sizes in every backtest fit and at least one size above it
        candidates = sizes[2:-1]
        picks = candidates[np.unique(np.linspace(0, len(candidates) - 1, min(4, len(candidates))).round().astype(int))]
        task = _Backtest(self._worker(), form, _without_table(prep), fitted)
        distances, errors = [], []
        for result in parallel_map(task, [float(c) for c in picks], n_jobs=self.n_jobs):
            if result is not None:
                distances.append(result[0])
                errors.append(result[1])
        if not errors:
            return None, FitWarning("no-calibration", "calibrate: no backtest could be fitted")
        return calibrate_extrapolation(np.abs(fitted.residuals), np.concatenate(distances), np.concatenate(errors),
                                       level=self.interval_level,
                                       reference_model_size=float(sizes.max()), reference_compute=float(np.max(_compute(prep.x))),
                                       cutoffs=[float(c) for c in picks]), None

    def _bootstrap(self, form: Form, prep: _Prepared, fitted: FittedLaw, work_share: float = 1.0) -> np.ndarray:
        """B refits on tables resampled by whole runs within each domain; returns (B, n_slots).

        Draw b resamples with its own generator, ``SeedSequence(seed + 1, spawn_key=(b,))``, and
        the draws run through :func:`~planner._parallel.parallel_map` (``n_jobs``): the draws are
        identical whether they run serially, on local processes or on a Dask cluster.
        """
        table = prep.table
        run_ids = table["run"].astype(str).to_numpy() if "run" in table else np.arange(len(table)).astype(str)
        strata = table["domain"].astype(str).to_numpy() if "domain" in table else np.full(len(table), "general")
        groups: list[list[np.ndarray]] = []
        for stratum in np.unique(strata):
            sel = strata == stratum
            groups.append([np.flatnonzero(sel & (run_ids == rid)) for rid in np.unique(run_ids[sel])])
        names = list(fitted.params)
        task = _BootstrapDraw(self._worker(share_solves=False), form, _without_table(prep), dict(fitted.params), tuple(names),
                              tuple(groups), n_free=sum(1 for name in names if name not in fitted.fixed), seed=self.seed)
        rows = parallel_map(task, range(self.bootstrap), n_jobs=self.n_jobs, progress=self.progress, work_share=work_share)
        return np.array(rows, dtype=float).reshape(self.bootstrap, len(names))

    def _applicable(self, form: Form) -> dict[str, Any]:
        names = set(form.param_names)
        return {
            "tie": [t for t in self.tie if t in names and form.param(t).per_domain],
            "bounds": {k: v for k, v in (self.bounds or {}).items() if k in names} or None,
        }

    def _auto_candidates(self, table: pd.DataFrame) -> tuple[list[Form], list[CandidateScore]]:
        """Loss forms that apply to these runs, and a "skipped" score (with the reason) for the others."""
        has_spec = "spec_tokens" in table and bool((table["spec_tokens"] > 0).any())
        has_unique = "unique_tokens" in table and bool(np.isfinite(table["unique_tokens"].astype(float)).any())
        multi_domain = "domain" in table and table["domain"].nunique() > 1
        forms: list[Form] = []
        skipped: list[CandidateScore] = []
        for form in list_forms(kind="loss"):
            reason = ""
            if form.has_spec and not has_spec and not multi_domain:
                reason = "no specialization tokens in the runs"
            elif "unique_tokens" in form.inputs and not has_unique:
                reason = "no unique_tokens column"
            elif multi_domain and not any(q.per_domain for q in form.params):
                reason = "runs have several domains, the form has no per-domain parameters"
            if reason:
                skipped.append(CandidateScore(form.name, "skipped", reason=reason))
            else:
                forms.append(form)
        return forms, skipped

    def _fit_auto(self, runs: Any) -> FittedLaw:
        """Every applicable form, fitted and weighted by size backtests (see :mod:`planner.fitting.ensemble`)."""
        if self.ensemble not in WEIGHTING_METHODS:
            raise FitError(f"ensemble= must be one of {', '.join(WEIGHTING_METHODS)}, not {self.ensemble!r}")
        base_form = get_form("chinchilla")
        table = _as_table(runs, base_form, self.columns, self._filters())
        if self.domain is not None and "domain" in table:
            # the candidates that apply depend on the domains fitted: select them first
            table = _prepare(table, get_form("split-additive"), domain=self.domain, weights=None).table
            if "cross_domain" in table:
                table = table[~table["cross_domain"].astype(bool)]
        forms, skipped = self._auto_candidates(table)
        notes: list[FitWarning] = []
        rule = self.train_on
        train_mask = None
        if rule is not None:
            try:
                train_mask = train_on_mask(table, rule)
            except FitError as exc:
                if not (isinstance(rule, str) and rule.strip() == "auto"):
                    raise
                # "auto" on runs it cannot split (e.g. 3 sizes whose D' is tiny next to D): weights come
                # from the backtests anyway, so fit every row and say so
                notes.append(FitWarning("no-holdout", f"train_on='auto' holds nothing out on these runs ({exc}); candidates are weighted by size backtests only"))
                rule, train_mask = None, None
        backtest_table = table if train_mask is None else table[train_mask]
        folds = size_folds(backtest_table)
        if not folds:
            notes.append(FitWarning("no-backtest", "no backtest fold could be formed (one model size and one checkpoint per run): candidates get equal weights"))
        # phase 1: backtests and a plain fit of every candidate, one task per form
        tasks = [(self._clone(form, train_on=rule, progress=None, n_jobs=None, bootstrap=0, calibrate=False, **self._applicable(form)),
                  form, table, backtest_table, folds) for form in forms]
        results = parallel_map(_auto_candidate_task, tasks, n_jobs=self.n_jobs)
        solves = getattr(self, "_solves_", None)
        for r in results:
            found = r.pop("solves", None)
            if solves is not None and found and found is not solves:
                solves.update(found)  # solves made in worker processes
        ensemble = _weigh_candidates(results, skipped, folds, self.ensemble, notes)
        # phase 2: bootstrap draws for every candidate with real weight (the ensemble's interval mixes
        # them), extrapolation calibration for the best only (the law plans use); same seed, same optimum
        best_name = ensemble.best.form.name
        redo = [i for i, (c, w) in enumerate(zip(ensemble.candidates, ensemble.weights))
                if (self.bootstrap and w >= MIN_BOOTSTRAP_WEIGHT) or (self.calibrate and c.form.name == best_name)]
        if redo:
            # in this process, one candidate after the other: the fits on all rows and on the training
            # rows come from the cache of phase 1, and the bootstrap draws and calibration backtests of
            # each candidate are the parallel tasks (n_jobs), however few candidates need them
            n_boot = [self.bootstrap if ensemble.weights[i] >= MIN_BOOTSTRAP_WEIGHT else 0 for i in redo]
            cands = list(ensemble.candidates)
            done_before = 0
            for i, boot in zip(redo, n_boot):
                form = ensemble.candidates[i].form
                refit = self._clone(form, train_on=rule, calibrate=self.calibrate and form.name == best_name, bootstrap=boot,
                                    progress=_offset_progress(self.progress, done_before, sum(n_boot)), **self._applicable(form))
                # the candidates' draws are one batch of maps: a process pool started for the first serves the others
                cands[i] = refit._fit_form(form, table, bootstrap_share=boot / sum(n_boot) if boot else 1.0)
                done_before += boot
            ensemble = replace(ensemble, candidates=tuple(cands))
        if train_mask is not None:
            ensemble = replace(ensemble, holdout=_ensemble_holdout(ensemble, table, train_mask, rule))
        best = ensemble.best
        return replace(best, selection=ensemble.selection_rows(), candidates=ensemble, warnings=best.warnings + ensemble.notes)


#: form="auto" bootstraps the candidates with at least this weight (the others add nothing to an interval)
MIN_BOOTSTRAP_WEIGHT = 0.01

#: False: every solve runs even where the same fit call already made it (the previous behaviour;
#: for benchmarks that measure what the cache saves)
REUSE_SOLVES = True


def _offset_progress(progress: Callable[[int, int], None] | None, before: int, total: int) -> Callable[[int, int], None] | None:
    """``progress`` counting on from ``before`` out of ``total`` (the bootstrap draws of several candidates, as one count)."""
    if progress is None:
        return None
    return lambda done, _total: progress(before + done, total)


def _auto_candidate_task(task: tuple) -> dict[str, Any]:
    """One candidate of ``form="auto"``: its fit on every row, then its backtest log errors per fold
    (each fold warm-started from that fit, see :meth:`LawFitter._solve_subset`).

    Module level (picklable) for :func:`planner._parallel.parallel_map`. Never raises: a failure is
    returned as its reason. ``solves`` carries the task's cached solves back to the caller (a worker
    process has its own copy of the cache).
    """
    fitter, form, table, backtest_table, folds = task
    out: dict[str, Any] = {"form": form, "law": None, "fold_errors": [], "fold_reasons": [], "reason": ""}
    full: FittedLaw | None = None
    try:
        law_obj = fitter._fit_form(form, table)
        if law_obj.status == "failed":
            out["reason"] = "the fit on all rows gives non-finite predictions"
        else:
            out["law"] = full = law_obj
    except (FitError, ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        out["reason"] = f"{type(exc).__name__}: {exc}" if not isinstance(exc, FitError) else str(exc)
    for fold in folds:
        try:
            train = _prepare(backtest_table[fold.train], form, domain=fitter.domain, weights=None if not isinstance(fitter.weights, str) else fitter.weights)
            test = _prepare(backtest_table[fold.test], form, domain=fitter.domain, weights=None)
            missing = set(test.domains) - set(train.domains)
            if missing:
                raise FitError(f"no training rows for domain(s) {', '.join(sorted(missing))}")
            small = fitter._solve_subset(form, train, full)
            if small.status == "failed":
                raise FitError("the fit gives non-finite predictions")
            with np.errstate(all="ignore"):
                err = np.log(small.predict(test.table)) - np.log(test.observed)
            if not np.all(np.isfinite(err)):
                raise FitError("non-finite predictions on the held-out size")
            out["fold_errors"].append(err)
            out["fold_reasons"].append("")
        except (FitError, ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
            out["fold_errors"].append(None)
            out["fold_reasons"].append(f"fold {fold.name}: {exc}")
    out["solves"] = getattr(fitter, "_solves_", None) or {}
    return out


def _weigh_candidates(results: list[dict[str, Any]], skipped: list[CandidateScore], folds: list[Fold], method: str,
                      notes: list[FitWarning]) -> LawEnsemble:
    """Scores and weights from the candidates' backtest errors (stacking or pseudo-BMA on log scores)."""
    fitted = [r for r in results if r["law"] is not None]
    failed = [CandidateScore(r["form"].name, "failed", reason=r["reason"]) for r in results if r["law"] is None]
    if not fitted:
        reasons = "; ".join(f"{s.form}: {s.reason}" for s in failed + skipped) or "no loss form applies"
        raise FitError(f"form='auto': no candidate form could be fitted to these runs ({reasons})")
    n_folds = len(folds)
    # a candidate is weighed on the folds it fitted; the folds every weighed candidate fitted are used
    counts = [sum(e is not None for e in r["fold_errors"]) for r in fitted]
    most = max(counts) if counts else 0
    weighed = [i for i, c in enumerate(counts) if c == most and most > 0]
    shared = [f for f in range(n_folds) if all(fitted[i]["fold_errors"][f] is not None for i in weighed)]
    left_out = [i for i in range(len(fitted)) if i not in weighed]
    for i in left_out:
        why = "; ".join(r for r in fitted[i]["fold_reasons"] if r) or "no backtest"
        notes.append(FitWarning("candidate-unscored", f"{fitted[i]['form'].name} failed {n_folds - counts[i]} of {n_folds} backtest folds and gets weight 0 ({why})"))
    sigmas = np.full(len(fitted), np.nan)
    fold_are = [[None if e is None else float(np.mean(np.abs(np.expm1(e)))) for e in r["fold_errors"]] for r in fitted]
    for i, r in enumerate(fitted):
        in_sample = float(np.sqrt(np.mean(np.asarray(r["law"].residuals) ** 2))) if r["law"].residuals is not None and len(r["law"].residuals) else 0.0
        errs = [r["fold_errors"][f] for f in shared] if i in weighed else [e for e in r["fold_errors"] if e is not None]
        ms = [float(np.mean(e ** 2)) for e in errs]
        sigmas[i] = max(math.sqrt(float(np.mean(ms))) if ms else in_sample, in_sample, _SIGMA_FLOOR)
    weights = np.zeros(len(fitted))
    log_scores = [None] * len(fitted)
    if weighed and shared:
        log_dens = [np.column_stack([_normal_logpdf(fitted[i]["fold_errors"][f], sigmas[i]) for i in weighed]) for f in shared]
        w = ensemble_weights(log_dens, method)
        weights[weighed] = w
        for j, i in enumerate(weighed):
            log_scores[i] = float(np.mean([block[:, j].mean() for block in log_dens]))
    else:
        if folds:
            notes.append(FitWarning("no-backtest", "no candidate could be fitted in any backtest fold: candidates get equal weights"))
        weights[:] = 1.0 / len(fitted)
    weights = weights / weights.sum()
    scores = []
    for i, r in enumerate(fitted):
        fa = tuple(fold_are[i])
        done = [v for v in fa if v is not None]
        h = r["law"].holdout
        scores.append(CandidateScore(r["form"].name, "fitted", float(weights[i]), float(np.mean(done)) if done else None, fa,
                                     log_scores[i], float(sigmas[i]), None if not h else float(h["are"]),
                                     "; ".join(x for x in r["fold_reasons"] if x)))
    # the candidates' own laws carry no ensemble: the top-level law does
    return LawEnsemble(candidates=tuple(r["law"] for r in fitted), weights=tuple(float(w) for w in weights),
                       scores=tuple(scores + failed + skipped), method=method, sigmas=tuple(float(s) for s in sigmas),
                       folds=tuple(f.describe() for f in folds), notes=tuple(notes))


def _ensemble_holdout(ensemble: LawEnsemble, table: pd.DataFrame, train_mask: np.ndarray, rule: Any) -> dict[str, Any] | None:
    """The ensemble's held-out metrics: the weighted mixture of the candidates' training-only fits."""
    test = table[~train_mask]
    if "cross_domain" in test:
        test = test[~test["cross_domain"].astype(bool)]
    preds, ws = [], []
    for c, w in zip(ensemble.candidates, ensemble.weights):
        if w <= 0 or not c.holdout or "params" not in c.holdout:
            continue
        held = FittedLaw(c.form, dict(c.holdout["params"]), c.domains, c.tied, status="given")
        preds.append(held.predict(test))
        ws.append(w)
    if not preds:
        return None
    mix = np.asarray(ws) @ np.vstack(preds) / float(np.sum(ws))
    return {"rule": rule if isinstance(rule, str) else "<custom>", "n_train": int(train_mask.sum()),
            **holdout_metrics(test[ensemble.candidates[0].form.target].to_numpy(dtype=float), mix)}



def _near_optimum_warning(layout: ParamLayout, best: Any, near: list[Any]) -> FitWarning:
    """The ``flat-optimum`` warning: other polishes fit the runs as well as the best (within
    :data:`~planner.fitting.multistart.NEAR_RTOL` in objective) with parameters far from its own."""
    from .multistart import NEAR_RTOL

    other = near[0]  # the one farthest from the best
    j = int(np.argmax(np.abs(other.x - best.x)))
    slot = layout.free[j]
    a, b = layout.from_theta(best.x)[slot.name], layout.from_theta(other.x)[slot.name]
    gap = max((r.fun - best.fun) / abs(best.fun) for r in near) if best.fun else 0.0
    return FitWarning("flat-optimum", f"{len(near)} other start(s) fit the runs as well as the reported optimum (objective within "
                                      f"{max(gap, 0.0):.1e} relative, under {NEAR_RTOL:g}) with other parameters, e.g. {slot.name} = {b:.4g} "
                                      f"instead of {a:.4g}: the runs do not single out these parameters, so predictions away from them "
                                      "may depend on which optimum a fit reports (more model sizes, or bootstrap= for intervals)")


# ------------------------------------------------------------ parallel tasks
def _without_table(prep: _Prepared) -> _Prepared:
    """The prepared arrays without the run table (tasks only need the arrays: less to send to workers)."""
    return replace(prep, table=prep.table.iloc[:0])


def _subset(prep: _Prepared, rows: np.ndarray) -> _Prepared:
    return _Prepared(prep.table.iloc[:0], prep.x.subset(rows), prep.observed[rows], prep.domain_index[rows], prep.domains, prep.weights[rows], ())


@dataclass(frozen=True)
class _Backtest:
    """One size backtest: fit on sizes <= cutoff, log errors and extrapolation distances above it (None if unfit)."""

    fitter: LawFitter
    form: Form
    prep: _Prepared
    full: FittedLaw | None = None  # the fit on every row: each backtest starts from its optimum

    def __call__(self, cutoff: float) -> tuple[np.ndarray, np.ndarray] | None:
        prep = self.prep
        below = prep.x.model_size <= cutoff
        sub = _subset(prep, np.flatnonzero(below))
        if len(set(sub.domain_index.tolist())) < len(prep.domains):
            return None
        try:
            small = self.fitter._solve_subset(self.form, sub, self.full)
        except FitError:
            return None
        above = np.flatnonzero(~below)
        x_above = prep.x.subset(above)
        pred = small._predict_values(small.params, x_above, prep.domain_index[above])
        error = np.abs(np.log(pred) - np.log(prep.observed[above]))
        return extrapolation_distance(x_above, cutoff, float(np.max(_compute(sub.x)))), error


@dataclass(frozen=True)
class _BootstrapDraw:
    """Bootstrap draw b: resample whole runs within each domain with generator b, refit from the optimum."""

    fitter: LawFitter
    form: Form
    prep: _Prepared
    start: dict[str, float]
    names: tuple[str, ...]
    groups: tuple[list[np.ndarray], ...]  # per domain: the row indices of each run
    n_free: int
    seed: int

    def __call__(self, b: int) -> list[float]:
        rng = np.random.default_rng(np.random.SeedSequence(self.seed + 1, spawn_key=(b,)))
        total_runs = sum(len(runs) for runs in self.groups)
        # a resample with fewer distinct runs than free parameters cannot determine them:
        # draw again (a few tries), as a degenerate resample would only add spurious spread
        for _attempt in range(20):
            rows, distinct = [], 0
            for runs in self.groups:
                picks = rng.choice(len(runs), size=len(runs), replace=True)
                distinct += len(set(picks.tolist()))
                rows += [runs[k] for k in picks]
            if distinct >= min(self.n_free, total_runs):
                break
        idx = np.concatenate(rows)
        try:
            # each draw is polished from the full-data optimum (warm start): the draws measure the
            # spread around that basin, at the cost of one polish each
            draw = self.fitter._solve(self.form, _subset(self.prep, idx), self.seed + 2 + b, start=self.start, mode="quick")
        except FitError:
            return [float("nan")] * len(self.names)
        return [float(draw.params[n]) for n in self.names]


def fit(runs: Any, form: Form | str = "chinchilla", **options: Any) -> FittedLaw:
    """Fit ``form`` to a run table (path or DataFrame) and return a :class:`FittedLaw`.

    See :class:`LawFitter` for the options (``loss``, ``fix``/``borrow``, ``tie``,
    ``bounds``, ``weights``, ``domain``, ``columns``, ``bootstrap``, ``train_on``, ``seed``, ...).
    """
    return LawFitter(form, **options).fit(runs).law_
