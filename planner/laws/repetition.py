"""Data-constrained scaling with repeated tokens (Muennighoff et al. 2023)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .base import Form, Inputs, Param

__all__ = ["Repetition", "effective_tokens", "effective_params"]


def effective_tokens(tokens: Any, unique_tokens: Any, decay: float) -> np.ndarray:
    r"""D_eff = U + U R* (1 - exp(-R/R*)), R = max(D/U - 1, 0) repetitions beyond the first epoch.

    ``decay`` is R*_D (published 15.39). Where U is infinite (unknown), D_eff = D.
    """
    tokens = np.asarray(tokens, dtype=float)
    unique = np.broadcast_to(np.asarray(unique_tokens, dtype=float), tokens.shape)
    finite = np.isfinite(unique)
    u = np.where(finite, unique, 1.0)
    reps = np.maximum(tokens / u - 1.0, 0.0)
    eff = np.where(reps > 0, u + u * decay * -np.expm1(-reps / decay), np.minimum(tokens, u))
    return np.where(finite, eff, tokens)


def effective_params(model_size: Any, unique_params: Any, decay: float) -> np.ndarray:
    """N_eff = U_N + U_N R*_N (1 - exp(-R_N/R*_N)), R_N = max(N/U_N - 1, 0)."""
    return effective_tokens(model_size, unique_params, decay)


class Repetition(Form):
    r"""L = E + A / N_eff^alpha + B / D_eff^beta (Muennighoff et al. 2023, data-constrained scaling).

    D_eff = U_D + U_D R*_D (1 - exp(-R_D / R*_D)) with R_D = D/U_D - 1 repeated epochs;
    N_eff the same with U_N = min(N_opt(U_D), N), where N_opt(U) = G (G U)^(beta/alpha),
    G = (alpha A / (beta B))^(1/(alpha+beta)), the compute-optimal size for U tokens.
    Published: R*_D = 15.39, R*_N = 5.31. Where ``unique_tokens`` is unknown it
    reduces to Chinchilla. Gradients by finite differences.
    """

    name = "repetition"
    equation = "L = E + A/N_eff^alpha + B/D_eff^beta,  D_eff = U + U*R_D*(1 - exp(-(D/U - 1)/R_D))"
    description = "Muennighoff repetition-aware law: repeated epochs decay in value with half-life R*"
    params = (
        Param("E", 1e-3, 20.0, "nats/token", linear=True, start=1.87, description="irreducible loss"),
        # A and B also set the compute-optimal size N_opt(U) inside N_eff, so they are not linear here
        Param("A", 1e-6, 1e12, "nats/token * params^alpha", start=521.0, grid=(150.0, 600.0, 2500.0), description="model-size amplitude"),
        Param("B", 1e-6, 1e14, "nats/token * tokens^beta", start=1488.0, grid=(400.0, 1500.0, 6000.0), description="data amplitude"),
        Param("alpha", 0.01, 2.0, "", start=0.35, grid=(0.2, 0.35, 0.5), description="model-size exponent"),
        Param("beta", 0.01, 2.0, "", start=0.35, grid=(0.2, 0.35, 0.5), description="data exponent"),
        Param("R_D", 0.1, 1e4, "epochs", start=15.39, grid=(2.0, 15.0, 60.0), description="decay constant of repeated data (R*_D)"),
        Param("R_N", 0.1, 1e4, "", start=5.31, grid=(2.0, 10.0), description="decay constant of excess parameters (R*_N)"),
    )
    inputs = ("model_size", "pretrain_tokens", "unique_tokens")

    @staticmethod
    def optimal_params(unique_tokens: Any, p: Mapping[str, Any]) -> np.ndarray:
        a, b = p["alpha"], p["beta"]
        g = (a * p["A"] / (b * p["B"])) ** (1.0 / (a + b))
        return g * (g * np.asarray(unique_tokens, dtype=float)) ** (b / a)

    def predict(self, p: Mapping[str, Any], x: Inputs) -> np.ndarray:
        d_eff = effective_tokens(x.pretrain_tokens, x.unique_tokens, p["R_D"])
        with np.errstate(over="ignore", invalid="ignore"):
            u_n = np.minimum(self.optimal_params(x.unique_tokens, p), x.model_size)
        n_eff = np.where(np.isfinite(x.unique_tokens), effective_params(x.model_size, u_n, p["R_N"]), x.model_size)
        return p["E"] + p["A"] * n_eff ** -p["alpha"] + p["B"] * d_eff ** -p["beta"]
