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
from typing import Callable

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


def make_loss(name: str = "huber", delta: float = 1e-3, over_weight: float = 4.0) -> Loss:
    if name == "huber":
        def rho(r: np.ndarray) -> np.ndarray:
            a = np.abs(r)
            return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))

        def drho(r: np.ndarray) -> np.ndarray:
            return np.clip(r, -delta, delta)

        return Loss(f"huber(delta={delta:g})", rho, drho, scale=delta)
    if name in ("ls", "least-squares"):
        return Loss("least-squares", lambda r: 0.5 * r * r, lambda r: r, scale=1e-4)
    if name in ("over", "over-penalty"):
        def rho_o(r: np.ndarray) -> np.ndarray:
            return 0.5 * r * r * np.where(r > 0, over_weight, 1.0)

        def drho_o(r: np.ndarray) -> np.ndarray:
            return r * np.where(r > 0, over_weight, 1.0)

        return Loss(f"over-penalty(weight={over_weight:g})", rho_o, drho_o, scale=1e-4)
    raise ValueError(f"unknown loss {name!r}: use 'huber', 'ls' or 'over'")


class Objective:
    """Objective over the free slots of a layout, on fixed data.

    ``value(theta)`` and ``value_and_grad(theta)`` take the transformed free
    vector (log for positive parameters); the gradient uses the form's analytic
    derivatives where it has them and central finite differences otherwise.
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
        self.analytic = form.gradient(layout.expand(layout.start_values(), self.domain_index), x) is not None

    def predict(self, values: dict[str, float]) -> np.ndarray:
        return self.form.predict(self.layout.expand(values, self.domain_index), self.x)

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        pred = self.predict(self.layout.from_theta(theta))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(pred) - self.log_observed

    def value(self, theta: np.ndarray) -> float:
        """Weighted mean of rho over the rows (unscaled)."""
        r = self.residuals(theta)
        if not np.all(np.isfinite(r)):
            return _BAD
        return float(np.sum(self.weights * self.loss.rho(r)))

    def _analytic(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        values = self.layout.from_theta(theta)
        p = self.layout.expand(values, self.domain_index)
        with np.errstate(all="ignore"):
            pred = self.form.predict(p, self.x)
            r = np.log(pred) - self.log_observed
        if not np.all(np.isfinite(r)) or np.any(pred <= 0):
            return _BAD, np.zeros_like(theta)
        g_rows = self.form.gradient(p, self.x)
        assert g_rows is not None
        dpred = self.weights * self.loss.drho(r) / pred  # d objective / d pred, per row
        grad = np.empty(len(theta))
        for i, (slot, rows) in enumerate(zip(self.layout.free, self._rows)):
            contrib = dpred * g_rows[slot.param.name]
            g = float(np.sum(contrib if rows is None else contrib[rows]))
            grad[i] = g * values[slot.name] if slot.log else g
        return float(np.sum(self.weights * self.loss.rho(r))), grad

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
