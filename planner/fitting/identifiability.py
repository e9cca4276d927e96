"""Identifiability warnings: parameters the bootstrap cannot pin down (issue 11.5).

A plan rests on the parameters; one whose bootstrap interval spans more than a decade, or whose
standard error exceeds its own magnitude, is not determined by the runs, and whatever depends on it
(often D') is not either. :func:`wide_interval_warnings` turns those into ``wide-interval`` records.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from .law import FitWarning

__all__ = ["wide_interval_warnings", "DECADE_SPAN"]

#: an interval [low, high] with high / low above this spans "more than a decade"
DECADE_SPAN = 10.0


def wide_interval_warnings(params: Mapping[str, float], intervals: Mapping[str, tuple[float, float]], draws: np.ndarray | None,
                           fixed: Sequence[str] = (), level: float = 0.9) -> list[FitWarning]:
    """One ``wide-interval`` warning per free slot whose interval spans > 1 decade or whose SE exceeds |value|.

    ``draws``: bootstrap draws (B, len(params)), columns in ``params`` order (NaN rows are failed draws).
    """
    if draws is None or len(draws) < 2:
        return []
    se = np.nanstd(draws, axis=0, ddof=1)
    out: list[FitWarning] = []
    for name, value, s in zip(params, params.values(), se):
        if name in fixed or not math.isfinite(float(s)):
            continue
        lo, hi = intervals.get(name, (math.nan, math.nan))
        reasons = []
        if lo > 0 and hi > 0 and hi / lo > DECADE_SPAN:
            reasons.append(f"its {round(100 * level)}% interval [{lo:.3g}, {hi:.3g}] spans {math.log10(hi / lo):.1f} decades")
        if s > abs(float(value)):
            reasons.append(f"its standard error {s:.3g} exceeds its value {float(value):.3g}")
        if reasons:
            out.append(FitWarning("wide-interval", f"{name} is poorly determined by these runs: {' and '.join(reasons)}; "
                                                   "predictions and plans that depend on it are uncertain"))
    return out
