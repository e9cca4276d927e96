"""Reading files with one-line errors that name the file (shared by laws, results and scenarios)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_text(path: Path, what: str, error: type[Exception]) -> str:
    """The file's text, or ``error("<path>: <what> not found")`` and friends."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror or exc})") from None


def read_json(path: Path, what: str, error: type[Exception]) -> Any:
    """Parsed JSON, with the line and column of a syntax error."""
    text = read_text(path, what, error)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
