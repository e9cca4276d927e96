"""planner: fit scaling laws to your runs and plan a FLOP budget across pretraining and specialization."""

__version__ = "0.1.0"

from .fit import FitError, FittedLaw, FitWarning, LawFitter, fit, law, load_law  # noqa: E402
from .laws import Form, Param, get_form, list_forms, register_form  # noqa: E402
from .runs import RunsError, load_runs, runs_from_arrays, summarize_runs  # noqa: E402

__all__ = [
    "__version__", "FitError", "FittedLaw", "FitWarning", "LawFitter", "fit", "law", "load_law",
    "Form", "Param", "get_form", "list_forms", "register_form", "RunsError", "load_runs", "runs_from_arrays", "summarize_runs",
]
