r"""Downstream performance from loss, chained predictions, and task-to-task prediction.

Three tools, all on plain tables of checkpoint or model scores:

1. **Loss -> task error laws** (:func:`fit_downstream`). Two registered forms are fitted with the
   ordinary fitter (:func:`planner.fit`), so every option (bootstrap, holdout, loss, bounds) applies:

   * ``downstream-exp`` (Gadre et al. 2024): :math:`\mathrm{Err}(L) = \varepsilon - k\,e^{-\gamma L}`,
     the average top-1 error as a function of the loss :math:`L` (nats/token). :math:`\varepsilon` is
     the error reached as the loss grows (about chance), :math:`k` and :math:`\gamma` shape the fall.
   * ``downstream-sigmoid``: :math:`\mathrm{Err}(L) = f + (c - f)\,/\,(1 + e^{-s (L - L_0)})`, a logistic
     in the loss between the best reachable error ``floor`` :math:`f` and chance ``ceiling``
     :math:`c`, with slope :math:`s` (parameter ``k``) and midpoint :math:`L_0`. Accuracy is
     :math:`1 - \mathrm{Err}`; pass ``accuracy_col`` and the table is converted.

   Both are fitted, like loss laws, by a Huber loss on log residuals
   :math:`\log \widehat{\mathrm{Err}} - \log \mathrm{Err}` (default ``delta = 1e-3``).

2. **Chaining** (:func:`predict_downstream`): a loss law :math:`L(N, D, \dots)` and an error law
   :math:`\mathrm{Err}(L)` give :math:`\widehat{\mathrm{Err}} = \mathrm{Err}(\hat L(N, D))`. The
   uncertainty of both laws is propagated by Monte Carlo over their bootstrap draws: with loss-law
   draws :math:`\theta^{(1)}_1..\theta^{(1)}_{B_1}` and error-law draws
   :math:`\theta^{(2)}_1..\theta^{(2)}_{B_2}`, the chained draws are
   :math:`\mathrm{Err}(\hat L(x; \theta^{(1)}_i); \theta^{(2)}_j)` over pairs :math:`(i, j)`:

   * ``pairing="independent"`` (default): every pair (the full :math:`B_1 \times B_2` product, or
     ``max_draws`` pairs drawn uniformly at random when the product is larger). This is right when
     the two laws were bootstrapped separately, which is the usual case: the bootstrap tables of the
     two fits are independent resamples, so draw ``i`` of one law says nothing about draw ``i`` of
     the other even when the fits share runs.
   * ``pairing="index"``: pair draw ``i`` with draw ``i`` (``i < min(B_1, B_2)``). Only meaningful if
     both laws were bootstrapped on the *same* resampled run sets (e.g. by a caller that drives both
     fits itself); then it keeps the correlation between the two laws' errors.

   A law without draws (given constants, or fitted without ``bootstrap``) contributes its point
   parameters only. The point prediction is the plug-in :math:`\mathrm{Err}(\hat L(x))`; the interval
   is the central ``level`` percentile interval of the chained draws, each clipped to [0, 1] (errors
   are fractions; a bootstrap law fitted to a degenerate resample can leave that range). These are parameter-uncertainty
   intervals: they do not include the scatter of individual models around the laws (see
   ``docs/validation.md`` for how much that matters on published data).

3. **Task-to-task prediction** (Yang et al. 2024, "The Fine Line"; :func:`fit_task_transfer`,
   :func:`task_transfer_validation`): within a domain, the mean score on *known* tasks predicts an
   *unseen* task of the same domain. With :math:`x_t = \frac{1}{|K|}\sum_{k \in K} s_{k,t}` the mean
   known-task score of checkpoint :math:`t` and :math:`y_t` the unseen task's score, fit on early
   checkpoints :math:`t \le T_0`

   * ``kind="linear"``: :math:`y_t = a + b\,x_t` (least squares);
   * ``kind="logit"``: :math:`\mathrm{logit}\,y_t = a + b\,\mathrm{logit}\,x_t` on scores scaled to
     (0, 1) (keeps predictions inside the valid range near saturation);

   and predict later checkpoints. :func:`task_transfer_validation` compares the error with two
   no-fit baselines: the unseen task's last observed score carried forward, and the known-task mean
   itself (:math:`\hat y_t = x_t`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd

from .fitting import FitError, FittedLaw, fit

__all__ = [
    "downstream_table",
    "fit_downstream",
    "DownstreamPrediction",
    "downstream_draws",
    "predict_downstream",
    "TaskTransfer",
    "fit_task_transfer",
    "task_transfer_validation",
]

DOWNSTREAM_FORMS = ("downstream-exp", "downstream-sigmoid")


# ------------------------------------------------------------------------------------------ tables
def _scale_of(values: np.ndarray, scale: float | str | None) -> float:
    if scale is None or scale == "auto":
        finite = values[np.isfinite(values)]
        return 100.0 if finite.size and np.nanmax(finite) > 1.0 else 1.0
    return float(scale)


def downstream_table(
    table: pd.DataFrame,
    *,
    loss_col: str = "loss",
    error_col: str | None = None,
    accuracy_col: str | None = None,
    scale: float | str | None = "auto",
    keep: Sequence[str] = (),
) -> pd.DataFrame:
    """A ``(loss, error)`` table from a table of losses and task scores.

    Parameters
    ----------
    table: one row per model or checkpoint.
    loss_col: column with the loss (nats/token).
    error_col / accuracy_col: exactly one: the task error, or the accuracy (error = 1 - accuracy).
    scale: divide the score by this first (``"auto"``: 100 if any value exceeds 1, i.e. percent).
    keep: further columns to carry over (e.g. ``"run"``, ``"model_size"``).

    Rows with a missing loss or score are dropped. Errors must end in (0, 1]: the fit works on
    log residuals.
    """
    if (error_col is None) == (accuracy_col is None):
        raise ValueError("give exactly one of error_col= or accuracy_col=")
    score_col = error_col if error_col is not None else accuracy_col
    for col in (loss_col, score_col, *keep):
        if col not in table:
            raise KeyError(f"column {col!r} not in the table (columns: {', '.join(map(str, table.columns))})")
    score = table[score_col].to_numpy(dtype=float)
    s = _scale_of(score, scale)
    score = score / s
    err = score if error_col is not None else 1.0 - score
    out = pd.DataFrame({"loss": table[loss_col].to_numpy(dtype=float), "error": err}, index=table.index)
    for col in keep:
        out[col] = table[col].to_numpy()
    out = out[np.isfinite(out["loss"]) & np.isfinite(out["error"])]
    bad = (out["error"] <= 0) | (out["error"] > 1) | (out["loss"] <= 0)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} rows have an error outside (0, 1] or a non-positive loss after scaling by {s:g}; "
            "pass scale= explicitly if the scores are not fractions or percentages"
        )
    return out.reset_index(drop=True)


def fit_downstream(
    table: pd.DataFrame,
    *,
    loss_col: str = "loss",
    error_col: str | None = None,
    accuracy_col: str | None = None,
    form: str = "downstream-exp",
    scale: float | str | None = "auto",
    **fit_options: Any,
) -> FittedLaw:
    r"""Fit an error-from-loss law (``downstream-exp`` or ``downstream-sigmoid``) to a score table.

    ``Err(L) = eps - k exp(-gamma L)`` (Gadre et al.) or
    ``Err(L) = floor + (ceiling - floor) / (1 + exp(-k (L - L0)))``. The table is built by
    :func:`downstream_table` (so accuracies and percentages are accepted); ``fit_options`` go to
    :func:`planner.fit` (``bootstrap=``, ``holdout=``, ``loss=``, ``bounds=``, ``seed=``, ...).
    Without ``error_col``/``accuracy_col`` the table must already have an ``error`` column.

    >>> law = fit_downstream(evals, loss_col="c4_val", error_col="err_avg", bootstrap=200)
    >>> law.predict(loss=[2.5, 2.4])
    """
    if form not in DOWNSTREAM_FORMS:
        raise ValueError(f"form must be one of {', '.join(DOWNSTREAM_FORMS)} (got {form!r})")
    if error_col is None and accuracy_col is None:
        error_col = "error"
    keep = [c for c in ("run",) if c in table]
    data = downstream_table(table, loss_col=loss_col, error_col=error_col, accuracy_col=accuracy_col, scale=scale, keep=keep)
    return fit(data, form, **fit_options)


# ---------------------------------------------------------------------------------------- chaining
class DownstreamPrediction(NamedTuple):
    """Chained prediction: point error and the ends of its interval (arrays, one value per input row)."""

    error: np.ndarray
    low: np.ndarray
    high: np.ndarray


def _param_rows(law: FittedLaw) -> np.ndarray:
    names = list(law.params)
    if law.draws is None or len(law.draws) == 0:
        return np.array([[law.params[n] for n in names]], dtype=float)
    ok = np.all(np.isfinite(law.draws), axis=1)
    rows = law.draws[ok]
    return rows if len(rows) else np.array([[law.params[n] for n in names]], dtype=float)


def _loss_draws(loss_law: FittedLaw, runs: pd.DataFrame | None, inputs: Mapping[str, Any]) -> np.ndarray:
    rows = _param_rows(loss_law)
    names = list(loss_law.params)
    out = []
    for row in rows:
        law_b = loss_law.with_params(**dict(zip(names, row)))
        out.append(law_b.predict(runs, **inputs))
    return np.vstack(out)


def downstream_draws(
    loss_law: FittedLaw,
    error_law: FittedLaw,
    runs: pd.DataFrame | None = None,
    *,
    pairing: str = "independent",
    max_draws: int = 20000,
    seed: int = 0,
    **inputs: Any,
) -> np.ndarray:
    """Chained error draws, shape (n_draws, n_rows); see the module docstring for ``pairing``."""
    if error_law.form.kind != "downstream":
        raise FitError(f"error_law must be a downstream law (got form {error_law.form.name!r})")
    losses = _loss_draws(loss_law, runs, inputs)            # (B1, n)
    err_rows = _param_rows(error_law)                        # (B2, p)
    names = list(error_law.params)
    b1, b2 = len(losses), len(err_rows)
    if pairing == "index":
        m = min(b1, b2)
        pairs = [(i, i) for i in range(m)]
    elif pairing == "independent":
        if b1 * b2 <= max_draws:
            pairs = [(i, j) for i in range(b1) for j in range(b2)]
        else:
            rng = np.random.default_rng(seed)
            pairs = list(zip(rng.integers(0, b1, max_draws).tolist(), rng.integers(0, b2, max_draws).tolist()))
    else:
        raise ValueError("pairing must be 'independent' or 'index'")
    by_err: dict[int, list[int]] = {}
    for i, j in pairs:
        by_err.setdefault(j, []).append(i)
    chunks = []
    for j, idx in by_err.items():
        law_j = error_law.with_params(**dict(zip(names, err_rows[j])))
        sel = losses[idx]                                     # (k, n)
        chunks.append(law_j.predict(loss=sel.ravel()).reshape(sel.shape))
    # errors are fractions: a draw outside [0, 1] (an extreme bootstrap law) is clipped to the range
    return np.clip(np.vstack(chunks), 0.0, 1.0)


def predict_downstream(
    loss_law: FittedLaw,
    error_law: FittedLaw,
    runs: pd.DataFrame | None = None,
    *,
    level: float = 0.9,
    pairing: str = "independent",
    max_draws: int = 20000,
    seed: int = 0,
    **inputs: Any,
) -> DownstreamPrediction:
    r"""Predict task error from run inputs through a loss law and an error-from-loss law.

    ``error = Err(L_hat(inputs))`` with the point parameters of both laws; ``(low, high)`` is the
    central ``level`` percentile interval over chained bootstrap draws (see the module docstring for
    ``pairing``). ``inputs`` are the loss law's keyword arrays (``model_size=``, ``pretrain_tokens=``,
    ...) or pass a run table as ``runs``.

    >>> err, lo, hi = predict_downstream(loss_law, err_law, model_size=[1.4e9], pretrain_tokens=[9.2e11])
    """
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    loss_hat = loss_law.predict(runs, **inputs)
    point = error_law.predict(loss=loss_hat)
    draws = downstream_draws(loss_law, error_law, runs, pairing=pairing, max_draws=max_draws, seed=seed, **inputs)
    lo, hi = np.nanpercentile(draws, [50 * (1 - level), 50 * (1 + level)], axis=0)
    return DownstreamPrediction(np.asarray(point, dtype=float), lo, hi)


# ----------------------------------------------------------------------------------- task-to-task
def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def _expit(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class TaskTransfer:
    r"""A fitted mapping from the mean score on known tasks to an unseen task's score.

    ``kind="linear"``: :math:`y = a + b\,x`; ``kind="logit"``: :math:`\mathrm{logit}(y/s) = a + b\,\mathrm{logit}(x/s)`
    with ``s = scale`` (100 for percentages). ``x`` is the mean over ``known`` of the scores.
    """

    known: tuple[str, ...]
    target: str
    kind: str
    a: float
    b: float
    scale: float = 1.0
    n_fit: int = 0
    fit_rmse: float = float("nan")
    extra: Mapping[str, Any] = field(default_factory=dict)

    def known_mean(self, scores: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.known if c not in scores]
        if missing:
            raise KeyError(f"known task column(s) {', '.join(missing)} not in the table")
        return scores[list(self.known)].to_numpy(dtype=float).mean(axis=1)

    def predict_from_mean(self, x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if self.kind == "linear":
            return self.a + self.b * x
        return self.scale * _expit(self.a + self.b * _logit(x / self.scale))

    def predict(self, scores: pd.DataFrame) -> np.ndarray:
        """Predicted unseen-task score for every row of ``scores`` (needs the known-task columns)."""
        return self.predict_from_mean(self.known_mean(scores))


def fit_task_transfer(
    scores: pd.DataFrame,
    known: Sequence[str],
    target: str,
    *,
    kind: str = "linear",
    scale: float | str | None = "auto",
) -> TaskTransfer:
    """Fit the unseen task ``target`` from the mean of the ``known`` task columns over the given rows.

    ``scores`` holds the checkpoints to fit on (select the early ones before calling); rows with a
    missing value in any used column are dropped. ``kind`` is ``"linear"`` or ``"logit"``.
    """
    known = tuple(known)
    if not known:
        raise ValueError("known= must name at least one task column")
    if target in known:
        raise ValueError(f"target task {target!r} is also among the known tasks")
    if kind not in ("linear", "logit"):
        raise ValueError("kind must be 'linear' or 'logit'")
    cols = list(known) + [target]
    missing = [c for c in cols if c not in scores]
    if missing:
        raise KeyError(f"column(s) {', '.join(missing)} not in the table")
    sub = scores[cols].dropna()
    if len(sub) < 3:
        raise ValueError(f"need at least 3 complete rows to fit a task mapping (got {len(sub)})")
    s = _scale_of(sub.to_numpy(dtype=float).ravel(), scale)
    x = sub[list(known)].to_numpy(dtype=float).mean(axis=1)
    y = sub[target].to_numpy(dtype=float)
    if kind == "linear":
        xs, ys = x, y
    else:
        xs, ys = _logit(x / s), _logit(y / s)
    design = np.column_stack([np.ones_like(xs), xs])
    (a, b), *_ = np.linalg.lstsq(design, ys, rcond=None)
    tt = TaskTransfer(known, target, kind, float(a), float(b), s, len(sub))
    rmse = float(np.sqrt(np.mean((tt.predict_from_mean(x) - y) ** 2)))
    return TaskTransfer(known, target, kind, float(a), float(b), s, len(sub), rmse)


def task_transfer_validation(
    scores: pd.DataFrame,
    known: Sequence[str],
    target: str,
    *,
    step_col: str = "step",
    train_fraction: float = 0.3,
    kind: str = "linear",
    scale: float | str | None = "auto",
) -> dict[str, Any]:
    """Fit on the earliest ``train_fraction`` of checkpoints (by ``step_col``), predict the rest.

    Returns a dict with the fitted :class:`TaskTransfer` (``"mapping"``), the test table
    (``"test"``: step, actual, predicted, baselines) and mean absolute errors in the score's units:
    ``"mae"`` (the mapping), ``"mae_last_value"`` (the target's last score in the fit window carried
    forward) and ``"mae_known_mean"`` (the known-task mean used as the prediction, no fit).
    """
    if not 0 < train_fraction < 1:
        raise ValueError("train_fraction must be in (0, 1)")
    cols = [step_col, *known, target]
    data = scores[cols].dropna().sort_values(step_col)
    if len(data) < 6:
        raise ValueError(f"need at least 6 complete checkpoints (got {len(data)})")
    cut = data[step_col].min() + train_fraction * (data[step_col].max() - data[step_col].min())
    train, test = data[data[step_col] <= cut], data[data[step_col] > cut]
    if len(test) == 0:
        raise ValueError("no checkpoints after the fit window")
    mapping = fit_task_transfer(train, known, target, kind=kind, scale=scale)
    actual = test[target].to_numpy(dtype=float)
    pred = mapping.predict(test)
    last = np.full_like(actual, float(train[target].iloc[-1]))
    kmean = mapping.known_mean(test)
    table = pd.DataFrame({step_col: test[step_col].to_numpy(), "actual": actual, "predicted": pred, "last_value": last, "known_mean": kmean})
    return {
        "mapping": mapping,
        "test": table,
        "n_train": int(len(train)),
        "n_test": int(len(test)),
        "mae": float(np.mean(np.abs(pred - actual))),
        "mae_last_value": float(np.mean(np.abs(last - actual))),
        "mae_known_mean": float(np.mean(np.abs(kmean - actual))),
    }
