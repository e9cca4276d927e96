r"""Decision ranges: how much the plan moves over the plausible laws, and how flat the optimum is.

Percentiles: the optimal plan of every scenario (each candidate's point estimate or draws,
probability p_s) gives a distribution of N, D, each D'_k and the pretraining share
(pretraining FLOPs / training FLOPs); the table reports its probability-weighted median and
central ``level`` interval.

Flatness band: for a headline objective F (the nominal law's objective, the expected loss or
the worst-case regret) with optimum F* at x*, the band of coordinate c is

    { v : min_{x feasible, x_c = v} F(x) <= F* + epsilon |F*| }

(epsilon default 0.1 %). Method (stated in every output): a *profile*: the coordinate is
fixed at v and every other variable re-optimised by SLSQP in log variables, warm-started
along the path (local); the band's edges are bracketed by steps of a factor 1.25 outward
from x* and refined by bisection in log v to 1 %. A D'_k whose optimum is 0 has lower edge 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .._records import json_number as _num
from .candidates import LocalSolver, Plan, ScenarioPlans, ScenarioSet, SPEC_FLOOR
from .regret import weighted_percentile

__all__ = ["DecisionRanges", "decision_ranges", "FlatnessBand", "flatness_band", "FLATNESS_METHOD"]

FLATNESS_METHOD = ("profile: the coordinate fixed, every other variable re-optimised (SLSQP in log variables, warm-started "
                   "along the path; local), edges bracketed by factors of 1.25 and bisected in log to 1 %")


@dataclass(frozen=True)
class DecisionRanges:
    """Percentiles over scenarios of the optimal N, D, D'_k and pretraining share.

    rows: quantity -> {"p_low", "median", "p_high"}; level: central probability of the interval;
    n_scenarios / n_failed: scenarios counted and those without a plan.
    """

    rows: dict[str, dict[str, float]]
    level: float
    n_scenarios: int
    n_failed: int
    over: str

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "over": self.over, "n_scenarios": self.n_scenarios, "n_failed": self.n_failed,
                "rows": {k: {kk: _num(vv) for kk, vv in v.items()} for k, v in self.rows.items()}}

    def markdown(self) -> str:
        pct = int(round(100 * self.level))
        lines = [f"| quantity | median | {pct} % interval |", "|---|---|---|"]
        for k, v in self.rows.items():
            if k == "pretrain_share":
                lines.append(f"| {k} | {100 * v['median']:.1f} % | [{100 * v['p_low']:.1f} %, {100 * v['p_high']:.1f} %] |")
            else:
                lines.append(f"| {k} | {v['median']:.4g} | [{v['p_low']:.4g}, {v['p_high']:.4g}] |")
        return "\n".join(lines)


def decision_ranges(ss: ScenarioSet, sp: ScenarioPlans, *, level: float = 0.9) -> DecisionRanges:
    """Weighted percentiles of each scenario's optimal plan (see module docstring)."""
    st = ss.setting
    ok = sp.ok & np.isfinite(sp.model_size)
    w = ss.prob[ok]
    fpt = st.flop_model.per_token(sp.model_size[ok])
    spec_total = np.nansum(sp.spec_tokens[ok], axis=1)
    share = (fpt * sp.pretrain_tokens[ok]) / (fpt * (sp.pretrain_tokens[ok] + spec_total))
    q = [50 * (1 - level), 50, 50 * (1 + level)]
    cols = {"model_size": sp.model_size[ok], "pretrain_tokens": sp.pretrain_tokens[ok]}
    for k, name in enumerate(st.names):
        if ss.can_spec[k]:
            cols[f"spec_tokens[{name}]"] = sp.spec_tokens[ok, k]
    cols["pretrain_share"] = share
    rows = {}
    for name, v in cols.items():
        lo, med, hi = weighted_percentile(v, w, q)
        rows[name] = {"p_low": float(lo), "median": float(med), "p_high": float(hi)}
    over = ss.over
    return DecisionRanges(rows, level, int(ok.sum()), int((~ok).sum()), over)


@dataclass(frozen=True)
class FlatnessBand:
    """Ranges of N, D, D'_k whose re-optimised objective is within epsilon of the optimum.

    rows: coordinate -> {"optimum", "low", "high", "low_at_bound", "high_at_bound"};
    objective: what F is (in words); epsilon: relative tolerance; method: how (see module).
    """

    rows: dict[str, dict[str, Any]]
    objective: str
    optimum: float
    epsilon: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        return {"objective": self.objective, "optimum": _num(self.optimum), "epsilon": self.epsilon, "method": self.method,
                "rows": {k: {kk: (_num(vv) if not isinstance(vv, bool) else vv) for kk, vv in v.items()} for k, v in self.rows.items()}}

    def markdown(self) -> str:
        lines = [f"| coordinate | optimum | within {100 * self.epsilon:g} % of the optimum |", "|---|---|---|"]
        for k, v in self.rows.items():
            lo = f"{v['low']:.4g}" + (" (bound)" if v["low_at_bound"] else "")
            hi = f"{v['high']:.4g}" + (" (bound)" if v["high_at_bound"] else "")
            lines.append(f"| {k} | {v['optimum']:.4g} | [{lo}, {hi}] |")
        return "\n".join(lines)


