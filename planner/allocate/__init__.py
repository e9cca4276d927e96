"""Allocation: turn a fitted law and a FLOP budget into a plan for N, D and every D'_k.

>>> import planner
>>> law = planner.law("chinchilla", E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
>>> plan = planner.optimize(law, budget=1e23)           # plain compute-optimal pretraining
>>> plan.certified, plan.path
(True, 'gp')

See docs/optimizer.md for the maths, the solver paths and a worked example.
"""

from ._options import OPTION_RULES, OptimizeOptions
from .baselines import DEFAULT_FIXED_FRACTION, STRATEGIES
from .model import (
    Allocation,
    AllocationError,
    AllocationWarning,
    AttentionFlops,
    Baseline,
    ConstraintRecord,
    Constraints,
    Domain,
    DomainPlan,
    FlopModel,
    PLAN_PRESENT,
    PLAN_STATUSES,
    SixN,
)
from .optimize import optimize, sweep
from .problem import ParameterDraw

__all__ = [
    "Allocation", "AllocationError", "AllocationWarning", "AttentionFlops", "Baseline", "ConstraintRecord",
    "Constraints", "DEFAULT_FIXED_FRACTION", "Domain", "DomainPlan", "FlopModel", "OPTION_RULES", "OptimizeOptions", "PLAN_PRESENT", "PLAN_STATUSES",
    "ParameterDraw", "SixN", "STRATEGIES", "optimize", "sweep",
]
