r"""Laws convex in the tokens for fixed N: a DCP problem in (D, D'_k) plus a 1-D search over log N.

For a fixed model size N the budget is linear in the tokens,

    D + sum_k D'_k <= T(N) = (C - 2 N I) / (f(N) s)           (tokens in units of s = 1e9),

and each law supplies a cvxpy expression ``form.cvxpy_loss`` convex in the token
variables (additive form with an offset D0 > 0, effective-tokens form with
eta <= 1, any posynomial). The token problem is solved to global optimality by a
conic solver; the value V(N) = min over tokens is then minimised over log N by a
bracketing grid followed by bounded Brent (``scipy.optimize.minimize_scalar``).
Because the N-search is one-dimensional but V need not be convex in log N, the
result is not certified (``certified=False``).

Repeated tokens (``repetition="effective"``): D_eff = a + U R* (1 - exp(-b / (U R*)))
with a + b = D, 0 <= a <= U, b >= 0 is concave in (a, b) and equals Muennighoff's
D_eff at the best split (the optimiser takes the full unique epoch first), so the
loss of D_eff stays convex.

Separable laws (N enters only through an additive term, checked numerically) are
compiled once: T(N), the tokens-per-parameter bounds and the target right-hand
sides are cvxpy Parameters, so each N costs one solve, not one compilation.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from scipy.optimize import minimize_scalar

from ..constants import SOLUTION_PRESENT
from .common import Solution, infeasible_solution, solve_cvxpy
from .problem import TOKEN_SCALE, Problem, ParameterDraw

__all__ = ["TokenModel", "dcp_applicable", "search_log_model_size"]

N_REF = 1e9


def dcp_applicable(prob: Problem) -> tuple[bool, str]:
    if any("unique_tokens" in f.inputs for f in prob.forms) and math.isfinite(prob.pretrain_unique):
        return False, "the law depends on unique tokens"
    for sc in [ParameterDraw(prob.params)] + list(prob.draws):
        for k in range(prob.K):
            f = prob.forms[k]
            try:
                ok = f.convex_in_tokens(sc.params[k])
            except Exception:  # noqa: BLE001 - a user form may not implement it
                ok = False
            if not ok:
                return False, f"the {f.name} law of domain {prob.names[k]!r} is not convex in the tokens (no cvxpy expression)"
    return True, ""


def _separable(prob: Problem) -> bool:
    """True when every domain's loss is g_k(N) + h_k(D, D') (checked at random points)."""
    rng = np.random.default_rng(0)
    pts_d = 10 ** rng.uniform(8, 12, 3)
    pts_s = 10 ** rng.uniform(7, 11, (3, prob.K))
    l1 = prob.losses(np.full(3, 1e8), pts_d, pts_s)
    l2 = prob.losses(np.full(3, 1e10), pts_d, pts_s)
    diff = l1 - l2
    if not np.all(np.isfinite(diff)):
        return False
    return bool(np.all(np.abs(diff - diff[0]) <= 1e-9 * (np.abs(l1) + 1e-12)))


class TokenModel:
    """The token problem at fixed N (compiled once for separable laws)."""

    def __init__(self, prob: Problem, *, solver: str | None = None) -> None:
        self.prob = prob
        self.solver = solver
        self.separable = _separable(prob)
        self._compiled: Any = None
        self._cache: dict[float, Any] = {}
        if self.separable:
            self._compiled = self._build(N_REF, parametric=True)
            self._ref_point = (1e10, np.full(prob.K, 1e9))

    # ---------------------------------------------------------------- build
    def _build(self, model_size: float, parametric: bool) -> dict[str, Any]:
        import cvxpy as cp

        prob = self.prob
        K = prob.K
        s = TOKEN_SCALE
        decay = prob.constraints.repetition_decay
        cons: list[Any] = []

        def tokens(unique: float, effective: bool, name: str) -> tuple[Any, Any, Any]:
            """(budget expression, effective-token expression, variable list) for one token pool."""
            if effective and math.isfinite(unique):
                u = unique / s
                a = cp.Variable(nonneg=True, name=f"{name}_first_epoch")
                b = cp.Variable(nonneg=True, name=f"{name}_repeats")
                cons.append(a <= u)
                eff = a + u * decay * (1 - cp.exp(-b / (u * decay)))
                return a + b, eff, (a, b)
            v = cp.Variable(nonneg=True, name=name)
            return v, v, (v,)

        rep = prob.constraints.repetition == "effective"
        D_tot, D_eff, d_vars = tokens(prob.pretrain_unique, prob.effective_pretrain, "pretrain")
        spec_tot: list[Any] = [0.0] * K
        spec_eff: list[Any] = [0.0] * K
        spec_vars: list[Any] = [None] * K
        for k in prob.spec_index:
            spec_tot[k], spec_eff[k], spec_vars[k] = tokens(prob.spec_unique[k], rep, f"spec_{k}")
        cons.append(D_tot >= 1e-9)

        T = cp.Parameter(nonneg=True, name="token_budget")
        out: dict[str, Any] = {"D_tot": D_tot, "spec_tot": spec_tot, "d_vars": d_vars, "spec_vars": spec_vars, "T": T}

        def loss_expr(params: Any, k: int) -> Any:
            # the forms build exact power cones (cp.power(..., approx=False)): cvxpy's default rational
            # approximation moved a Chinchilla token optimum by ~0.2 % in the objective
            return prob.forms[k].cvxpy_loss(params[k], model_size, D_eff, spec_eff[k], s)

        robust = prob.robust if (prob.robust in ("mean", "worst") and prob.draws) else None
        scen = list(prob.draws) if robust else [ParameterDraw(prob.params)]
        budget_cons: list[Any] = []
        if prob.mode == "min-compute":
            objective = D_tot + sum(spec_tot[k] for k in prob.spec_index)
            if prob.budget is not None:
                budget_cons.append(objective <= T)
        else:
            per_scen = []
            for sc in scen:
                per_scen.append(sum(float(prob.weights[k]) * loss_expr(sc.params, k) for k in range(K) if prob.weights[k] > 0))
            if robust == "worst":
                t = cp.Variable(name="worst_case")
                cons.extend(e <= t for e in per_scen)
                objective = t
            else:
                objective = sum(per_scen) / len(per_scen)
            total_spec = sum(spec_tot[k] for k in prob.spec_index) if len(prob.spec_index) else 0.0
            phi = prob.fixed_fraction if (prob.fixed_fraction is not None and len(prob.spec_index)) else None
            if phi is None:
                budget_cons.append(D_tot + total_spec <= T)
            else:
                budget_cons.append(D_tot <= phi * T)
                budget_cons.append(total_spec <= (1.0 - phi) * T)
        cons.extend(budget_cons)
        out["budget_cons"] = budget_cons
        cap = prob.pretrain_cap
        if math.isfinite(cap):
            cons.append(D_tot <= cap / s)
        for k in prob.spec_index:
            if math.isfinite(prob.spec_cap[k]):
                cons.append(spec_tot[k] <= prob.spec_cap[k] / s)
        c = prob.constraints
        if c.min_tokens_per_param is not None:
            out["dmin"] = cp.Parameter(nonneg=True, name="dmin") if parametric else None
            cons.append(D_tot >= (out["dmin"] if parametric else c.min_tokens_per_param * model_size / s))
        if c.max_tokens_per_param is not None:
            out["dmax"] = cp.Parameter(nonneg=True, name="dmax") if parametric else None
            cons.append(D_tot <= (out["dmax"] if parametric else c.max_tokens_per_param * model_size / s))
        tgt = np.flatnonzero(np.isfinite(prob.targets))
        out["targets"] = tgt
        if len(tgt):
            rhs = cp.Parameter(len(tgt), name="target_rhs") if parametric else None
            out["target_rhs"] = rhs
            for i, k in enumerate(tgt):
                cons.append(loss_expr(prob.params, k) <= (rhs[i] if parametric else float(prob.targets[k])))
        problem = cp.Problem(cp.Minimize(objective), cons)
        out["problem"] = problem
        out["dcp"] = problem.is_dcp()
        out["dpp"] = problem.is_dcp(dpp=True) if parametric else False
        return out

    # ---------------------------------------------------------------- solve
    def solve_at(self, model_size: float, budget: float | None) -> Solution:
        """Optimal tokens at fixed N; value re-evaluated with the law's formula."""
        prob = self.prob
        K = prob.K
        s = TOKEN_SCALE
        fpt = float(prob.flops_per_token(model_size))
        T = None
        if budget is not None:
            T = prob.tokens_available(model_size, budget) / s
            if T <= 0:
                return infeasible_solution(K, "dcp+search", "inference alone exceeds the budget at this model size")
        if self.separable:
            m = self._compiled
            if T is not None and m["T"] is not None:
                m["T"].value = T
            c = prob.constraints
            if "dmin" in m and m["dmin"] is not None:
                m["dmin"].value = c.min_tokens_per_param * model_size / s
            if "dmax" in m and m["dmax"] is not None:
                m["dmax"].value = c.max_tokens_per_param * model_size / s
            tgt = m["targets"]
            if len(tgt):
                d_ref, s_ref = self._ref_point
                shift = prob.losses(model_size, d_ref, s_ref) - prob.losses(N_REF, d_ref, s_ref)
                m["target_rhs"].value = np.array([prob.targets[k] - shift[k] for k in tgt])
        else:
            key = round(math.log(model_size), 12)
            m = self._cache.get(key)
            if m is None:
                m = self._build(model_size, parametric=False)
                if len(self._cache) > 64:
                    self._cache.clear()
                self._cache[key] = m
            if m["T"] is not None and T is not None:
                m["T"].value = T
        if m["T"] is not None and m["T"].value is None:
            m["T"].value = 1e30
        if not m["dcp"]:
            return infeasible_solution(K, "dcp+search", "token problem is not DCP", status="failed")
        status = solve_cvxpy(m["problem"], solver=self.solver)
        if status not in SOLUTION_PRESENT:
            return infeasible_solution(K, "dcp+search", f"token problem {status} at N = {model_size:.4g}", status="infeasible" if status in ("infeasible", "unbounded") else "failed")
        D = float(_value(m["D_tot"])) * s
        S = np.zeros(K)
        for k in prob.spec_index:
            S[k] = max(float(_value(m["spec_tot"][k])), 0.0) * s
        D = max(D, 1.0)
        # restore exact budget feasibility (solver tolerance) and fill a binding budget exactly
        if T is not None and prob.mode == "min-loss":
            D, S = _rescale_to_budget(prob, D, S, T * s, m)
        if prob.mode == "min-compute":
            value = float(prob.budget_used(model_size, D, S))
        else:
            value = float(prob.objective(model_size, D, S))
        dv = math.nan
        if prob.mode == "min-loss" and budget is not None and status == "optimal":
            duals = [con.dual_value for con in m["budget_cons"]]
            if all(d is not None for d in duals):
                phi = prob.fixed_fraction if (prob.fixed_fraction is not None and len(prob.spec_index)) else None
                lam = float(duals[0]) if phi is None else float(duals[0]) * phi + float(duals[1]) * (1 - phi)
                # dV/dT * dT/dlogC with T = (C - inference)/(f(N) s)
                dv = -lam * budget / (fpt * s)
        solver_value = math.nan
        if prob.mode == "min-loss" and not (prob.robust and prob.draws) and m["problem"].value is not None:
            solver_value = float(m["problem"].value)
            if self.separable:
                d_ref, s_ref = self._ref_point
                shift = prob.losses(model_size, d_ref, s_ref) - prob.losses(N_REF, d_ref, s_ref)
                solver_value += float(shift @ prob.weights)
        return Solution(model_size, D, S, value, status, "dcp+search", False, solver_value=solver_value, d_value_d_log_budget=dv)


