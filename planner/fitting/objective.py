"""Fitting objectives on log-loss residuals, with analytic gradients.

Residual r_i = log(predicted_i) - log(observed_i). The objective is the
weighted mean of rho(r_i):

* ``huber`` (default, delta = 1e-3, Hoffmann et al. / Besiroglu et al.):
  rho(r) = r^2/2 for |r| <= delta, delta (|r| - delta/2) otherwise;
* ``ls``: rho(r) = r^2/2;
* ``over``: r^2/2 with over-prediction (r > 0) weighted ``over_weight`` times
  (default 4): a pessimistic law for planning.

Its gradient with respect to a parameter q is
sum_i w_i rho'(r_i) (1/pred_i) d pred_i/d q / sum_i w_i.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..laws.base import Form, Inputs
from .layout import ParamLayout

__all__ = ["Loss", "make_loss", "Objective"]

_BAD = 1e30  # objective for parameters whose prediction is not positive and finite


@dataclass(frozen=True)
class Loss:
    """A robust loss rho and its derivative, with a name for reports."""

    name: str
    rho: Callable[[np.ndarray], np.ndarray]
    drho: Callable[[np.ndarray], np.ndarray]
    scale: float = 1.0  # objective is divided by this inside the optimizer (conditioning only)
    kind: str = "huber"  # "huber", "ls" or "over": how the least-squares polish expresses it
    delta: float = 1e-3  # Huber threshold (kind "huber")
    over_weight: float = 1.0  # weight of over-prediction (kind "over")


def make_loss(name: str = "huber", delta: float = 1e-3, over_weight: float = 4.0) -> Loss:
    if name == "huber":
        def rho(r: np.ndarray) -> np.ndarray:
            a = np.abs(r)
            return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))

        def drho(r: np.ndarray) -> np.ndarray:
            return np.clip(r, -delta, delta)

        return Loss(f"huber(delta={delta:g})", rho, drho, scale=delta, kind="huber", delta=delta)
    if name in ("ls", "least-squares"):
        return Loss("least-squares", lambda r: 0.5 * r * r, lambda r: r, scale=1e-4, kind="ls")
    if name in ("over", "over-penalty"):
        def rho_o(r: np.ndarray) -> np.ndarray:
            return 0.5 * r * r * np.where(r > 0, over_weight, 1.0)

        def drho_o(r: np.ndarray) -> np.ndarray:
            return r * np.where(r > 0, over_weight, 1.0)

        return Loss(f"over-penalty(weight={over_weight:g})", rho_o, drho_o, scale=1e-4, kind="over", over_weight=over_weight)
    raise ValueError(f"unknown loss {name!r}: use 'huber', 'ls' or 'over'")


class Objective:
    """Objective over the free slots of a layout, on fixed data.

    ``value(theta)`` and ``value_and_grad(theta)`` take the transformed free
    vector (log for positive parameters); the gradient uses the form's analytic
    derivatives where it has them and central finite differences otherwise.
    ``residual_jacobian(theta)`` gives the log residuals r and their Jacobian
    dr/dtheta (rows x free slots), from which both the gradient of the objective
    (J^T (w rho'(r))) and the least-squares polish are built.
    """

    def __init__(self, form: Form, layout: ParamLayout, x: Inputs, observed: np.ndarray, domain_index: np.ndarray, weights: np.ndarray, loss: Loss) -> None:
        self.form = form
        self.layout = layout
        self.x = x
        self.observed = np.asarray(observed, dtype=float)
        self.log_observed = np.log(self.observed)
        self.domain_index = np.asarray(domain_index, dtype=int)
        self.weights = np.asarray(weights, dtype=float) / np.sum(weights)
        self.loss = loss
        self._rows = layout.slot_rows(self.domain_index)
        self._prepare_expansion()
        self._last: tuple[bytes, np.ndarray, dict[str, Any], np.ndarray, np.ndarray] | None = None
        self.analytic = form.gradient(self.expand_theta(layout.to_theta(layout.start_values())), x) is not None

    # ------------------------------------------------------------ expansion
    def _prepare_expansion(self) -> None:
        """Index tables turning a theta vector into per-row parameter values without dicts per slot."""
        layout = self.layout
        slots = layout.slots
        self._template = np.array([s.fixed if s.fixed is not None else 0.0 for s in slots], dtype=float)
        self._free_pos = np.array([i for i, s in enumerate(slots) if s.fixed is None], dtype=int)
        self._free_log = np.array([s.log for s in layout.free], dtype=bool)
        self._names = [s.name for s in slots]
        params: dict[str, list[int]] = {}
        for i, s in enumerate(slots):
            params.setdefault(s.param.name, []).append(i)
        # param -> slot index (shared/tied) or per-row slot indices (per domain)
        self._param_index: dict[str, Any] = {}
        for name, idx in params.items():
            if slots[idx[0]].domain is None:
                self._param_index[name] = idx[0]
            else:
                by_domain = np.empty(len(layout.domains), dtype=int)
                for i in idx:
                    by_domain[slots[i].domain] = i
                self._param_index[name] = by_domain[self.domain_index]
        # free slot -> column of the form's gradient and the rows it acts on
        n = len(self.observed)
        self._free_param = [s.param.name for s in layout.free]
        mask = np.ones((n, len(layout.free)))
        for j, rows in enumerate(self._rows):
            if rows is not None:
                mask[:, j] = rows
        self._mask = mask

    def slot_vector(self, theta: np.ndarray) -> np.ndarray:
        """All slot values (fixed included) in ``layout.slots`` order."""
        full = self._template.copy()
        theta = np.asarray(theta, dtype=float)
        full[self._free_pos] = np.where(self._free_log, np.exp(theta), theta)
        return full

    def expand_theta(self, theta: np.ndarray | None, full: np.ndarray | None = None) -> dict[str, Any]:
        """theta -> {param: scalar or per-row array}, as ``layout.expand(layout.from_theta(theta))``."""
        if full is None:
            full = self.slot_vector(theta)
        return {name: (float(full[idx]) if isinstance(idx, (int, np.integer)) else full[idx]) for name, idx in self._param_index.items()}

    def predict(self, values: dict[str, float]) -> np.ndarray:
        return self.form.predict(self.layout.expand(values, self.domain_index), self.x)

    def linear_columns(self, values: dict[str, float], linear: list[int]) -> tuple[np.ndarray, np.ndarray] | None:
        """The prediction as ``base + columns @ c`` in the free slots ``linear`` (indices into
        ``layout.free``, parameters the form is affine in), the other slots at ``values``.

        ``base`` is the prediction with those slots at 0; column j is d pred / d slot_j, from one call
        of the form's ``gradient`` (taken with the linear slots at 1: by linearity the column does not
        depend on where), times the rows the slot acts on. Two form calls instead of the ``1 + len(linear)``
        predictions of ``predict(slot_j = 1) - base``, the same numbers. None for forms without
        analytic derivatives.
        """
        if not self.analytic:
            return None
        full = np.array([values[name] for name in self._names], dtype=float)
        lin_pos = self._free_pos[linear]
        full[lin_pos] = 0.0
        with np.errstate(all="ignore"):
            base = self.form.predict(self.expand_theta(None, full), self.x)
            full[lin_pos] = 1.0
            g_rows = self.form.gradient(self.expand_theta(None, full), self.x)
        if g_rows is None:
            return None
        n = len(self.observed)
        columns = np.empty((n, len(linear)))
        for k, j in enumerate(linear):
            columns[:, k] = g_rows[self._free_param[j]]  # broadcasts scalars
            columns[:, k] *= self._mask[:, j]
        return base, columns

    def _evaluate(self, theta: np.ndarray) -> tuple[np.ndarray, dict[str, Any], np.ndarray, np.ndarray]:
        """Slot vector, expanded parameters, prediction and log residuals at ``theta``; the last point
        is kept, so the Jacobian the least-squares polish asks for right after the residuals at the
        same point does not predict again (the same numbers, computed once)."""
        theta = np.asarray(theta, dtype=float)
        key = theta.tobytes()
        last = self._last
        if last is not None and last[0] == key:
            return last[1], last[2], last[3], last[4]
        full = self.slot_vector(theta)
        p = self.expand_theta(theta, full)
        with np.errstate(all="ignore"):
            pred = self.form.predict(p, self.x)
            r = np.log(pred) - self.log_observed
        self._last = (key, full, p, pred, r)
        return full, p, pred, r

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        """Log residuals log(pred) - log(observed) (rows,); a fresh array."""
        return self._evaluate(theta)[3].copy()

    def value(self, theta: np.ndarray) -> float:
        """Weighted mean of rho over the rows (unscaled)."""
        r = self._evaluate(theta)[3]
        if not np.all(np.isfinite(r)):
            return _BAD
        return float(self.weights @ self.loss.rho(r))

    def residual_jacobian(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Log residuals r (rows,) and dr/dtheta (rows x free), or (r, None) where r is not finite.

        dr_i/dtheta_j = (1/pred_i) dpred_i/dq_j, times q_j for a slot fitted in log space.
        Analytic forms only (the form's ``gradient``).
        """
        full, p, pred, r = self._evaluate(theta)
        r = r.copy()
        if not np.all(np.isfinite(r)) or np.any(pred <= 0):
            return r, None
        g_rows = self.form.gradient(p, self.x)
        assert g_rows is not None
        cols = np.empty((len(r), len(self._free_param)))
        for j, name in enumerate(self._free_param):
            cols[:, j] = g_rows[name]  # broadcasts scalars
            if self._rows[j] is not None:
                cols[:, j] *= self._mask[:, j]  # a per-domain slot acts on its domain's rows only
        cols *= np.where(self._free_log, full[self._free_pos], 1.0)[None, :]
        cols /= pred[:, None]
        return r, cols

    def _analytic(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        r, jac = self.residual_jacobian(theta)
        if jac is None:
            return _BAD, np.zeros_like(theta)
        return float(self.weights @ self.loss.rho(r)), jac.T @ (self.weights * self.loss.drho(r))

    def _numeric(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        f0 = self.value(theta)
        if f0 >= _BAD:
            return f0, np.zeros_like(theta)
        grad = np.empty(len(theta))
        for i in range(len(theta)):
            h = 1e-6 * max(1.0, abs(theta[i]))
            tp, tm = theta.copy(), theta.copy()
            tp[i] += h
            tm[i] -= h
            fp, fm = self.value(tp), self.value(tm)
            if fp >= _BAD or fm >= _BAD:
                grad[i] = 0.0
            else:
                grad[i] = (fp - fm) / (2 * h)
        return f0, grad

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        return self._analytic(theta) if self.analytic else self._numeric(theta)

    def scaled(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """value_and_grad divided by the loss scale, for the optimizer's conditioning."""
        f, g = self.value_and_grad(theta)
        return f / self.loss.scale, g / self.loss.scale
