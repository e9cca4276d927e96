"""Variable projection starts and multi-start L-BFGS-B polish.

1. A grid over the *nonlinear* parameters (exponents, offsets; one grid value
   per parameter name, shared by its per-domain slots) is built from each
   form's declared ``grid``.
2. At every grid point the linear amplitudes (E, A, B, ...) are solved exactly
   by bounded non-negative least squares on relative residuals
   ((pred - y)/y ~ log pred - log y), which is variable projection: the search
   is over the exponents only, the amplitudes follow.
3. The best ``n_polish`` starts by the true objective are polished jointly over
   all free parameters with L-BFGS-B and analytic gradients.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeResult, lsq_linear, minimize

from .objective import _BAD, Objective

__all__ = ["solve_amplitudes", "start_grid", "multistart", "polish"]


@dataclass(frozen=True)
class _Start:
    values: dict[str, float]
    objective: float


def solve_amplitudes(obj: Objective, values: dict[str, float]) -> dict[str, float]:
    """Given nonlinear slot values, the linear free slots by bounded least squares on relative residuals."""
    layout = obj.layout
    linear = [s for s in layout.free if s.param.linear]
    if not linear:
        return dict(values)
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


def polish(obj: Objective, values: dict[str, float], maxiter: int = 3000) -> OptimizeResult:
    """L-BFGS-B over all free slots from ``values``; returns scipy's OptimizeResult (x in transformed space)."""
    theta0 = obj.layout.to_theta(values)
    if theta0.size == 0:
        f = obj.value(theta0)
        return OptimizeResult(x=theta0, fun=f / obj.loss.scale, success=True, status=0, message="no free parameters", nit=0, nfev=1)
    return minimize(
        obj.scaled,
        theta0,
        jac=True,
        method="L-BFGS-B",
        bounds=obj.layout.theta_bounds(),
        options={"maxiter": maxiter, "ftol": 1e-13, "gtol": 1e-9, "maxcor": 30},
    )


def multistart(obj: Objective, *, max_starts: int = 256, n_polish: int = 6, seed: int = 0, extra_starts: list[dict[str, float]] | None = None) -> tuple[OptimizeResult, int]:
    """Best polished result over variable-projection starts. Returns (result, number of starts)."""
    rng = np.random.default_rng(seed)
    candidates: list[_Start] = []
    for values in list(extra_starts or []) + start_grid(obj, max_starts, rng):
        full = solve_amplitudes(obj, values)
        theta = obj.layout.to_theta(full)
        f = obj.value(theta)
        candidates.append(_Start(obj.layout.from_theta(theta), f))
    candidates.sort(key=lambda c: c.objective)
    finite = [c for c in candidates if c.objective < _BAD] or candidates[:1]
    best: OptimizeResult | None = None
    for cand in finite[:n_polish]:
        res = polish(obj, cand.values)
        if best is None or (np.isfinite(res.fun) and res.fun < best.fun):
            best = res
    assert best is not None
    return best, len(candidates)
