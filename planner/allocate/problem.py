r"""The allocation problem in one normalised object, shared by every solver path.

Decision variables: N (parameters of the shared base model), D (general
pretraining tokens) and D'_k for each domain k that may specialize.

Objective (``mode="min-loss"``): sum_k w_k L_k(N, D, D'_k) with L_k the law of
domain k; over bootstrap draws its mean or worst case for robust plans.
Objective (``mode="min-compute"``): the FLOPs used, subject to L_k <= target_k.

Budget (training plus, when ``inference="in-budget"``, inference):

    f(N) (D + sum_k D'_k) + 2 N I  <=  C,        f(N) = sum_j c_j N^{e_j}  (FLOPs per token)

with I the served tokens (Sardana et al. 2024). The ``fixed`` strategy splits it
in two: f(N) D + phi 2 N I <= phi C and f(N) sum_k D'_k + (1 - phi) 2 N I <= (1 - phi) C.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from ..laws.base import Inputs
from ..laws.repetition import effective_tokens
from .model import AllocationError, Constraints, Domain, FlopModel

__all__ = ["Problem", "ParameterDraw", "TOKEN_SCALE", "SPEC_FLOOR"]

#: tokens and parameters are expressed in billions inside the solvers
TOKEN_SCALE = 1e9
#: smallest specialization in tokens the log-space paths represent; a branch at the floor is "not worth specializing"
SPEC_FLOOR = 1e3
#: internal limits of N when no bounds are given (parameters); a plan that reaches one is reported
#: with the limit as a binding constraint and status "limit" (not an optimum)
N_RANGE = (1e3, 1e16)
#: internal floor of the general pretraining tokens D (tokens)
MIN_PRETRAIN_TOKENS = 1.0
#: objective gradients of the point estimate from one direct analytic call (False: the general route
#: through :meth:`Problem.losses_log_grad`, kept for ``benchmarks/bench_decision.py --compare``)
DIRECT_GRADIENTS = True


@dataclass(frozen=True)
class ParameterDraw:
    """Scalar parameters of every domain's law for one parameter draw (or the point estimate)."""

    params: tuple[dict[str, float], ...]


