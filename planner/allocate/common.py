"""Pieces shared by the solver paths: the raw solution record and a robust cvxpy solve."""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..constants import SOLUTION_PRESENT
__all__ = ["Solution", "solve_cvxpy", "infeasible_solution", "log"]

#: solver fallbacks (a retry at other tolerances, a skipped polish, numpy -> cvxpy) are reported here
log = logging.getLogger("planner.allocate")


@dataclass(frozen=True)
class Solution:
    """A solver path's answer before it becomes an :class:`Allocation`.

    value: the objective re-evaluated with the law's formula (min-loss: weighted
    loss, robust aggregate; min-compute: FLOPs). solver_value: what the solver
    reported (same units) or nan. d_value_d_log_budget: marginal value from duals
    (nan when not available).
    """

    model_size: float
    pretrain_tokens: float
    spec_tokens: np.ndarray
    value: float
    status: str
    path: str
    certified: bool = False
    solver_value: float = math.nan
    d_value_d_log_budget: float = math.nan
    message: str = ""
    notes: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in SOLUTION_PRESENT and math.isfinite(self.value)


def infeasible_solution(K: int, path: str, message: str, status: str = "infeasible") -> Solution:
    return Solution(math.nan, math.nan, np.full(K, math.nan), math.inf, status, path, False, message=message)


_TIGHT = dict(tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11, tol_ktratio=1e-9, max_iter=400)
_MEDIUM = dict(tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10, tol_ktratio=1e-8, max_iter=400)
# Clarabel's defaults, passed explicitly: cvxpy may keep a cached solver's previous settings
_DEFAULT = dict(tol_gap_abs=1e-8, tol_gap_rel=1e-8, tol_feas=1e-8, tol_ktratio=1e-6, max_iter=200)


def solve_cvxpy(problem: Any, *, solver: str | None = None, tight: bool = True) -> str:
    """Solve with Clarabel at tight tolerances, falling back to default tolerances, then SCS.

    Returns the final cvxpy status string ("optimal", "optimal_inaccurate",
    "infeasible", "unbounded", ... or "solver_error").
    """
    import cvxpy as cp

    attempts: list[dict[str, Any]] = []
    if solver in (None, "CLARABEL"):
        if tight:
            attempts.append(dict(solver="CLARABEL", **_TIGHT))
            attempts.append(dict(solver="CLARABEL", **_MEDIUM))
        attempts.append(dict(solver="CLARABEL", **_DEFAULT))
    else:
        attempts.append(dict(solver=solver))
    best: str | None = None
    values: dict[Any, Any] | None = None
    for kw in attempts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                problem.solve(**kw)
        except (cp.error.SolverError, ValueError, ArithmeticError) as exc:
            log.info("cvxpy %s at %s failed (%s); falling back", kw.get("solver"), {k: v for k, v in kw.items() if k != "solver"}, exc)
            continue
        status = str(problem.status)
        if status in ("optimal", "infeasible", "unbounded"):
            return status
        if status == "optimal_inaccurate":
            log.info("cvxpy %s reported optimal_inaccurate; trying looser settings", kw.get("solver"))
        if status == "optimal_inaccurate" and best is None:
            best = status
            values = {v: v.value for v in problem.variables()}
    if best is not None and values is not None:
        for v, val in values.items():
            v.value = val
        return best
    # every Clarabel attempt raised: one SCS attempt
    log.info("every Clarabel attempt failed; falling back to SCS")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            problem.solve(solver="SCS", eps=1e-8, max_iters=20000)
        return str(problem.status)
    except (cp.error.SolverError, ValueError, ArithmeticError):
        return "solver_error"