def _value(expr: Any) -> float:
    v = expr.value
    return float(np.asarray(v).reshape(-1)[0]) if v is not None else math.nan


def _rescale_to_budget(prob: Problem, D: float, S: np.ndarray, tokens: float, m: dict[str, Any]) -> tuple[float, np.ndarray]:
    phi = prob.fixed_fraction if (prob.fixed_fraction is not None and len(prob.spec_index)) else None
    cap_d = prob.pretrain_cap
    caps = np.where(np.isfinite(prob.spec_cap), prob.spec_cap, np.inf)
    if phi is None:
        total = D + float(S.sum())
        ratio = tokens / total if total > 0 else 1.0
        if ratio < 1.0 or (ratio - 1.0) < 1e-5:
            D, S = D * ratio, S * ratio
    else:
        if D > 0:
            r = phi * tokens / D
            if r < 1.0 or r - 1.0 < 1e-5:
                D *= r
        tot = float(S.sum())
        if tot > 0:
            r = (1 - phi) * tokens / tot
            if r < 1.0 or r - 1.0 < 1e-5:
                S = S * r
    return float(min(D, cap_d)), np.minimum(S, caps)


def search_log_model_size(
    evaluate: Callable[[float], Solution],
    lo: float,
    hi: float,
    hard_lo: bool,
    hard_hi: bool,
    *,
    grid_points: int = 13,
    xatol: float = 1e-9,
) -> tuple[Solution | None, int]:
    """Minimise V(N) over log N in [lo, hi]: a grid bracket, extended at soft edges, then bounded Brent.

    Returns the best solution and the number of evaluations.
    """
    cache: dict[float, Solution] = {}

    def f(logn: float) -> float:
        key = round(logn, 13)
        if key not in cache:
            cache[key] = evaluate(math.exp(logn))
        sol = cache[key]
        return sol.value if sol.ok else math.inf

    if lo >= hi * (1 - 1e-12):
        f(math.log(lo))
        best = min(cache.values(), key=lambda s: s.value if s.ok else math.inf)
        return (best if best.ok else best), len(cache)
    a, b = math.log(lo), math.log(hi)
    for _ in range(6):
        grid = np.linspace(a, b, grid_points)
        vals = np.array([f(g) for g in grid])
        if not np.any(np.isfinite(vals)):
            break
        i = int(np.nanargmin(np.where(np.isfinite(vals), vals, np.nan)))
        step = grid[1] - grid[0]
        if i == 0 and not hard_lo and a > math.log(1e3):
            a, b = a - 4 * step * (grid_points - 1) / 4, grid[min(2, grid_points - 1)]
            continue
        if i == grid_points - 1 and not hard_hi and b < math.log(1e16):
            a, b = grid[max(grid_points - 3, 0)], b + 4 * step * (grid_points - 1) / 4
            continue
        left, right = grid[max(i - 1, 0)], grid[min(i + 1, grid_points - 1)]
        if right > left:
            res = minimize_scalar(f, bounds=(left, right), method="bounded", options={"xatol": xatol, "maxiter": 200})
            f(float(res.x))
        break
    sols = [s for s in cache.values()]
    ok = [s for s in sols if s.ok]
    if not ok:
        msgs = sorted({s.message for s in sols if s.message})
        return (sols[0] if sols else None), len(cache)
    return min(ok, key=lambda s: s.value), len(cache)
