r"""The token problem of the effective-tokens laws at numpy speed (``split-effective``, ``split-transfer``).

Each such domain k contributes a term in which D and D'_k sit together inside a negative power,

    w_k B_k (D + c_k(N) D'_k^{e_k})^{-beta},     c_k(N) = c_k N^{b_k},  0 < e_k <= 1

(split-effective: c_k = s_k, b_k = 0, e_k = eta_k; split-transfer: c_k N^b = k_k N^b, e_k = a_k), so
the separable KKT solver of :mod:`.kkt` does not apply. Any separable power terms of other domains
(B D^-beta of domains that do not specialize, C (D' + D0)^-gamma of split-additive domains) and the
robust ``"mean"`` over draws (one coupled term per draw and domain, averaged) are carried along.

**Inner problem** (fixed N): minimise

    F(D, D') = phi_0(D) + sum_k [ sum_t a_t (D + c_t D'_k^{e_t})^{-beta_t} + psi_k(D'_k) ]

subject to D + sum_k D'_k <= T(N) and l <= x <= u (token caps, tokens-per-parameter bounds on D,
D' >= 0). It is convex: u = D + c D'^e is concave (e <= 1) and u^-beta convex decreasing, so each
coupled term is convex in (D, D'_k). Write q_t = a_t beta_t u_t^{-beta_t-1} (the marginal loss of an
effective token) and w_t = c_t D'^e_t (the worth). Per specializing domain, with S = D'_k,

    G1 = S dF/dS = -sum_t q_t e_t w_t (+ separable terms)       (gradient in log S, sign flipped)
    G2 = S^2 d2F/dS2 = sum_t q_t e_t w_t [(beta_t + 1) e_t w_t / u_t + 1 - e_t]  (+ ...)
    G3 = S d2F/dD dS = sum_t q_t (beta_t + 1) e_t w_t / u_t,   G4 = sum_t q_t (beta_t + 1) / u_t,
    G5 = -dF_k/dD = sum_t q_t,

all bounded as S -> 0 (the raw derivative S^(e-1) is not: d/dS' of D'^e is infinite at 0 for e < 1,
so every domain with positive weight gets some D' > 0 whenever the budget binds; with e = 1 the
marginal is finite at 0 and D'_k = 0 is a corner solution). The Hessian is arrow-shaped: D couples to
every D'_k, the D'_k not to each other. The KKT conditions with the budget multiplier lambda are solved
in three nested monotone 1-D problems, each a safeguarded Newton iteration in log variables with a
bracket, warm-started from the previous solve:

1. D'_k(D, lambda): G1/S = lambda, i.e. log G1(y) - y = log lambda in y = log S, decreasing in y with
   slope -G2/G1 (clipped to [l_k, u_k]; a domain without terms sits at l_k);
2. D(lambda): g_D(D) = g_0(D) + sum_k G5_k = lambda (the marginal loss of a pretraining token over
   every domain, D'_k re-solved at each D), decreasing in D with the Schur-complement slope
   dg_D/dD = -(h_0'' + sum_k G4_k - sum_{k interior} G3_k^2 / G2_k); clipped to [l_D, u_D];
3. lambda: X(lambda) = D + sum_k D'_k = T(N), decreasing in lambda, with
   dD/dlambda = (1 - sum_{k interior} S_k G3_k / G2_k) / (dg_D/dD) and
   dD'_k/dlambda = -S_k^2 / G2_k - (S_k G3_k / G2_k) dD/dlambda; lambda = 0 when every variable reaches
   its cap first. The ``fixed`` strategy fixes D = min(u_D, phi T) (the loss falls with D) and solves
   step 3 over the D'_k alone on (1 - phi) T.

Each level is O(K) per step. The residue of the root (~1e-14 T) is spread over the interior
variables, so the budget holds exactly.

**Outer problem**: the same scan of dV/dlog N and Brent on its root as :mod:`.kkt`, with the envelope
theorem now including the N-dependence of the worth (split-transfer):

    dV/dlog N = N a'(N) - lambda N T'(N) - sum_t q_t b_t w_t + (lambda - g_D) r N   [D at a bound r N].

V need not be convex in log N: unimodality is checked by the scan, and the plan is not certified
(``dcp+search``), exactly as on the conic path.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .kkt import KKTSolver, SeparableTerms, TermsCache, bracketed_newton_step, TokenTerms, _Inner, _NotSeparable, _domain_terms
from .problem import Problem

__all__ = ["EffectiveTerms", "effective_applicable", "EffectiveKKTSolver", "build_effective_terms"]

#: smallest D'_k represented (tokens): a worth c S^e at S = 1e-300 is below 1e-6 tokens even for e = 0.05
_SPEC_FLOOR = 1e-300
_LOG_FLOOR = math.log(_SPEC_FLOOR)


@dataclass(frozen=True)
class EffectiveTerms:
    """The objective at fixed N: separable power terms plus coupled effective-tokens terms.

    separable: :class:`~planner.allocate.kkt.TokenTerms` (a(N), the constant, D-only and D'-only terms);
    per coupled term t: var (index of the specializing domain, 0-based among them), amp = w B,
    beta, worth_coef c and worth_n_exp b (worth c N^b D'^e), worth_exp e.
    """

    separable: TokenTerms
    var: np.ndarray
    amp: np.ndarray
    beta: np.ndarray
    worth_coef: np.ndarray
    worth_n_exp: np.ndarray
    worth_exp: np.ndarray

    @property
    def infinite(self) -> tuple[str, ...]:
        return self.separable.infinite

    def worth_at(self, N: float) -> np.ndarray:
        """The worth coefficients c_t N^{b_t} at model size N."""
        return self.worth_coef * N ** self.worth_n_exp


def _worth_power(form: Any, p: dict[str, float]) -> tuple[float, float, float]:
    """(c, b, e) with worth = c N^b D'^e, checked to be a power of N with an N-free exponent."""
    c1, e1 = (float(v) for v in form.worth_terms(p, 1.0))
    c2, e2 = (float(v) for v in form.worth_terms(p, 2.0))
    c3, e3 = (float(v) for v in form.worth_terms(p, 1e10))
    if not (0.0 < e1 <= 1.0):
        raise _NotSeparable(f"the {form.name} law's worth exponent {e1:g} is outside (0, 1] (not convex)")
    if not (e1 == e2 == e3):
        raise _NotSeparable(f"the {form.name} law's worth exponent depends on N")
    if c1 == 0.0 and c2 == 0.0 and c3 == 0.0:
        return 0.0, 0.0, e1
    if not (c1 > 0 and c2 > 0 and c3 > 0 and all(math.isfinite(v) for v in (c1, c2, c3))):
        raise _NotSeparable(f"the {form.name} law's worth coefficient is not positive")
    b = math.log2(c2 / c1)
    if abs(c1 * 1e10 ** b - c3) > 1e-9 * c3:
        raise _NotSeparable(f"the {form.name} law's worth coefficient is not a power of N")
    return c1, b, e1


#: why this solver refuses a law without a coupled term (then the separable solver's own reason is the one to give)
NO_COUPLED_TERM = "no effective-tokens term (the separable solver applies)"


def build_effective_terms(prob: Problem) -> EffectiveTerms:
    """The separable and coupled terms of ``prob``'s min-loss objective (raises _NotSeparable)."""
    from ..laws.split import EffectiveTokensForm

    spec = prob.spec_index
    col = {int(k): i for i, k in enumerate(spec)}
    draws = [d.params for d in prob.draws] if (prob.robust == "mean" and prob.draws) else [prob.params]
    share = 1.0 / len(draws)
    acc = SeparableTerms(len(spec))
    coupled: list[tuple[int, float, float, float, float, float]] = []
    for params in draws:
        for k in range(prob.K):
            w = float(prob.weights[k]) * share
            if w == 0.0:
                continue
            form, pk, can = prob.forms[k], params[k], bool(prob.can_spec[k])
            if isinstance(form, EffectiveTokensForm) and can:
                c, b, e = _worth_power(form, pk)
                beta, amp = float(pk["beta"]), w * float(pk["B"])
                if not (beta > 0 and amp >= 0):
                    raise _NotSeparable("a data exponent <= 0 or a negative amplitude")
                # E and A/N^alpha are separable; the data term couples D and D' unless D' is worth nothing
                acc.add_domain([("const", float(pk["E"]), 0.0, 0.0), ("N", float(pk["A"]), -float(pk["alpha"]), 0.0)], w, prob.names[k], None)
                if c == 0.0:
                    acc.add_token_term(0, amp, beta, 0.0)
                elif amp > 0:
                    coupled.append((col[k], amp, beta, c, b, e))
                continue
            acc.add_domain(_domain_terms(form, pk, can), w, prob.names[k], 1 + col[k] if k in col else None)
    if not coupled:
        raise _NotSeparable(NO_COUPLED_TERM)
    coupled.sort(key=lambda t: t[0])
    arr = np.array(coupled, dtype=float)
    return EffectiveTerms(acc.terms(), arr[:, 0].astype(int), arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4], arr[:, 5])


#: the effective-tokens solver's terms, from its applicability check to the solver
_TERMS_CACHE = TermsCache(build_effective_terms)


def effective_applicable(prob: Problem) -> tuple[bool, str]:
    """Whether the numpy effective-tokens solver applies to ``prob``, and why not."""
    return _TERMS_CACHE.applicable(prob)


@dataclass(frozen=True)
class _SpecParts:
    """Per specializing domain at one (D, D'): the quantities G1..G5 of the module docstring."""

    g1: np.ndarray
    g2: np.ndarray
    g3: np.ndarray
    g4: np.ndarray
    g5: np.ndarray


@dataclass(frozen=True)
class _Tokens:
    """The Lagrangian minimiser at one multiplier: tokens, which are interior, and derivatives."""

    D: float
    S: np.ndarray
    d_interior: bool
    s_interior: np.ndarray
    parts: _SpecParts
    dX_dlog_lam: float


class EffectiveKKTSolver(KKTSolver):
    """The token problem of a law with effective-tokens terms from its KKT conditions (three nested
    safeguarded Newton iterations, module docstring), N by a root of dV/dlog N (:class:`KKTSolver`)."""

    def __init__(self, prob: Problem, *, path: str, certified: bool, terms: EffectiveTerms | None = None) -> None:
        eterms = _TERMS_CACHE.take(prob) if terms is None else terms
        super().__init__(prob, path=path, certified=certified, terms=eterms.separable)
        self.eterms = eterms
        Ks = self.n_spec
        self.cvar = eterms.var
        self.one_per_var = len(self.cvar) == Ks and bool(np.all(self.cvar == np.arange(Ks)))
        sep = self.terms
        self.s_sep = bool(np.any(sep.coef[1:] > 0))  # D'-only separable terms (split-additive domains)
        self.s_has = (np.bincount(self.cvar, minlength=Ks) > 0) | np.any(sep.coef[1:] > 0, axis=1)
        d_mask = sep.coef[0] > 0
        self.d_c, self.d_p, self.d_o = sep.coef[0][d_mask], sep.power[0][d_mask], sep.offset[0][d_mask]
        self.s_c, self.s_p, self.s_o = sep.coef[1:], sep.power[1:], sep.offset[1:]
        self._warm: tuple[float, np.ndarray] | None = None  # (D, D') of the last solve
        self.s_fixed = ~self.s_has  # D' without terms: at its lower bound
        self._bounds_key: tuple[bytes, bytes] | None = None
        self._bounds: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))

    def pinned(self, var: int, value: float) -> "EffectiveKKTSolver":
        new = super().pinned(var, value)
        assert isinstance(new, EffectiveKKTSolver)
        new._warm = None
        return new

    # ------------------------------------------------------------------ pieces
    def _sum(self, v: np.ndarray) -> np.ndarray:
        return v if self.one_per_var else np.bincount(self.cvar, v, minlength=self.n_spec)

    def _d_terms(self, D: float) -> tuple[float, float]:
        """g_0(D) = -phi_0'(D) and phi_0''(D) of the D-only terms."""
        if not len(self.d_c):
            return 0.0, 0.0
        v = self.d_c * self.d_p * (D + self.d_o) ** (-self.d_p - 1.0)
        return float(v.sum()), float((v * (self.d_p + 1.0) / (D + self.d_o)).sum())

    def _parts(self, D: float, S: np.ndarray, cw: np.ndarray) -> _SpecParts:
        t = self.eterms
        e = t.worth_exp
        Sv = S if self.one_per_var else S[self.cvar]
        w = cw * Sv ** e
        ew = e * w
        u = D + w
        q = t.amp * t.beta * u ** (-t.beta - 1.0)
        r = (t.beta + 1.0) / u
        qe = q * ew
        g1 = self._sum(qe)
        g2 = self._sum(qe * (r * ew + 1.0 - e))
        g3 = self._sum(qe * r)
        g4 = self._sum(q * r)
        g5 = self._sum(q)
        if self.s_sep:
            Sc = S[:, None]
            v = np.where(self.s_c > 0, self.s_c * self.s_p * (Sc + self.s_o) ** (-self.s_p - 1.0), 0.0)
            g1 = g1 + (v * Sc).sum(axis=1)
            g2 = g2 + (v * (self.s_p + 1.0) * Sc * Sc / (Sc + self.s_o)).sum(axis=1)
        return _SpecParts(g1, g2, g3, g4, g5)

    def _coupled_value(self, D: float, S: np.ndarray, cw: np.ndarray) -> float:
        t = self.eterms
        Sv = S if self.one_per_var else S[self.cvar]
        return float((t.amp * (D + cw * Sv ** t.worth_exp) ** -t.beta).sum())

    # ------------------------------------------------------------------ level 1: D'(D, lambda)
    def _spec_at(self, D: float, lam: float, cw: np.ndarray, lo: np.ndarray, hi: np.ndarray, S0: np.ndarray) -> tuple[np.ndarray, np.ndarray, _SpecParts]:
        """D'_k minimising F + lambda sum D' at fixed D (each domain a 1-D KKT condition), the mask of
        the interior ones, and G1..G5 there. Safeguarded Newton on log G1(y) - y = log lambda, y = log D'."""
        ya, yb = self._log_bounds(lo, hi)
        y = np.minimum(np.maximum(np.log(np.maximum(S0, _SPEC_FLOOR)), ya), yb)
        a, b = ya, yb
        fixed = self.s_fixed
        log_lam = math.log(lam)
        at_lo = at_hi = fixed
        for _ in range(200):
            parts = self._parts(D, np.exp(y), cw)
            f = np.log(parts.g1) - y - log_lam
            at_lo = fixed | ((y <= ya) & (f <= 0))
            at_hi = (y >= yb) & (f >= 0) & ~fixed
            a = np.where(f > 0, y, a)
            b = np.where(f < 0, y, b)
            y_new = np.minimum(np.maximum(y + f * parts.g1 / parts.g2, ya), yb)
            bad = ~((y_new >= a) & (y_new <= b))  # also nan
            if bad.any():
                y_new = np.where(bad, 0.5 * (a + b), y_new)
            stop = at_lo | at_hi
            if stop.any():
                y_new = np.where(stop, y, y_new)
            if (np.abs(y_new - y) <= 1e-13 * np.maximum(1.0, np.abs(y))).all():
                break
            y = y_new
        bound = at_lo | at_hi
        if bound.any():
            S = np.where(at_lo, lo, np.where(at_hi, np.maximum(hi, lo), np.exp(y)))
            parts = self._parts(D, S, cw)
        else:
            S = np.exp(y)
        return S, ~bound, parts

    def _log_bounds(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The brackets of y = log D' (the last pair, cached: the same for every D and lambda of one solve)."""
        key = (lo.tobytes(), hi.tobytes())
        if self._bounds_key != key:
            ya = np.log(np.maximum(lo, _SPEC_FLOOR))
            self._bounds = (ya, np.maximum(np.log(np.maximum(hi, _SPEC_FLOOR)), ya))
            self._bounds_key = key
        return self._bounds

    # ------------------------------------------------------------------ level 2: D(lambda)
    def _tokens_at(self, lam: float, cw: np.ndarray, lo: np.ndarray, hi: np.ndarray, d_fixed: float | None) -> _Tokens:
        """The minimiser of F + lambda (D + sum D') over the box (D held at ``d_fixed`` if given), with
        dX/dlog lambda, X = D + sum D' (``d_fixed``: X = sum D')."""
        D0, S0 = self._warm if self._warm is not None else (None, None)
        if S0 is None or len(S0) != self.n_spec:
            S0 = np.maximum(np.minimum(hi[1:], 1e9), lo[1:])
        slo, shi = lo[1:], hi[1:]
        if d_fixed is not None:
            S, inner_s, parts = self._spec_at(d_fixed, lam, cw, slo, shi, S0)
            dS = np.where(inner_s, -S * parts.g1 / parts.g2, 0.0)  # dS/dlog lambda at the root G1 = lambda S
            self._warm = (d_fixed, S)
            return _Tokens(d_fixed, S, False, inner_s, parts, float(dS.sum()))
        za, zb = math.log(lo[0]), math.log(max(hi[0], lo[0]))
        z = min(max(math.log(D0) if D0 else 0.5 * (za + zb) if math.isfinite(zb) else za + 10.0, za), zb)
        a, b = za, zb
        log_lam = math.log(lam)
        S = S0
        d_int = True
        J = -math.inf
        for _ in range(200):
            D = math.exp(z)
            S, inner_s, parts = self._spec_at(D, lam, cw, slo, shi, S)
            g0, h0 = self._d_terms(D)
            gD = g0 + float(parts.g5.sum())
            f = math.log(gD) - log_lam
            schur = float(np.sum(np.where(inner_s, parts.g3 ** 2 / parts.g2, 0.0)))
            J = -(h0 + float(parts.g4.sum()) - schur)  # dg_D/dD (total), < 0
            if (z <= za and f <= 0) or (z >= zb and f >= 0):
                d_int = False
                break
            if f > 0:
                a = z
            elif f < 0:
                b = z
            slope = D * J / gD
            z_new = z - f / slope if slope < 0 else math.nan
            z_new = min(max(z_new, za), zb) if math.isfinite(z_new) else math.nan
            if not (a <= z_new <= b):
                z_new = 0.5 * (a + b) if math.isfinite(b) else z + 2.0
            if abs(z_new - z) <= 1e-13 * max(1.0, abs(z)):
                z = z_new
                break
            z = z_new
        D = math.exp(z) if d_int else (lo[0] if z <= za else max(hi[0], lo[0]))
        if not d_int or D != math.exp(z):
            S, inner_s, parts = self._spec_at(D, lam, cw, slo, shi, S)
        c = np.where(inner_s, S * parts.g3 / parts.g2, 0.0)
        dD = (1.0 - float(c.sum())) / J if (d_int and J < 0) else 0.0  # dD/dlambda
        dS = np.where(inner_s, -S * S / parts.g2 - c * dD, 0.0)  # dD'_k/dlambda (total)
        self._warm = (D, S)
        return _Tokens(D, S, d_int, inner_s, parts, lam * (dD + float(dS.sum())))

    # ------------------------------------------------------------------ level 3: lambda
    def _budget_root(self, T: float, cw: np.ndarray, lo: np.ndarray, hi: np.ndarray, d_fixed: float | None, slot: int) -> tuple[_Tokens | None, float]:
        """The multiplier lambda with X(lambda) = T (or 0 when every variable reaches its cap first);
        ``hi``: the caps (the tokens themselves are bracketed by min(cap, 4 T))."""
        free = np.concatenate([[d_fixed is None], self.s_has])
        lo_sum = float(lo[0]) if d_fixed is None else 0.0
        lo_sum += float(lo[1:].sum())
        if lo_sum > T * (1 + 1e-12):
            return None, math.nan
        if not np.any(free):
            return self._tokens_at(1.0, cw, lo, lo, d_fixed), 0.0
        if np.all(np.isfinite(hi[free])):
            cap = np.where(free, hi, lo)
            total = float(cap[1:].sum()) + (float(cap[0]) if d_fixed is None else 0.0)
            if total <= T:
                D = float(cap[0]) if d_fixed is None else d_fixed
                S = cap[1:].copy()
                self._warm = (D, S)
                return _Tokens(D, S, False, np.zeros(self.n_spec, dtype=bool), self._parts(D, S, cw), 0.0), 0.0
        # finite brackets for the Newton iterations, loose enough never to bind at the root (x <= T there):
        # a bracket at T itself would hold D at T with D'_k ~ 0 for a whole range of lambda
        hi = np.minimum(hi, 4.0 * T)
        guess = None
        prev = self._lam_guess[slot]
        if prev is not None:
            lam0, T0, elasticity = prev
            if lam0 > 0 and elasticity < 0 and math.isfinite(elasticity):
                log_guess = math.log(lam0) + math.log(T / T0) / elasticity
                guess = math.exp(log_guess) if abs(log_guess) < 700 else None
        if guess is None or not math.isfinite(guess) or guess <= 0:
            n = 1 + self.n_spec if d_fixed is None else max(self.n_spec, 1)
            D = d_fixed if d_fixed is not None else T / n
            parts = self._parts(D, np.full(self.n_spec, T / n), cw)
            guess = self._d_terms(D)[0] + float(parts.g5.sum()) if d_fixed is None else float(np.max(parts.g1)) / (T / n)
            if not (math.isfinite(guess) and guess > 0):
                guess = 1e-12
        u = math.log(guess)
        a, b = -math.inf, math.inf
        tok: _Tokens | None = None
        for it in range(200):
            tok = self._tokens_at(math.exp(u), cw, lo, hi, d_fixed)
            X = float(tok.S.sum()) + (tok.D if d_fixed is None else 0.0)
            F = X - T
            dF = tok.dX_dlog_lam
            if F > 0:
                a = u
            elif F < 0:
                b = u
            if abs(F) <= 1e-14 * T:
                break
            # no bracket yet: at most a factor e^4 per step
            u_new = bracketed_newton_step(u, F, dF, a, b, it, max_unbracketed=4.0)
            if abs(u_new - u) <= 1e-14 * max(1.0, abs(u)):
                u = u_new
                break
            u = u_new
            if abs(u) > 2e3:
                return None, math.nan
        assert tok is not None
        lam = math.exp(u)
        self._lam_guess[slot] = (lam, T, tok.dX_dlog_lam / T if math.isfinite(tok.dX_dlog_lam) else math.nan)
        return tok, lam

    # ------------------------------------------------------------------ the inner problem
    def _inner(self, N: float, budget: float) -> _Inner:
        T, nT = self.token_budget(N, budget)
        nvar = 1 + self.n_spec
        nan_x = np.full(nvar, math.nan)
        if not T > 0:
            return _Inner(False, nan_x, (), math.inf, math.nan, "inference alone exceeds the budget at this model size")
        lo, hi = self.lo0.copy(), self.hi0.copy()
        if self.r_min is not None:
            lo[0] = max(lo[0], self.r_min * N)
        if self.r_max is not None:
            hi[0] = min(hi[0], self.r_max * N)
        if lo[0] > hi[0] * (1 + 1e-12):
            return _Inner(False, nan_x, (), math.inf, math.nan, "tokens-per-parameter limits conflict with the pretraining cap at this model size")
        cw = self.eterms.worth_at(N)
        if self.phi is None:
            tok, lam = self._budget_root(T, cw, lo, hi, None, 0)
            if tok is None:
                return _Inner(False, nan_x, (), math.inf, math.nan, "the token lower bounds exceed the budget at this model size")
            x = np.concatenate([[tok.D], tok.S])
            interior = np.concatenate([[tok.d_interior], tok.s_interior])
            resid = T - float(x.sum())
            budget_share = T
            lams: tuple[float, ...] = (lam,)
            lam_d, dT = lam, lam * nT
        else:
            d_fix = min(hi[0], self.phi * T)
            if lo[0] > self.phi * T * (1 + 1e-12):
                return _Inner(False, nan_x, (), math.inf, math.nan, "the token lower bounds exceed a share of the fixed split at this model size")
            budget_share = (1.0 - self.phi) * T
            tok, lam_s = self._budget_root(budget_share, cw, lo, hi, d_fix, 1)
            if tok is None:
                return _Inner(False, nan_x, (), math.inf, math.nan, "the token lower bounds exceed a share of the fixed split at this model size")
            x = np.concatenate([[d_fix], tok.S])
            interior = np.concatenate([[False], tok.s_interior])
            resid = budget_share - float(tok.S.sum())
            lam_d = self._d_terms(d_fix)[0] + float(tok.parts.g5.sum()) if self.phi * T <= hi[0] else 0.0  # D's own budget binds
            lams = (lam_d, lam_s)
            dT = (lam_d * self.phi + lam_s * (1.0 - self.phi)) * nT
        if lams[-1] > 0 and resid != 0.0:
            # the budget exactly: a shortfall of the root (~1e-14 T) goes to the interior variables, an
            # excess is taken from every variable in proportion to its distance from its lower bound
            block = np.ones(nvar, dtype=bool) if self.phi is None else np.arange(nvar) > 0
            if resid > 0 and np.any(interior):
                x[interior] += resid * x[interior] / float(x[interior].sum())
            elif resid < 0:
                slack = np.where(block, x - lo, 0.0)
                if float(slack.sum()) > 0:
                    x += resid * slack / float(slack.sum())
                x = np.maximum(x, lo)
        D, S = float(x[0]), x[1:]
        value = self.terms.a(N) + self.terms.const + self.terms.h_total(x) + self._coupled_value(D, S, cw)
        t = self.eterms
        Sv = S if self.one_per_var else S[self.cvar]
        worth = cw * Sv ** t.worth_exp
        q = t.amp * t.beta * (D + worth) ** (-t.beta - 1.0)
        slope = self.terms.n_da(N) - dT - float((q * t.worth_n_exp * worth).sum())
        if self.r_min is None and self.r_max is None:
            return _Inner(True, x, lams, value, slope)
        g_d = self._d_terms(D)[0] + float(q.sum())
        if self.r_min is not None and D <= self.r_min * N * (1 + 1e-12) and self.r_min * N >= self.lo0[0]:
            slope += (lam_d - g_d) * self.r_min * N
        elif self.r_max is not None and D >= self.r_max * N * (1 - 1e-12) and self.r_max * N <= self.hi0[0]:
            slope += (lam_d - g_d) * self.r_max * N
        return _Inner(True, x, lams, value, slope)
