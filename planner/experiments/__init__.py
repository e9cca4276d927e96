"""Experiment design: which small runs to train for the planning decision, model shapes, configs, re-planning."""

from .core import Design, LadderScore, design
from .ladder import Branch, Ladder, LadderSpec, PretrainRun, default_ladder, designed_ladder, uniform_grid
from .shapes import Shape, ShapeError, shape
from ._model import DesignError
from .config import design_config, plan_config
from .replan import Progress, Replan, replan

__all__ = [
    "Design", "LadderScore", "design", "Branch", "Ladder", "LadderSpec", "PretrainRun", "default_ladder", "designed_ladder",
    "uniform_grid", "Shape", "ShapeError", "shape", "DesignError", "design_config", "plan_config", "Progress", "Replan", "replan",
]
