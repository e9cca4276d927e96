r"""Priors over the truth: what the design averages its expected regret over.

Two sources:

* **No runs yet** (:func:`published_prior`). The pretraining part is Epoch AI's refit of
  Chinchilla (Besiroglu et al. 2024): E = 1.817, A = 482.01, B = 2085.43, alpha = 0.3478,
  beta = 0.3658 with bootstrap standard errors (0.026, 124.5, 1293.3, 0.015, 0.021), drawn
  independently (A, B, E log-normal with the relative standard error as log-sd; alpha, beta
  normal), every standard error inflated x ``SE_INFLATION`` = 5: the errors describe one data set,
  and the published fits of different data sets sit further apart (Hoffmann et al.'s beta = 0.28
  and E = 1.69 are 4 and 5 of Epoch's standard errors from Epoch's values), so a team's own data
  should not be held to them. Every domain gets its own E_k = E exp(N(0, 0.15^2)) and B_k = B exp(N(0, 0.3^2)):
  domain text is easier or harder than the general mix. The specialization term is wide, over the
  three candidate forms with equal weight:

  - additive: C_k = v_k D0_k^gamma_k with v_k (the term's value at D' = 0, nats) log-uniform on
    [0.03, 0.5], gamma_k uniform on [0.15, 0.5], D0_k log-uniform on [1e7, 1e9] tokens;
  - effective tokens: s_k log-uniform on [1, 100], eta_k uniform on [0.7, 1];
  - interaction: c_k log-uniform on [0.01, 0.3], gamma_k uniform on [0.1, 0.6].

* **Runs exist** (:func:`prior_from_runs`). Every candidate form is fitted to the runs (a MAP fit
  regularised by the published prior above), and its Laplace posterior N(theta_hat, (F + P)^-1)
  becomes the prior: the design then asks what *new* runs add to what the team already knows. Forms
  are weighted by their likelihood, exp(-SSR_f / (2 sigma^2)) normalised, so forms the runs rule out
  drop away and forms they cannot tell apart keep their share (the forms' disagreement counts).
  The noise sigma is estimated from the best form's log residuals (1.4826 MAD, floored at 0.2 %).

Each component carries a Gaussian approximation in log-parameter space (mean, covariance), used as
the prior precision of the linearized criterion and as the regulariser of the simulated fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ._mapfit import map_fit
from ._model import DesignError, LawVec, Points

__all__ = ["FormPrior", "Prior", "published_prior", "prior_from_runs", "EPOCH", "EPOCH_SE", "SPLIT_FORMS"]

#: Epoch AI's refit of Chinchilla Approach 3 (Besiroglu et al. 2024) and its bootstrap standard errors
EPOCH = {"E": 1.817, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
EPOCH_SE = {"E": 0.026, "A": 124.5, "B": 1293.3, "alpha": 0.015, "beta": 0.021}
SPLIT_FORMS = ("split-additive", "split-effective", "split-interaction")
#: factor on Epoch's standard errors (between-data-set spread, see the module doc)
SE_INFLATION = 5.0
_PRIOR_SAMPLES = 4000


@dataclass(frozen=True)
class FormPrior:
    """One candidate form: its weight, a sampler of log-parameter vectors, a Gaussian approximation."""

    vec: LawVec
    weight: float
    mean: np.ndarray
    cov: np.ndarray
    sampler: Callable[[np.random.Generator, int], np.ndarray] = field(repr=False, compare=False)

    @property
    def precision(self) -> np.ndarray:
        return np.linalg.inv(self.cov)


@dataclass(frozen=True)
class Prior:
    """A mixture over candidate forms; ``source`` says where it came from; ``noise`` the log-loss sd."""

    components: tuple[FormPrior, ...]
    source: str
    noise: float = 0.01

    def draw(self, n: int, seed: int) -> list[tuple[int, np.ndarray]]:
        """n truths as (component index, log-parameter vector), stratified by weight."""
        rng = np.random.default_rng(seed)
        w = np.array([c.weight for c in self.components], dtype=float)
        w = w / w.sum()
        counts = np.floor(w * n).astype(int)
        for i in np.argsort(-(w * n - counts))[: n - counts.sum()]:
            counts[i] += 1
        out = []
        for i, (c, m) in enumerate(zip(self.components, counts)):
            if m:
                out.extend((i, th) for th in c.sampler(rng, int(m)))
        return out

    def describe(self) -> str:
        return "; ".join(f"{c.vec.form.name} {100 * c.weight:.0f} %" for c in self.components) + f" ({self.source})"


def _gaussian(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = samples.mean(axis=0)
    cov = np.cov(samples, rowvar=False) + 1e-8 * np.eye(samples.shape[1])
    return mean, cov


def _published_sampler(vec: LawVec) -> Callable[[np.random.Generator, int], np.ndarray]:
    form = vec.form.name
    K = len(vec.domains)

    def sample(rng: np.random.Generator, n: int) -> np.ndarray:
        v: dict[str, np.ndarray] = {}
        k = SE_INFLATION
        shared_e = EPOCH["E"] * np.exp(rng.normal(0, k * EPOCH_SE["E"] / EPOCH["E"], n))
        shared_b = EPOCH["B"] * np.exp(rng.normal(0, min(k * EPOCH_SE["B"] / EPOCH["B"], 1.5), n))
        v["A"] = EPOCH["A"] * np.exp(rng.normal(0, k * EPOCH_SE["A"] / EPOCH["A"], n))
        v["alpha"] = np.clip(rng.normal(EPOCH["alpha"], k * EPOCH_SE["alpha"], n), 0.1, 0.8)
        v["beta"] = np.clip(rng.normal(EPOCH["beta"], k * EPOCH_SE["beta"], n), 0.1, 0.8)
        for d in vec.domains:
            v[f"E[{d}]"] = shared_e * np.exp(rng.normal(0, 0.15, n))
            v[f"B[{d}]"] = shared_b * np.exp(rng.normal(0, 0.3, n))
            if form == "split-additive":
                gamma = rng.uniform(0.15, 0.5, n)
                d0 = np.exp(rng.uniform(math.log(1e7), math.log(1e9), n))
                val = np.exp(rng.uniform(math.log(0.03), math.log(0.5), n))
                v[f"gamma[{d}]"], v[f"D0[{d}]"], v[f"C[{d}]"] = gamma, d0, val * d0 ** gamma
            elif form == "split-effective":
                v[f"s[{d}]"] = np.exp(rng.uniform(0.0, math.log(100.0), n))
                v[f"eta[{d}]"] = rng.uniform(0.7, 1.0, n)
            elif form == "split-interaction":
                v[f"c[{d}]"] = np.exp(rng.uniform(math.log(0.01), math.log(0.3), n))
                v[f"gamma[{d}]"] = rng.uniform(0.1, 0.6, n)
            elif form != "chinchilla":  # pragma: no cover - guarded by published_prior
                raise DesignError(f"no published prior for form {form!r}")
        if form == "chinchilla":
            v = {"E": shared_e, "A": v["A"], "alpha": v["alpha"], "B": shared_b, "beta": v["beta"]}
        return np.log(np.column_stack([v[s] for s in vec.slots]))

    return sample


def published_prior(domains: Sequence[str], forms: Sequence[str] = SPLIT_FORMS, noise: float = 0.01, seed: int = 0) -> Prior:
    """Epoch's pretraining fit with its standard errors, wide priors over the D' forms (module doc)."""
    if not domains:
        forms = ("chinchilla",)
        domains = ("general",)
    comps = []
    for f in forms:
        vec = LawVec.for_form(f, tuple(domains))
        sampler = _published_sampler(vec)
        mean, cov = _gaussian(sampler(np.random.default_rng(seed + 7919), _PRIOR_SAMPLES))
        comps.append(FormPrior(vec, 1.0 / len(forms), mean, cov, sampler))
    return Prior(tuple(comps), "published: Epoch AI's Chinchilla refit for pretraining, wide priors over the D' forms", noise)


def gaussian_sampler(mean: np.ndarray, cov: np.ndarray) -> Callable[[np.random.Generator, int], np.ndarray]:
    chol = np.linalg.cholesky(cov + 1e-12 * np.eye(len(mean)))

    def sample(rng: np.random.Generator, n: int) -> np.ndarray:
        return mean + rng.standard_normal((n, len(mean))) @ chol.T

    return sample


def prior_from_runs(points: Points, log_loss: np.ndarray, domains: Sequence[str], forms: Sequence[str] = SPLIT_FORMS,
                    noise: float | None = None, seed: int = 0) -> Prior:
    """Laplace posterior of every candidate form given existing runs (module doc)."""
    base = published_prior(domains, forms, seed=seed)
    fits = []
    for c in base.components:
        theta, ssr, resid = map_fit(c.vec, points, log_loss, c.mean, c.precision, sigma=noise or 0.01, seed=seed)
        fits.append((c, theta, ssr, resid))
    best = min(fits, key=lambda f: f[2])
    if noise is None:
        r = best[3]
        noise = max(1.4826 * float(np.median(np.abs(r - np.median(r)))), 0.002)
    ssr_min = best[2]
    comps = []
    for c, theta, ssr, _ in fits:
        jac = c.vec.jac_log(theta, points)
        cov = np.linalg.inv(jac.T @ jac / noise ** 2 + c.precision)
        cov = 0.5 * (cov + cov.T)
        weight = math.exp(-0.5 * (ssr - ssr_min) / noise ** 2)
        comps.append(FormPrior(c.vec, weight, theta, cov, gaussian_sampler(theta, cov)))
    total = sum(c.weight for c in comps)
    comps = [FormPrior(c.vec, c.weight / total, c.mean, c.cov, c.sampler) for c in comps if c.weight / total > 1e-3]
    return Prior(tuple(comps), f"Laplace posterior of each form given {len(points)} existing measurements", float(noise))
