"""Constants shared across the package, each defined once.

Schema identifiers of the files planner writes, the solver status groups, and the package
version (read from the installed metadata, so ``pyproject.toml`` is the one version source).
"""

from __future__ import annotations

from functools import lru_cache

__all__ = [
    "ALLOCATION_SCHEMA", "LAW_SCHEMA", "SCENARIO_SCHEMA", "SOLUTION_PRESENT", "OPTIMAL", "package_version",
]

#: schema id of ``allocation.json`` (results of ``planner run`` and ``Allocation.to_dict``)
ALLOCATION_SCHEMA = "planner.allocation/1"
#: schema id of a saved law (``FittedLaw.save``)
LAW_SCHEMA = "planner.law/1"
#: schema id of scenario files (``planner schema``)
SCENARIO_SCHEMA = "planner.scenario/1"

#: solver statuses that come with a usable point (as cvxpy's ``SOLUTION_PRESENT``)
SOLUTION_PRESENT: tuple[str, ...] = ("optimal", "optimal_inaccurate")
#: the status of a plan that is optimal to the solver's tolerance
OPTIMAL = "optimal"


@lru_cache(maxsize=1)
def package_version() -> str:
    """The installed distribution's version; ``"0+unknown"`` when run from a source tree not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("planner")
    except PackageNotFoundError:
        return "0+unknown"
