"""Quantities as people write them: ``1e21``, ``"3.5B"``, ``"1.2T tokens"``, ``"1e21 FLOPs"``.

One parser for scenario files, the CLI and the Python API (``Domain(unique_tokens="5B")``), so the
three accept the same spellings with the same meaning.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .constants import MAX_QUANTITY_CHARS

__all__ = ["parse_quantity"]

_SUFFIXES = {"K": 1e3, "k": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12, "P": 1e15}
_UNIT_WORDS = {
    "flops": ("flops", "flop"),
    "tokens": ("tokens", "token", "tok"),
    "params": ("params", "param", "parameters", "parameter"),
    "": (),
}
_QUANTITY = re.compile(r"^\s*([+-]?(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([KkMBGTP])?\s*([A-Za-z]+)?\s*$")


def parse_quantity(value: Any, unit: str = "") -> float:
    """A positive count from ``1e21``, ``"3.5B"``, ``"1.2T tokens"``, ``"1e21 FLOPs"``.

    ``unit`` is the unit the key expects ("flops", "tokens", "params" or "" for a plain
    number); a unit word in the string must match it. Raises ValueError with a clear message.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**308:
        raise ValueError("a number beyond the float range (about 1.8e308)")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        if len(value) > MAX_QUANTITY_CHARS:
            # checked before matching, so the work is bounded however long the text
            raise ValueError(f"a quantity of {len(value)} characters is longer than the limit of {MAX_QUANTITY_CHARS} "
                             "(planner.constants.MAX_QUANTITY_CHARS)")
        m = _QUANTITY.match(value)
        if not m:
            raise ValueError(
                f"{value!r} is not a number: write e.g. 1e21, \"3.5B\" or \"1.2T\" (suffixes K, M, B/G, T, P)"
            )
        number = float(m.group(1).replace("_", ""))
        if m.group(2):
            number *= _SUFFIXES[m.group(2)]
        word = (m.group(3) or "").lower()
        if word:
            if len(word) == 1:
                raise ValueError(f"{value!r}: unknown magnitude suffix {m.group(3)!r} (use K, M, B or G, T, P)")
            if word not in _UNIT_WORDS.get(unit, ()):
                expected = f"the unit is {unit}" if unit else "this key takes a plain number"
                raise ValueError(f"{value!r}: unit {m.group(3)!r} does not fit here ({expected})")
    else:
        raise ValueError(f"expected a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{value!r}: must be a positive finite number")
    return number
