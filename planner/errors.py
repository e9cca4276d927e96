"""One base for every user-facing error, so callers (and the CLI) catch one type.

Every subclass is also a ``ValueError``: bad input is a value problem, and code written against the
older per-module errors keeps working. The CLI maps ``PlannerError`` to exit code 2.
"""

from __future__ import annotations

__all__ = ["PlannerError", "PlannerWarning"]


class PlannerError(ValueError):
    """Bad input to planner: the message names the file, key or row and what is wrong."""


class PlannerWarning(UserWarning):
    """Category of the warnings planner also raises through :mod:`warnings` (fit and plan warnings).

    The same warnings are kept as data on the result (``law.warnings``, ``plan.warnings``); raising
    them too lets a notebook user see ``bound-hit`` without reading the attribute, and lets tests and
    pipelines turn them into errors with ``warnings.simplefilter("error", PlannerWarning)``.
    """
