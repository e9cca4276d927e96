"""Pretraining-only laws: Chinchilla (Hoffmann et al. 2022) and over-training (Gadre et al. 2024)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .base import Form, Inputs, Monomial, Param

__all__ = ["Chinchilla", "Overtrain"]

_EXPONENT_GRID = (0.1, 0.2, 0.3, 0.4, 0.55, 0.75)


class Chinchilla(Form):
    r"""L(N, D) = E + A / N^alpha + B / D^beta  (Hoffmann et al. 2022, Approach 3).

    N in parameters, D in tokens, L in nats/token. E is the irreducible loss;
    A and B are amplitudes (nats/token times parameters^alpha or tokens^beta).
    """

    name = "chinchilla"
    equation = "L = E + A/N^alpha + B/D^beta"
    description = "Chinchilla Approach 3: irreducible loss plus power laws in model size and pretraining tokens"
    params = (
        Param("E", 1e-3, 20.0, "nats/token", linear=True, start=1.7, description="irreducible loss"),
        Param("A", 1e-6, 1e12, "nats/token * params^alpha", linear=True, start=400.0, description="model-size amplitude"),
        Param("B", 1e-6, 1e14, "nats/token * tokens^beta", linear=True, start=400.0, description="data amplitude"),
        Param("alpha", 0.01, 2.0, "", start=0.34, grid=_EXPONENT_GRID, description="model-size exponent"),
        Param("beta", 0.01, 2.0, "", start=0.28, grid=_EXPONENT_GRID, description="data exponent"),
    )
    inputs = ("model_size", "pretrain_tokens")

    def predict(self, p: Mapping[str, Any], x: Inputs) -> np.ndarray:
        return p["E"] + p["A"] * x.model_size ** -p["alpha"] + p["B"] * x.pretrain_tokens ** -p["beta"]

    def gradient(self, p: Mapping[str, Any], x: Inputs) -> dict[str, np.ndarray]:
        n_term = x.model_size ** -p["alpha"]
        d_term = x.pretrain_tokens ** -p["beta"]
        ones = np.ones_like(n_term)
        return {
            "E": ones,
            "A": n_term,
            "B": d_term,
            "alpha": -p["A"] * n_term * np.log(x.model_size),
            "beta": -p["B"] * d_term * np.log(x.pretrain_tokens),
        }

    def monomials(self, p: Mapping[str, float]) -> list[Monomial]:
        return [
            Monomial(float(p["E"])),
            Monomial(float(p["A"]), model_size_exp=-float(p["alpha"])),
            Monomial(float(p["B"]), pretrain_exp=-float(p["beta"])),
        ]


class Overtrain(Form):
    r"""Gadre et al. (2024): L(C, M) = E + (a M^eta + b M^-eta) C^-eta, with M = D/N and C = 6 N D.

    Expanded, a M^eta C^-eta = a 6^-eta N^(-2 eta) and b M^-eta C^-eta = b 6^-eta D^(-2 eta):
    a Chinchilla law with alpha = beta = 2 eta, which is how the paper's code fits it.
    """

    name = "overtrain"
    equation = "L = E + (a*M^eta + b*M^-eta) * C^-eta,  M = D/N, C = 6*N*D"
    description = "Gadre et al. over-training law in compute C and token multiplier M"
    params = (
        Param("E", 1e-3, 20.0, "nats/token", linear=True, start=1.7, description="irreducible loss"),
        Param("a", 1e-6, 1e14, "nats/token * FLOP^eta", linear=True, start=100.0, description="model-size amplitude"),
        Param("b", 1e-6, 1e14, "nats/token * FLOP^eta", linear=True, start=100.0, description="data amplitude"),
        Param("eta", 0.005, 1.0, "", start=0.15, grid=(0.05, 0.1, 0.15, 0.2, 0.3), description="compute exponent (alpha = beta = 2 eta)"),
    )
    inputs = ("model_size", "pretrain_tokens")

    @staticmethod
    def _terms(p: Mapping[str, Any], x: Inputs) -> tuple[np.ndarray, np.ndarray]:
        eta = p["eta"]
        scale = 6.0 ** -eta
        return scale * x.model_size ** (-2 * eta), scale * x.pretrain_tokens ** (-2 * eta)

    def predict(self, p: Mapping[str, Any], x: Inputs) -> np.ndarray:
        n_term, d_term = self._terms(p, x)
        return p["E"] + p["a"] * n_term + p["b"] * d_term

    def gradient(self, p: Mapping[str, Any], x: Inputs) -> dict[str, np.ndarray]:
        n_term, d_term = self._terms(p, x)
        log6 = np.log(6.0)
        return {
            "E": np.ones_like(n_term),
            "a": n_term,
            "b": d_term,
            "eta": p["a"] * n_term * (-log6 - 2 * np.log(x.model_size)) + p["b"] * d_term * (-log6 - 2 * np.log(x.pretrain_tokens)),
        }

    def monomials(self, p: Mapping[str, float]) -> list[Monomial]:
        eta = float(p["eta"])
        scale = 6.0 ** -eta
        return [
            Monomial(float(p["E"])),
            Monomial(float(p["a"]) * scale, model_size_exp=-2 * eta),
            Monomial(float(p["b"]) * scale, pretrain_exp=-2 * eta),
        ]
