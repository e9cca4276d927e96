"""Warnings as data: a stable code and a sentence, shared by fits and plans."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Note:
    """Something a reader should know (``code`` is stable, ``message`` is prose)."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}
