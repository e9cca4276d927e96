"""Parameter layout: a form's declared parameters times the domains, with fixed and tied ones.

A *slot* is one fitted number: ``alpha`` (shared), ``E[code]`` (per domain) or
``eta`` (a per-domain parameter tied across domains). Free slots are optimised
in a transformed space (log for positive parameters); fixed slots keep the value
they were given (which may be 0, e.g. ``D0 = 0`` to make the additive law a
posynomial).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .._records import Note
from ..errors import PlannerError
from ..laws.base import Form, Param

__all__ = ["Slot", "ParamLayout", "FitError", "slot_name", "parse_slot_name"]


@dataclass(frozen=True)
class FitWarning(Note):
    """A problem with a fit worth a reader's attention (``code`` is stable, ``message`` is prose)."""


class FitError(PlannerError):
    """A fit that cannot start: bad options, unknown parameters, unusable data."""


def slot_name(param: str, domain: str | None) -> str:
    return param if domain is None else f"{param}[{domain}]"


def parse_slot_name(name: str) -> tuple[str, str | None]:
    if name.endswith("]") and "[" in name:
        base, dom = name[:-1].split("[", 1)
        return base, dom
    return name, None


@dataclass(frozen=True)
class Slot:
    name: str
    param: Param
    domain: int | None  # domain index, or None for a shared / tied slot
    fixed: float | None = None

    @property
    def log(self) -> bool:
        return self.param.positive


class ParamLayout:
    """Maps a flat vector of free (transformed) slot values to per-domain parameter values."""

    def __init__(
        self,
        form: Form,
        domains: Sequence[str],
        *,
        fix: Mapping[str, float] | None = None,
        tie: Iterable[str] = (),
        bounds: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        self.form = form
        self.domains = tuple(domains)
        tie = set(tie)
        fix = dict(fix or {})
        bounds = dict(bounds or {})
        known = set(form.param_names)
        for name in tie:
            if name not in known:
                raise FitError(f"tie: form {form.name!r} has no parameter {name!r} (it has {', '.join(form.param_names)})")
            if not form.param(name).per_domain:
                raise FitError(f"tie: {name!r} is already shared across domains in form {form.name!r}")
        for name in list(fix) + list(bounds):
            base, dom = parse_slot_name(name)
            if base not in known:
                raise FitError(f"form {form.name!r} has no parameter {base!r} (in {name!r}); it has {', '.join(form.param_names)}")
            if dom is not None and dom not in self.domains:
                raise FitError(f"{name!r}: domain {dom!r} is not in the runs (domains: {', '.join(self.domains)})")
        slots: list[Slot] = []
        for q in form.params:
            if name_bounds := bounds.get(q.name):
                lo, hi = map(float, name_bounds)
                q = Param(**{**q.__dict__, "lower": lo, "upper": hi, "start": min(max(q.start, lo), hi)})
            if q.per_domain and q.name not in tie:
                for k, dom in enumerate(self.domains):
                    nm = slot_name(q.name, dom)
                    value = fix.get(nm, fix.get(q.name))
                    slots.append(Slot(nm, q, k, None if value is None else float(value)))
            else:
                value = fix.get(q.name)
                slots.append(Slot(q.name, q, None, None if value is None else float(value)))
        self.slots = tuple(slots)
        self.free = tuple(s for s in self.slots if s.fixed is None)
        self.tied = tuple(sorted(tie))

    # ----------------------------------------------------------- transforms
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.slots)

    @property
    def free_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.free)

    def to_theta(self, values: Mapping[str, float]) -> np.ndarray:
        """Free slot values (by name) -> transformed vector, clipped into the bounds."""
        out = np.empty(len(self.free))
        for i, s in enumerate(self.free):
            v = float(np.clip(values[s.name], s.param.lower, s.param.upper))
            out[i] = np.log(v) if s.log else v
        return out

    def from_theta(self, theta: np.ndarray) -> dict[str, float]:
        """Transformed free vector -> all slot values by name (fixed ones included)."""
        out: dict[str, float] = {}
        it = iter(theta)
        for s in self.slots:
            out[s.name] = s.fixed if s.fixed is not None else (float(np.exp(next(it))) if s.log else float(next(it)))
        return out

    def theta_bounds(self) -> list[tuple[float, float]]:
        return [(np.log(s.param.lower), np.log(s.param.upper)) if s.log else (s.param.lower, s.param.upper) for s in self.free]

    def start_values(self) -> dict[str, float]:
        return {s.name: (s.fixed if s.fixed is not None else s.param.start) for s in self.slots}

    # ----------------------------------------------------------- expansion
    def per_domain(self, values: Mapping[str, float]) -> dict[str, Any]:
        """Slot values -> {param: float (shared) or array over domains}."""
        out: dict[str, Any] = {}
        k = len(self.domains)
        for s in self.slots:
            if s.domain is None:
                out[s.param.name] = values[s.name]
            else:
                arr = out.setdefault(s.param.name, np.empty(k))
                arr[s.domain] = values[s.name]
        return out

    def expand(self, values: Mapping[str, float], domain_index: np.ndarray) -> dict[str, Any]:
        """Slot values -> {param: scalar or per-row array} for ``Form.predict``."""
        return {name: (v[domain_index] if isinstance(v, np.ndarray) else v) for name, v in self.per_domain(values).items()}

    def domain_values(self, values: Mapping[str, float], domain: str) -> dict[str, float]:
        """Scalar parameter values for one domain."""
        k = self.domains.index(domain)
        return {name: (float(v[k]) if isinstance(v, np.ndarray) else float(v)) for name, v in self.per_domain(values).items()}

    def slot_rows(self, domain_index: np.ndarray) -> list[np.ndarray | None]:
        """For each free slot, the boolean mask of rows it acts on (None: all rows)."""
        return [None if s.domain is None else (domain_index == s.domain) for s in self.free]
