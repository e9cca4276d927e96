r"""A law as a flat vector of log-parameters, for the fast design computations.

``LawVec`` ties a :class:`~planner.laws.Form` to its domains and an ordered list of slots
(``A``, ``alpha``, ``B[code]``, ...). Every slot of the split and Chinchilla forms is positive,
so the design works with theta = log(values): the prior, the Fisher information and the
posterior covariance are all in log-parameter space, and

    d log L / d log theta_j = (dL/d value_j) * value_j / L

comes from the form's analytic ``gradient`` (finite differences for a form without one).
Points are arrays of (N, D, D', domain index).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..fitting.law import FittedLaw, law as make_law
from ..fitting.layout import parse_slot_name
from ..laws import Form, get_form
from ..laws.base import Inputs
from ..errors import PlannerError

__all__ = ["LawVec", "Points", "DesignError"]


class DesignError(PlannerError):
    """Bad input to the experiment design (budget, sizes, domains, progress)."""


@dataclass(frozen=True)
class Points:
    """Measurement points: one loss per row at (N, D, D') on domain ``dom`` (index into the law's domains)."""

    model_size: np.ndarray
    pretrain_tokens: np.ndarray
    spec_tokens: np.ndarray
    dom: np.ndarray

    def __len__(self) -> int:
        return int(self.model_size.shape[0])

    @classmethod
    def empty(cls) -> "Points":
        z = np.zeros(0)
        return cls(z, z, z, np.zeros(0, dtype=int))

    @classmethod
    def concat(cls, parts: Sequence["Points"]) -> "Points":
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("model_size", "pretrain_tokens", "spec_tokens", "dom")))

    def take(self, mask: np.ndarray) -> "Points":
        return Points(self.model_size[mask], self.pretrain_tokens[mask], self.spec_tokens[mask], self.dom[mask])


@dataclass(frozen=True)
class LawVec:
    """Form + domains + slot order: evaluate a law given as a vector of log-parameters."""

    form: Form
    domains: tuple[str, ...]
    slots: tuple[str, ...]

    @classmethod
    def for_form(cls, form: Form | str, domains: Sequence[str]) -> "LawVec":
        f = get_form(form)
        slots = []
        for p in f.params:
            if p.per_domain:
                slots.extend(f"{p.name}[{d}]" for d in domains)
            else:
                slots.append(p.name)
        for p in f.params:
            if not p.positive:
                raise DesignError(f"the design needs positive parameters; {f.name}.{p.name} is not")
        return cls(f, tuple(domains), tuple(slots))

    @classmethod
    def of_law(cls, law: FittedLaw, domains: Sequence[str]) -> tuple["LawVec", np.ndarray]:
        """The vector layout of ``law`` over ``domains`` and its log-parameter vector."""
        vec = cls.for_form(law.form, domains)
        values = []
        for s in vec.slots:
            base, dom = parse_slot_name(s)
            if s in law.params:
                values.append(law.params[s])
            elif base in law.params:  # tied or shared slot
                values.append(law.params[base])
            elif dom is not None and len(law.domains) == 1:
                values.append(law.params[f"{base}[{law.domains[0]}]"])
            else:
                raise DesignError(f"the {law.form.name} law has no value for {s}; its domains: {', '.join(law.domains)}")
        return vec, np.log(np.asarray(values, dtype=float))

    @property
    def p(self) -> int:
        return len(self.slots)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Log bounds of every slot (the form's declared bounds)."""
        lo, hi = [], []
        for s in self.slots:
            q = self.form.param(parse_slot_name(s)[0])
            lo.append(np.log(q.lower))
            hi.append(np.log(q.upper))
        return np.asarray(lo), np.asarray(hi)

    def _expand(self, theta: np.ndarray, dom: np.ndarray) -> dict[str, Any]:
        values = np.exp(np.asarray(theta, dtype=float))
        out: dict[str, Any] = {}
        per: dict[str, np.ndarray] = {}
        for v, s in zip(values, self.slots):
            base, d = parse_slot_name(s)
            if d is None:
                out[base] = v
            else:
                per.setdefault(base, np.empty(len(self.domains)))[self.domains.index(d)] = v
        for base, arr in per.items():
            out[base] = arr[dom]
        return out

    def predict(self, theta: np.ndarray, pts: Points) -> np.ndarray:
        x = Inputs.build(model_size=pts.model_size, pretrain_tokens=pts.pretrain_tokens, spec_tokens=pts.spec_tokens)
        return np.asarray(self.form.predict(self._expand(theta, pts.dom), x), dtype=float)

    def jac_log(self, theta: np.ndarray, pts: Points) -> np.ndarray:
        """d log L / d theta at every point, shape (len(pts), p)."""
        n = len(pts)
        if n == 0:
            return np.zeros((0, self.p))
        x = Inputs.build(model_size=pts.model_size, pretrain_tokens=pts.pretrain_tokens, spec_tokens=pts.spec_tokens)
        pv = self._expand(theta, pts.dom)
        loss = np.asarray(self.form.predict(pv, x), dtype=float)
        grad = self.form.gradient(pv, x) if hasattr(self.form, "gradient") else None
        values = np.exp(theta)
        jac = np.zeros((n, self.p))
        if grad is None:
            h = 1e-6
            for j in range(self.p):
                t = theta.copy()
                t[j] += h
                jac[:, j] = (np.log(self.predict(t, pts)) - np.log(loss)) / h
            return jac
        for j, s in enumerate(self.slots):
            base, d = parse_slot_name(s)
            g = np.broadcast_to(np.asarray(grad[base], dtype=float), (n,))
            if d is not None:
                g = np.where(pts.dom == self.domains.index(d), g, 0.0)
            jac[:, j] = g * values[j] / loss
        return np.nan_to_num(jac)

    def to_law(self, theta: np.ndarray) -> FittedLaw:
        """A ``planner.law`` with these parameters (for the public optimizer and reports)."""
        return make_law(self.form, domains=self.domains, **{s: float(v) for s, v in zip(self.slots, np.exp(theta))})
