r"""Any law: multi-start SLSQP in log space using the law's own formula.

Variables v = (log N, log D, log D'_k) in units of 1e9 (parameters, tokens). The
budget, targets and tokens-per-parameter limits are smooth inequality
constraints; size and token caps are bounds. D'_k has a floor of 1e3 tokens: a
branch that ends at the floor is compared with D'_k = 0 and reported as not worth
specializing. Starts: a grid of model sizes across the search bracket times a few
specialization fractions, each start placed on the budget. No certificate.

The starts run in an order that spreads them over the grid (the middle first, then the far corners,
then the rest), and the search stops early once ``agree`` feasible starts have all reached the same
plan (objective within 1e-10 relative, every log variable within 1e-5): on the shipped laws every
start of a budget's grid lands on one optimum, and the other starts only repeat it. ``agree=None``
runs every start (the previous behaviour, kept for comparison: ``benchmarks/bench_decision.py``).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy.optimize import minimize

from .common import Solution, infeasible_solution
from .problem import SPEC_FLOOR, TOKEN_SCALE, Problem

__all__ = ["solve_multistart"]

LOG_S = math.log(TOKEN_SCALE)

#: feasible starts that must reach the same plan before the remaining starts are skipped (None: run all)
AGREE = 3
#: "the same plan": objective within this relative difference ...
AGREE_VALUE_RTOL = 1e-10
#: ... and every variable within this distance in log space
AGREE_LOG_TOL = 1e-5


def spread_order(n_sizes: int, n_fracs: int) -> list[tuple[int, int]]:
    """The (size, fraction) grid cells in the order the starts run: the middle cell, then the two far
    corners (smallest size with the smallest fraction, largest with the largest), then the rest by
    increasing distance from the cells already taken (ties: grid order)."""
    cells = [(i, j) for i in range(n_sizes) for j in range(n_fracs)]
    first = [(n_sizes // 2, n_fracs // 2), (0, 0), (n_sizes - 1, n_fracs - 1)]
    order: list[tuple[int, int]] = []
    for c in first:
        if c in cells and c not in order:
            order.append(c)
    rest = [c for c in cells if c not in order]
    while rest:
        def gap(c: tuple[int, int]) -> float:
            return min(abs(c[0] - o[0]) / max(n_sizes - 1, 1) + abs(c[1] - o[1]) / max(n_fracs - 1, 1) for o in order) if order else 0.0

        best = max(rest, key=gap)  # max keeps the first of equal gaps: grid order
        order.append(best)
        rest.remove(best)
    return order


def solve_multistart(
    prob: Problem,
    budget: float | None,
    model_size_bounds: tuple[float, float] | None = None,
    *,
    n_sizes: int = 5,
    spec_fractions: tuple[float, ...] = (0.05, 0.3, 0.7),
    seed: int = 0,
    initial: tuple[float, float, np.ndarray] | None = None,
    agree: int | None | str = "default",
) -> Solution:
    """The best plan over SLSQP runs from a grid of starts (``n_sizes`` model sizes x ``spec_fractions``,
    or the one ``initial`` point), polished from the best; see the module docstring for ``agree``
    (``"default"``: the module's :data:`AGREE`)."""
    if agree == "default":
        agree = AGREE
    K = prob.K
    spec_idx = prob.spec_index
    Ks = len(spec_idx)
    lo, hi = model_size_bounds if model_size_bounds is not None else prob.search_bounds(budget)[:2]
    min_compute = prob.mode == "min-compute"
    if budget is None and not min_compute:
        raise ValueError("a budget is needed to minimise the loss")
    phi = prob.fixed_fraction if (prob.fixed_fraction is not None and Ks) else None
    c = prob.constraints
    tgt = np.flatnonzero(np.isfinite(prob.targets))
    cref = budget if budget is not None else 1e21

    def unpack(v: np.ndarray) -> tuple[float, float, np.ndarray]:
        N = math.exp(v[0] + LOG_S)
        D = math.exp(v[1] + LOG_S)
        S = np.zeros(K)
        if Ks:
            S[spec_idx] = np.exp(v[2:] + LOG_S)
        return N, D, S

    n_v = 2 + Ks
    fpt_terms = prob.flop_model.terms()
    infer_tokens = prob.total_inference_tokens if prob.inference_in_budget else 0.0

    def fpt(N: float) -> tuple[float, float]:
        """f(N) and N f'(N) (FLOPs per token)."""
        return float(sum(cj * N ** e for cj, e in fpt_terms)), float(sum(cj * e * N ** e for cj, e in fpt_terms))

    memo: dict[bytes, tuple[float, np.ndarray]] = {}

    def value_grad(v: np.ndarray) -> tuple[float, np.ndarray]:
        """The objective and its analytic gradient in v (SLSQP asks for both at each point: one evaluation)."""
        key = v.tobytes()
        got = memo.get(key)
        if got is not None:
            return got
        N, D, S = unpack(v)
        if min_compute:
            f, nf = fpt(N)
            tot = D + float(S.sum())
            val = (f * tot + 2.0 * N * infer_tokens) / cref
            g = np.concatenate([[(nf * tot + 2.0 * N * infer_tokens) / cref, f * D / cref], f * S[spec_idx] / cref])
        else:
            val, g = prob.objective_log_grad(N, D, S)
            if not math.isfinite(val):
                val, g = 1e30, np.zeros(n_v)
            g = np.where(np.isfinite(g), g, 0.0)
        memo.clear()
        memo[key] = (val, g)
        return val, g

    def objective(v: np.ndarray) -> float:
        return value_grad(v)[0]

    def objective_jac(v: np.ndarray) -> np.ndarray:
        return value_grad(v)[1]

    cons: list[dict[str, Any]] = []
    if budget is not None:
        if phi is None:
            def whole(v: np.ndarray) -> float:
                N, D, S = unpack(v)
                return 1.0 - (fpt(N)[0] * (D + float(S.sum())) + 2.0 * N * infer_tokens) / budget

            def whole_jac(v: np.ndarray) -> np.ndarray:
                """d/dv of 1 - (f(N) (D + sum D') + 2 N I) / C."""
                N, D, S = unpack(v)
                f, nf = fpt(N)
                return -np.concatenate([[nf * (D + float(S.sum())) + 2.0 * N * infer_tokens, f * D], f * S[spec_idx]]) / budget

            cons.append({"type": "ineq", "fun": whole, "jac": whole_jac})
        else:
            def pre(v: np.ndarray) -> float:
                N, D, S = unpack(v)
                return 1.0 - (fpt(N)[0] * D + phi * 2.0 * N * infer_tokens) / (phi * budget)

            def pre_jac(v: np.ndarray) -> np.ndarray:
                N, D, S = unpack(v)
                f, nf = fpt(N)
                g = np.zeros(n_v)
                g[0] = -(nf * D + phi * 2.0 * N * infer_tokens) / (phi * budget)
                g[1] = -f * D / (phi * budget)
                return g

            def spec(v: np.ndarray) -> float:
                N, D, S = unpack(v)
                return 1.0 - (fpt(N)[0] * float(S.sum()) + (1 - phi) * 2.0 * N * infer_tokens) / ((1 - phi) * budget)

            def spec_jac(v: np.ndarray) -> np.ndarray:
                N, D, S = unpack(v)
                f, nf = fpt(N)
                g = np.zeros(n_v)
                g[0] = -(nf * float(S.sum()) + (1 - phi) * 2.0 * N * infer_tokens) / ((1 - phi) * budget)
                g[2:] = -f * S[spec_idx] / ((1 - phi) * budget)
                return g

            cons += [{"type": "ineq", "fun": pre, "jac": pre_jac}, {"type": "ineq", "fun": spec, "jac": spec_jac}]
    e_ratio = np.zeros(n_v)
    e_ratio[0], e_ratio[1] = -1.0, 1.0
    if c.min_tokens_per_param is not None:
        r = math.log(c.min_tokens_per_param)
        cons.append({"type": "ineq", "fun": lambda v: v[1] - v[0] - r, "jac": lambda v: e_ratio})
    if c.max_tokens_per_param is not None:
        r2 = math.log(c.max_tokens_per_param)
        cons.append({"type": "ineq", "fun": lambda v: r2 - (v[1] - v[0]), "jac": lambda v: -e_ratio})

    def target_jac(v: np.ndarray, k: int) -> np.ndarray:
        N, D, S = unpack(v)
        L, gN, gD, gS = prob.losses_log_grad(N, D, S, nominal=True)
        g = np.zeros(n_v)
        g[0], g[1] = gN[0, k], gD[0, k]
        g[2:] = np.where(spec_idx == k, gS[0, k], 0.0)
        return -np.where(np.isfinite(g), g, 0.0) / prob.targets[k]

    for k in tgt:
        cons.append({"type": "ineq", "fun": (lambda v, k=k: 1.0 - float(prob.losses(*unpack(v))[k]) / prob.targets[k]),
                     "jac": (lambda v, k=k: target_jac(v, k))})

    bounds = [(math.log(lo) - LOG_S, math.log(hi) - LOG_S), (-LOG_S, (math.log(prob.pretrain_cap) - LOG_S) if math.isfinite(prob.pretrain_cap) else 30.0)]
    for k in spec_idx:
        cap = prob.spec_cap[k]
        bounds.append((math.log(SPEC_FLOOR) - LOG_S, (math.log(cap) - LOG_S) if math.isfinite(cap) else 30.0))
    if bounds[0][0] > bounds[0][1]:
        return infeasible_solution(K, "multistart", "empty model-size range")

    def feasible(v: np.ndarray, tol: float = 1e-7) -> bool:
        if any(v[i] < b[0] - 1e-9 or v[i] > b[1] + 1e-9 for i, b in enumerate(bounds)):
            return False
        return all(con["fun"](v) >= -tol for con in cons)

    # ------------------------------------------------------------------ starts
    starts = []
    sizes = np.exp(np.linspace(bounds[0][0], bounds[0][1], n_sizes)) * TOKEN_SCALE if hi > lo * (1 + 1e-12) else np.array([lo])
    fracs = spec_fractions if Ks else (0.0,)
    w = prob.weights[spec_idx] if Ks else np.zeros(0)
    w = w / w.sum() if Ks and w.sum() > 0 else np.full(Ks, 1.0 / max(Ks, 1))
    if initial is not None:
        N0, D0_, S0_ = initial
        sizes = np.array([float(np.clip(N0, lo, hi))])
        fracs = (float(np.sum(S0_[spec_idx])) / max(D0_ + float(np.sum(S0_[spec_idx])), 1.0),) if Ks else (0.0,)
        if Ks and float(np.sum(S0_[spec_idx])) > 0:
            w = S0_[spec_idx] / float(np.sum(S0_[spec_idx]))
    fracs_run = (1.0 - phi,) if phi is not None else tuple(fracs)  # the fixed split: one start per size
    for i_size, i_frac in spread_order(len(sizes), len(fracs_run)):
        N = float(sizes[i_size])
        fr = fracs_run[i_frac]
        if budget is not None:
            T = prob.tokens_available(N, budget)
            if T <= 0:
                continue
        else:
            T = 20.0 * N
        D = max((1 - fr) * T, 1.0)
        S = np.maximum(fr * T * w, SPEC_FLOOR)
        if c.min_tokens_per_param is not None:
            D = max(D, c.min_tokens_per_param * N)
        if c.max_tokens_per_param is not None:
            D = min(D, c.max_tokens_per_param * N)
        v = np.concatenate([[math.log(N) - LOG_S, math.log(D) - LOG_S], np.log(S) - LOG_S])
        v = np.clip(v, [b[0] for b in bounds], [b[1] for b in bounds])
        if budget is not None:
            # place on the budget (training terms are linear in the tokens)
            N0, D0, S0 = unpack(v)
            used = float(prob.budget_used(N0, D0, S0))
            if used > budget:
                v[1:] -= math.log(used / budget) + 1e-9
                v = np.clip(v, [b[0] for b in bounds], [b[1] for b in bounds])
        starts.append(v)
    if not starts:
        return infeasible_solution(K, "multistart", "no model size in range leaves compute for training after inference")

    best: tuple[float, np.ndarray] | None = None
    n_ok = 0
    n_run = 0
    ends: list[tuple[float, np.ndarray]] = []
    for v0 in starts:
        if agree is not None and len(ends) >= agree and all(
                abs(val_ - best[0]) <= AGREE_VALUE_RTOL * max(abs(best[0]), 1e-300) and float(np.max(np.abs(v_ - best[1]))) <= AGREE_LOG_TOL
                for val_, v_ in ends):
            break
        n_run += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = minimize(objective, v0, jac=objective_jac, method="SLSQP", bounds=bounds, constraints=cons, options={"maxiter": 500, "ftol": 1e-14})
        v = np.clip(res.x, [b[0] for b in bounds], [b[1] for b in bounds])
        if not feasible(v):
            continue
        n_ok += 1
        val = objective(v)
        ends.append((val, v))
        if best is None or val < best[0]:
            best = (val, v)
    if best is None:
        names = ", ".join(prob.names[k] for k in tgt)
        return infeasible_solution(K, "multistart", "no start reached a feasible plan" + (f" (targets: {names})" if len(tgt) else ""))
    # polish from the best point
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = minimize(objective, best[1], jac=objective_jac, method="SLSQP", bounds=bounds, constraints=cons, options={"maxiter": 1000, "ftol": 1e-15})
    v = np.clip(res.x, [b[0] for b in bounds], [b[1] for b in bounds])
    if feasible(v) and objective(v) <= best[0]:
        best = (objective(v), v)
    N, D, S = unpack(best[1])
    # branches at the floor: compare with no specialization at all
    for j, k in enumerate(spec_idx):
        if best[1][2 + j] <= bounds[2 + j][0] + 1e-6:
            S0 = S.copy()
            S0[k] = 0.0
            v0 = objective_point(prob, N, D, S0, min_compute, cref)
            if v0 <= objective_point(prob, N, D, S, min_compute, cref) + 1e-15:
                S = S0
    value = float(prob.budget_used(N, D, S)) if min_compute else float(prob.objective(N, D, S))
    return Solution(N, D, S, value, "optimal", "multistart", False, notes=(f"{n_ok}/{n_run} starts feasible" + (f" ({len(starts) - n_run} more skipped: {n_ok} agreed)" if n_run < len(starts) else ""),))


def objective_point(prob: Problem, N: float, D: float, S: np.ndarray, min_compute: bool, cref: float) -> float:
    if min_compute:
        return float(prob.budget_used(N, D, S)) / cref
    return float(prob.objective(N, D, S))
