"""Second-stage laws from the literature, adapted to split training L_k(N, D, D'_k) (BRIEF §2).

Three published ways of writing what a second training stage (fine-tuning or continued
pretraining on D' tokens) is worth, each adapted so that the general pretraining tokens D
enter and each reducing to the Chinchilla law E_k + A/N^alpha + B_k/D^beta at D' = 0:

* :class:`SplitTransfer`: Hernandez et al. 2021 ("Scaling Laws for Transfer"): fine-tuning on
  D' tokens is worth D_T = k D'^a N^b pretraining tokens ("effective data transferred");
* :class:`SplitMultiplicative`: Zhang et al. 2024 ("When Scaling Meets LLM Finetuning"):
  L = E + A X^-a D_f^-b, the second-stage data multiplies the pretraining scale term;
* :class:`SplitPrelearned`: Lin et al. 2024 ("Selecting Large Language Model to Fine-tune via
  Rectified Scaling Law"): L(D') = B/(D_l + D'^b) + E, the flat start of fine-tuning curves
  explained by "pre-learned data" D_l.

As in :mod:`planner.laws.split`, A and alpha are shared by all domains, E_k and B_k are per
domain, and the second-stage parameters are per domain unless tied at fit time.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .base import Form, Inputs, Param, safe_log
from .split import EffectiveTokensForm, _shared_params

__all__ = ["SplitTransfer", "SplitMultiplicative", "SplitPrelearned"]


def _positive_part(v: np.ndarray) -> np.ndarray:
    return np.where(v > 0, v, 0.0)


class SplitTransfer(EffectiveTokensForm):
    r"""Effective data transferred (Hernandez et al. 2021, "Scaling Laws for Transfer", eq. 1.1).

    L_k = E_k + A/N^alpha + B_k / (D + k_k D'^a_k N^b)^beta

    Hernandez et al. measure fine-tuning on D_F tokens as worth D_T = k D_F^a N^b extra
    pretraining tokens (text -> Python: k = 1.9e4, a = 0.18, b = 0.38, in characters and
    non-embedding parameters). Here D_T is added to the pretraining tokens inside the Chinchilla
    data term: the effective-tokens form (``split-effective``) with a worth that grows with model
    size as N^b. k_k (tokens^(1-a) params^-b) and a_k are per domain, b is shared. Convex in
    (D, D') for a fixed N when a_k <= 1 (the bounds enforce it): the optimizer's DCP path applies.
    """

    name = "split-transfer"
    equation = "L_k = E_k + A/N^alpha + B_k/(D + k_k*D'^a_k*N^b)^beta"
    description = ("Hernandez et al. 2021 effective data transferred: D' specialization tokens are worth "
                   "k_k*D'^a_k*N^b pretraining tokens (grows with model size)")
    params = _shared_params() + (
        Param("k", 1e-9, 1e12, "tokens^(1-a) * params^-b", per_domain=True, start=1.0, grid=(0.01, 1.0, 100.0), needs_spec=True,
              description="transfer coefficient of domain k (Hernandez: 1.9e4 text->Python)"),
        Param("a", 0.02, 1.0, "", per_domain=True, start=0.5, grid=(0.3, 0.8), needs_spec=True,
              description="returns of specialization tokens (Hernandez: 0.18; <= 1: convex)"),
        Param("b", -1.0, 1.5, "", positive=False, start=0.0, grid=(0.0, 0.4), needs_spec=True,
              description="growth of the transferred data with model size (shared; Hernandez: 0.38)"),
    )
    inputs = ("model_size", "pretrain_tokens", "spec_tokens")
    has_spec = True

    def worth_terms(self, p: Mapping[str, Any], model_size: Any) -> tuple[Any, Any]:
        """D_T = k N^b D'^a: the coefficient k N^b and the exponent a."""
        return p["k"] * model_size ** p["b"], p["a"]

    def worth_gradient(self, p: Mapping[str, Any], x: Inputs, worth: np.ndarray) -> dict[str, np.ndarray]:
        return {"k": worth / p["k"], "a": worth * safe_log(x.spec_tokens), "b": worth * np.log(x.model_size)}


class SplitMultiplicative(Form):
    r"""Multiplicative joint law in the style of Zhang et al. 2024 ("When Scaling Meets LLM Finetuning").

    L_k = E_k + (A/N^alpha + B_k/D^beta) * (1 + D'/D0_k)^-gamma_k

    Zhang et al. fit L = A X^-a D_f^-b + E, X the model size or the pretraining data and D_f the
    fine-tuning data: the second-stage data *multiplies* the scale term instead of adding its own.
    Adaptation: X^-a becomes the whole pretraining reducible loss A/N^alpha + B_k/D^beta (so both
    N and D enter, as Zhang's two variants do separately), and D_f^-b becomes
    (1 + D'/D0_k)^-gamma_k, which is 1 at D' = 0 (the law reduces to Chinchilla) and
    ~ (D'/D0_k)^-gamma_k for D' >> D0_k, Zhang's power law. Why not B_k/D^beta (1 + D'/D0)^-gamma
    alone: that is ``split-interaction`` with c_k D replaced by a constant, nearly the same
    candidate; here specialization also shrinks the model-size term, as in Zhang's law.
    D0_k (tokens) is the second-stage scale at which specialization starts to pay.
    The law is log-convex in (D, D') but not DCP-representable: the optimizer uses multi-start.
    """

    name = "split-multiplicative"
    equation = "L_k = E_k + (A/N^alpha + B_k/D^beta) * (1 + D'/D0_k)^-gamma_k"
    description = ("Zhang et al. 2024 multiplicative joint law: specialization multiplies the whole "
                   "pretraining reducible loss by (1 + D'/D0_k)^-gamma_k")
    params = _shared_params() + (
        Param("D0", 1e0, 1e14, "tokens", per_domain=True, start=1e6, grid=(1e3, 1e6, 1e9), needs_spec=True,
              description="specialization tokens where the multiplier starts to fall"),
        Param("gamma", 0.005, 3.0, "", per_domain=True, start=0.3, grid=(0.1, 0.3, 0.6), needs_spec=True,
              description="exponent of the specialization multiplier (Zhang's b)"),
    )
    inputs = ("model_size", "pretrain_tokens", "spec_tokens")
    has_spec = True

    def predict(self, p: Mapping[str, Any], x: Inputs) -> np.ndarray:
        reducible = p["A"] * x.model_size ** -p["alpha"] + p["B"] * x.pretrain_tokens ** -p["beta"]
        factor = (1.0 + _positive_part(x.spec_tokens) / p["D0"]) ** -p["gamma"]
        return p["E"] + reducible * factor

    def gradient(self, p: Mapping[str, Any], x: Inputs) -> dict[str, np.ndarray]:
        n_term = x.model_size ** -p["alpha"]
        d_term = x.pretrain_tokens ** -p["beta"]
        reducible = p["A"] * n_term + p["B"] * d_term
        spec = _positive_part(x.spec_tokens)
        ratio = 1.0 + spec / p["D0"]
        factor = ratio ** -p["gamma"]
        return {
            "E": np.ones_like(n_term),
            "A": n_term * factor,
            "alpha": -p["A"] * n_term * np.log(x.model_size) * factor,
            "B": d_term * factor,
            "beta": -p["B"] * d_term * np.log(x.pretrain_tokens) * factor,
            "gamma": -reducible * factor * np.log(ratio),
            # d ratio^-gamma / d D0 = gamma ratio^(-gamma-1) D'/D0^2
            "D0": reducible * factor * p["gamma"] * spec / (p["D0"] * (p["D0"] + spec)),
        }


class SplitPrelearned(Form):
    r"""Pre-learned data (Lin et al. 2024, "Selecting Large Language Model to Fine-tune via Rectified Scaling Law").

    L_k = E_k + R / (1 + s_k R D'^b_k),   R = A/N^alpha + B_k/D^beta

    Lin et al. fit fine-tuning curves as L(D') = B_ft/(D_l + D'^b) + E: a flat "pre-learned" phase
    while D'^b << D_l, then a power law. Matching L(0) to the pretrained model's loss
    E + R (R the Chinchilla reducible loss after pretraining) gives D_l = B_ft/R; with
    s_k = 1/B_ft the law above is exactly Lin's, with the pre-learned data D_l = 1/(s_k R)
    growing as pretraining (larger N, more D) lowers R. Equivalently 1/(L - E) = 1/R + s_k D'^b_k:
    reciprocal reducible losses add. Reduces to Chinchilla at D' = 0 and tends to E_k as D' grows.
    s_k is in (nats/token)^-1 tokens^-b_k. Convex in (D, D') for a fixed N when beta <= 1 and
    b_k <= 1 (written as inv_pos of a concave expression for the DCP path); A and B enter
    nonlinearly, so they are searched on a grid.
    """

    name = "split-prelearned"
    equation = "L_k = E_k + R/(1 + s_k*R*D'^b_k),  R = A/N^alpha + B_k/D^beta"
    description = ("Lin et al. 2024 pre-learned data: fine-tuning curves start flat; pre-learned data "
                   "1/(s_k R) grows as pretraining lowers the reducible loss R")
    params = (
        Param("E", 1e-3, 20.0, "nats/token", per_domain=True, linear=True, start=1.7, description="irreducible loss of domain k"),
        Param("A", 1e-6, 1e12, "nats/token * params^alpha", start=400.0, grid=(3.0, 100.0, 3e3, 1e5), description="model-size amplitude (shared)"),
        Param("alpha", 0.01, 2.0, "", start=0.34, grid=(0.15, 0.3, 0.5), description="model-size exponent (shared)"),
        Param("B", 1e-6, 1e14, "nats/token * tokens^beta", per_domain=True, start=400.0, grid=(10.0, 1e3, 1e5, 1e7), description="data amplitude of domain k"),
        Param("beta", 0.01, 2.0, "", start=0.28, grid=(0.15, 0.3, 0.5), description="data exponent (shared)"),
        Param("s", 1e-15, 1e6, "(nats/token)^-1 * tokens^-b", per_domain=True, start=1e-3, grid=(1e-6, 1e-3, 1.0), needs_spec=True,
              description="inverse fine-tuning amplitude (Lin's 1/B)"),
        Param("b", 0.01, 2.0, "", per_domain=True, start=0.5, grid=(0.3, 0.7), needs_spec=True,
              description="exponent of the specialization tokens (<= 1 with beta <= 1: convex)"),
    )
    inputs = ("model_size", "pretrain_tokens", "spec_tokens")
    has_spec = True

    @staticmethod
    def _parts(p: Mapping[str, Any], x: Inputs) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n_term = x.model_size ** -p["alpha"]
        d_term = x.pretrain_tokens ** -p["beta"]
        reducible = p["A"] * n_term + p["B"] * d_term
        spec_pow = _positive_part(x.spec_tokens) ** p["b"]
        return n_term, d_term, reducible, spec_pow

    def predict(self, p: Mapping[str, Any], x: Inputs) -> np.ndarray:
        _, _, reducible, spec_pow = self._parts(p, x)
        return p["E"] + reducible / (1.0 + p["s"] * reducible * spec_pow)

    def gradient(self, p: Mapping[str, Any], x: Inputs) -> dict[str, np.ndarray]:
        n_term, d_term, reducible, spec_pow = self._parts(p, x)
        v = p["s"] * spec_pow
        denom = 1.0 + v * reducible
        d_r = 1.0 / denom ** 2            # d/dR of R/(1 + v R)
        d_v = -(reducible / denom) ** 2   # d/dv of R/(1 + v R)
        return {
            "E": np.ones_like(n_term),
            "A": d_r * n_term,
            "alpha": -d_r * p["A"] * n_term * np.log(x.model_size),
            "B": d_r * d_term,
            "beta": -d_r * p["B"] * d_term * np.log(x.pretrain_tokens),
            "s": d_v * spec_pow,
            "b": d_v * v * safe_log(x.spec_tokens),
        }

    def cvxpy_loss(self, p: Mapping[str, float], model_size: float, pretrain_tokens: Any, spec_tokens: Any, token_scale: float = 1.0) -> Any:
        """E + inv_pos(u + v): u = 1/R = 1/a - (B'/a) inv_pos(a D^beta + B') concave, v = s' D'^b concave.

        a = A N^-alpha (fixed N), B' = B S^-beta and s' = s S^b for tokens in units S = token_scale.
        """
        import cvxpy as cp

        beta, b = float(p["beta"]), float(p["b"])
        a = float(p["A"]) * model_size ** -float(p["alpha"])
        b_amp = float(p["B"]) * token_scale ** -beta
        s_amp = float(p["s"]) * token_scale ** b
        d_pow = pretrain_tokens if beta == 1.0 else cp.power(pretrain_tokens, beta, approx=False)
        inv_reducible = 1.0 / a - (b_amp / a) * cp.inv_pos(a * d_pow + b_amp)
        spec = spec_tokens if b == 1.0 else cp.power(spec_tokens, b, approx=False)
        return float(p["E"]) + cp.inv_pos(inv_reducible + s_amp * spec)

    def convex_in_tokens(self, p: Mapping[str, float]) -> bool:
        return 0 < float(p["beta"]) <= 1.0 and 0 < float(p["b"]) <= 1.0
