r"""Posynomial laws: a geometric program in log variables, vectorised, compiled once.

With x = log(N / s), y = log(D / s), z_k = log(D'_k / s) (s = 1e9: billions) every
monomial c N^a D^b D'^g becomes exp(log c + (a + b + g) log s + a x + b y + g z_k),
so

    minimise    sum_m exp(l_m + a_m x + b_m y + (G z)_m) / scale + const
    subject to  log_sum_exp(budget rows - log C) <= 0
                x_lo <= x <= x_hi, y <= log(D_cap/s), z <= log(D'_cap/s),
                log r_min <= y - x <= log r_max,
                sum_{m in k} exp(target rows) <= 1          (L_k <= target_k)

is convex (a sum of exponentials of affine functions; one log-sum-exp for the
budget). All monomials of all domains live in one vector (per-domain exponents as
vectors, G a sparse matrix placing -gamma_k on column k), which is what makes
K = 1000 domains compile in a fraction of a second. log C and the bounds on x are
cvxpy Parameters, so the problem is DPP and a budget sweep or a size menu reuses
the compiled problem. ``scale`` normalises the objective to O(1) (conic solvers
fail on raw magnitudes). The solution is a global optimum (convexity) when the
solver reports "optimal".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..constants import SOLUTION_PRESENT
from .common import Solution, infeasible_solution, log, solve_cvxpy
from .problem import SPEC_FLOOR, TOKEN_SCALE, Problem, ParameterDraw

__all__ = ["GPModel", "NotGP", "gp_applicable"]

LOG_S = math.log(TOKEN_SCALE)


class NotGP(Exception):
    """The problem is not a geometric program (reason in the message)."""


class InfiniteLoss(Exception):
    """A domain that cannot specialize has an infinite loss at D' = 0."""


@dataclass
class _Terms:
    logc: np.ndarray
    a: np.ndarray
    b: np.ndarray
    g: np.ndarray
    col: np.ndarray  # column of z (spec variable) or -1
    row: np.ndarray  # group (parameter draw or target domain)

    @classmethod
    def empty(cls) -> "_Terms":
        z = np.zeros(0)
        return cls(z, z, z, z, np.zeros(0, dtype=int), np.zeros(0, dtype=int))

    def __len__(self) -> int:
        return len(self.logc)


def _collect(rows: list[tuple[float, float, float, float, int, int]]) -> _Terms:
    if not rows:
        return _Terms.empty()
    arr = np.array(rows, dtype=float)
    return _Terms(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4].astype(int), arr[:, 5].astype(int))


def _domain_terms(prob: Problem, params: tuple[dict[str, float], ...], weights: np.ndarray, spec_col: np.ndarray, group: int, rows: list, domains: range | list[int]) -> float:
    """Append the non-constant monomials of the given domains; return the sum of the constant ones."""
    const = 0.0
    for k in domains:
        w = float(weights[k])
        if w == 0.0:
            continue
        monos = prob.forms[k].monomials(params[k])
        if monos is None:
            raise NotGP(f"the {prob.forms[k].name} law of domain {prob.names[k]!r} is not a posynomial for its parameter values")
        for m in monos:
            coef = float(m.coefficient)
            if coef == 0.0:
                continue
            if coef < 0 or not math.isfinite(coef):
                raise NotGP(f"domain {prob.names[k]!r}: monomial with coefficient {coef:.4g} (a posynomial needs positive coefficients)")
            a, b, g = float(m.model_size_exp), float(m.pretrain_exp), float(m.spec_exp)
            if g != 0.0 and not prob.can_spec[k]:
                if g < 0:
                    raise InfiniteLoss(prob.names[k])
                continue  # D'^g with g > 0 is 0 at D' = 0
            if a == 0.0 and b == 0.0 and g == 0.0:
                const += w * coef
                continue
            rows.append((math.log(w * coef) + (a + b + g) * LOG_S, a, b, g, int(spec_col[k]) if g else -1, group))
    return const


