r"""The solver paths, as an ordered table walked once per problem (as cvxpy's solving chain).

Each path says whether it accepts a problem (``applicable(problem) -> (ok, why)``), which options
it takes, and compiles the problem into something that solves it at any budget
(``solve(budget, size=None, last=None) -> Solution``). ``path="auto"`` takes the first path
that accepts the problem, most exact first:

1. ``"gp"``: every law a posynomial -> geometric program (:mod:`.gp`), certified;
2. ``"dcp+search"``: every law convex in the tokens -> convex token problem per N plus a
   1-D search over log N (:mod:`.dcp`);
3. ``"multistart"``: any law -> multi-start SLSQP (:mod:`.multistart`), not certified.

:class:`PlanSolver` holds one strategy's problem, its chosen path and the compiled model, so a
budget sweep, the baselines and the compute multipliers reuse what was compiled.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import Any, Protocol

import numpy as np

from ._options import OptimizeOptions
from .common import Solution, infeasible_solution
from .dcp import TokenModel, dcp_applicable, search_log_model_size
from .gp import GPModel, gp_applicable
from .model import AllocationError
from .multistart import solve_multistart
from .problem import Problem

__all__ = ["PATHS", "PlanSolver", "choose_path", "GeometricProgramPath", "TokenSearchPath", "MultiStartPath"]

log = logging.getLogger("planner.allocate")


class Compiled(Protocol):
    def solve(self, budget: float | None, *, size: float | None = None, last: tuple[float | None, Solution] | None = None) -> Solution: ...


class _GPCompiled:
    def __init__(self, prob: Problem, solver: str | None) -> None:
        self.model = GPModel(prob, solver=solver)

    def solve(self, budget: float | None, *, size: float | None = None, last: Any = None) -> Solution:
        return self.model.solve(budget, None if size is None else (size, size))


class _TokenSearchCompiled:
    def __init__(self, prob: Problem, solver: str | None) -> None:
        self.prob = prob
        self.model = TokenModel(prob, solver=solver)

    def solve(self, budget: float | None, *, size: float | None = None, last: tuple[float | None, Solution] | None = None) -> Solution:
        tm = self.model
        if size is not None:
            return tm.solve_at(size, budget)
        prob = self.prob.with_budget(budget)
        lo, hi, hard_lo, hard_hi = prob.search_bounds(budget)
        points = 13
        if last is not None and last[0] is not None and budget is not None:
            guess = last[1].model_size * math.sqrt(budget / last[0])
            lo, hi = max(lo, guess / 8), min(hi, guess * 8)
            hard_lo, hard_hi, points = hard_lo or lo > guess / 8 * 1.0001, hard_hi or hi < guess * 8 * 0.9999, 7
            if lo > hi:
                lo, hi, hard_lo, hard_hi = *prob.search_bounds(budget)[:2], False, False
                points = 13
        sol, _ = search_log_model_size(lambda n: tm.solve_at(n, budget), lo, hi, hard_lo, hard_hi, grid_points=points)
        if sol is None:
            return infeasible_solution(prob.K, "dcp+search", "no model size gave a feasible plan")
        return sol


class _MultiStartCompiled:
    def __init__(self, prob: Problem) -> None:
        self.prob = prob

    def solve(self, budget: float | None, *, size: float | None = None, last: tuple[float | None, Solution] | None = None) -> Solution:
        prob = self.prob.with_budget(budget)
        if size is not None:
            return solve_multistart(prob, budget, (size, size))
        if last is not None and last[0] is not None and budget is not None:
            r = budget / last[0]
            ls = last[1]
            init = (ls.model_size * math.sqrt(r), ls.pretrain_tokens * math.sqrt(r), ls.spec_tokens * math.sqrt(r))
            return solve_multistart(prob, budget, initial=init)
        return solve_multistart(prob, budget)


class _KKTCompiled:
    """The numpy KKT solver standing in for a convex path (same path label, same certificate rule)."""

    def __init__(self, prob: Problem, path: str, certified: bool, effective: bool = False) -> None:
        from .kkt import KKTSolver
        from .kkt_effective import EffectiveKKTSolver

        self.solver = (EffectiveKKTSolver if effective else KKTSolver)(prob, path=path, certified=certified)

    def solve(self, budget: float | None, *, size: float | None = None, last: tuple[float | None, Solution] | None = None) -> Solution:
        assert budget is not None  # kkt_applicable: min-loss only
        if size is not None:
            return self.solver.solve_at(size, budget)
        return self.solver.solve(budget, last=last)


def _numpy_or_cvxpy(prob: Problem, options: OptimizeOptions, path: str, certified: bool) -> Compiled | None:
    """The numpy KKT solver when the options allow it and it applies (the separable one of :mod:`.kkt`,
    else the effective-tokens one of :mod:`.kkt_effective`); None for the cvxpy formulation."""
    if not options.numpy_allowed:
        return None
    from .kkt import kkt_applicable
    from .kkt_effective import NO_COUPLED_TERM, effective_applicable

    ok, why = kkt_applicable(prob)
    if ok:
        return _KKTCompiled(prob, path, certified)
    ok_eff, why_eff = effective_applicable(prob)
    if ok_eff:
        return _KKTCompiled(prob, path, certified, effective=True)
    if why_eff != NO_COUPLED_TERM:
        why = why_eff
    if options.solver == "numpy":
        raise AllocationError(f"solver='numpy' requested but the numpy KKT solver does not apply: {why}")
    log.info("numpy KKT solver not applicable (%s); using the cvxpy formulation of path %s", why, path)
    return None


class GeometricProgramPath:
    """Posynomial laws: one geometric program in log variables (certified: convex)."""

    name = "gp"
    requested_as = "gp"
    options = ("solver",)  # "auto"/"numpy": the KKT solver of :mod:`.kkt` where it applies; else cvxpy

    def applicable(self, prob: Problem) -> tuple[bool, str]:
        return gp_applicable(prob)

    def compile(self, prob: Problem, options: OptimizeOptions) -> Compiled:
        return _numpy_or_cvxpy(prob, options, self.name, True) or _GPCompiled(prob, options.cvxpy_solver)


class TokenSearchPath:
    """Laws convex in the tokens: a convex token problem at each N, a 1-D search over log N."""

    name = "dcp+search"
    requested_as = "dcp"
    options = ("solver",)

    def applicable(self, prob: Problem) -> tuple[bool, str]:
        return dcp_applicable(prob)

    def compile(self, prob: Problem, options: OptimizeOptions) -> Compiled:
        return _numpy_or_cvxpy(prob, options, self.name, False) or _TokenSearchCompiled(prob, options.cvxpy_solver)


class MultiStartPath:
    """Any law: multi-start SLSQP on the law's own formula (local optima; not certified)."""

    name = "multistart"
    requested_as = "multistart"
    options = ()

    def applicable(self, prob: Problem) -> tuple[bool, str]:
        return True, ""

    def compile(self, prob: Problem, options: OptimizeOptions) -> Compiled:
        return _MultiStartCompiled(prob)