def flatness_band(
    solver: LocalSolver, plan: Plan, *, epsilon: float = 1e-3, objective: str = "", step: float = 1.25, max_steps: int = 40,
) -> FlatnessBand:
    """The flatness band of ``plan`` for the objective of ``solver`` (see module docstring)."""
    if not epsilon > 0:
        raise ValueError(f"epsilon must be positive, got {epsilon!r}")
    st = solver.setting
    names = st.names
    N0, D0, S0 = plan.arrays(names)
    x0 = (float(N0[0]), float(D0[0]), S0.copy())
    F0 = solver.point_value(*x0)
    # re-solve from the plan itself: the band is about the objective's own optimum
    N1, D1, S1, F1 = solver.solve(x0)
    if F1 < F0:
        x0, F0 = (N1, D1, S1), F1
    thr = F0 + epsilon * abs(F0)
    lo_n, hi_n = st.model_size_bounds()
    cap_d = st.constraints.pretrain_token_cap
    caps = st.spec_caps()
    coords: list[tuple[str, int, float, float, float]] = [("model_size", 0, x0[0], lo_n, hi_n), ("pretrain_tokens", 1, x0[1], 1.0, min(cap_d, float(st.tokens_available(lo_n))))]
    for i, k in enumerate(solver.spec):
        coords.append((f"spec_tokens[{names[k]}]", 2 + i, float(x0[2][k]), 0.0, float(min(caps[k], st.tokens_available(lo_n)))))
    rows: dict[str, dict[str, Any]] = {}
    for name, j, v0, lo, hi in coords:
        row: dict[str, Any] = {"optimum": v0}
        for direction in (-1, 1):
            edge, at_bound = _edge(solver, x0, j, v0, direction, lo, hi, thr, step, max_steps)
            row["low" if direction < 0 else "high"] = edge
            row["low_at_bound" if direction < 0 else "high_at_bound"] = at_bound
        rows[name] = row
    return FlatnessBand(rows, objective, F0, epsilon, FLATNESS_METHOD)


def _coord(x: tuple[float, float, np.ndarray], j: int, spec: np.ndarray) -> float:
    return x[0] if j == 0 else x[1] if j == 1 else float(x[2][spec[j - 2]])


def _edge(solver: LocalSolver, x0: tuple, j: int, v0: float, direction: int, lo: float, hi: float, thr: float, step: float, max_steps: int) -> tuple[float, bool]:
    """Outermost v in ``direction`` with profile(v) <= thr (bracket, then bisection in log v)."""
    floor = SPEC_FLOOR if j >= 2 else 1.0
    if direction < 0 and v0 <= floor * 1.0001:
        return (0.0 if j >= 2 else v0), True
    v_in = max(v0, floor)
    start = x0
    v_out = None
    f_in = f_out = math.nan
    for _ in range(max_steps):
        v = v_in * step ** direction
        if direction < 0 and v <= max(lo, floor):
            v = max(lo, floor)
        if direction > 0 and v >= hi:
            v = hi
        N, D, S, F = solver.solve(start, fix=(j, v))
        if not (F <= thr):
            v_out, f_out = v, F
            break
        v_in, start, f_in = v, (N, D, S), F
        if (direction < 0 and v <= max(lo, floor) * 1.000001) or (direction > 0 and v >= hi * 0.999999):
            return (0.0 if (j >= 2 and direction < 0) else v), True
    if v_out is None:
        return v_in, False
    if not math.isfinite(f_in):
        f_in = solver.point_value(*x0) if v_in == max(v0, floor) else math.nan
    # the crossing of thr between v_in (inside) and v_out (outside), to 1 % in v: regula falsi in log v
    # with the Illinois step (the side kept twice has its excess halved), bisection where a value is
    # not finite; it needs about half the solves of plain bisection on these near-quadratic profiles
    kept = 0
    for _ in range(30):
        if abs(math.log(v_out / v_in)) < 0.01:
            break
        a, b = math.log(v_in), math.log(v_out)
        if math.isfinite(f_in) and math.isfinite(f_out) and f_out > f_in:
            t = (thr - f_in) / (f_out - f_in)
            t = min(max(t, 0.05), 0.95)  # never at an end: the bracket must shrink
            mid = math.exp(a + t * (b - a))
        else:
            mid = math.exp(0.5 * (a + b))
        N, D, S, F = solver.solve(start, fix=(j, mid))
        if F <= thr:
            v_in, start, f_in = mid, (N, D, S), F
            kept = kept + 1 if kept >= 0 else 1
            if kept >= 2 and math.isfinite(f_out):
                f_out = thr + 0.5 * (f_out - thr)
        else:
            v_out, f_out = mid, F
            kept = kept - 1 if kept <= 0 else -1
            if kept <= -2 and math.isfinite(f_in):
                f_in = thr - 0.5 * (thr - f_in)
    return v_in, False
