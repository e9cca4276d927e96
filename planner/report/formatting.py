"""Number formatting shared by the renderers and the plots (no matplotlib, no other report module)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["fmt_count"]


def fmt_count(x: Any, digits: int = 3) -> str:
    """12_300_000_000 -> "12.3B" (K, M, B, T, P)."""
    if x is None:
        return "–"
    x = float(x)
    if not math.isfinite(x):
        return "∞" if x > 0 else "–"
    if x == 0:
        return "0"
    x = float(f"{x:.{digits}g}")  # round first, so 999.99e9 becomes 1T, not 1e+03B
    for suffix, scale in (("P", 1e15), ("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.{digits}g}{suffix}"
    return f"{x:.{digits}g}"
