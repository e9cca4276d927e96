"""Constants shared across the package, each defined once.

Schema identifiers of the files planner writes, the solver status groups, and the package
version (read from the installed metadata, so ``pyproject.toml`` is the one version source).
"""

from __future__ import annotations

from functools import lru_cache

__all__ = [
    "ALLOCATION_SCHEMA", "LAW_SCHEMA", "SCENARIO_SCHEMA", "SOLUTION_PRESENT", "OPTIMAL", "package_version",
    "MAX_BOOTSTRAP", "MAX_STARTS", "MAX_DOMAINS", "MAX_FILE_BYTES", "MAX_QUANTITY_CHARS", "MAX_RULE_CHARS",
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

# Caps shared by the Python API, scenario files and the CLI, so the three accept the same inputs.
#: most bootstrap draws a fit may ask for
MAX_BOOTSTRAP = 10_000
#: most multi-start points a fit or solve may ask for
MAX_STARTS = 100_000
#: most domains in one plan
MAX_DOMAINS = 10_000
#: largest input file read (scenario, runs, law or allocation JSON), bytes
MAX_FILE_BYTES = 64 * 1024 * 1024
#: longest quantity string ("3.5B tokens") or row-selection rule accepted, characters
MAX_QUANTITY_CHARS = 64
MAX_RULE_CHARS = 2_000
