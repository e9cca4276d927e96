"""Laws from loss to downstream error (Gadre et al. 2024) and accuracy."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .base import Form, Inputs, Param

__all__ = ["DownstreamExp", "DownstreamSigmoid"]


class DownstreamExp(Form):
    r"""Err(L) = eps - k exp(-gamma L)  (Gadre et al. 2024).

    L is a loss (nats/token); Err the average top-1 error in [0, 1]. eps is the
    error as the loss grows (chance level), k and gamma shape the fall.
    """

    name = "downstream-exp"
    equation = "Err = eps - k*exp(-gamma*L)"
    description = "average downstream top-1 error from loss (Gadre et al.)"
    params = (
        Param("eps", 1e-4, 2.0, "", linear=True, start=0.85, description="error level at high loss"),
        Param("k", 1e-6, 1e6, "", linear=True, start=2.0, description="amplitude"),
        Param("gamma", 0.01, 20.0, "per nats/token", start=1.0, grid=(0.3, 1.0, 2.0, 4.0), description="decay rate in the loss"),
    )
    inputs = ("loss",)
    target = "error"
    kind = "downstream"

    def predict(self, p: Mapping[str, Any], x: Inputs) -> np.ndarray:
        return p["eps"] - p["k"] * np.exp(-p["gamma"] * x.loss)

    def gradient(self, p: Mapping[str, Any], x: Inputs) -> dict[str, np.ndarray]:
        ex = np.exp(-p["gamma"] * x.loss)
        return {"eps": np.ones_like(ex), "k": -ex, "gamma": p["k"] * x.loss * ex}


class DownstreamSigmoid(Form):
    r"""Err(L) = floor + (ceiling - floor) / (1 + exp(-k (L - L0))).

    A logistic in the loss: error rises from ``floor`` (the best reachable error)
    to ``ceiling`` (chance) around the loss L0, with slope k per nats/token.
    """

    name = "downstream-sigmoid"
    equation = "Err = floor + (ceiling - floor)/(1 + exp(-k*(L - L0)))"
    description = "sigmoid error-from-loss law (accuracy = 1 - Err)"
    params = (
        Param("floor", 1e-4, 1.0, "", start=0.2, description="error at low loss"),
        Param("ceiling", 1e-3, 1.5, "", start=0.75, description="error at high loss (chance)"),
        Param("k", 0.01, 100.0, "per nats/token", start=2.0, grid=(1.0, 3.0, 10.0), description="slope"),
        Param("L0", 0.1, 20.0, "nats/token", start=3.0, grid=(2.0, 3.0, 4.0), description="midpoint loss"),
    )
    inputs = ("loss",)
    target = "error"
    kind = "downstream"

    def predict(self, p: Mapping[str, Any], x: Inputs) -> np.ndarray:
        z = 1.0 / (1.0 + np.exp(-p["k"] * (x.loss - p["L0"])))
        return p["floor"] + (p["ceiling"] - p["floor"]) * z

    def gradient(self, p: Mapping[str, Any], x: Inputs) -> dict[str, np.ndarray]:
        z = 1.0 / (1.0 + np.exp(-p["k"] * (x.loss - p["L0"])))
        dz = z * (1.0 - z)
        span = p["ceiling"] - p["floor"]
        return {"floor": 1.0 - z, "ceiling": z, "k": span * dz * (x.loss - p["L0"]), "L0": -span * dz * p["k"]}
