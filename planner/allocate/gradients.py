r"""Losses and their gradients in the plan variables, for the SLSQP paths.

The multi-start path and the decision package's local solver work in log variables
v = (log N, log D, log D'_k). Every law row (one domain, one parameter vector) depends on
N, D and its own D' only, so its gradient is three numbers, the *log-derivatives*

    dL/dlog N = N dL/dN,    dL/dlog D = D dL/dD,    dL/dlog D' = D' dL/dD'

(zero along D' where D' = 0). :func:`loss_log_gradients` gives them analytically for every
shipped form (derived from the equations in :mod:`planner.laws`; tested against finite
differences), and for any other form by central differences in log space, all
perturbations in one ``predict`` call (7 points per row, whatever the number of domains).

Analytic log-derivatives, with T the data term and R the reducible loss:

* chinchilla: dN = -alpha A N^-alpha, dD = -beta B D^-beta;
* overtrain: dN = -2 eta a' N^(-2 eta), dD = -2 eta b' D^(-2 eta) (a' = a 6^-eta, b' = b 6^-eta);
* split-effective, eff = D + s D'^eta, T = B eff^-beta: dD = -beta T D/eff,
  dD' = -beta T eta s D'^eta / eff;
* split-transfer, eff = D + k D'^a N^b: as split-effective with dD' = -beta T a m / eff
  (m = k D'^a N^b) and an extra dN term -beta T b m / eff;
* split-interaction, T = B D^-beta r^-gamma, r = 1 + D'/(c D): dD = T (-beta + gamma (r - 1)/r),
  dD' = -gamma T (r - 1)/r;
* split-additive: dD = -beta B D^-beta, dD' = -gamma C D' (D' + D0)^(-gamma-1);
* split-multiplicative, L = E + R f, f = (1 + D'/D0)^-gamma: dN = -alpha A N^-alpha f,
  dD = -beta B D^-beta f, dD' = -gamma R f D'/(D0 + D');
* split-prelearned, L = E + R/(1 + v R), v = s D'^b: dN = -alpha A N^-alpha/(1 + v R)^2,
  dD = -beta B D^-beta/(1 + v R)^2, dD' = -b v R^2/(1 + v R)^2.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np

from ..laws.base import Inputs

__all__ = ["loss_log_gradients", "analytic_log_gradient", "numeric_log_gradients", "has_analytic_gradient", "effective_log_slope"]

#: step in log space of the finite-difference fallback
FD_STEP = 1e-5


def _pos(v: np.ndarray) -> np.ndarray:
    return np.where(v > 0, v, 0.0)


def _chinchilla(p: Mapping[str, Any], N: np.ndarray, D: np.ndarray, S: np.ndarray):
    n_t = p["A"] * N ** -p["alpha"]
    d_t = p["B"] * D ** -p["beta"]
    return p["E"] + n_t + d_t, -p["alpha"] * n_t, -p["beta"] * d_t, np.zeros_like(N)


def _overtrain(p: Mapping[str, Any], N: np.ndarray, D: np.ndarray, S: np.ndarray):
    eta = p["eta"]
    scale = 6.0 ** -eta
    n_t = p["a"] * scale * N ** (-2 * eta)
    d_t = p["b"] * scale * D ** (-2 * eta)
    return p["E"] + n_t + d_t, -2 * eta * n_t, -2 * eta * d_t, np.zeros_like(N)


def _effective(p: Mapping[str, Any], N: np.ndarray, D: np.ndarray, S: np.ndarray):
    n_t = p["A"] * N ** -p["alpha"]
    worth = p["s"] * _pos(S) ** p["eta"]
    eff = D + worth
    t = p["B"] * eff ** -p["beta"]
    d_eff = -p["beta"] * t / eff  # dT/d eff
    return p["E"] + n_t + t, -p["alpha"] * n_t, d_eff * D, d_eff * p["eta"] * worth


def _transfer(p: Mapping[str, Any], N: np.ndarray, D: np.ndarray, S: np.ndarray):
    n_t = p["A"] * N ** -p["alpha"]
    moved = p["k"] * _pos(S) ** p["a"] * N ** p["b"]
    eff = D + moved
    t = p["B"] * eff ** -p["beta"]
    d_eff = -p["beta"] * t / eff
    return p["E"] + n_t + t, -p["alpha"] * n_t + d_eff * p["b"] * moved, d_eff * D, d_eff * p["a"] * moved


def _interaction(p: Mapping[str, Any], N: np.ndarray, D: np.ndarray, S: np.ndarray):
    n_t = p["A"] * N ** -p["alpha"]
    r = 1.0 + S / (p["c"] * D)
    t = p["B"] * D ** -p["beta"] * r ** -p["gamma"]
    q = (r - 1.0) / r
    return p["E"] + n_t + t, -p["alpha"] * n_t, t * (-p["beta"] + p["gamma"] * q), -p["gamma"] * t * q


def _additive(p: Mapping[str, Any], N: np.ndarray, D: np.ndarray, S: np.ndarray):
    n_t = p["A"] * N ** -p["alpha"]
    d_t = p["B"] * D ** -p["beta"]
    base = S + p["D0"]
    with np.errstate(divide="ignore", invalid="ignore"):
        s_t = p["C"] * base ** -p["gamma"]
        ds = -p["gamma"] * s_t * S / base
    zero = p["C"] == 0
    s_t = np.where(zero, 0.0, s_t)
    ds = np.where(zero | (S == 0), 0.0, ds)
    return p["E"] + n_t + d_t + s_t, -p["alpha"] * n_t, -p["beta"] * d_t, ds


def _multiplicative(p: Mapping[str, Any], N: np.ndarray, D: np.ndarray, S: np.ndarray):
    n_t = p["A"] * N ** -p["alpha"]
    d_t = p["B"] * D ** -p["beta"]
    red = n_t + d_t
    sp = _pos(S)
    f = (1.0 + sp / p["D0"]) ** -p["gamma"]
    return p["E"] + red * f, -p["alpha"] * n_t * f, -p["beta"] * d_t * f, -p["gamma"] * red * f * sp / (p["D0"] + sp)


def _prelearned(p: Mapping[str, Any], N: np.ndarray, D: np.ndarray, S: np.ndarray):
    n_t = p["A"] * N ** -p["alpha"]
    d_t = p["B"] * D ** -p["beta"]
    red = n_t + d_t
    v = p["s"] * _pos(S) ** p["b"]
    den = 1.0 + v * red
    d_r = 1.0 / den ** 2
    return p["E"] + red / den, -p["alpha"] * n_t * d_r, -p["beta"] * d_t * d_r, -p["b"] * v * red ** 2 * d_r


_Grad = Callable[[Mapping[str, Any], np.ndarray, np.ndarray, np.ndarray], tuple]


def _analytic_table() -> dict[type, _Grad]:
    from ..laws.chinchilla import Chinchilla, Overtrain
    from ..laws.second_stage import SplitMultiplicative, SplitPrelearned, SplitTransfer
    from ..laws.split import SplitAdditive, SplitEffective, SplitInteraction

    return {
        Chinchilla: _chinchilla, Overtrain: _overtrain, SplitEffective: _effective, SplitTransfer: _transfer,
        SplitInteraction: _interaction, SplitAdditive: _additive, SplitMultiplicative: _multiplicative, SplitPrelearned: _prelearned,
    }


_TABLE: dict[type, _Grad] | None = None


def analytic_log_gradient(form: Any) -> _Grad | None:
    """The analytic log-gradient of a shipped form; None for any other (subclasses that override
    ``predict`` included: their equation may differ)."""
    global _TABLE
    if _TABLE is None:
        _TABLE = _analytic_table()
    fn = _TABLE.get(type(form))
    return fn


def has_analytic_gradient(form: Any) -> bool:
    return analytic_log_gradient(form) is not None


def numeric_log_gradients(form: Any, p: Mapping[str, Any], N: np.ndarray, D: np.ndarray, S: np.ndarray, unique: np.ndarray) -> tuple[np.ndarray, ...]:
    """(L, dL/dlog N, dL/dlog D, dL/dlog D') by central differences in log space, one ``predict`` call.

    Rows: m; the call evaluates 7 m points (the point and +-h along each of the three variables).
    Along D' the difference is taken only where D' > 0 (else 0)."""
    m = len(N)
    h = FD_STEP
    up, dn = math.exp(h), math.exp(-h)
    fN = np.array([1.0, up, dn, 1.0, 1.0, 1.0, 1.0])
    fD = np.array([1.0, 1.0, 1.0, up, dn, 1.0, 1.0])
    fS = np.array([1.0, 1.0, 1.0, 1.0, 1.0, up, dn])
    pp = {k: np.tile(np.broadcast_to(np.asarray(v, dtype=float), (m,)), 7) for k, v in p.items()}
    x = Inputs(
        model_size=np.repeat(fN, m) * np.tile(N, 7), pretrain_tokens=np.repeat(fD, m) * np.tile(D, 7),
        spec_tokens=np.repeat(fS, m) * np.tile(S, 7), unique_tokens=np.tile(np.broadcast_to(unique, (m,)), 7), loss=np.full(7 * m, np.nan),
    )
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        v = np.asarray(form.predict(pp, x), dtype=float).reshape(7, m)
    dS = np.where(S > 0, (v[5] - v[6]) / (2 * h), 0.0)
    return v[0], (v[1] - v[2]) / (2 * h), (v[3] - v[4]) / (2 * h), dS


def loss_log_gradients(form: Any, p: Mapping[str, Any], N: np.ndarray, D: np.ndarray, S: np.ndarray, unique: np.ndarray | float = math.inf) -> tuple[np.ndarray, ...]:
    """(L, dL/dlog N, dL/dlog D, dL/dlog D') per row (N, D scalars or per row, D' per row; parameters per row or scalars).

    Analytic for the shipped forms (module docstring), central differences otherwise. NaN losses
    are returned as they come (the caller maps them to inf)."""
    S = np.asarray(S, dtype=float)
    fn = analytic_log_gradient(form)
    if fn is None:
        shape = np.broadcast_shapes(np.shape(N), np.shape(D), S.shape)
        N, D, S = (np.broadcast_to(np.asarray(a, dtype=float), shape) for a in (N, D, S))
        return numeric_log_gradients(form, p, N, D, S, np.broadcast_to(np.asarray(unique, dtype=float), shape))
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        L, dn, dd, ds = fn(p, N, D, S)
    shape = np.broadcast_shapes(np.shape(L), np.shape(dn), np.shape(dd), np.shape(ds), S.shape)
    return tuple(a if np.shape(a) == shape else np.broadcast_to(np.asarray(a, dtype=float), shape) for a in (L, dn, dd, ds))


def effective_log_slope(tokens: np.ndarray, unique: np.ndarray, decay: float) -> tuple[np.ndarray, np.ndarray]:
    """Muennighoff's effective tokens D_eff(D) and dlog D_eff / dlog D = D D_eff'(D) / D_eff.

    D_eff = min(D, U) up to one epoch (slope 1 below U), U + U R* (1 - exp(-(D/U - 1)/R*)) beyond
    (D_eff'(D) = exp(-(D/U - 1)/R*)); D_eff = D where U is infinite."""
    from ..laws.repetition import effective_tokens

    tokens = np.asarray(tokens, dtype=float)
    unique = np.broadcast_to(np.asarray(unique, dtype=float), tokens.shape)
    eff = effective_tokens(tokens, unique, decay)
    finite = np.isfinite(unique)
    u = np.where(finite, unique, 1.0)
    reps = np.maximum(tokens / u - 1.0, 0.0)
    slope = np.where(reps > 0, np.exp(-reps / decay), np.where(tokens < u, 1.0, 0.0))
    slope = np.where(finite, slope, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(eff > 0, tokens * slope / eff, 0.0)
    return eff, ratio