@dataclass(frozen=True)
class Problem:
    """A normalised allocation problem (see module docstring for the maths).

    names: domain names (for plain pretraining one pseudo-domain "general").
    pseudo_general: True when the caller gave no domains.
    can_spec: per domain, D'_k is a decision variable (else D'_k = 0).
    spec_cap: hard cap on D'_k in tokens (inf: none); spec_unique: U_k for effective tokens.
    targets: target loss per domain (nan: none).
    forms/params: the law form and the point-estimate scalar parameters per domain.
    draws: parameter draws for robust objectives (empty: point estimate only).
    """

    names: tuple[str, ...]
    pseudo_general: bool
    weights: np.ndarray
    forms: tuple[Any, ...]
    params: tuple[dict[str, float], ...]
    can_spec: np.ndarray
    spec_cap: np.ndarray
    spec_unique: np.ndarray
    inference_tokens: np.ndarray
    targets: np.ndarray
    budget: float | None
    flop_model: FlopModel
    constraints: Constraints
    inference: str = "in-budget"  # "in-budget", "separate" or "ignore"
    inference_budget: float | None = None
    mode: str = "min-loss"
    fixed_fraction: float | None = None
    robust: str | None = None
    draws: tuple[ParameterDraw, ...] = ()

    # ------------------------------------------------------------------ sizes
    @property
    def K(self) -> int:
        return len(self.names)

    @property
    def spec_index(self) -> np.ndarray:
        """Indices of the domains with a D' variable."""
        return np.flatnonzero(self.can_spec)

    @property
    def total_inference_tokens(self) -> float:
        return float(np.sum(self.inference_tokens)) + float(self.constraints.inference_tokens or 0.0)

    @property
    def inference_in_budget(self) -> bool:
        return self.inference == "in-budget" and self.total_inference_tokens > 0

    @property
    def effective_spec(self) -> bool:
        return self.constraints.repetition == "effective" and bool(np.any(np.isfinite(self.spec_unique) & self.can_spec))

    @property
    def effective_pretrain(self) -> bool:
        return (
            self.constraints.repetition == "effective"
            and self.constraints.pretrain_unique_tokens is not None
            and not any("unique_tokens" in f.inputs for f in self.forms)
        )

    @property
    def pretrain_unique(self) -> float:
        u = self.constraints.pretrain_unique_tokens
        return math.inf if u is None else float(u)

    @property
    def pretrain_cap(self) -> float:
        return self.constraints.pretrain_token_cap

    def model_size_bounds(self) -> tuple[float, float]:
        """Allowed range of N from the size bounds and a separate inference budget."""
        c = self.constraints
        lo = c.min_model_size if c.min_model_size is not None else N_RANGE[0]
        hi = c.max_model_size if c.max_model_size is not None else N_RANGE[1]
        if self.inference == "separate" and self.inference_budget is not None and self.total_inference_tokens > 0:
            hi = min(hi, self.inference_budget / (2.0 * self.total_inference_tokens))
        return float(lo), float(hi)

    def search_bounds(self, budget: float | None) -> tuple[float, float, bool, bool]:
        """Bracket for the 1-D search over N: (lo, hi, lo_is_hard, hi_is_hard)."""
        lo, hi = self.model_size_bounds()
        hard_lo = self.constraints.min_model_size is not None
        hard_hi = hi < N_RANGE[1]
        if budget is not None and self.mode == "min-loss":
            # tokens per parameter between 1e-2 and 1e6 brackets every sensible plan
            g_lo = math.sqrt(budget / (6.0 * 1e6))
            g_hi = math.sqrt(budget / (6.0 * 1e-2))
            if self.inference_in_budget:
                g_hi = min(g_hi, budget / (2.0 * self.total_inference_tokens))
            if not hard_lo:
                lo = min(max(lo, g_lo), N_RANGE[1])  # never beyond the internal limits of N
            if not hard_hi:
                hi = max(min(hi, g_hi), N_RANGE[0])
            if lo > hi:
                lo, hi = (hi, hi) if hard_hi else (lo, lo)
        else:
            if not hard_lo:
                lo = max(lo, 1e6)
            if not hard_hi:
                hi = min(hi, 1e14)
        return float(lo), float(hi), hard_lo, hard_hi

    # --------------------------------------------------------------- compute
    def flops_per_token(self, model_size: Any) -> Any:
        return self.flop_model.per_token(model_size)

    def inference_flops(self, model_size: Any) -> Any:
        return 2.0 * np.asarray(model_size, dtype=float) * self.total_inference_tokens

    def training_flops(self, model_size: Any, pretrain_tokens: Any, spec_tokens: np.ndarray) -> Any:
        spec_total = np.sum(spec_tokens, axis=-1) if np.ndim(spec_tokens) else spec_tokens
        return self.flops_per_token(model_size) * (np.asarray(pretrain_tokens, dtype=float) + spec_total)

    def budget_used(self, model_size: Any, pretrain_tokens: Any, spec_tokens: np.ndarray) -> Any:
        """FLOPs charged against the budget (training, plus inference when in budget)."""
        used = self.training_flops(model_size, pretrain_tokens, spec_tokens)
        if self.inference_in_budget:
            used = used + self.inference_flops(model_size)
        return used

    def tokens_available(self, model_size: float, budget: float) -> float:
        """Total training tokens (D + sum D') the budget buys at model size N (may be <= 0)."""
        free = budget - (self.inference_flops(model_size) if self.inference_in_budget else 0.0)
        return float(free / self.flops_per_token(model_size))

    # --------------------------------------------------------------- losses
    def _effective(self, pretrain_tokens: np.ndarray, spec_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = np.asarray(pretrain_tokens, dtype=float)
        s = np.asarray(spec_tokens, dtype=float)
        decay = self.constraints.repetition_decay
        if self.effective_pretrain:
            d = effective_tokens(d, self.pretrain_unique, decay)
        if self.constraints.repetition == "effective":
            s = effective_tokens(s, np.broadcast_to(self.spec_unique, s.shape), decay)
        return d, s

    def losses(self, model_size: Any, pretrain_tokens: Any, spec_tokens: Any, params: Sequence[Mapping[str, float]] | None = None) -> np.ndarray:
        """Predicted loss per domain, shape (n, K) for n points (arrays) or (K,) for one point.

        Uses each domain's form ``predict`` with that domain's scalar parameters
        (``params``: one parameter draw; default the point estimate). Spec tokens of
        domains that do not specialize are taken as 0.
        """
        n_arr = np.atleast_1d(np.asarray(model_size, dtype=float))
        d_arr = np.atleast_1d(np.asarray(pretrain_tokens, dtype=float))
        s_arr = np.asarray(spec_tokens, dtype=float)
        single = np.ndim(model_size) == 0 and s_arr.ndim <= 1
        s_arr = np.atleast_2d(s_arr) if s_arr.size else np.zeros((len(n_arr), self.K))
        n = max(len(n_arr), len(d_arr), s_arr.shape[0])
        n_arr = np.broadcast_to(n_arr, (n,))
        d_arr = np.broadcast_to(d_arr, (n,))
        s_arr = np.broadcast_to(s_arr, (n, self.K)) * self.can_spec
        d_eff, s_eff = self._effective(d_arr, s_arr)
        unique = self.pretrain_unique
        if params is None or params is self.params:
            layout = self._grad_layout(True)[1]  # the point estimate's parameter arrays, built once
        else:
            layout = self._param_layout([params])
        out = np.empty((n, self.K))
        # one predict call per distinct form: rows = points x domains, parameters expanded per row
        for form, ks_arr, base in layout:
            ks = ks_arr.tolist() if len(ks_arr) != self.K else slice(None)
            m = len(ks_arr)
            # parameters repeated per point (np.tile's Python-level overhead dominated small sweeps)
            p = {name: (v if n == 1 else np.broadcast_to(v, (n, m)).ravel()) for name, v in base.items()}
            x = Inputs(
                model_size=np.repeat(n_arr, m), pretrain_tokens=np.repeat(d_eff, m),
                spec_tokens=np.ascontiguousarray(s_eff[:, ks]).reshape(-1), unique_tokens=np.full(n * m, unique),
                loss=np.full(n * m, np.nan),
            )
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                out[:, ks] = np.asarray(form.predict(p, x), dtype=float).reshape(n, m)
        out = np.where(np.isnan(out), np.inf, out)
        return out[0] if single else out

    def _param_layout(self, draws: Sequence[Sequence[Mapping[str, float]]]) -> list[tuple[Any, np.ndarray, dict[str, np.ndarray]]]:
        """Per distinct form: (form, its domains, each parameter as an array over rows draw-major x domains)."""
        groups: dict[int, list[int]] = {}
        for k, f in enumerate(self.forms):
            groups.setdefault(id(f), []).append(k)
        return [(self.forms[ks[0]], np.array(ks),
                 {name: np.array([[float(dr[k][name]) for k in ks] for dr in draws], dtype=float).reshape(-1) for name in draws[0][ks[0]].keys()})
                for ks in groups.values()]

    def _grad_layout(self, nominal: bool) -> tuple[int, list[tuple[Any, np.ndarray, dict[str, np.ndarray]]]]:
        """(number of parameter sets, :meth:`_param_layout` of the point estimate or of the robust draws); cached."""
        key = "_grad_layout_nominal" if nominal else "_grad_layout_draws"
        got = self.__dict__.get(key)
        if got is not None:
            return got
        draws = [self.params] if nominal or not (self.robust in ("mean", "worst") and self.draws) else [d.params for d in self.draws]
        got = (len(draws), self._param_layout(draws))
        object.__setattr__(self, key, got)  # a cache on a frozen dataclass (not a field: replace() drops it)
        return got

    def losses_log_grad(self, model_size: float, pretrain_tokens: float, spec_tokens: np.ndarray, *, nominal: bool = False) -> tuple[np.ndarray, ...]:
        r"""Losses and their log-derivatives at one point, per parameter set and domain.

        Returns (L, dL/dlog N, dL/dlog D, dL/dlog D'_k), each of shape (n_sets, K): the parameter
        sets are the robust draws (``robust`` "mean"/"worst" with draws) or the point estimate
        (``nominal=True`` or no draws). Effective (repeated) tokens enter by the chain rule
        (dlog D_eff/dlog D). Analytic for the shipped forms (:mod:`.gradients`)."""
        from .gradients import effective_log_slope, loss_log_gradients

        nd, layout = self._grad_layout(nominal)
        K = self.K
        S = np.where(self.can_spec, np.asarray(spec_tokens, dtype=float), 0.0)
        D = float(pretrain_tokens)
        decay = self.constraints.repetition_decay
        d_ratio = 1.0
        s_ratio = np.ones(K)
        d_eff = D
        s_eff = S
        if self.effective_pretrain:
            de, dr = effective_log_slope(np.array([D]), self.pretrain_unique, decay)
            d_eff, d_ratio = float(de[0]), float(dr[0])
        if self.constraints.repetition == "effective":
            s_eff, s_ratio = effective_log_slope(S, self.spec_unique, decay)
        L = np.empty((nd, K))
        gN, gD, gS = np.empty((nd, K)), np.empty((nd, K)), np.empty((nd, K))
        unique = self.pretrain_unique
        N = float(model_size)
        for form, ks, p in layout:
            l, dn, dd, ds = loss_log_gradients(form, p, N, d_eff, s_eff[ks] if nd == 1 else np.tile(s_eff[ks], nd), unique)
            L[:, ks] = l.reshape(nd, len(ks))
            gN[:, ks] = dn.reshape(nd, len(ks))
            gD[:, ks] = dd.reshape(nd, len(ks))
            gS[:, ks] = ds.reshape(nd, len(ks))
        L = np.where(np.isnan(L), np.inf, L)
        return L, gN, gD * d_ratio, gS * s_ratio[None, :]

    def _direct_log_grad(self) -> tuple | None:
        """What :meth:`objective_log_grad` needs to call the analytic log-gradients directly (cached):
        (spec_index, weights, [(analytic function, domains, parameters, all domains?)]), or None where the
        general route is needed (robust draws, effective tokens, a form without an analytic gradient)."""
        if not DIRECT_GRADIENTS:
            return None
        got = self.__dict__.get("_direct_grad")
        if got is not None:
            return got or None
        from .gradients import analytic_log_gradient

        nd, layout = self._grad_layout(False)
        direct: Any = ()
        if nd == 1 and not self.effective_pretrain and self.constraints.repetition != "effective":
            fns = [analytic_log_gradient(form) for form, _, _ in layout]
            if all(f is not None for f in fns):
                direct = (self.spec_index, np.asarray(self.weights, dtype=float),
                          [(fn, ks, p, len(ks) == self.K) for fn, (form, ks, p) in zip(fns, layout)])
        object.__setattr__(self, "_direct_grad", direct)  # cache (not a field: replace() drops it)
        return direct or None

    def objective_log_grad(self, model_size: float, pretrain_tokens: float, spec_tokens: np.ndarray) -> tuple[float, np.ndarray]:
        r"""The min-loss objective at one point and its gradient in v = (log N, log D, log D'_k for k in spec_index).

        Robust "mean": the mean of the draws' gradients; "worst": the gradient of the worst draw
        (the active piece of the maximum). For the point estimate of the shipped forms the analytic
        log-gradients are called directly (the same numbers as :meth:`losses_log_grad`, without its
        general bookkeeping: this runs at every step of the multi-start SLSQP)."""
        direct = self._direct_log_grad()
        if direct is not None:
            spec, w, groups = direct
            S = np.where(self.can_spec, np.asarray(spec_tokens, dtype=float), 0.0)
            N, D = float(model_size), float(pretrain_tokens)
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                if len(groups) == 1 and groups[0][3]:
                    fn, _, p, _ = groups[0]
                    L, gN, gD, gS = fn(p, N, D, S)
                    L = np.broadcast_to(L, S.shape)
                    gN, gD, gS = (np.broadcast_to(g, S.shape) for g in (gN, gD, gS))
                else:
                    L, gN, gD, gS = np.empty(self.K), np.empty(self.K), np.empty(self.K), np.empty(self.K)
                    for fn, ks, p, _ in groups:
                        L[ks], gN[ks], gD[ks], gS[ks] = fn(p, N, D, S[ks])
                L = np.where(np.isnan(L), np.inf, L)
                val = float(L @ w)
            return val, np.concatenate(([float(gN @ w), float(gD @ w)], (gS * w)[spec]))
        return self._objective_log_grad_general(model_size, pretrain_tokens, spec_tokens)

    def _objective_log_grad_general(self, model_size: float, pretrain_tokens: float, spec_tokens: np.ndarray) -> tuple[float, np.ndarray]:
        """:meth:`objective_log_grad` by :meth:`losses_log_grad` (any form, draws, effective tokens)."""
        L, gN, gD, gS = self.losses_log_grad(model_size, pretrain_tokens, spec_tokens)
        w = self.weights
        with np.errstate(invalid="ignore"):
            vals = L @ w
        G = np.hstack([(gN @ w)[:, None], (gD @ w)[:, None], (gS * w[None, :])[:, self.spec_index]])
        if len(vals) == 1:
            return float(vals[0]), G[0]
        if self.robust == "worst":
            i = int(np.argmax(vals))
            return float(vals[i]), G[i]
        return float(vals.mean()), G.mean(axis=0)

    def objective_of_losses(self, losses: np.ndarray) -> np.ndarray:
        return losses @ self.weights

    def objective(self, model_size: Any, pretrain_tokens: Any, spec_tokens: Any) -> Any:
        """The min-loss objective at point(s): sum_k w_k L_k (robust: mean or max over the parameter draws)."""
        if self.robust in ("mean", "worst") and self.draws:
            vals = np.stack([self.objective_of_losses(self.losses(model_size, pretrain_tokens, spec_tokens, sc.params)) for sc in self.draws])
            return vals.mean(axis=0) if self.robust == "mean" else vals.max(axis=0)
        return self.objective_of_losses(self.losses(model_size, pretrain_tokens, spec_tokens))

    # ------------------------------------------------------------- variants
    def with_budget(self, budget: float | None) -> "Problem":
        return replace(self, budget=budget)

    def restrict(self, k: int, budget_share: float | None) -> "Problem":
        """The one-domain problem of domain k (for the ``separate`` strategy)."""
        sl = slice(k, k + 1)
        c = self.constraints
        return replace(
            self,
            names=self.names[sl], weights=self.weights[sl], forms=self.forms[sl], params=self.params[sl],
            can_spec=self.can_spec[sl], spec_cap=self.spec_cap[sl], spec_unique=self.spec_unique[sl],
            inference_tokens=self.inference_tokens[sl], targets=self.targets[sl],
            constraints=replace(c, inference_tokens=0.0),
            budget=budget_share,
            draws=tuple(ParameterDraw(sc.params[sl]) for sc in self.draws),
        )

    def no_split(self) -> "Problem":
        return replace(self, can_spec=np.zeros(self.K, dtype=bool))

    def fixed(self, fraction: float) -> "Problem":
        return replace(self, fixed_fraction=float(fraction))

    # -------------------------------------------------------------- checks
    def infinite_without_spec(self) -> list[str]:
        """Domains whose law predicts an infinite loss at D' = 0 although they cannot specialize."""
        if np.all(self.can_spec):
            return []
        vals = self.losses(1e9, 1e10, np.zeros(self.K))  # one evaluation for every domain (O(K), not O(K^2))
        return [self.names[k] for k in range(self.K) if not self.can_spec[k] and not np.isfinite(vals[k])]

    def loss_floor(self, k: int) -> float:
        """Infimum of L_k over the allowed region with unlimited compute (for target pre-checks)."""
        lo, hi = self.model_size_bounds()
        big = 1e30
        d = min(self.pretrain_cap, big)
        if self.effective_pretrain:
            d = big
        s = np.zeros(self.K)
        if self.can_spec[k]:
            s[k] = min(self.spec_cap[k], big)
        rmax = self.constraints.max_tokens_per_param
        if rmax is not None:
            d = min(d, rmax * hi)
        val = float(self.losses(hi, d, s)[k])
        return val
