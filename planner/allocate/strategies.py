"""The strategies: "split" (the plan), and the habits it is compared with.

* ``split``: N, D and every D'_k free;
* ``no-split``: D'_k = 0 (one general model);
* ``fixed``: a fixed share phi of the training compute in pretraining, the rest split optimally;
* ``separate``: one model per domain, the budget shared by weight.

A :class:`StrategySolver` is a strategy's optimal value as a function of the budget (for the plan,
the baselines and the compute multipliers), built on :class:`.engines.PlanSolver`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from .common import Solution
from .engines import PlanSolver
from .problem import Problem

if TYPE_CHECKING:  # pragma: no cover
    from ._context import Context

__all__ = ["StrategySolver", "with_spec"]


def with_spec(prob: Problem) -> Problem:
    """The problem with every domain that can specialize allowed to (undoes ``no-split``)."""
    can = np.array([f.has_spec and n != "general" for f, n in zip(prob.forms, prob.names)], dtype=bool)
    return replace(prob, can_spec=can)


class StrategySolver:
    """A strategy's optimal value as a function of the budget (for baselines and multipliers)."""

    def __init__(self, ctx: "Context", strategy: str) -> None:
        self.ctx = ctx
        self.strategy = strategy
        prob = ctx.problem
        opts = ctx.options
        self.engines: list[tuple[int | None, PlanSolver]] = []
        self.min_budget_engine: PlanSolver | None = None
        if strategy == "separate":
            total_w = float(prob.weights.sum()) if prob.mode == "min-loss" else float(len(prob.weights))
            self.shares = (prob.weights / total_w) if prob.mode == "min-loss" else np.full(prob.K, 1.0 / prob.K)
            for k in range(prob.K):
                if prob.mode == "min-loss" and prob.weights[k] <= 0:
                    continue
                if prob.mode == "min-compute" and not np.isfinite(prob.targets[k]):
                    continue
                sub = replace(prob.restrict(k, None), fixed_fraction=None)
                self.engines.append((k, PlanSolver(sub, opts)))
        else:
            variant = {"split": replace(prob, fixed_fraction=None), "no-split": replace(prob.no_split(), fixed_fraction=None), "fixed": prob.fixed(opts.fixed_fraction)}[strategy]
            if strategy in ("split", "fixed") and ctx.strategy == "no-split":
                variant = with_spec(variant)
            if strategy == "fixed" and prob.mode == "min-compute":
                # a fixed split is not a GP in min-compute form (an equality between D and sum D');
                # find the least budget at which the min-loss fixed problem meets every target instead
                self.min_budget_engine = PlanSolver(replace(variant, mode="min-loss"), opts)
            self.engines.append((None, PlanSolver(variant, opts)))

    def _least_feasible_budget(self, cap: float | None) -> Solution:
        eng = self.min_budget_engine
        assert eng is not None
        lo, hi = None, 1e18
        while True:
            sol = eng.solve(hi)
            if sol.ok:
                break
            lo = hi
            hi *= 10.0
            if hi > (cap if cap is not None else 1e32):
                return sol
        best = sol
        if lo is None:
            lo = hi
            while lo > 1e10:
                lo /= 10.0
                s2 = eng.solve(lo)
                if not s2.ok:
                    break
                hi, best = lo, s2
        for _ in range(60):
            if hi / lo < 1 + 1e-7:
                break
            mid = math.sqrt(lo * hi)
            s2 = eng.solve(mid)
            if s2.ok:
                hi, best = mid, s2
            else:
                lo = mid
        used = float(eng.prob.budget_used(best.model_size, best.pretrain_tokens, best.spec_tokens))
        return replace(best, value=used)

    @property
    def path(self) -> str:
        return self.engines[0][1].path if self.engines else ""

    @property
    def why(self) -> str:
        return self.engines[0][1].why if self.engines else ""

    def solve(self, budget: float | None, warm: bool = False) -> tuple[float, list[tuple[int | None, Solution]]]:
        sols = []
        total = 0.0
        for k, eng in self.engines:
            b = budget
            if k is not None and budget is not None:
                b = budget * float(self.shares[k])
            if self.min_budget_engine is not None:
                sol = self._least_feasible_budget(b)
            else:
                sol = eng.solve(b, warm=warm)
            sols.append((k, sol))
            if not sol.ok:
                return math.inf, sols
            total += sol.value
        return total, sols