def gp_applicable(prob: Problem) -> tuple[bool, str]:
    """Whether ``prob`` is a geometric program, and why not."""
    if prob.effective_spec or prob.effective_pretrain:
        return False, "effective (repeated) tokens are not a posynomial"
    if any("unique_tokens" in f.inputs for f in prob.forms) and math.isfinite(prob.pretrain_unique):
        return False, "the law depends on unique tokens"
    for sc in ([ParameterDraw(prob.params)] + list(prob.draws)):
        for k in range(prob.K):
            monos = prob.forms[k].monomials(sc.params[k])
            if monos is None:
                return False, f"the {prob.forms[k].name} law of domain {prob.names[k]!r} is not a posynomial (e.g. a negative power of a sum)"
            for m in monos:
                if m.coefficient < 0:
                    return False, f"domain {prob.names[k]!r} has a negative coefficient"
    return True, ""


class GPModel:
    """The compiled geometric program of one :class:`Problem` (strategy fixed; budget and N bounds free)."""

    def __init__(self, prob: Problem, *, solver: str | None = None) -> None:
        import cvxpy as cp

        self.prob = prob
        self.solver = solver
        K = prob.K
        spec_idx = prob.spec_index
        Ks = len(spec_idx)
        spec_col = np.full(K, -1, dtype=int)
        spec_col[spec_idx] = np.arange(Ks)
        self.spec_col = spec_col
        self.infinite: str | None = None

        robust = prob.robust if (prob.robust in ("mean", "worst") and prob.draws) else None
        scen = list(prob.draws) if robust else [ParameterDraw(prob.params)]
        B = len(scen)

        # ---------------------------------------------------------- variables
        x = cp.Variable(name="log_model_size")
        y = cp.Variable(name="log_pretrain_tokens")
        z = cp.Variable(Ks, name="log_spec_tokens") if Ks else None
        self.x, self.y, self.z = x, y, z
        self.log_budget = cp.Parameter(name="log_budget", value=0.0)
        self.x_lo = cp.Parameter(name="x_lo", value=-10.0)
        self.x_hi = cp.Parameter(name="x_hi", value=10.0)

        def affine(t: _Terms) -> Any:
            expr = t.logc
            expr = expr + (t.a * x if np.any(t.a) else 0.0)
            expr = expr + (t.b * y if np.any(t.b) else 0.0)
            if z is not None and np.any(t.col >= 0):
                sel = t.col >= 0
                G = sp.csr_matrix((t.g[sel], (np.flatnonzero(sel), t.col[sel])), shape=(len(t), Ks))
                expr = expr + G @ z
            return expr

        # ---------------------------------------------------------- budget rows
        fpt_terms = prob.flop_model.terms()
        infer = prob.total_inference_tokens if prob.inference_in_budget else 0.0
        phi = prob.fixed_fraction if (prob.fixed_fraction is not None and Ks) else None

        def budget_rows(with_pretrain: bool, with_spec: bool, infer_share: float) -> _Terms:
            rows = []
            for c, e in fpt_terms:
                if with_pretrain:
                    rows.append((math.log(c) + (e + 1) * LOG_S, e, 1.0, 0.0, -1, 0))
                if with_spec:
                    for j in range(Ks):
                        rows.append((math.log(c) + (e + 1) * LOG_S, e, 0.0, 1.0, j, 0))
            if infer > 0 and infer_share > 0:
                rows.append((math.log(2.0 * infer * infer_share) + LOG_S, 1.0, 0.0, 0.0, -1, 0))
            return _collect(rows)

        if phi is None:
            self.budget_terms = [(budget_rows(True, True, 1.0), 0.0)]
        else:
            self.budget_terms = [(budget_rows(True, False, phi), math.log(phi)), (budget_rows(False, True, 1.0 - phi), math.log(1.0 - phi))]

        # ------------------------------------------------------- objective rows
        constraints: list[Any] = []
        self.budget_constraints: list[Any] = []
        self.scale = 1.0
        if prob.mode == "min-compute":
            # objective: compute / C_ref (C_ref a Parameter, set to the previous solution's compute)
            self.log_cref = cp.Parameter(name="log_cref", value=math.log(1e21))
            all_budget = [t for t, _ in self.budget_terms]
            obj_t = _Terms(*(np.concatenate([getattr(t, f) for t in all_budget]) for f in ("logc", "a", "b", "g", "col", "row")))
            objective = cp.sum(cp.exp(affine(obj_t) - self.log_cref))
            self.obj_terms = obj_t
            self.consts = np.zeros(1)
            if prob.budget is not None:
                for t, off in self.budget_terms:
                    con = cp.log_sum_exp(affine(t) - off - self.log_budget) <= 0
                    constraints.append(con)
                    self.budget_constraints.append(con)
        else:
            rows: list = []
            consts = np.zeros(B)
            try:
                for s, sc in enumerate(scen):
                    consts[s] = _domain_terms(prob, sc.params, prob.weights, spec_col, s, rows, range(K))
            except InfiniteLoss as exc:
                self.infinite = str(exc)
                self.problem = None
                return
            obj_t = _collect(rows)
            self.obj_terms, self.consts = obj_t, consts
            self.B = B
            # objective normaliser (a Parameter: re-set for every budget so the solver sees O(1) values)
            self.log_scale = cp.Parameter(name="log_objective_scale", value=0.0)
            self.inv_scale = cp.Parameter(name="inverse_objective_scale", nonneg=True, value=1.0)
            if robust == "worst":
                t = cp.Variable(name="worst_case")
                sel = sp.csr_matrix((np.ones(len(obj_t)), (obj_t.row, np.arange(len(obj_t)))), shape=(B, len(obj_t)))
                constraints.append(sel @ cp.exp(affine(obj_t) - self.log_scale) + self.inv_scale * consts <= t)
                objective = t
            else:
                shift = (math.log(B) if B > 1 else 0.0)
                objective = cp.sum(cp.exp(affine(obj_t) - shift - self.log_scale)) if len(obj_t) else cp.Constant(0.0)
            for t_, off in self.budget_terms:
                con = cp.log_sum_exp(affine(t_) - off - self.log_budget) <= 0
                constraints.append(con)
                self.budget_constraints.append(con)

        # ---------------------------------------------------------------- bounds
        constraints += [x >= self.x_lo, x <= self.x_hi, y >= -LOG_S]
        cap = prob.pretrain_cap
        if math.isfinite(cap):
            constraints.append(y <= math.log(cap) - LOG_S)
        if z is not None:
            constraints.append(z >= math.log(SPEC_FLOOR) - LOG_S)
            caps = prob.spec_cap[spec_idx]
            fin = np.isfinite(caps)
            if np.any(fin):
                constraints.append(z[np.flatnonzero(fin)] <= np.log(caps[fin]) - LOG_S)
        c = prob.constraints
        if c.min_tokens_per_param is not None:
            constraints.append(y - x >= math.log(c.min_tokens_per_param))
        if c.max_tokens_per_param is not None:
            constraints.append(y - x <= math.log(c.max_tokens_per_param))

        # --------------------------------------------------------------- targets
        tgt = np.flatnonzero(np.isfinite(prob.targets))
        if len(tgt):
            rows = []
            rhs = []
            try:
                for gi, k in enumerate(tgt):
                    const = _domain_terms(prob, prob.params, np.ones(K), spec_col, gi, rows, [k])
                    rhs.append(prob.targets[k] - const)
            except InfiniteLoss as exc:
                self.infinite = str(exc)
                self.problem = None
                return
            t_terms = _collect(rows)
            rhs_arr = np.array(rhs)
            if np.any(rhs_arr <= 0) or len(t_terms) == 0:
                self.target_conflict = [prob.names[tgt[i]] for i in np.flatnonzero(rhs_arr <= 0)]
            else:
                t_terms.logc = t_terms.logc - np.log(rhs_arr[t_terms.row])
                self.target_terms = (t_terms, len(tgt))
                sel = sp.csr_matrix((np.ones(len(t_terms)), (t_terms.row, np.arange(len(t_terms)))), shape=(len(tgt), len(t_terms)))
                constraints.append(sel @ cp.exp(affine(t_terms)) <= 1.0)
        self.robust_mode = robust
        self.problem = cp.Problem(cp.Minimize(objective), constraints)
        self.is_dcp = self.problem.is_dcp()
        self.is_dpp = self.problem.is_dcp(dpp=True)

    # ------------------------------------------------------------------ helpers
    def _heuristic_scale(self, t: _Terms, B: int, budget: float | None) -> float:
        """Objective normaliser: the non-constant part of the objective at a plausible point."""
        prob = self.prob
        budget = budget if budget is not None else 1e21
        lo, hi = prob.model_size_bounds()
        n0 = float(np.clip(math.sqrt(budget / (6.0 * 20.0)), lo, hi))
        tokens = max(budget / (6.0 * n0), 1.0)
        x0, y0 = math.log(n0) - LOG_S, math.log(0.8 * tokens) - LOG_S
        z0 = math.log(max(0.2 * tokens / max(len(prob.spec_index), 1), SPEC_FLOOR)) - LOG_S
        vals = np.exp(np.clip(t.logc + t.a * x0 + t.b * y0 + np.where(t.col >= 0, t.g * z0, 0.0), -700, 700))
        s = float(np.sum(vals)) / max(B, 1)
        return s if math.isfinite(s) and s > 1e-12 else 1.0

    # -------------------------------------------------------------------- polish
    @staticmethod
    def _aff(t: _Terms, v: np.ndarray) -> np.ndarray:
        out = t.logc + t.a * v[0] + t.b * v[1]
        if len(v) > 2 and len(t):
            sel = t.col >= 0
            out = out + np.where(sel, t.g * v[2:][np.where(sel, t.col, 0)], 0.0)
        return out

    @staticmethod
    def _grad(t: _Terms, w: np.ndarray, n: int) -> np.ndarray:
        """d/dv of sum_m w_m exp(aff_m) given w_m = exp(aff_m) (weights already applied)."""
        g = np.zeros(n)
        g[0] = float(w @ t.a)
        g[1] = float(w @ t.b)
        if n > 2:
            sel = t.col >= 0
            np.add.at(g, 2 + t.col[sel], w[sel] * t.g[sel])
        return g

    def _polish(self, v0: np.ndarray) -> np.ndarray:
        """Refine the conic solution with SLSQP on the same smooth log-space problem (analytic gradients).

        Interior-point solvers stop at a duality gap of ~1e-11, which leaves the
        flat directions of the optimum (N along the budget) accurate to only
        ~1e-6; a few SQP steps from the conic solution bring them to ~1e-9. The
        polished point is kept only if it is feasible and no worse.
        """
        from scipy.optimize import minimize

        n = len(v0)
        ot = self.obj_terms
        shift = math.log(self.scale) + (math.log(self.B) if self.B > 1 else 0.0)

        def f(v: np.ndarray) -> tuple[float, np.ndarray]:
            e = np.exp(self._aff(ot, v) - shift)
            return float(e.sum()), self._grad(ot, e, n)

        cons = []
        for t, off in self.budget_terms:
            def bud(v: np.ndarray, t: _Terms = t, off: float = off) -> float:
                return -float(np.log(np.sum(np.exp(self._aff(t, v) - off - self.log_budget.value))))

            def bud_jac(v: np.ndarray, t: _Terms = t, off: float = off) -> np.ndarray:
                e = np.exp(self._aff(t, v) - off - self.log_budget.value)
                return -self._grad(t, e / e.sum(), n)

            cons.append({"type": "ineq", "fun": bud, "jac": bud_jac})
        tt = getattr(self, "target_terms", None)
        if tt is not None:
            t_terms, n_t = tt
            for gi in range(n_t):
                sub = _Terms(*(getattr(t_terms, f_)[t_terms.row == gi] for f_ in ("logc", "a", "b", "g", "col", "row")))
                cons.append({
                    "type": "ineq",
                    "fun": lambda v, sub=sub: -float(np.log(np.sum(np.exp(self._aff(sub, v))))),
                    "jac": lambda v, sub=sub: -self._grad(sub, np.exp(self._aff(sub, v)) / np.sum(np.exp(self._aff(sub, v))), n),
                })
        c = self.prob.constraints
        if c.min_tokens_per_param is not None:
            lo = math.log(c.min_tokens_per_param)
            jac = np.zeros(n); jac[0], jac[1] = -1.0, 1.0
            cons.append({"type": "ineq", "fun": lambda v: v[1] - v[0] - lo, "jac": lambda v: jac})
        if c.max_tokens_per_param is not None:
            hi = math.log(c.max_tokens_per_param)
            jac2 = np.zeros(n); jac2[0], jac2[1] = 1.0, -1.0
            cons.append({"type": "ineq", "fun": lambda v: hi - (v[1] - v[0]), "jac": lambda v: jac2})
        bounds = [(float(self.x_lo.value), float(self.x_hi.value)), (-LOG_S, (math.log(self.prob.pretrain_cap) - LOG_S) if math.isfinite(self.prob.pretrain_cap) else None)]
        caps = self.prob.spec_cap[self.prob.spec_index]
        for cap in caps:
            bounds.append((math.log(SPEC_FLOOR) - LOG_S, (math.log(cap) - LOG_S) if math.isfinite(cap) else None))

        def feasible(v: np.ndarray) -> bool:
            for i, (lo_, hi_) in enumerate(bounds):
                if (lo_ is not None and v[i] < lo_ - 1e-12) or (hi_ is not None and v[i] > hi_ + 1e-12):
                    return False
            return all(con["fun"](v) >= -1e-12 for con in cons)

        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = minimize(f, v0, jac=True, method="SLSQP", bounds=bounds, constraints=cons, options={"maxiter": 100, "ftol": 1e-16})
        except (ValueError, FloatingPointError) as exc:
            log.info("GP polish skipped: SLSQP failed (%s); keeping the conic solution", exc)
            return v0
        v = np.asarray(res.x, dtype=float)
        if not np.all(np.isfinite(v)):
            log.info("GP polish skipped: SLSQP returned non-finite values; keeping the conic solution")
            return v0
        if not feasible(v):
            # pull back onto the budget along the token directions (all budget rows are increasing in y, z)
            for _ in range(3):
                worst = min(con["fun"](v) for con in cons[: len(self.budget_terms)]) if self.budget_terms else 0.0
                if worst >= 0:
                    break
                v = v.copy()
                v[1:] += worst - 1e-14
            if not feasible(v):
                log.info("GP polish skipped: the polished point is infeasible; keeping the conic solution")
                return v0
        return v if f(v)[0] <= f(v0)[0] else v0

    # -------------------------------------------------------------------- solve
    def solve(self, budget: float | None, model_size_bounds: tuple[float, float] | None = None) -> Solution:
        prob = self.prob
        K = prob.K
        if self.problem is None:
            return infeasible_solution(K, "gp", f"the law predicts an infinite loss for domain {self.infinite!r} without specialization (its specialization term C/D'^gamma has no offset, D0 = 0)")
        if getattr(self, "target_conflict", None):
            return infeasible_solution(K, "gp", f"target_loss of {', '.join(self.target_conflict)} is not above the loss floor of its law")
        lo, hi = model_size_bounds if model_size_bounds is not None else prob.model_size_bounds()
        self.x_lo.value = math.log(lo) - LOG_S
        self.x_hi.value = math.log(hi) - LOG_S
        if budget is not None:
            self.log_budget.value = math.log(budget)
        if prob.mode != "min-compute":
            self.scale = self._heuristic_scale(self.obj_terms, self.B, budget)
            self.log_scale.value = math.log(self.scale)
            self.inv_scale.value = 1.0 / self.scale
        if prob.mode == "min-compute":
            self.log_cref.value = math.log(budget) if budget is not None else math.log(1e21)
        status = solve_cvxpy(self.problem, solver=self.solver)
        if status == "optimal_inaccurate" and prob.mode != "min-compute":
            # numerical trouble is often specific to the normalisation: retry with other objective scales
            log.info("GP solve inaccurate at objective scale %.3g; retrying with other scales", self.scale)
            for factor in (10.0, 0.1):
                self.log_scale.value = math.log(self.scale * factor)
                self.inv_scale.value = 1.0 / (self.scale * factor)
                if solve_cvxpy(self.problem, solver=self.solver) == "optimal":
                    self.scale *= factor
                    status = "optimal"
                    break
            else:
                self.log_scale.value = math.log(self.scale)
                self.inv_scale.value = 1.0 / self.scale
                status = solve_cvxpy(self.problem, solver=self.solver)
        if prob.mode == "min-compute" and status in SOLUTION_PRESENT:
            # re-solve with the objective normalised by the compute just found
            used = float(np.sum(np.exp(self.obj_terms.logc + self.obj_terms.a * self.x.value + self.obj_terms.b * self.y.value
                                       + (np.where(self.obj_terms.col >= 0, self.obj_terms.g * self.z.value[np.maximum(self.obj_terms.col, 0)], 0.0) if self.z is not None else 0.0))))
            if used > 0 and math.isfinite(used) and abs(math.log(used) - self.log_cref.value) > 1.0:
                self.log_cref.value = math.log(used)
                status = solve_cvxpy(self.problem, solver=self.solver)
        if status not in SOLUTION_PRESENT:
            return infeasible_solution(K, "gp", f"solver status {status}", status="infeasible" if status in ("infeasible", "unbounded") else "failed")
        v = np.concatenate([[float(self.x.value), float(self.y.value)], np.asarray(self.z.value, dtype=float) if self.z is not None else []])
        if status in SOLUTION_PRESENT and prob.mode == "min-loss" and self.robust_mode != "worst" and len(v) <= 102:
            v = self._polish(v)
        elif prob.mode == "min-loss":
            log.debug("GP polish not run (robust worst case or more than 100 domains)")
        N = float(math.exp(v[0]) * TOKEN_SCALE)
        D = float(math.exp(v[1]) * TOKEN_SCALE)
        S = np.zeros(K)
        if self.z is not None:
            S[prob.spec_index] = np.exp(v[2:]) * TOKEN_SCALE
        if prob.mode == "min-compute":
            value = float(prob.budget_used(N, D, S))
            solver_value = float(self.problem.value) * math.exp(self.log_cref.value)
            dv = math.nan
        else:
            value = float(prob.objective(N, D, S))
            if prob.robust == "worst" and prob.draws:
                solver_value = float(self.problem.value) * self.scale
            else:
                solver_value = float(self.problem.value) * self.scale + float(np.mean(self.consts))
            duals = [con.dual_value for con in self.budget_constraints]
            dv = -sum(float(d) for d in duals) * self.scale if all(d is not None for d in duals) and status == "optimal" else math.nan
        return Solution(N, D, S, value, status, "gp", certified=bool(self.is_dcp and status == "optimal"), solver_value=solver_value, d_value_d_log_budget=dv)
