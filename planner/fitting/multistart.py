"""Variable projection starts and a multi-start polish (least squares or L-BFGS-B).

1. A grid over the *nonlinear* parameters (exponents, offsets; one grid value
   per parameter name, shared by its per-domain slots) is built from each
   form's declared ``grid``.
2. At every grid point the linear amplitudes (E, A, B, ...) are solved exactly
   by bounded non-negative least squares on relative residuals
   ((pred - y)/y ~ log pred - log y), which is variable projection: the search
   is over the exponents only, the amplitudes follow.
3. The best ``n_polish`` starts by the true objective are polished jointly over
   all free parameters: by :func:`scipy.optimize.least_squares` (trust-region
   reflective, the loss as a robust sum of squares of log residuals, the form's
   analytic Jacobian) or, for forms on finite differences, L-BFGS-B. A start
   that already meets the optimality tolerance is not polished.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from typing import Any

import numpy as np
from scipy.optimize import OptimizeResult, least_squares, lsq_linear, minimize

from .objective import _BAD, Objective

__all__ = ["solve_amplitudes", "start_grid", "multistart", "polish"]


@dataclass(frozen=True)
class _Start:
    values: dict[str, float]
    objective: float


def solve_amplitudes(obj: Objective, values: dict[str, float]) -> dict[str, float]:
    """Given nonlinear slot values, the linear free slots by bounded least squares on relative residuals."""
    layout = obj.layout
    index = [j for j, s in enumerate(layout.free) if s.param.linear]
    linear = [layout.free[j] for j in index]
    if not linear:
        return dict(values)
    affine = obj.linear_columns(values, index) if ANALYTIC_COLUMNS else None
    if affine is not None:
        base, phi = affine
    else:
        base_values = dict(values)
        for s in linear:
            base_values[s.name] = 0.0
        base = obj.predict(base_values)
        columns = []
        for s in linear:
            v = dict(base_values)
            v[s.name] = 1.0
            columns.append(obj.predict(v) - base)
        phi = np.column_stack(columns)
    sw = np.sqrt(obj.weights) / obj.observed
    a = phi * sw[:, None]
    b = (obj.observed - base) * sw
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return dict(values)
    lo = np.array([0.0 if s.param.positive else s.param.lower for s in linear])
    hi = np.array([s.param.upper for s in linear])
    # columns differ by many orders of magnitude (N^-alpha ~ 1e-3, 1 for E): scale them
    norms = np.linalg.norm(a, axis=0)
    norms[norms == 0] = 1.0
    res = lsq_linear(a / norms, b, bounds=(lo * norms, hi * norms), method="bvls")
    out = dict(values)
    for s, c in zip(linear, res.x / norms):
        out[s.name] = float(np.clip(c, s.param.lower, s.param.upper))
    return out


#: False: the amplitude columns of :func:`solve_amplitudes` by one prediction per linear slot
#: (the previous path, for benchmarks) instead of one call of the form's gradient
ANALYTIC_COLUMNS = True


def start_grid(obj: Objective, max_starts: int, rng: np.random.Generator) -> list[dict[str, float]]:
    """Nonlinear grid points (shared across a parameter's domain slots), as full slot-value dicts."""
    layout = obj.layout
    base = layout.start_values()
    names: list[str] = []
    grids: list[tuple[float, ...]] = []
    for q in layout.form.params:
        slots = [s for s in layout.free if s.param.name == q.name]
        if not slots or q.linear:
            continue
        lo, hi = slots[0].param.lower, slots[0].param.upper
        grid = tuple(v for v in (q.grid or (q.start,)) if lo <= v <= hi) or (slots[0].param.start,)
        names.append(q.name)
        grids.append(grid)
    points = list(itertools.product(*grids)) if grids else [()]
    if len(points) > max_starts:
        keep = rng.choice(len(points), size=max_starts, replace=False)
        points = [points[i] for i in sorted(keep)]
    out = []
    for point in points:
        values = dict(base)
        for name, v in zip(names, point):
            for s in layout.free:
                if s.param.name == name:
                    values[s.name] = v
        out.append(values)
    return out


#: projected-gradient tolerance on the scaled objective (L-BFGS-B's ``gtol``): a start whose
#: projected gradient is this small is already optimal and is not polished
GTOL = 1e-9
POLISH_METHODS = ("auto", "least-squares", "l-bfgs-b")


def projected_gradient(obj: Objective, theta: np.ndarray) -> np.ndarray:
    """Gradient of the scaled objective projected on the bounds (L-BFGS-B's ``projgr``).

    A component pointing out of the box at an active bound is cut to the distance to that bound,
    so ``max |pg| <= GTOL`` is the first-order optimality test of the bound-constrained problem.
    """
    _, g = obj.scaled(theta)
    lo, hi = (np.array(b, dtype=float) for b in zip(*obj.layout.theta_bounds()))
    return np.where(g < 0, np.maximum(theta - hi, g), np.minimum(theta - lo, g))


def polish_method(obj: Objective, method: str = "auto") -> str:
    """The polish a fit uses: ``least-squares`` where the objective is expressible as one, else ``l-bfgs-b``.

    Every shipped loss is a (robust) sum of squares of the log residuals, so ``auto`` takes
    :func:`scipy.optimize.least_squares` whenever the form has analytic derivatives (its Jacobian);
    forms on finite differences (``repetition``, callables without ``grad``) keep L-BFGS-B.
    """
    if method not in POLISH_METHODS:
        raise ValueError(f"polish must be one of {', '.join(POLISH_METHODS)}, not {method!r}")
    if method == "l-bfgs-b" or not obj.analytic:
        return "l-bfgs-b"
    return "least-squares"


def polish(obj: Objective, values: dict[str, float], maxiter: int = 3000, method: str = "auto") -> OptimizeResult:
    """Polish all free slots from ``values``; returns an OptimizeResult (x in transformed space).

    ``fun`` is the scaled objective (value / loss scale) whichever method ran; ``status`` 1 means
    the method stopped at its iteration or evaluation limit; ``method`` says which polish ran
    (``"none"`` when the start already met the optimality tolerance, see :data:`GTOL`).
    """
    theta0 = obj.layout.to_theta(values)
    if theta0.size == 0:
        f = obj.value(theta0)
        return OptimizeResult(x=theta0, fun=f / obj.loss.scale, success=True, status=0, message="no free parameters", nit=0, nfev=1, method="none")
    f0 = obj.value(theta0)
    if f0 < _BAD:
        pg = float(np.max(np.abs(projected_gradient(obj, theta0))))
        if pg <= GTOL:
            return OptimizeResult(x=theta0, fun=f0 / obj.loss.scale, success=True, status=0, nit=0, nfev=1, method="none",
                                  message=f"polish skipped: the start meets the optimality tolerance (projected gradient {pg:.1e} <= {GTOL:g})")
    chosen = polish_method(obj, method)
    if chosen == "least-squares" and f0 < _BAD:
        return _polish_least_squares(obj, theta0, max_nfev=maxiter)
    res = minimize(
        obj.scaled,
        theta0,
        jac=True,
        method="L-BFGS-B",
        bounds=obj.layout.theta_bounds(),
        options={"maxiter": maxiter, "ftol": 1e-13, "gtol": GTOL, "maxcor": 30},
    )
    res.method = "l-bfgs-b"
    res.message = f"L-BFGS-B: {res.message}"
    return res


def _weighted_huber(u: np.ndarray) -> Any:
    """least_squares loss callable: u_i rho_huber(z_i), rho(z) = z (z <= 1), 2 sqrt(z) - 1 (z > 1); with derivatives."""

    def loss(z: np.ndarray) -> np.ndarray:
        small = z <= 1.0
        root = np.sqrt(np.where(small, 1.0, z))
        out = np.empty((3, z.size))
        out[0] = u * np.where(small, z, 2.0 * root - 1.0)
        out[1] = u * np.where(small, 1.0, 1.0 / root)
        out[2] = u * np.where(small, 0.0, -0.5 / root ** 3)
        return out

    return loss


def _polish_least_squares(obj: Objective, theta0: np.ndarray, max_nfev: int) -> OptimizeResult:
    """Trust-region reflective least squares on the log residuals, with the form's Jacobian.

    With m rows and weights w normalised to sum 1, u_i = m w_i and r_i the log residuals:

    * ``huber``: residuals r, ``loss="huber"``, ``f_scale = delta``. scipy's cost is
      (1/2) f_scale^2 sum rho(r_i^2 / f_scale^2) with rho(z) = z for z <= 1 and 2 sqrt(z) - 1
      above, i.e. r^2/2 for |r| <= delta and delta (|r| - delta/2) above: exactly our Huber
      rho_delta(r), so cost = m * objective. Unequal weights use the same rho scaled by u_i
      (a callable loss), again cost = m * objective.
    * ``ls``: residuals sqrt(u_i) r_i, linear loss: cost = (1/2) sum u_i r_i^2 = m * objective.
    * ``over``: residuals sqrt(u_i) c_i r_i with c_i = sqrt(over_weight) where r_i > 0, else 1:
      cost = m * objective (continuously differentiable: the kink of c is where r = 0).
    """
    lo, hi = (np.array(b, dtype=float) for b in zip(*obj.layout.theta_bounds()))
    room = 1e-10 * np.maximum(1.0, np.abs(theta0))
    x0 = np.clip(theta0, lo + room, hi - room)  # trf starts strictly inside the box
    m = len(obj.observed)
    u = m * obj.weights
    root_u = np.sqrt(u)
    loss = obj.loss
    options: dict[str, Any] = {"loss": "linear"}
    row_scale: Any = None
    if loss.kind == "huber":
        options = {"loss": "huber" if np.allclose(u, 1.0, rtol=0.0, atol=1e-12) else _weighted_huber(u), "f_scale": loss.delta}
        row_scale = None  # rows as they are (scipy's loss carries the Huber weights)
    elif loss.kind == "ls":
        row_scale = lambda r: root_u  # noqa: E731
    elif loss.kind == "over":
        heavy = np.sqrt(loss.over_weight)
        row_scale = lambda r: root_u * np.where(r > 0, heavy, 1.0)  # noqa: E731
    else:  # pragma: no cover - make_loss only builds the three kinds
        raise ValueError(f"no least-squares form of loss {loss.name!r}")

    def fun(theta: np.ndarray) -> np.ndarray:
        r = obj.residuals(theta)
        return r if row_scale is None else row_scale(r) * r

    def jac(theta: np.ndarray) -> np.ndarray:
        r, jr = obj.residual_jacobian(theta)
        if jr is None:
            return np.zeros((m, theta.size))
        return jr if row_scale is None else row_scale(r)[:, None] * jr

    res = least_squares(fun, x0, jac=jac, bounds=(lo, hi), method="trf", x_scale=1.0,
                        ftol=LSQ_TOL, xtol=LSQ_TOL, gtol=LSQ_TOL, max_nfev=max_nfev, **options)
    f = obj.value(res.x)
    return OptimizeResult(x=res.x, fun=f / loss.scale, success=bool(res.status > 0), status=1 if res.status == 0 else 0,
                          message=f"least_squares (trf): {res.message}", nit=int(res.njev or 0), nfev=int(res.nfev), method="least-squares")


#: least_squares termination tolerances (ftol, xtol, gtol)
LSQ_TOL = 1e-12


def multistart(obj: Objective, *, max_starts: int = 256, n_polish: int = 6, seed: int = 0, extra_starts: list[dict[str, float]] | None = None,
               method: str = "auto", warm: dict[str, float] | None = None, n_agree: int | None = None) -> tuple[OptimizeResult, int]:
    """Best polished result over variable-projection starts. Returns (result, number of starts).

    Cold (``warm=None``): the ``n_polish`` best starts by objective (grid points and ``extra_starts``)
    are polished in that order; the best result wins. With ``n_agree`` (default :data:`N_AGREE`:
    None, every start is polished) the polishing stops early once ``n_agree`` polishes have reached
    the best optimum so far (to :data:`CONFIRM_RTOL` in objective): that basin has been found from
    several starts, and the remaining starts, worse by the variable-projection objective, are not
    polished. A later start that would find a lower basin is then missed, which is why it is not
    the default (measured in docs/methods.md).

    Warm (``warm``: the optimum of a fit on more rows): ``warm``, with its amplitudes re-solved on
    these rows, is polished first; then the grid starts in order of objective, until one of them
    *confirms* the best optimum so far (reaches it to :data:`CONFIRM_RTOL` in objective) or
    ``n_polish`` grid starts are spent. On a one-basin objective that is two polishes, the first one
    short; where a grid start finds a lower basin than the warm start the search goes on as the
    cold one would.
    """
    rng = np.random.default_rng(seed)
    polished: list[OptimizeResult] = []
    polish_and_keep = _recording(polished)
    candidates: list[_Start] = []
    for values in list(extra_starts or []) + start_grid(obj, max_starts, rng):
        full = solve_amplitudes(obj, values)
        theta = obj.layout.to_theta(full)
        f = obj.value(theta)
        candidates.append(_Start(obj.layout.from_theta(theta), f))
    candidates.sort(key=lambda c: c.objective)
    finite = [c for c in candidates if c.objective < _BAD] or candidates[:1]
    best: OptimizeResult | None = None
    if warm is None:
        n_agree = N_AGREE if n_agree is None else n_agree
        if n_agree is None:
            n_agree = n_polish + 1  # never reached: every start is polished
        agreeing = 0  # polishes that reached the best optimum so far
        for cand in finite[:n_polish]:
            res = polish_and_keep(obj, cand.values, method=method)
            if best is None or (not np.isfinite(best.fun) and np.isfinite(res.fun)):
                best, agreeing = res, int(np.isfinite(res.fun))
            elif np.isfinite(res.fun) and np.isfinite(best.fun):
                same = abs(res.fun - best.fun) <= CONFIRM_RTOL * abs(best.fun)
                if res.fun < best.fun:
                    best, agreeing = res, (agreeing + 1 if same else 1)
                elif same:
                    agreeing += 1
            if agreeing >= n_agree:
                break
        assert best is not None
        return _with_near_optima(best, polished), len(candidates)
    # warm: the start as given and with re-solved amplitudes; the better one is polished first
    as_given = obj.layout.to_theta(warm)
    projected = obj.layout.to_theta(solve_amplitudes(obj, dict(warm)))
    start = min((as_given, projected), key=obj.value)
    best = polish_and_keep(obj, obj.layout.from_theta(start), method=method)
    for cand in finite[:n_polish]:
        res = polish_and_keep(obj, cand.values, method=method)
        if not np.isfinite(res.fun):
            continue
        confirmed = np.isfinite(best.fun) and abs(res.fun - best.fun) <= CONFIRM_RTOL * abs(best.fun)
        if not np.isfinite(best.fun) or res.fun < best.fun:
            best = res
        if confirmed:
            break
    return _with_near_optima(best, polished), len(candidates) + 1


#: a grid start whose polish reaches the best warm optimum to this relative objective confirms it
CONFIRM_RTOL = 1e-8

#: another polish within this relative objective of the best, with its parameters (the fit's coordinates:
#: log for positive parameters) more than NEAR_SPREAD away in some slot, is a *near optimum*: the runs do
#: not single out one set of parameters (a flat valley, or distinct optima that fit the runs equally well)
NEAR_RTOL = 1e-4
NEAR_SPREAD = math.log(2.0)


def _recording(polished: list[OptimizeResult]) -> Any:
    """:func:`polish`, keeping every result in ``polished`` (for :func:`_with_near_optima`)."""

    def run(obj: Objective, values: dict[str, float], method: str = "auto") -> OptimizeResult:
        res = polish(obj, values, method=method)
        polished.append(res)
        return res

    return run


def _with_near_optima(best: OptimizeResult, polished: list[OptimizeResult]) -> OptimizeResult:
    """``best`` with ``near_optima``: the other polishes within :data:`NEAR_RTOL` of its objective whose
    parameters are more than :data:`NEAR_SPREAD` away from its own in some slot (largest spread first)."""
    near = []
    if np.isfinite(best.fun):
        for res in polished:
            if res is best or not np.isfinite(res.fun) or res.x.shape != best.x.shape:
                continue
            spread = float(np.max(np.abs(res.x - best.x))) if res.x.size else 0.0
            if res.fun - best.fun <= NEAR_RTOL * abs(best.fun) and spread > NEAR_SPREAD:
                near.append((spread, res))
    best.near_optima = [res for _, res in sorted(near, key=lambda t: -t[0])]
    return best

#: the cold multi-start stops polishing once this many polishes reached the best optimum
#: (``LawFitter(n_agree=...)``); None: every one of the ``n_polish`` starts is polished. Not 2 by
#: default: on the real fine-tuning curves it missed lower basins that later starts find (docs/methods.md)
N_AGREE: int | None = None
