"""Decisions that hold up when the law is uncertain (issue 11): plans under every candidate law,
cross-regret, a robust plan, decision ranges, honest baselines and sensitivity. See docs/decisions.md."""

from .candidates import Candidate, DecisionError, Plan, ScenarioSet, Setting, as_candidates, evaluate_plan, fitted_compute

__all__ = ["Candidate", "DecisionError", "Plan", "ScenarioSet", "Setting", "as_candidates", "evaluate_plan", "fitted_compute"]
