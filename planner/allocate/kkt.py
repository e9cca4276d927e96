r"""The token problem at numpy speed: KKT conditions with a 1-D root on the budget multiplier,
and a derivative-based search over log N.

For every shipped convex form the loss at fixed N is *separable* in the token variables:

    sum_k w_k L_k = a(N) + const + sum_j h_j(x_j),      a(N) = sum_t c_t N^{e_t},
    h_j(x) = sum_t c_t (x + o_t)^{-p_t}    (c_t > 0, p_t > 0, o_t >= 0: convex, decreasing)

with x_0 = D and x_j = D'_k (Chinchilla and over-training: B D^-beta; split-additive: B_k D^-beta and
C_k (D'_k + D0_k)^-gamma_k with any D0_k >= 0; any posynomial whose monomials involve one variable
each; the effective-tokens forms when no domain specializes). Robust ``"mean"`` plans average the
draws' terms, so they stay separable. The effective-tokens forms with specialization
(``split-effective``, ``split-transfer``: B_k (D + c_k(N) D'_k^e_k)^-beta, D and D'_k inside one
negative power) are not separable; :mod:`.kkt_effective` solves them with the same outer search
(:class:`~planner.allocate.kkt_effective.EffectiveKKTSolver` subclasses :class:`KKTSolver`).

**Inner problem** (fixed N): minimise sum_j h_j(x_j) subject to sum_j x_j <= T(N) and
l_j <= x_j <= u_j, with T(N) = (C - 2 N I) / f(N) the tokens the budget buys (I: inference tokens
in the budget; f(N) FLOPs per token). The KKT conditions are

    -h_j'(x_j) = lambda   for l_j < x_j < u_j,   x_j = clip(g_j^{-1}(lambda), l_j, u_j),   g_j = -h_j',

so each x_j(lambda) is explicit for one term, x = (lambda / (c p))^{-1/(p+1)} - o, and a safeguarded
Newton step in log x otherwise (g_j is decreasing). sum_j x_j(lambda) is decreasing in lambda: the
budget multiplier is the root of sum_j x_j(lambda) = T, found by safeguarded Newton in log lambda
(lambda = 0 when every variable reaches its cap first). The ``fixed`` strategy has two budgets (D
alone, and sum_k D'_k) and so two multipliers.

**Outer problem**: V(N) = a(N) + min over tokens. By the envelope theorem

    dV/dlog N = N a'(N) - lambda N T'(N) + (lambda - g_0(D)) r N   [D at an N-dependent bound r N]

so the optimal N is a root of dV/dlog N, found by Brent's method to ~1e-13 in log N (a value-based
golden/Brent search would locate N only to about sqrt(machine epsilon)). Unimodality is *checked*,
not assumed: a coarse scan of the sign of dV/dlog N over the bracket first; every sign change from
- to + is a local minimum, each is refined and the best kept (a note records more than one). For
geometric-program laws V is convex in log N (partial minimisation of a convex problem in log
variables), so the optimum is global and the plan keeps its certificate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy.optimize import brentq

from .common import Solution, infeasible_solution
from .problem import N_RANGE, Problem

__all__ = ["TokenTerms", "kkt_applicable", "KKTSolver"]

_MIN_PRETRAIN = 1.0  # tokens (the conic path's D >= 1e-9 billion)


@dataclass(frozen=True)
class TokenTerms:
    """The objective at fixed N as separable power terms (see the module docstring).

    n_coef/n_exp: a(N) = sum c N^e; const: the constant part; var/coef/power/offset: token terms
    c (x_var + o)^-p, var 0 = D, var 1 + i = D' of the i-th specializing domain.
    """

    n_coef: np.ndarray
    n_exp: np.ndarray
    const: float
    n_vars: int
    coef: np.ndarray  # (n_vars, width) padded with zeros
    power: np.ndarray
    offset: np.ndarray
    infinite: tuple[str, ...] = ()  # domains whose loss is infinite without specialization

    def a(self, N: float) -> float:
        return float((self.n_coef * N ** self.n_exp).sum())

    def n_da(self, N: float) -> float:
        """N a'(N)."""
        return float((self.n_coef * self.n_exp * N ** self.n_exp).sum())

    def h(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            v = self.coef * (x[:, None] + self.offset) ** (-self.power)
        return np.where(self.coef > 0, v, 0.0).sum(axis=1)

    def h_total(self, x: np.ndarray) -> float:
        """sum_j h_j(x_j) (the same numbers as ``h(x).sum()``; one column of terms without the 2-D detour)."""
        if self.coef.shape[1] != 1:
            return float(self.h(x).sum())
        c = self.coef[:, 0]
        v = c * (x + self.offset[:, 0]) ** (-self.power[:, 0])  # the caller holds np.errstate
        return float(np.where(c > 0, v, 0.0).sum())

    def g(self, x: np.ndarray) -> np.ndarray:
        """-h'(x) >= 0 per variable."""
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            v = self.coef * self.power * (x[:, None] + self.offset) ** (-self.power - 1.0)
        return np.where(self.coef > 0, v, 0.0).sum(axis=1)

    def dg(self, x: np.ndarray) -> np.ndarray:
        """g'(x) <= 0 per variable."""
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            v = -self.coef * self.power * (self.power + 1.0) * (x[:, None] + self.offset) ** (-self.power - 2.0)
        return np.where(self.coef > 0, v, 0.0).sum(axis=1)


class _NotSeparable(Exception):
    pass


def _domain_terms(form: Any, p: dict[str, float], can_spec: bool) -> list[tuple[str, float, float, float]]:
    """(kind, coefficient, exponent or power, offset) of one domain's law: kind in const, N, D, S."""
    from ..laws.split import EffectiveTokensForm

    if isinstance(form, EffectiveTokensForm) and not can_spec:
        # D' = 0: the worth c D'^e vanishes and the law is Chinchilla's E + A N^-alpha + B D^-beta
        return [("const", float(p["E"]), 0.0, 0.0), ("N", float(p["A"]), -float(p["alpha"]), 0.0), ("D", float(p["B"]), float(p["beta"]), 0.0)]
    monos = form.monomials(p)
    out: list[tuple[str, float, float, float]] = []
    if monos is not None:
        for m in monos:
            c = float(m.coefficient)
            a, b, g = float(m.model_size_exp), float(m.pretrain_exp), float(m.spec_exp)
            if c == 0.0:
                continue
            if c < 0 or not math.isfinite(c) or sum(e != 0.0 for e in (a, b, g)) > 1:
                raise _NotSeparable(f"the {form.name} law has a term in more than one variable")
            if a == b == g == 0.0:
                out.append(("const", c, 0.0, 0.0))
            elif a:
                out.append(("N", c, a, 0.0))
            elif b:
                if b > 0:
                    raise _NotSeparable("a term increasing in the tokens")
                out.append(("D", c, -b, 0.0))
            else:
                if not can_spec:
                    if g < 0:
                        out.append(("inf", c, 0.0, 0.0))  # C D'^-gamma at D' = 0: infinite loss
                    continue  # D'^g with g > 0 is 0 at D' = 0
                if g > 0:
                    raise _NotSeparable("a term increasing in the tokens")
                out.append(("S", c, -g, 0.0))
        return out
    if form.name == "split-additive":  # C (D' + D0)^-gamma with D0 > 0: separable, not a posynomial
        out += [("const", float(p["E"]), 0.0, 0.0), ("N", float(p["A"]), -float(p["alpha"]), 0.0), ("D", float(p["B"]), float(p["beta"]), 0.0)]
        c, gamma, d0 = float(p["C"]), float(p["gamma"]), float(p["D0"])
        if c != 0.0:
            if can_spec:
                out.append(("S", c, gamma, d0))
            else:
                out.append(("const", c * d0 ** -gamma, 0.0, 0.0))
        return out
    raise _NotSeparable(f"the {form.name} law is not separable into power terms")


class SeparableTerms:
    """Accumulates separable power terms, domain by domain, into :class:`TokenTerms`.

    Variables: 0 is D, 1 + i the i-th specializing domain's D'. Terms with the same (power, offset) on the
    same variable merge; a(N)'s terms merge by exponent."""

    def __init__(self, n_spec: int) -> None:
        self.n_terms: dict[float, float] = {}
        self.const = 0.0
        self.by_var: list[dict[tuple[float, float], float]] = [dict() for _ in range(1 + n_spec)]
        self.infinite: list[str] = []

    def add_token_term(self, var: int, coef: float, power: float, offset: float) -> None:
        """coef (x_var + offset)^-power."""
        if power <= 0:
            raise _NotSeparable("a token exponent <= 0")
        key = (power, offset)
        self.by_var[var][key] = self.by_var[var].get(key, 0.0) + coef

    def add_domain(self, terms: list[tuple[str, float, float, float]], weight: float, name: str, spec_var: int | None) -> None:
        """One domain's terms (:func:`_domain_terms`) times its weight; ``spec_var``: its D' variable."""
        for kind, c, e, o in terms:
            if kind == "inf":
                self.infinite.append(name)
            elif kind == "const":
                self.const += weight * c
            elif kind == "N":
                self.n_terms[e] = self.n_terms.get(e, 0.0) + weight * c
            else:
                self.add_token_term(0 if kind == "D" else spec_var, weight * c, e, o)  # type: ignore[arg-type]

    def terms(self) -> TokenTerms:
        return assemble_terms(self.n_terms, self.const, self.by_var, self.infinite)


def build_terms(prob: Problem) -> TokenTerms:
    """The separable terms of ``prob``'s min-loss objective (raises _NotSeparable)."""
    col = {int(k): 1 + i for i, k in enumerate(prob.spec_index)}
    draws = [d.params for d in prob.draws] if (prob.robust == "mean" and prob.draws) else [prob.params]
    share = 1.0 / len(draws)
    acc = SeparableTerms(len(prob.spec_index))
    memo: dict[tuple, list[tuple[str, float, float, float]]] = {}  # a shared law: one expansion for every domain
    for params in draws:
        for k in range(prob.K):
            w = float(prob.weights[k]) * share
            if w == 0.0:
                continue
            key = (id(prob.forms[k]), tuple(params[k].items()), bool(prob.can_spec[k]))
            terms = memo.get(key)
            if terms is None:
                terms = memo[key] = _domain_terms(prob.forms[k], params[k], bool(prob.can_spec[k]))
            acc.add_domain(terms, w, prob.names[k], col.get(k))
    return acc.terms()


def assemble_terms(n_terms: dict[float, float], const: float, by_var: list[dict[tuple[float, float], float]], infinite: list[str]) -> TokenTerms:
    """:class:`TokenTerms` from the merged terms: n_terms {exponent: coefficient} of a(N), by_var[j]
    {(power, offset): coefficient} of variable j (0: D, 1 + i: the i-th specializing domain's D')."""
    width = max(1, max(len(v) for v in by_var))
    n = len(by_var)
    coef, power, offset = np.zeros((n, width)), np.ones((n, width)), np.zeros((n, width))
    for j, terms in enumerate(by_var):
        for t, ((e, o), c) in enumerate(terms.items()):
            coef[j, t], power[j, t], offset[j, t] = c, e, o
    return TokenTerms(np.array(list(n_terms.values())), np.array(list(n_terms.keys())), const, n, coef, power, offset, tuple(sorted(set(infinite))))


def numpy_refusal(prob: Problem) -> str:
    """Why no numpy solver (separable or effective-tokens) applies whatever the law, or "" when one may."""
    if prob.mode != "min-loss":
        return "mode='min-compute' (the targets are the constraints)"
    if np.any(np.isfinite(prob.targets)):
        return "target losses are constraints"
    if prob.robust == "worst" and prob.draws:
        return "a worst case over draws is not separable"
    if prob.effective_spec or prob.effective_pretrain:
        return "effective (repeated) tokens couple the first epoch and the repeats"
    if any("unique_tokens" in f.inputs for f in prob.forms):
        return "the law depends on unique tokens"
    return ""


def bracketed_newton_step(u: float, F: float, dF: float, a: float, b: float, it: int, max_unbracketed: float | None = None) -> float:
    """The next iterate of a safeguarded Newton search for the root of a decreasing F(u) (u = log lambda).

    The Newton step u - F/dF (a unit step towards the root where dF is not negative), limited to
    ``max_unbracketed`` while the bracket (a, b) is still open on a side; a step leaving the bracket
    bisects it, or, without a finite bracket yet, jumps 4 (1 + it) towards the root.
    """
    u_new = u - F / dF if dF < 0 else u + (1.0 if F > 0 else -1.0)
    if max_unbracketed is not None and not (math.isfinite(a) and math.isfinite(b)):
        u_new = min(max(u_new, u - max_unbracketed), u + max_unbracketed)
    if not (a < u_new < b) or not math.isfinite(u_new):
        if math.isfinite(a) and math.isfinite(b):
            return 0.5 * (a + b)
        return u + (4.0 if F > 0 else -4.0) * (1 + it)
    return u_new


class TermsCache:
    """The terms an applicability check built, kept for the solver that follows it (keyed by the problem
    object; taken once): the check has to build them to know whether they exist, the solver needs them."""

    def __init__(self, build: Callable[[Problem], Any]) -> None:
        self.build = build
        self._kept: dict[int, tuple[Problem, Any]] = {}

    def applicable(self, prob: Problem) -> tuple[bool, str]:
        """Whether the solver applies to ``prob`` (its terms can be built), and why not."""
        why = numpy_refusal(prob)
        if why:
            return False, why
        try:
            self._kept[id(prob)] = (prob, self.build(prob))
        except _NotSeparable as exc:
            return False, str(exc)
        return True, ""

    def take(self, prob: Problem) -> Any:
        """The terms of ``prob``: those of its applicability check, else built now."""
        hit = self._kept.pop(id(prob), None)
        if hit is not None and hit[0] is prob:
            return hit[1]
        return self.build(prob)


#: the separable solver's terms, from its applicability check to the solver
_TERMS_CACHE = TermsCache(build_terms)


def kkt_applicable(prob: Problem) -> tuple[bool, str]:
    """Whether the numpy KKT solver applies to ``prob``, and why not."""
    return _TERMS_CACHE.applicable(prob)


@dataclass(frozen=True)
class _Inner:
    ok: bool
    x: np.ndarray
    lam: tuple[float, ...]  # budget multipliers (one, or two for the fixed strategy)
    value: float  # V(N)
    slope: float  # dV/dlog N
    message: str = ""


class KKTSolver:
    """The token problem of one :class:`Problem` solved from its KKT conditions, N by a root of dV/dlog N.

    ``path``: the label of the path it stands for ("gp" or "dcp+search"); ``certified``: whether the
    problem is convex in log variables (a geometric program), so the optimum over N is global.
    """

    def __init__(self, prob: Problem, *, path: str, certified: bool, terms: TokenTerms | None = None) -> None:
        self.prob = prob
        self.path = path
        self.certified_class = certified
        self.terms = _TERMS_CACHE.take(prob) if terms is None else terms
        self.n_spec = len(prob.spec_index)
        Ks = self.n_spec
        self.phi = prob.fixed_fraction if (prob.fixed_fraction is not None and Ks) else None
        lo = np.zeros(1 + Ks)
        hi = np.full(1 + Ks, math.inf)
        lo[0] = _MIN_PRETRAIN
        hi[0] = prob.pretrain_cap
        caps = prob.spec_cap[prob.spec_index]
        hi[1:] = np.where(np.isfinite(caps), caps, math.inf)
        self.lo0, self.hi0 = lo, hi
        self.has_terms = np.any(self.terms.coef > 0, axis=1)
        c = prob.constraints
        self.r_min = c.min_tokens_per_param
        self.r_max = c.max_tokens_per_param
        self.infer = prob.total_inference_tokens if prob.inference_in_budget else 0.0
        self._lam_guess: list[tuple[float, float, float] | None] = [None, None]
        self._slots: dict[tuple[int, int], dict[str, Any]] = {}
        self._solved: list[tuple[float, float]] = []  # (log budget, log N) of the last two plans over N
        # single-term variables have an explicit x(lambda)
        self.single = np.sum(self.terms.coef > 0, axis=1) == 1
        self.fpt_terms = prob.flop_model.terms()
        self.all_idx = np.arange(self.terms.n_vars)

    def pinned(self, var: int, value: float) -> "KKTSolver":
        """The same solver with token variable ``var`` (0: D, 1 + i: the i-th specializing domain's D')
        held at ``value`` (both bounds), for profiles of the objective along one coordinate."""
        import copy

        new = copy.copy(self)
        new.lo0, new.hi0 = self.lo0.copy(), self.hi0.copy()
        new.lo0[var] = new.hi0[var] = float(value)
        new._slots = {}
        new._lam_guess = [None, None]
        new._solved = []
        return new

    # ------------------------------------------------------------------ budget
    def _fpt(self, N: float) -> tuple[float, float]:
        """f(N) and N f'(N)."""
        f = sum(c * N ** e for c, e in self.fpt_terms)
        nf = sum(c * e * N ** e for c, e in self.fpt_terms)
        return float(f), float(nf)

    def token_budget(self, N: float, budget: float) -> tuple[float, float]:
        """T(N) and N T'(N)."""
        f, nf = self._fpt(N)
        T = (budget - 2.0 * N * self.infer) / f
        return T, (-2.0 * N * self.infer) / f - T * nf / f

    # ------------------------------------------------------------------ x(lambda)
    def _slot(self, idx: np.ndarray) -> dict[str, Any]:
        """Per-block constants of x(lambda), computed once (block: all variables, D alone, or the D')."""
        key = (int(idx[0]), len(idx)) if len(idx) else (0, 0)
        got = self._slots.get(key)
        if got is None:
            t = self.terms
            has = self.has_terms[idx]
            multi = np.flatnonzero(~self.single[idx] & has)
            got = {
                "idx": idx, "has": has, "cp": np.where(has, t.coef[idx, 0] * t.power[idx, 0], 1.0),
                "expo": -1.0 / (t.power[idx, 0] + 1.0), "off": t.offset[idx, 0], "multi": multi,
                "sub": TokenTerms(t.n_coef, t.n_exp, 0.0, len(multi), t.coef[idx][multi], t.power[idx][multi], t.offset[idx][multi]),
                "unbounded": bool(np.any(has & ~np.isfinite(self.hi0[idx]))),
                "plain": bool(np.all(has)) and len(multi) == 0,  # every variable one term: x(lambda) explicit
            }
            self._slots[key] = got
        return got

    def _x_of_lam(self, lam: float, sl: dict[str, Any], lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x_j(lambda), dx_j/dlog lambda) for the variables of a block; lo/hi are the block's bounds."""
        has = sl["has"]
        if lam <= 0:
            return np.where(has, hi, lo), np.zeros(len(lo))
        base = (lam / sl["cp"]) ** sl["expo"]  # the caller holds np.errstate
        if sl["plain"]:
            x = base - sl["off"]
            inside = (x > lo) & (x < hi)
            return np.minimum(np.maximum(x, lo), hi), np.where(inside, sl["expo"] * base, 0.0)
        x = np.where(has, base - sl["off"], lo)
        dx = np.where(has, sl["expo"] * base, 0.0)  # d(base)/dlog lambda = expo * base
        multi = sl["multi"]
        if len(multi):
            xm = self._newton_x(lam, sl["sub"], np.maximum(x[multi], 1.0), lo[multi], hi[multi])
            x[multi] = xm
            t = sl["sub"]
            dgm = t.dg(xm)
            dx[multi] = np.where(dgm < 0, lam / dgm, 0.0)
        inside = (x > lo) & (x < hi)
        return np.minimum(np.maximum(x, lo), hi), np.where(inside, dx, 0.0)

    @staticmethod
    def _newton_x(lam: float, t: TokenTerms, x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Solve g_j(x) = lam for several-term variables: safeguarded Newton in log x within [lo, hi]."""
        a = np.log(np.maximum(lo, 1e-300))
        b = np.log(np.where(np.isfinite(hi), hi, 1e40))
        gl, gh = t.g(np.exp(a)), t.g(np.exp(b))
        done_lo, done_hi = gl <= lam, gh >= lam
        y = np.clip(np.log(np.maximum(x, 1e-300)), a, b)
        for _ in range(200):
            xv = np.exp(y)
            gv = t.g(xv)
            f = np.log(gv) - math.log(lam)
            a = np.where(f > 0, y, a)  # g decreasing: f > 0 -> the root is to the right
            b = np.where(f < 0, y, b)
            df = xv * t.dg(xv) / gv
            with np.errstate(divide="ignore", invalid="ignore"):
                step = np.where(df < 0, -f / df, 0.0)
            y_new = y + step
            bad = ~((y_new > a) & (y_new < b)) | ~np.isfinite(y_new)
            y_new = np.where(bad & (f != 0), 0.5 * (a + b), y_new)
            if np.all(np.abs(y_new - y) <= 1e-15 * np.maximum(1.0, np.abs(y))):
                y = y_new
                break
            y = y_new
        return np.where(done_lo, lo, np.where(done_hi, hi, np.exp(y)))

    def _allocate(self, T: float, idx: np.ndarray, lo_all: np.ndarray, hi_all: np.ndarray, slot: int) -> tuple[np.ndarray, float] | None:
        """x_j for j in idx with sum x_j <= T; returns (x, lambda) or None when infeasible.

        lambda is the root of F(u) = sum_j x_j(e^u) - T (decreasing in u = log lambda), by Newton
        steps with the analytic dF/du, kept inside a bracket (bisection when a step leaves it).
        """
        sl = self._slot(idx)
        lo, hi = lo_all[idx], hi_all[idx]
        if float(lo.sum()) > T * (1 + 1e-12):
            return None
        if not sl["unbounded"]:  # every variable with a term has a finite cap: the budget may not bind
            x_cap, _ = self._x_of_lam(0.0, sl, lo, hi)
            if float(x_cap.sum()) <= T:
                return x_cap, 0.0
        guess = None
        prev = self._lam_guess[slot]
        if prev is not None:
            lam0, T0, elasticity = prev  # sum x ~ lambda^elasticity near the last solution
            if lam0 > 0 and elasticity < 0 and math.isfinite(elasticity):
                guess = lam0 * (T / T0) ** (1.0 / elasticity)
        if guess is None or not math.isfinite(guess) or guess <= 0:
            gs = self.terms.g(np.full(self.terms.n_vars, T / len(idx)))[idx]
            fin = sl["has"] & np.isfinite(gs) & (gs > 0)
            guess = float(np.median(gs[fin])) if np.any(fin) else 1.0
        u = math.log(guess)
        a, b = -math.inf, math.inf  # F(a) > 0 > F(b)
        x_at_u = None
        dF = math.nan
        for it in range(200):
            x, dx = self._x_of_lam(math.exp(u), sl, lo, hi)
            F = float(x.sum()) - T
            dF = float(dx.sum())
            if F > 0:
                a = u
            elif F < 0:
                b = u
            if abs(F) <= 1e-14 * T:  # the residue is then spread over the interior variables below
                x_at_u = x
                break
            u_new = bracketed_newton_step(u, F, dF, a, b, it)
            if abs(u_new - u) <= 1e-14 * max(1.0, abs(u)):
                u = u_new
                break
            u = u_new
            if abs(u) > 2e3:
                return None
        lam = math.exp(u)
        x = x_at_u if x_at_u is not None else self._x_of_lam(lam, sl, lo, hi)[0]
        self._lam_guess[slot] = (lam, T, dF / T if math.isfinite(dF) else math.nan)
        # the budget exactly (the root is exact to rounding; the residue goes to the interior variables)
        resid = T - float(x.sum())
        free = (x > lo) & (x < hi)
        if np.any(free):
            x[free] += resid * x[free] / float(x[free].sum())
        elif resid < 0:
            x *= T / float(x.sum())
        return x, lam

    def inner(self, N: float, budget: float) -> _Inner:
        """Optimal tokens at fixed N, with V(N) and dV/dlog N."""
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            return self._inner(N, budget)

    def _inner(self, N: float, budget: float) -> _Inner:
        prob = self.prob
        T, nT = self.token_budget(N, budget)
        nvar = self.terms.n_vars
        if not T > 0:
            return _Inner(False, np.full(nvar, math.nan), (), math.inf, math.nan, "inference alone exceeds the budget at this model size")
        lo, hi = self.lo0, self.hi0
        if self.r_min is not None or self.r_max is not None:
            lo, hi = lo.copy(), hi.copy()
        if self.r_min is not None:
            lo[0] = max(lo[0], self.r_min * N)
        if self.r_max is not None:
            hi[0] = min(hi[0], self.r_max * N)
        if lo[0] > hi[0] * (1 + 1e-12):
            return _Inner(False, np.full(nvar, math.nan), (), math.inf, math.nan, "tokens-per-parameter limits conflict with the pretraining cap at this model size")
        all_idx = self.all_idx
        if self.phi is None:
            res = self._allocate(T, all_idx, lo, hi, 0)
            if res is None:
                return _Inner(False, np.full(nvar, math.nan), (), math.inf, math.nan, "the token lower bounds exceed the budget at this model size")
            x, lam = res
            lams: tuple[float, ...] = (lam,)
            lam_d = lam
            dT = lam * nT
        else:
            rd = self._allocate(self.phi * T, all_idx[:1], lo, hi, 0)
            rs = self._allocate((1.0 - self.phi) * T, all_idx[1:], lo, hi, 1)
            if rd is None or rs is None:
                return _Inner(False, np.full(nvar, math.nan), (), math.inf, math.nan, "the token lower bounds exceed a share of the fixed split at this model size")
            x = np.concatenate([rd[0], rs[0]])
            lams = (rd[1], rs[1])
            lam_d = rd[1]
            dT = (rd[1] * self.phi + rs[1] * (1.0 - self.phi)) * nT
        value = self.terms.a(N) + self.terms.const + self.terms.h_total(x)
        slope = self.terms.n_da(N) - dT
        # D at an N-dependent bound (tokens per parameter): its multiplier enters dV/dlog N
        d = x[0]
        if self.r_min is None and self.r_max is None:
            return _Inner(True, x, lams, value, slope)
        t = self.terms
        g0 = float(np.sum(np.where(t.coef[0] > 0, t.coef[0] * t.power[0] * (d + t.offset[0]) ** (-t.power[0] - 1.0), 0.0)))
        if self.r_min is not None and d <= self.r_min * N * (1 + 1e-12) and self.r_min * N >= self.lo0[0]:
            slope += (lam_d - g0) * self.r_min * N
        elif self.r_max is not None and d >= self.r_max * N * (1 - 1e-12) and self.r_max * N <= self.hi0[0]:
            slope += (lam_d - g0) * self.r_max * N
        return _Inner(True, x, lams, value, slope)

    # ------------------------------------------------------------------ solutions
    def _solution(self, N: float, budget: float, inn: _Inner, notes: tuple[str, ...] = ()) -> Solution:
        prob = self.prob
        S = np.zeros(prob.K)
        S[prob.spec_index] = inn.x[1:]
        D = float(inn.x[0])
        value = float(prob.objective(N, D, S))
        f, _ = self._fpt(N)
        if self.phi is None:
            dv = -inn.lam[0] * budget / f
        else:
            dv = -(inn.lam[0] * self.phi + inn.lam[1] * (1 - self.phi)) * budget / f
        return Solution(N, D, S, value, "optimal", self.path, self.certified_class, solver_value=inn.value, d_value_d_log_budget=float(dv), notes=notes)

    def _infinite(self) -> Solution | None:
        if not self.terms.infinite:
            return None
        return infeasible_solution(self.prob.K, self.path, f"the law predicts an infinite loss for domain {self.terms.infinite[0]!r} without specialization (its specialization term C/D'^gamma has no offset, D0 = 0)")

    def solve_at(self, N: float, budget: float) -> Solution:
        if self._infinite() is not None:
            return self._infinite()  # type: ignore[return-value]
        inn = self.inner(N, budget)
        if not inn.ok:
            return infeasible_solution(self.prob.K, self.path, f"{inn.message} (N = {N:.4g})")
        return self._solution(N, budget, inn)

    def solve(self, budget: float, last: tuple[float | None, Solution] | None = None, *, near: float | None = None) -> Solution:
        """The optimal plan over N (bounds from the problem), from a scan of dV/dlog N and Brent on its root.

        ``last`` (budget, plan) of a nearby budget, or ``near`` (a model size near the optimum): the scan
        starts on [N/4, 4 N] around it (N scaled by the square root of the budget ratio) and widens
        where the profile still falls towards an edge."""
        if self._infinite() is not None:
            return self._infinite()  # type: ignore[return-value]
        prob = self.prob  # search_bounds takes the budget itself
        lo, hi, hard_lo, hard_hi = prob.search_bounds(budget)
        cache: dict[float, _Inner] = {}

        def at(x: float) -> _Inner:
            if x not in cache:
                cache[x] = self.inner(math.exp(x), budget)
            return cache[x]

        if lo >= hi * (1 - 1e-12):
            inn = at(math.log(lo))
            return self._solution(lo, budget, inn) if inn.ok else infeasible_solution(prob.K, self.path, inn.message)
        a, b = math.log(lo), math.log(hi)
        # how far each edge may move: to the problem's bound, or (a soft bound) to the internal limits of N
        floor = a if hard_lo else min(a, math.log(N_RANGE[0]))
        ceil = b if hard_hi else max(b, math.log(N_RANGE[1]))
        points = 13
        if near is None and last is not None and last[0] is not None:
            near = last[1].model_size * math.sqrt(budget / last[0])
            h = self._solved
            if len(h) == 2 and h[1][0] != h[0][0] and abs(h[1][1] - math.log(last[1].model_size)) < 1e-9:
                # the last two plans' log N against log C (a sweep): their slope instead of 1/2 puts the
                # middle of the scan next to the root, and Brent's first secant step from it lands close
                slope = (h[1][1] - h[0][1]) / (h[1][0] - h[0][0])
                if 0.0 < slope < 1.0:
                    near = math.exp(h[1][1] + slope * (math.log(budget) - h[1][0]))
        if near is not None and near > 0 and math.isfinite(near):
            guess = math.log(near)
            a2, b2 = max(a, guess - math.log(4)), min(b, guess + math.log(4))
            if a2 < b2:
                a, b, points = a2, b2, 3
        for _ in range(24):
            grid = np.linspace(a, b, points)
            inns = [at(float(x)) for x in grid]
            ok = [i for i, r in enumerate(inns) if r.ok]
            if not ok:
                break
            # extend an edge where the profile still falls towards it (a soft or a narrowed edge)
            if ok[0] == 0 and inns[0].slope > 0 and a > floor + 1e-9:
                span = b - a
                a, b = max(floor, a - span), grid[min(2, points - 1)]
                continue
            if ok[-1] == points - 1 and inns[-1].slope < 0 and b < ceil - 1e-9:
                span = b - a
                a, b = grid[max(points - 3, 0)], min(ceil, b + span)
                continue
            break
        feas = [(float(x), cache[float(x)]) for x in sorted(cache) if cache[float(x)].ok]
        if not feas:
            msgs = sorted({r.message for r in cache.values() if r.message})
            return infeasible_solution(prob.K, self.path, "no model size gave a feasible plan" + (f" ({msgs[0]})" if msgs else ""))
        # local minima: sign changes of the slope from - to + between feasible neighbours, and edges
        cands: list[float] = []
        xs = [x for x, _ in feas]
        sl = [r.slope for _, r in feas]
        scanned = sorted(cache)

        def edge(i: int, step: int) -> float:
            """The feasible edge point xs[i], or, where the profile still falls towards a scanned
            infeasible neighbour, the minimum between them: the profile's root or the edge of the
            feasible set, found by bisection (a token bound that starts to bind there makes a kink,
            and past the edge the bounds conflict)."""
            j = scanned.index(xs[i]) + step
            if not 0 <= j < len(scanned) or cache[scanned[j]].ok:
                return xs[i]
            good, bad = xs[i], scanned[j]
            for _ in range(60):
                if abs(bad - good) < 1e-12:
                    break
                mid = 0.5 * (good + bad)
                inn = at(mid)
                if not inn.ok:
                    bad = mid
                elif inn.slope * step < 0:
                    good = mid  # still falling towards the edge
                else:  # the profile turns before the edge: its root lies between good and mid
                    try:
                        return brentq(lambda v: at(v).slope, min(good, mid), max(good, mid), xtol=1e-13, rtol=1e-15, maxiter=200)
                    except (ValueError, RuntimeError):
                        return good if at(good).value <= inn.value else mid
            return good

        if sl[0] >= 0:
            cands.append(edge(0, -1))
        for i in range(len(xs) - 1):
            if sl[i] < 0 <= sl[i + 1]:
                if sl[i + 1] == 0:
                    cands.append(xs[i + 1])
                    continue
                try:
                    root = brentq(lambda v: at(v).slope if at(v).ok else math.inf, xs[i], xs[i + 1], xtol=1e-13, rtol=1e-15, maxiter=200)
                except (ValueError, RuntimeError):
                    root = xs[i] if feas[i][1].value <= feas[i + 1][1].value else xs[i + 1]
                cands.append(root)
        if sl[-1] < 0:
            cands.append(edge(len(xs) - 1, +1))
        if not cands:  # slopes of mixed sign only through infeasible gaps: the best scanned point
            cands = [min(feas, key=lambda t: t[1].value)[0]]
        best = min(cands, key=lambda x: at(x).value if at(x).ok else math.inf)
        inn = at(best)
        notes: tuple[str, ...] = ()
        if len(cands) > 1:
            notes = (f"the profile over log N has {len(cands)} local minima on the scan; the best was kept",)
        sol = self._solution(math.exp(best), budget, inn, notes)
        self._solved = (self._solved + [(math.log(budget), best)])[-2:]
        if len(cands) > 1 and self.certified_class:
            sol = Solution(**{**sol.__dict__, "certified": False})
        return sol
