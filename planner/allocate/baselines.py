"""Baselines (the habits the plan is compared with) and their compute multipliers.

A baseline is another strategy optimised within its own rules at the same budget; its compute
multiplier m solves V_baseline(m x budget) = V_plan(budget) (Brent in log m): how much more compute
the habit needs to match the plan.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

from scipy.optimize import brentq

from ._options import DEFAULT_FIXED_FRACTION, STRATEGIES
from .model import Baseline
from .strategies import StrategySolver

if TYPE_CHECKING:  # pragma: no cover
    from ._context import Context

__all__ = ["STRATEGIES", "DEFAULT_FIXED_FRACTION", "MULTIPLIER_RANGE", "baseline_records", "compute_multiplier"]

#: range of compute multipliers searched (beyond: 0 or inf)
MULTIPLIER_RANGE = (1e-6, 1e6)


def baseline_records(ctx: "Context", strategies: dict[str, StrategySolver], budget: float | None, plan_value: float, plan_compute: float) -> list[Baseline]:
    out = []
    prob = ctx.problem
    for name in STRATEGIES:
        if name == ctx.strategy:
            continue
        strat = strategies.get(name)
        if strat is None:
            strat = strategies[name] = StrategySolver(ctx, name)
        val, sols = strat.solve(budget)
        note = ""
        if not math.isfinite(val):
            msgs = [s.message for _, s in sols if not s.ok]
            note = msgs[0] if msgs else "infeasible"
        if prob.mode == "min-compute":
            mult = val / plan_compute if math.isfinite(val) else math.inf
        else:
            mult = compute_multiplier(lambda b: strat.solve(b, warm=True)[0], plan_value, float(budget)) if budget is not None else math.nan
        if name == "separate":
            ms = {prob.names[k]: s.model_size for k, s in sols}
            pt = {prob.names[k]: s.pretrain_tokens for k, s in sols}
            st = {prob.names[k]: float(s.spec_tokens[0]) for k, s in sols}
        else:
            s = sols[0][1]
            ms, pt = s.model_size, s.pretrain_tokens
            st = {prob.names[k]: float(s.spec_tokens[k]) for k in range(prob.K)}
        out.append(Baseline(name, float(val), float(mult), ms, pt, st, "optimal" if math.isfinite(val) else "infeasible", note))
    return out


def compute_multiplier(value_at: Callable[[float], float], target: float, budget: float) -> float:
    """m with V(m * budget) = target, by bracketing and Brent in log m (inf when not reached by 1e6 x)."""
    big = 1e30

    def g(log_m: float) -> float:
        v = value_at(budget * math.exp(log_m))
        return (v if math.isfinite(v) else big) - target

    g0 = g(0.0)
    tol = 1e-9 * abs(target)  # relative: a common scale of the weights changes nothing
    if abs(g0) <= tol:
        return 1.0
    lo_lim, hi_lim = math.log(MULTIPLIER_RANGE[0]), math.log(MULTIPLIER_RANGE[1])
    if g0 > 0:
        a, ga = 0.0, g0
        b = math.log(2.0)
        while True:
            gb = g(b)
            if gb <= 0:
                break
            if b >= hi_lim:
                return math.inf
            a, ga = b, gb
            b = min(b * 2 if b > 0 else math.log(2.0), hi_lim)
    else:
        b, gb = 0.0, g0
        a = -math.log(2.0)
        while True:
            ga = g(a)
            if ga >= 0:
                break
            if a <= lo_lim:
                return 0.0
            b, gb = a, ga
            a = max(a * 2, lo_lim)
    if ga == 0:
        return math.exp(a)
    if gb == 0:
        return math.exp(b)
    return math.exp(brentq(g, a, b, xtol=1e-8, rtol=1e-10))
