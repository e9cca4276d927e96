r"""A plan that survives every candidate law: minimum expected or worst-case regret.

Over the scenarios s (candidates' point estimates or bootstrap draws, probabilities p_s):

    expected regret  R_mean(x)  = sum_s p_s (f_s(x) - f_s^*) = sum_s p_s f_s(x) - const
    worst-case regret R_worst(x) = max_s (f_s(x) - f_s^*)

For a fixed model size N the feasible set in the tokens (D, D'_k) is a polyhedron (budget,
caps, tokens-per-parameter bounds). When every scenario's loss is convex in the tokens
(``form.cvxpy_loss`` / ``form.convex_in_tokens``: additive with D0 > 0, effective tokens with
eta <= 1, any posynomial), f_s - f_s^* is convex and so are the expectation and the maximum:
the token problem is the conic epigraph

    min t   s.t.  t >= sum_k w_k L_k^s(N, D, D'_k) - f_s^*  for every s,   tokens feasible

(for the mean, min sum_s p_s f_s directly), solved to global optimality by Clarabel, with
the N-dependent constant of separable laws a parameter (compiled once). N is searched
outside (a log grid, then bounded Brent), as the optimizer's DCP path does; the result is
certified only when N is taken from a finite menu (``model_sizes``), every size solved.
When some scenario's law is not convex in the tokens (e.g. the interaction form) the plan
comes from multi-start SLSQP on the epigraph (starts: every candidate's plan and the best
scenario plans) and is labelled not certified. In both cases the returned plan is the best
(by the robust objective) of the search and of every start, so it is never worse than any
candidate's own plan on the same scenarios.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from scipy.optimize import minimize_scalar

from .._records import json_number as _num
from ..allocate import Baseline
from .candidates import _S, DecisionError, LocalSolver, Plan, ScenarioSet

__all__ = ["RobustPlan", "robust_plan", "convex_pieces"]

N_REF = 1e9


@dataclass(frozen=True)
class RobustPlan:
    """The robust plan and its evidence.

    kind: "mean" (minimum expected regret) or "worst" (minimum worst-case regret).
    expected_regret / worst_regret: over every scenario (objective units); expected_loss:
    sum_s p_s f_s(x). certified: globally optimal (convex token problems and N from a
    finite menu). method: how it was found, in words.
    """

    kind: str
    plan: Plan
    expected_regret: float
    worst_regret: float
    expected_loss: float
    certified: bool
    method: str
    n_scenarios: int

    @property
    def strategy(self) -> str:
        return f"robust-{self.kind}"

    def as_baseline(self) -> Baseline:
        """The robust plan as a strategy record beside no-split, fixed and separate."""
        p = self.plan
        return Baseline(self.strategy, float(self.expected_loss), math.nan, p.model_size, p.pretrain_tokens, dict(p.spec_tokens), "optimal",
                        f"{'expected' if self.kind == 'mean' else 'worst-case'} regret minimised over {self.n_scenarios} scenarios; "
                        f"{'certified' if self.certified else 'not certified'}: {self.method}")

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "kind": self.kind, "plan": self.plan.to_dict(), "expected_regret": _num(self.expected_regret),
                "worst_regret": _num(self.worst_regret), "expected_loss": _num(self.expected_loss), "certified": self.certified,
                "method": self.method, "n_scenarios": self.n_scenarios}


def convex_pieces(ss: ScenarioSet) -> tuple[bool, str]:
    """Whether every scenario's loss is convex in the tokens for fixed N (cvxpy expression available)."""
    if ss.setting.constraints.repetition == "effective":
        return False, "repetition='effective' (the epigraph path does not model repeated tokens)"
    for g in ss.groups:
        form = g.form
        K = ss.setting.K
        G = len(g.draws)
        for s in range(G):
            for k in range(K):
                p = {name: float(v[s, k]) for name, v in g.params.items()}
                try:
                    ok = form.convex_in_tokens(p)
                except Exception:  # noqa: BLE001 - a user form may not implement it
                    ok = False
                if not ok:
                    return False, f"the {form.name} law is not convex in the tokens (no cvxpy expression)"
    return True, ""


def _separable(ss: ScenarioSet) -> bool:
    """f_s(N, D, D') = g_s(N) + h_s(D, D') for every scenario (checked at random points)."""
    rng = np.random.default_rng(0)
    K = ss.setting.K
    d = 10 ** rng.uniform(8, 12, 3)
    sp = 10 ** rng.uniform(7, 11, (3, K))
    a = ss.objective(np.full(3, 1e8), d, sp)
    b = ss.objective(np.full(3, 1e10), d, sp)
    diff = a - b
    if not np.all(np.isfinite(diff)):
        return False
    return bool(np.all(np.abs(diff - diff[:, :1]) <= 1e-9 * (np.abs(a) + 1e-12)))


