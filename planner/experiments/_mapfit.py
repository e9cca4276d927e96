"""MAP fits of a law vector to log losses (used by the prior, given existing runs, and by the simulations)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from ._model import LawVec, Points

__all__ = ["map_fit"]


def map_fit(vec: LawVec, pts: Points, y_log: np.ndarray, mean: np.ndarray, precision: np.ndarray, *, sigma: float = 0.01,
            seed: int = 0, n_starts: int = 3) -> tuple[np.ndarray, float, np.ndarray]:
    """MAP fit of ``vec`` to log losses: min |log L(theta) - y|^2 / sigma^2 + (theta - mean)' P (theta - mean).

    Returns (theta, SSR of the log residuals, log residuals).
    """
    chol = np.linalg.cholesky(precision + 1e-10 * np.eye(vec.p)).T  # P = R'R
    lo, hi = vec.bounds()
    rng = np.random.default_rng(seed)
    cov = np.linalg.inv(precision)
    starts = [mean] + [rng.multivariate_normal(mean, cov) for _ in range(max(n_starts - 1, 0))]

    def resid(th: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            r = (np.log(vec.predict(th, pts)) - y_log) / sigma
        return np.concatenate([np.nan_to_num(r, nan=1e6, posinf=1e6, neginf=-1e6), chol @ (th - mean)])

    def jac(th: np.ndarray) -> np.ndarray:
        return np.vstack([vec.jac_log(th, pts) / sigma, chol])

    best = None
    for s0 in starts:
        s0 = np.clip(s0, lo + 1e-6, hi - 1e-6)
        try:
            res = least_squares(resid, s0, jac=jac, bounds=(lo, hi), method="trf", x_scale="jac", max_nfev=200)
        except (ValueError, np.linalg.LinAlgError):  # pragma: no cover - degenerate start
            continue
        if best is None or res.cost < best.cost:
            best = res
    theta = best.x if best is not None else mean
    with np.errstate(all="ignore"):
        r = np.log(vec.predict(theta, pts)) - y_log
    return theta, float(np.sum(r ** 2)), r
