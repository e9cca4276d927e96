"""Decisions that hold up when the law is uncertain (issue 11): plans under every candidate law,
cross-regret, a robust plan, decision ranges, honest baselines and sensitivity. See docs/decisions.md."""

from .baselines import BaselineGap, baseline_gaps, extrapolation_notes, multiplier_text
from .candidates import Candidate, DecisionError, Plan, ScenarioSet, Setting, as_candidates, evaluate_plan, fitted_compute, scenario_plans
from .decide import HEADLINES, Decision, decide
from .ranges import DecisionRanges, FlatnessBand, decision_ranges, flatness_band
from .regret import RegretTable, cross_regret
from .robust import RobustPlan, robust_plan
from .sensitivity import Sensitivity, identifiability_notes, plan_sensitivity

__all__ = [
    "BaselineGap", "Candidate", "Decision", "DecisionError", "DecisionRanges", "FlatnessBand", "HEADLINES", "Plan", "RegretTable",
    "RobustPlan", "ScenarioSet", "Sensitivity", "Setting", "as_candidates", "baseline_gaps", "cross_regret", "decide", "decision_ranges",
    "evaluate_plan", "extrapolation_notes", "fitted_compute", "flatness_band", "identifiability_notes", "multiplier_text",
    "plan_sensitivity", "robust_plan", "scenario_plans",
]