class _Epigraph:
    """The convex token problem at fixed N for every scenario, compiled once when separable."""

    def __init__(self, ss: ScenarioSet, kind: str, optimum: np.ndarray) -> None:
        self.ss = ss
        self.kind = kind
        self.optimum = optimum
        self.separable = _separable(ss)
        self._cache: dict[float, Any] = {}
        self._compiled = self._build(N_REF) if self.separable else None

    def _build(self, model_size: float) -> dict[str, Any]:
        import cvxpy as cp

        ss = self.ss
        st = ss.setting
        K = st.K
        D = cp.Variable(nonneg=True, name="pretrain")
        spec = [cp.Variable(nonneg=True, name=f"spec_{k}") if ss.can_spec[k] else None for k in range(K)]
        zero = cp.Constant(0.0)
        T = cp.Parameter(nonneg=True, name="token_budget")
        shift = cp.Parameter(len(ss), name="shift")
        cons: list[Any] = [D >= 1e-9, D + sum(v for v in spec if v is not None) <= T]
        cap = st.constraints.pretrain_token_cap
        if math.isfinite(cap):
            cons.append(D <= cap / _S)
        caps = st.spec_caps()
        for k, v in enumerate(spec):
            if v is not None and math.isfinite(caps[k]):
                cons.append(v <= caps[k] / _S)
        dmin = cp.Parameter(nonneg=True, name="dmin")
        dmax = cp.Parameter(nonneg=True, name="dmax")
        c = st.constraints
        if c.min_tokens_per_param is not None:
            cons.append(D >= dmin)
        if c.max_tokens_per_param is not None:
            cons.append(D <= dmax)
        w = st.weights
        per: list[Any] = []
        s_index = 0
        for g in ss.groups:
            for row in range(len(g.draws)):
                expr = 0.0
                for k in range(K):
                    if w[k] <= 0:
                        continue
                    p = {name: float(v[row, k]) for name, v in g.params.items()}
                    expr = expr + float(w[k]) * g.form.cvxpy_loss(p, model_size, D, spec[k] if spec[k] is not None else zero, _S)
                per.append(expr)
                s_index += 1
        if self.kind == "worst":
            t = cp.Variable(name="worst_regret")
            cons += [per[s] + shift[s] - float(self.optimum[s]) <= t for s in range(len(per))]
            objective = t
        else:
            objective = sum(float(ss.prob[s]) * per[s] for s in range(len(per)))
        problem = cp.Problem(cp.Minimize(objective), cons)
        return {"problem": problem, "D": D, "spec": spec, "T": T, "shift": shift, "dmin": dmin, "dmax": dmax}

    def solve_at(self, model_size: float) -> tuple[float, float, np.ndarray, str]:
        """(value of the robust objective, D, D'_k, solver status) at fixed N."""
        from ..allocate.common import solve_cvxpy  # the optimizer's robust Clarabel call

        ss = self.ss
        st = ss.setting
        T = float(st.tokens_available(model_size)) / _S
        if T <= 0:
            return math.inf, math.nan, np.full(st.K, math.nan), "infeasible"
        if self.separable:
            m = self._compiled
            ref_d, ref_s = 1e10, np.full((1, st.K), 1e9)
            shift = ss.objective(model_size, ref_d, ref_s)[:, 0] - ss.objective(N_REF, ref_d, ref_s)[:, 0]
        else:
            key = round(math.log(model_size), 12)
            m = self._cache.get(key)
            if m is None:
                m = self._cache[key] = self._build(model_size)
            shift = np.zeros(len(ss))
        m["T"].value = T
        m["shift"].value = shift
        c = st.constraints
        m["dmin"].value = (c.min_tokens_per_param or 0.0) * model_size / _S
        m["dmax"].value = (c.max_tokens_per_param or 0.0) * model_size / _S
        status = solve_cvxpy(m["problem"])
        if status not in ("optimal", "optimal_inaccurate"):
            return math.inf, math.nan, np.full(st.K, math.nan), status
        D = max(float(m["D"].value), 1e-9) * _S
        S = np.array([0.0 if v is None else max(float(v.value), 0.0) * _S for v in m["spec"]])
        tot = D + S.sum()
        if tot > T * _S:
            D, S = D * T * _S / tot, S * T * _S / tot
        return float(self.value(model_size, D, S)), D, S, status

    def value(self, N: float, D: float, S: np.ndarray) -> float:
        f = self.ss.objective(N, D, S[None, :])[:, 0]
        return robust_value(f, self.ss.prob, self.optimum, self.kind)


def robust_value(f: np.ndarray, prob: np.ndarray, optimum: np.ndarray, kind: str) -> float:
    """R_mean (sum_s p_s (f_s - f_s^*)) or R_worst (max_s (f_s - f_s^*)) of objective values f (shape (S,))."""
    r = np.asarray(f, dtype=float) - optimum
    return float(prob @ r) if kind == "mean" else float(r.max())


