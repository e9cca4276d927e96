"""Fitting scaling laws: objective, variable projection, multi-start, bootstrap, validation."""

from .core import LawFitter, fit, holdout_metrics, train_on_mask
from .law import FittedLaw, FitWarning, law, load_law
from .layout import FitError, ParamLayout

__all__ = ["LawFitter", "fit", "holdout_metrics", "train_on_mask", "FittedLaw", "FitWarning", "law", "load_law", "FitError", "ParamLayout"]
