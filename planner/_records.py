"""Warnings as data: a stable code and a sentence, shared by fits and plans."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np


@dataclass(frozen=True)
class Note:
    """Something a reader should know (``code`` is stable, ``message`` is prose)."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def json_number(v: Any) -> float | None:
    """A float for JSON: None for None, nan and inf (JSON has no non-finite numbers)."""
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def to_jsonable(obj: Any) -> Any:
    """A JSON-able copy: numpy arrays and scalars to Python, non-finite floats to None,
    objects with ``to_dict()`` to their dict."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return json_number(obj)
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return to_jsonable(obj.to_dict())
    return obj
