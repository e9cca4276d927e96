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
            slope = float(sum(s.d_value_d_log_budget for _, s in sols)) if sols and math.isfinite(val) else math.nan
            mult = compute_multiplier(lambda b: strat.solve(b, warm=True)[0], plan_value, float(budget), slope=slope) if budget is not None else math.nan
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


def compute_multiplier(value_at: Callable[[float], float], target: float, budget: float, *, slope: float | None = None) -> float:
    r"""m with V(m * budget) = target: a bracket in log m, then Brent (inf when not reached by 1e6 x).

    g(u) = V(e^u budget) - target is decreasing in u = log m (more compute, lower loss) and, for
    power laws, convex. The bracket is found with few solves: a first step from ``slope``
    (dV/dlog budget at m = 1, the baseline's marginal value, when known: a Newton step) or log 2,
    then secant extrapolations through the last two points, each pushed 50 % further (on a convex
    decreasing g the secant's root lies short of the true root) and at least doubled in length when
    the secant is flat; the steps stop at the search limits. Brent's method (xtol 1e-8 in log m)
    then refines inside the bracket.
    """
    big = 1e30
    seen: dict[float, float] = {}  # Brent re-evaluates the bracket's ends: each solve once

    def g(log_m: float) -> float:
        if log_m not in seen:
            v = value_at(budget * math.exp(log_m))
            seen[log_m] = (v if math.isfinite(v) else big) - target
        return seen[log_m]

    g0 = g(0.0)
    tol = 1e-9 * abs(target)  # relative: a common scale of the weights changes nothing
    if abs(g0) <= tol:
        return 1.0
    lo_lim, hi_lim = math.log(MULTIPLIER_RANGE[0]), math.log(MULTIPLIER_RANGE[1])
    sign = 1.0 if g0 > 0 else -1.0  # +1: the root lies at larger m
    limit = hi_lim if sign > 0 else lo_lim
    step = math.log(2.0)
    if slope is not None and math.isfinite(slope) and slope < 0:
        newton = -g0 / slope  # g(u) ~ g0 + slope u
        if newton * sign > 0:
            step = min(max(abs(newton) * 1.5, 1e-3), abs(limit))
    x_prev, g_prev = 0.0, g0
    x = sign * step
    while True:
        x = max(min(x, hi_lim), lo_lim)
        gx = g(x)
        if gx == 0 or (gx < 0) == (g0 > 0):  # sign change: bracketed
            break
        if x == limit:
            return math.inf if sign > 0 else 0.0
        length = abs(x - x_prev)
        nxt = x + sign * 2.0 * length
        if gx != g_prev and gx < big / 2 and g_prev < big / 2:
            sec = x - gx * (x - x_prev) / (gx - g_prev)
            if (sec - x) * sign > 0:
                nxt = x + 1.5 * (sec - x)
                nxt = x + sign * min(max(abs(nxt - x), 0.5 * length), 8.0 * length)
        x_prev, g_prev, x = x, gx, nxt
    if gx == 0:
        return math.exp(x)
    a, b = (x_prev, x) if x_prev < x else (x, x_prev)
    return math.exp(brentq(g, a, b, xtol=1e-8, rtol=1e-10))