def _search_log_n(f: Callable[[float], float], lo: float, hi: float, hard_lo: bool, hard_hi: bool, points: int = 9) -> tuple[float, int]:
    """argmin of f over log N: a grid, moved outward at soft edges, then bounded Brent around the best point."""
    cache: dict[float, float] = {}

    def g(x: float) -> float:
        key = round(x, 12)
        if key not in cache:
            cache[key] = f(math.exp(x))
        return cache[key]

    a, b = math.log(lo), math.log(hi)
    if b - a < 1e-9:
        g(a)
    else:
        for _ in range(6):
            grid = np.linspace(a, b, points)
            vals = np.array([g(x) for x in grid])
            if not np.any(np.isfinite(vals)):
                break
            i = int(np.nanargmin(np.where(np.isfinite(vals), vals, np.nan)))
            step = grid[1] - grid[0]
            if i == 0 and not hard_lo and a > math.log(1e3):
                a, b = a - (points - 1) * step, grid[2]
                continue
            if i == points - 1 and not hard_hi and b < math.log(1e16):
                a, b = grid[-3], b + (points - 1) * step
                continue
            left, right = grid[max(i - 1, 0)], grid[min(i + 1, points - 1)]
            res = minimize_scalar(g, bounds=(left, right), method="bounded", options={"xatol": 1e-7, "maxiter": 100})
            g(float(res.x))
            break
    best = min(cache, key=lambda k: cache[k])
    return math.exp(best), len(cache)


def robust_plan(
    ss: ScenarioSet, optimum: np.ndarray, starts: Sequence[Plan], *, kind: str = "worst", extra_starts: int = 3,
) -> RobustPlan:
    """The plan minimising the expected (``kind="mean"``) or worst-case (``"worst"``) regret over ``ss``.

    ``optimum``: f_s^* per scenario; ``starts``: split plans tried as starts and kept if better
    (every candidate's plan, at least). See the module docstring for the method.
    """
    if kind not in ("mean", "worst"):
        raise DecisionError(f"kind must be 'mean' or 'worst', not {kind!r}")
    st = ss.setting
    names = st.names
    split_starts = [p for p in starts if p.is_split]
    if not split_starts:
        raise DecisionError("robust_plan needs at least one split plan as a start")
    arrs = [p.arrays(names) for p in split_starts]
    F0 = ss.evaluate(split_starts)
    r0 = np.array([robust_value(F0[:, i], ss.prob, optimum, kind) for i in range(len(split_starts))])
    best_i = int(np.argmin(r0))
    best = (float(r0[best_i]), float(arrs[best_i][0][0]), float(arrs[best_i][1][0]), arrs[best_i][2].copy(), f"start: {split_starts[best_i].label}")
    convex, why = convex_pieces(ss)
    menu = st.constraints.model_sizes
    lo_b, hi_b = st.model_size_bounds()
    certified = False
    if convex:
        ep = _Epigraph(ss, kind, optimum)
        results: dict[float, tuple[float, float, np.ndarray, str]] = {}

        def at(n: float) -> float:
            r = ep.solve_at(n)
            results[n] = r
            return r[0]

        if menu is not None:
            sizes = [s for s in menu if lo_b * (1 - 1e-12) <= s <= hi_b * (1 + 1e-12)]
            for s in sizes:
                at(float(s))
            all_ok = bool(sizes) and all(results[float(s)][3] == "optimal" for s in sizes)
            method = f"convex epigraph in the tokens solved at every size of the menu ({len(sizes)} sizes)"
        else:
            ns = [float(a[0][0]) for a in arrs]
            lo, hi = max(lo_b, min(ns) / 4), min(hi_b, max(ns) * 4)
            _search_log_n(at, lo, hi, lo <= lo_b * (1 + 1e-12), hi >= hi_b * (1 - 1e-12))
            all_ok = False
            method = ("convex epigraph in the tokens (globally optimal for each N, Clarabel), 1-D search over log N "
                      "(grid + bounded Brent; not certified)")
        ok = {n: r for n, r in results.items() if math.isfinite(r[0])}
        if ok:
            n_best = min(ok, key=lambda n: ok[n][0])
            v, D, S, status = ok[n_best]
            if v <= best[0]:
                best = (v, n_best, D, S, method)
                certified = all_ok and status == "optimal"
            else:
                method += f"; a start ({best[4]}) was better and is kept"
        path = method
    else:
        # multi-start SLSQP on the epigraph: candidate plans plus the best scenario plans
        solver = LocalSolver(ss, np.arange(len(ss)), weights=ss.prob, kind=kind, offsets=optimum)
        tried = 0
        for i in np.argsort(r0)[: max(len(split_starts), extra_starts)]:
            N0, D0, S0 = arrs[i]
            N, D, S, _ = solver.solve((float(N0[0]), float(D0[0]), S0))
            v = robust_value(ss.objective(N, D, S[None, :])[:, 0], ss.prob, optimum, kind)
            tried += 1
            if v < best[0]:
                best = (v, N, D, S, "slsqp")
        path = (f"multi-start SLSQP on the {'epigraph of the worst case' if kind == 'worst' else 'expected loss'} from {tried} starts "
                f"(local, not certified) [{why}]")
    v, N, D, S, _ = best
    f = ss.objective(N, D, S[None, :])[:, 0]
    r = f - optimum
    plan = Plan(f"robust ({'expected' if kind == 'mean' else 'worst-case'} regret)", float(N), float(D), dict(zip(names, map(float, S))),
                f"robust-{kind}", "robust")
    return RobustPlan(kind, plan, float(ss.prob @ r), float(r.max()), float(ss.prob @ f), bool(certified), path, len(ss))
