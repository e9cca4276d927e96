"""planner: fit scaling laws to your runs and plan a FLOP budget across pretraining and specialization.

``import planner`` is light: the optimizer (cvxpy) and the plots (matplotlib) are imported
when first used, not here.
"""

from .constants import package_version as _package_version
from .errors import PlannerError

__version__ = _package_version()

from .fitting import FitError, FittedLaw, FitWarning, LawFitter, fit, law, load_law  # noqa: E402
from .laws import Form, Param, get_form, list_forms, register_form  # noqa: E402
from .runs import RunsError, load_runs, runs_from_arrays, summarize_runs  # noqa: E402
from .downstream import fit_downstream, fit_task_transfer, predict_downstream  # noqa: E402
from .allocate import (  # noqa: E402
    Allocation, AllocationError, AttentionFlops, Baseline, Constraints, Domain, DomainPlan, SixN, optimize, sweep,
)
from .scenario import Scenario, ScenarioError, ScenarioResult, load_scenario, run_scenario  # noqa: E402
from .experiments import Design, DesignError, Shape, design, shape  # noqa: E402

__all__ = [
    "__version__", "PlannerError",
    # runs and laws
    "RunsError", "load_runs", "runs_from_arrays", "summarize_runs", "Form", "Param", "get_form", "list_forms", "register_form",
    # fitting
    "FitError", "FittedLaw", "FitWarning", "LawFitter", "fit", "law", "load_law",
    "fit_downstream", "fit_task_transfer", "predict_downstream",
    # allocation
    "Allocation", "AllocationError", "AttentionFlops", "Baseline", "Constraints", "Domain", "DomainPlan", "SixN", "optimize", "sweep",
    # scenarios
    "Scenario", "ScenarioError", "ScenarioResult", "load_scenario", "run_scenario",
    # experiment design
    "Design", "DesignError", "Shape", "design", "shape",
]
