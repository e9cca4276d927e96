"""planner: fit scaling laws to your runs and plan a FLOP budget across pretraining and specialization.

``import planner`` is light: the public names below are imported on first use (PEP 562 module
``__getattr__``), so ``planner --help`` and ``import planner`` load neither the fitter's scientific
stack nor cvxpy or matplotlib until a name that needs them is touched. ``from planner import fit``
and ``planner.optimize(...)`` work as usual.
"""

from __future__ import annotations

import sys
import types
from importlib import import_module
from typing import TYPE_CHECKING, Any

from .constants import package_version as _package_version
from .errors import PlannerError

__version__ = _package_version()

#: public name -> the module that defines it
_LAZY: dict[str, str] = {
    # runs and laws
    **dict.fromkeys(["RunsError", "load_runs", "runs_from_arrays", "summarize_runs"], ".runs"),
    **dict.fromkeys(["Form", "Param", "get_form", "list_forms", "register_form"], ".laws"),
    # fitting
    **dict.fromkeys(["FitError", "FittedLaw", "FitWarning", "LawFitter", "fit", "law", "load_law"], ".fitting"),
    **dict.fromkeys(["fit_downstream", "fit_task_transfer", "predict_downstream"], ".downstream"),
    # allocation
    **dict.fromkeys(["Allocation", "AllocationError", "AttentionFlops", "Baseline", "Constraints", "Domain", "DomainPlan",
                     "SixN", "optimize", "sweep"], ".allocate"),
    # scenarios
    **dict.fromkeys(["Scenario", "ScenarioError", "ScenarioResult", "load_scenario", "run_scenario"], ".scenario"),
    # experiment design
    **dict.fromkeys(["Design", "DesignError", "Shape", "design", "shape"], ".experiments"),
}

__all__ = ["__version__", "PlannerError", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'planner' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _PlannerModule(types.ModuleType):
    """A public name that is also a subpackage's name stays the public object once the subpackage is imported.

    Importing a subpackage sets it as an attribute of its parent; with eager imports the object
    imported afterwards won that name. Lazily, the subpackage may be imported first (e.g. by the CLI).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _PlannerModule


if TYPE_CHECKING:  # for type checkers and editors: the names as if imported eagerly
    from .allocate import (
        Allocation, AllocationError, AttentionFlops, Baseline, Constraints, Domain, DomainPlan, SixN, optimize, sweep,
    )
    from .downstream import fit_downstream, fit_task_transfer, predict_downstream
    from .fitting import FitError, FittedLaw, FitWarning, LawFitter, fit, law, load_law
    from .laws import Form, Param, get_form, list_forms, register_form
    from .runs import RunsError, load_runs, runs_from_arrays, summarize_runs
    from .experiments import Design, DesignError, Shape, design, shape
    from .scenario import Scenario, ScenarioError, ScenarioResult, load_scenario, run_scenario
