"""Extrapolation-calibrated intervals: how far a prediction lies beyond the fitted data, and the
half-width that covers size-backtest errors at that distance (used by ``FittedLaw.interval``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..laws.base import Inputs

__all__ = ["extrapolation_distance", "calibrate_extrapolation"]


def _compute(x: Inputs) -> np.ndarray:
    return 6.0 * x.model_size * (x.pretrain_tokens + x.spec_tokens)


def extrapolation_distance(x: Inputs, reference_model_size: float, reference_compute: float) -> np.ndarray:
    """Decades beyond the fitted data: max(log10 N/N_max, log10 C/C_max, 0), C = 6 N (D + D')."""
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.maximum(np.log10(x.model_size / reference_model_size), np.log10(_compute(x) / reference_compute))
    return np.clip(np.nan_to_num(d, nan=0.0), 0.0, None)


def calibrate_extrapolation(in_sample: np.ndarray, distances: np.ndarray, errors: np.ndarray, *, level: float,
                            reference_model_size: float, reference_compute: float, cutoffs: list[float]) -> dict[str, Any]:
    r"""Half-width of a log-space interval that grows with extrapolation distance.

    q(d) = q0 + slope * d in log loss, with q0 the ``level`` quantile of the in-sample
    |log residuals| and slope the smallest value for which a ``level`` share of the
    backtest errors satisfy |e_i| <= q0 + slope d_i (d_i in decades beyond each backtest's
    data). The interval is pred * exp(+-q(d)): a split-conformal-style calibration on
    backtests, honest only as far as the backtests resemble the real extrapolation.
    """
    q0 = float(np.quantile(in_sample, level))
    positive = distances > 0
    needed = np.where(positive, np.maximum(errors - q0, 0.0) / np.where(positive, distances, 1.0), np.inf)
    covered_free = np.sum(~positive & (errors <= q0))
    slope = 0.0
    for c in np.sort(needed[positive]):
        if (covered_free + np.sum(needed[positive] <= c)) / len(errors) >= level:
            slope = float(c)
            break
    else:
        slope = float(np.max(needed[positive])) if positive.any() else 0.0
    return {
        "level": level, "q0": q0, "slope_per_decade": slope, "n_backtest_points": int(len(errors)), "cutoffs": cutoffs,
        "reference_model_size": reference_model_size, "reference_compute": reference_compute,
        "distance": "max(log10 N/N_max, log10 C/C_max, 0) decades, C = 6 N (D + D')",
    }
