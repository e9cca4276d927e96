"""Split-training laws L_k(N, D, D'_k): a shared base model of size N pretrained on D general tokens,
then continued pretraining on D'_k tokens of domain k (BRIEF §2).

Every form reduces to a Chinchilla law at D' = 0. The amplitude of the model-size
term (A, alpha) is shared by all domains; the irreducible loss E and the data
amplitude B are per domain; exponents of the specialization term are per domain
and can be tied across domains at fit time (``tie=["eta"]``).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .base import Form, Inputs, Monomial, Param, safe_log

__all__ = ["EffectiveTokensForm", "SplitEffective", "SplitInteraction", "SplitAdditive"]

_EXP_GRID = (0.15, 0.3, 0.5)


def _shared_params() -> tuple[Param, ...]:
    return (
        Param("E", 1e-3, 20.0, "nats/token", per_domain=True, linear=True, start=1.7, description="irreducible loss of domain k"),
        Param("A", 1e-6, 1e12, "nats/token * params^alpha", linear=True, start=400.0, description="model-size amplitude (shared)"),
        Param("alpha", 0.01, 2.0, "", start=0.34, grid=_EXP_GRID, description="model-size exponent (shared)"),
        Param("B", 1e-6, 1e14, "nats/token * tokens^beta", per_domain=True, linear=True, start=400.0, description="data amplitude of domain k"),
        Param("beta", 0.01, 2.0, "", start=0.28, grid=_EXP_GRID, description="data exponent (shared)"),
    )


class EffectiveTokensForm(Form):
    r"""Base of the forms in which D' specialization tokens are worth W extra pretraining tokens.

    L_k = E_k + A/N^alpha + B_k / (D + W_k(N, D'))^beta,   W_k = c_k(N) D'^e_k

    A subclass names the worth's coefficient c_k(N) and exponent e_k (:meth:`worth_terms`) and the
    derivatives of W with respect to its own parameters (:meth:`worth_gradient`); prediction,
    the gradient of the shared terms and the DCP formulation are common. Convex in (D, D') for a
    fixed N when 0 < e_k <= 1.
    """

    def worth_terms(self, p: Mapping[str, Any], model_size: Any) -> tuple[Any, Any]:
        """(c_k(N), e_k): the coefficient (tokens^(1 - e_k)) and the exponent of W = c D'^e."""
        raise NotImplementedError

    def worth_gradient(self, p: Mapping[str, Any], x: Inputs, worth: np.ndarray) -> dict[str, np.ndarray]:
        """dW/d(parameter) for the worth's own parameters, given W at x."""
        raise NotImplementedError

    def worth(self, p: Mapping[str, Any], x: Inputs) -> np.ndarray:
        """W = c(N) D'^e in tokens (0 where D' = 0)."""
        coef, exponent = self.worth_terms(p, x.model_size)
        return coef * np.where(x.spec_tokens > 0, x.spec_tokens, 0.0) ** exponent

    def predict(self, p: Mapping[str, Any], x: Inputs) -> np.ndarray:
        eff = x.pretrain_tokens + self.worth(p, x)
        return p["E"] + p["A"] * x.model_size ** -p["alpha"] + p["B"] * eff ** -p["beta"]

    def gradient(self, p: Mapping[str, Any], x: Inputs) -> dict[str, np.ndarray]:
        worth = self.worth(p, x)
        eff = x.pretrain_tokens + worth
        n_term = x.model_size ** -p["alpha"]
        d_term = eff ** -p["beta"]
        d_eff = -p["B"] * p["beta"] * d_term / eff  # d/d eff of B eff^-beta
        shared = {
            "E": np.ones_like(n_term),
            "A": n_term,
            "alpha": -p["A"] * n_term * np.log(x.model_size),
            "B": d_term,
            "beta": -p["B"] * d_term * np.log(eff),
        }
        return shared | {name: d_eff * g for name, g in self.worth_gradient(p, x, worth).items()}

    def cvxpy_loss(self, p: Mapping[str, float], model_size: float, pretrain_tokens: Any, spec_tokens: Any, token_scale: float = 1.0) -> Any:
        import cvxpy as cp

        coef, exponent = (float(v) for v in self.worth_terms(p, model_size))
        beta = float(p["beta"])
        # (S D + c (S D')^e)^-beta = S^-beta (D + c S^(e-1) D'^e)^-beta with S = token_scale
        spec = spec_tokens if exponent == 1.0 else cp.power(spec_tokens, exponent, approx=False)
        eff = pretrain_tokens + coef * token_scale ** (exponent - 1.0) * spec
        return (float(p["E"]) + float(p["A"]) * model_size ** -float(p["alpha"])
                + float(p["B"]) * token_scale ** -beta * cp.power(eff, -beta, approx=False))

    def convex_in_tokens(self, p: Mapping[str, float]) -> bool:
        return 0 < float(self.worth_terms(p, 1.0)[1]) <= 1.0


class SplitEffective(EffectiveTokensForm):
    r"""Effective tokens: L_k = E_k + A/N^alpha + B_k / (D + s_k D'^eta_k)^beta.

    D' specialization tokens are worth s_k D'^eta_k general tokens on domain k
    (s_k in tokens^(1 - eta_k)). Convex in (D, D') for fixed N when eta_k <= 1,
    which the bounds enforce. The optimum tends to be all-or-nothing.
    """

    name = "split-effective"
    equation = "L_k = E_k + A/N^alpha + B_k/(D + s_k*D'^eta_k)^beta"
    description = "effective tokens: specialization tokens count as s_k*D'^eta_k pretraining tokens on domain k"
    params = _shared_params() + (
        Param("s", 1e-6, 1e9, "tokens^(1-eta)", per_domain=True, start=1.0, grid=(0.1, 10.0, 1000.0), needs_spec=True, description="worth of specialization tokens"),
        Param("eta", 0.05, 1.0, "", per_domain=True, start=0.9, grid=(0.6, 0.95), needs_spec=True, description="returns of specialization tokens (<= 1: convex)"),
    )
    inputs = ("model_size", "pretrain_tokens", "spec_tokens")
    has_spec = True

    def worth_terms(self, p: Mapping[str, Any], model_size: Any) -> tuple[Any, Any]:
        return p["s"], p["eta"]

    def worth_gradient(self, p: Mapping[str, Any], x: Inputs, worth: np.ndarray) -> dict[str, np.ndarray]:
        return {"s": worth / p["s"], "eta": worth * safe_log(x.spec_tokens)}


class SplitInteraction(Form):
    r"""Interaction: L_k = E_k + A/N^alpha + B_k D^-beta (1 + D'/(c_k D))^-gamma_k.

    Specialization multiplies the data term by (1 + D'/(c_k D))^-gamma_k: c_k is the
    ratio D'/D at which specialization starts to pay (dimensionless). Not convex in
    (D, D') in general: the allocator uses its multi-start path.
    """

    name = "split-interaction"
    equation = "L_k = E_k + A/N^alpha + B_k*D^-beta*(1 + D'/(c_k*D))^-gamma_k"
    description = "interaction: specialization shrinks the data term by (1 + D'/(c_k D))^-gamma_k"
    params = _shared_params() + (
        Param("c", 1e-5, 1e4, "", per_domain=True, start=0.1, grid=(0.01, 0.3), needs_spec=True, description="D'/D ratio where specialization starts to pay"),
        Param("gamma", 0.01, 3.0, "", per_domain=True, start=0.3, grid=(0.1, 0.5), needs_spec=True, description="strength of specialization"),
    )
    inputs = ("model_size", "pretrain_tokens", "spec_tokens")
    has_spec = True

    def predict(self, p: Mapping[str, Any], x: Inputs) -> np.ndarray:
        ratio = 1.0 + x.spec_tokens / (p["c"] * x.pretrain_tokens)
        return p["E"] + p["A"] * x.model_size ** -p["alpha"] + p["B"] * x.pretrain_tokens ** -p["beta"] * ratio ** -p["gamma"]

    def gradient(self, p: Mapping[str, Any], x: Inputs) -> dict[str, np.ndarray]:
        ratio = 1.0 + x.spec_tokens / (p["c"] * x.pretrain_tokens)
        n_term = x.model_size ** -p["alpha"]
        d_factor = x.pretrain_tokens ** -p["beta"] * ratio ** -p["gamma"]
        term = p["B"] * d_factor
        return {
            "E": np.ones_like(n_term),
            "A": n_term,
            "alpha": -p["A"] * n_term * np.log(x.model_size),
            "B": d_factor,
            "beta": -term * np.log(x.pretrain_tokens),
            "gamma": -term * np.log(ratio),
            # d ratio / d c = -D'/(c^2 D) = -(ratio - 1)/c
            "c": term * p["gamma"] * (ratio - 1.0) / (ratio * p["c"]),
        }


class SplitAdditive(Form):
    r"""Additive: L_k = E_k + A/N^alpha + B_k/D^beta + C_k/(D' + D0_k)^gamma_k.

    Pretraining and specialization tokens contribute separate terms. D0_k (tokens)
    keeps the term finite at D' = 0. With D0_k = 0 (fix it) the law is a posynomial
    and the allocation a geometric program, but every domain must then get D' > 0.
    """

    name = "split-additive"
    equation = "L_k = E_k + A/N^alpha + B_k/D^beta + C_k/(D' + D0_k)^gamma_k"
    description = "additive: separate power-law terms for pretraining and specialization tokens"
    params = _shared_params() + (
        Param("C", 1e-6, 1e14, "nats/token * tokens^gamma", per_domain=True, linear=True, start=10.0, needs_spec=True, absent_value=0.0, description="specialization amplitude"),
        Param("gamma", 0.01, 2.0, "", per_domain=True, start=0.3, grid=(0.1, 0.3, 0.6), needs_spec=True, description="specialization exponent"),
        Param("D0", 1e3, 1e14, "tokens", per_domain=True, start=1e9, grid=(1e8, 1e10), needs_spec=True, zero_ok=True, description="token offset keeping the term finite at D' = 0 (0 allowed: a posynomial)"),
    )
    inputs = ("model_size", "pretrain_tokens", "spec_tokens")
    has_spec = True

    def predict(self, p: Mapping[str, Any], x: Inputs) -> np.ndarray:
        with np.errstate(divide="ignore"):
            spec = p["C"] * (x.spec_tokens + p["D0"]) ** -p["gamma"]
        spec = np.where(p["C"] == 0, 0.0, spec)
        return p["E"] + p["A"] * x.model_size ** -p["alpha"] + p["B"] * x.pretrain_tokens ** -p["beta"] + spec

    def gradient(self, p: Mapping[str, Any], x: Inputs) -> dict[str, np.ndarray]:
        n_term = x.model_size ** -p["alpha"]
        d_term = x.pretrain_tokens ** -p["beta"]
        base = x.spec_tokens + p["D0"]
        s_term = base ** -p["gamma"]
        return {
            "E": np.ones_like(n_term),
            "A": n_term,
            "alpha": -p["A"] * n_term * np.log(x.model_size),
            "B": d_term,
            "beta": -p["B"] * d_term * np.log(x.pretrain_tokens),
            "C": s_term,
            "gamma": -p["C"] * s_term * np.log(base),
            "D0": -p["C"] * p["gamma"] * s_term / base,
        }

    def monomials(self, p: Mapping[str, float]) -> list[Monomial] | None:
        if float(p["D0"]) != 0.0 and float(p["C"]) != 0.0:
            return None
        out = [
            Monomial(float(p["E"])),
            Monomial(float(p["A"]), model_size_exp=-float(p["alpha"])),
            Monomial(float(p["B"]), pretrain_exp=-float(p["beta"])),
        ]
        if float(p["C"]) != 0.0:
            out.append(Monomial(float(p["C"]), spec_exp=-float(p["gamma"])))
        return out

    def cvxpy_loss(self, p: Mapping[str, float], model_size: float, pretrain_tokens: Any, spec_tokens: Any, token_scale: float = 1.0) -> Any:
        import cvxpy as cp

        beta, gamma = float(p["beta"]), float(p["gamma"])
        expr = float(p["E"]) + float(p["A"]) * model_size ** -float(p["alpha"]) + float(p["B"]) * token_scale ** -beta * cp.power(pretrain_tokens, -beta, approx=False)
        if float(p["C"]) != 0.0:
            expr = expr + float(p["C"]) * token_scale ** -gamma * cp.power(spec_tokens + float(p["D0"]) / token_scale, -gamma, approx=False)
        return expr

    def convex_in_tokens(self, p: Mapping[str, float]) -> bool:
        return True
