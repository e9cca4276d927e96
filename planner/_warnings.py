"""Raise a :class:`PlannerWarning` at the caller's line, outside the package.

``warnings.warn(..., stacklevel=k)`` needs the depth of the call inside planner, which varies
(``planner.fit`` -> ``LawFitter.fit`` -> decorators). This helper counts the frames that belong to
the package, as Python 3.12's ``skip_file_prefixes`` does, so the warning names the user's line.
"""

from __future__ import annotations

import os
import sys
import warnings

from .errors import PlannerWarning

__all__ = ["warn_user"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_user(message: str, category: type[Warning] = PlannerWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the first frame outside planner."""
    level = 2  # 1 is this function, 2 its caller
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