#: the paths, most exact first: ``path="auto"`` walks this table
PATHS: tuple[Any, ...] = (GeometricProgramPath(), TokenSearchPath(), MultiStartPath())


def choose_path(prob: Problem, requested: str) -> tuple[Any, str]:
    """(path, why the more exact paths were not taken). Raises AllocationError when a forced path does not apply."""
    if requested != "auto":
        path = next(p for p in PATHS if p.requested_as == requested)
        ok, why = path.applicable(prob)
        if not ok:
            if path.name == "gp":
                raise AllocationError(f"path='gp' requested but the problem is not a geometric program: {why}")
            raise AllocationError(f"path={requested!r} requested but {why}")
        skipped = "" if path is PATHS[0] else PATHS[0].applicable(prob)[1]
        return path, skipped
    reasons = []
    for path in PATHS:
        ok, why = path.applicable(prob)
        if ok:
            return path, "; ".join(reasons)
        reasons.append(why)
    raise AllocationError("no solver path accepts the problem: " + "; ".join(reasons))  # pragma: no cover - multistart accepts all


def menu_free(prob: Problem) -> bool:
    return prob.constraints.model_sizes is None


class PlanSolver:
    """Solves one strategy's problem at any budget on its chosen path, reusing what was compiled."""

    def __init__(self, prob: Problem, options: OptimizeOptions) -> None:
        self.prob = prob
        self.options = options
        # the solvers see weights normalised to sum 1 (a common scale of the weights must not change the
        # plan: solver tolerances are partly absolute); values come back in the caller's units
        self.weight_scale = 1.0
        self._solver_prob = prob
        if prob.mode == "min-loss":
            total = float(np.sum(prob.weights))
            if total > 0 and math.isfinite(total) and total != 1.0:
                self.weight_scale = total
                self._solver_prob = replace(prob, weights=prob.weights / total)
        self.route, self.why = choose_path(prob, options.path)
        self.path = self.route.name
        if options.solver == "numpy" and self.path == "multistart":
            # solver="numpy" insists on a numpy KKT solver: a law that only the multi-start path accepts is an error, not a silent fallback
            raise AllocationError(f"solver='numpy' requested but no numpy solver applies: the problem takes the multi-start path ({self.why})")
        self._compiled: Compiled | None = None
        self._last: tuple[float | None, Solution] | None = None

    def _menu(self) -> list[float] | None:
        menu = self.prob.constraints.model_sizes
        if menu is None:
            return None
        lo, hi = self.prob.model_size_bounds()
        return [float(s) for s in menu if lo * (1 - 1e-12) <= s <= hi * (1 + 1e-12)]

    def solve(self, budget: float | None, warm: bool = False) -> Solution:
        """Optimal plan at ``budget``. ``warm``: start the N-search / multi-start near the last
        solution (scaled by sqrt of the budget ratio) - used for multipliers and finite differences."""
        sol = self._solve(budget, warm)
        if sol.ok and menu_free(self.prob):
            self._last = (budget, sol)
        return sol

    def _solve(self, budget: float | None, warm: bool) -> Solution:
        sol = self._solve_normalised(budget, warm)
        s = self.weight_scale
        if s == 1.0:
            return sol
        return replace(sol, value=sol.value * s, solver_value=sol.solver_value * s, d_value_d_log_budget=sol.d_value_d_log_budget * s)

    def _solve_normalised(self, budget: float | None, warm: bool) -> Solution:
        base = self._solver_prob
        prob = base.with_budget(budget) if budget != base.budget else base
        last = self._last if warm else None
        menu = self._menu()
        if menu is not None and not menu:
            lo, hi = prob.model_size_bounds()
            return infeasible_solution(prob.K, self.path, f"none of model_sizes {list(prob.constraints.model_sizes or [])} lies within the allowed range [{lo:.4g}, {hi:.4g}] parameters (min_model_size/max_model_size/inference_budget)")
        if self._compiled is None:
            self._compiled = self.route.compile(prob, self.options)
        if menu is None:
            return self._compiled.solve(budget, last=last)
        sols = [self._compiled.solve(budget, size=s) for s in menu]
        ok = [s for s in sols if s.ok]
        if not ok:
            return sols[0]
        best = min(ok, key=lambda s: s.value)
        return replace(best, path=best.path + "+menu")
