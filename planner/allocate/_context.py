"""What the caller asked for, checked and resolved: a law per domain, the options, the :class:`Problem`.

:func:`build_context` is the one place where the arguments of ``optimize``/``sweep`` are checked
(the options by :func:`._options.check_options`, the budget by :func:`._options.check_budget`) and
turned into a normalised :class:`~.problem.Problem`, which then carries the budget to every solver.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np

from ..constants import MAX_DOMAINS
from ..fitting.law import FittedLaw
from ._options import OptimizeOptions, check_budget
from .model import AllocationError, Constraints, Domain
from .problem import ParameterDraw, Problem

__all__ = ["Context", "build_context", "parameter_draws", "domain_params"]

#: parameters that must be > 0 (exponents) and >= 0 (amplitudes) for a loss law to be physical
_EXPONENTS = ("alpha", "beta", "gamma", "eta")
_AMPLITUDES = ("A", "B", "C", "E", "s", "D0", "a", "b")


@dataclass(frozen=True)
class Context:
    """What the caller asked for, resolved: a law per domain, the options, the problem (with its budget)."""

    laws: tuple[FittedLaw, ...]
    law_domains: tuple[str, ...]
    domains: tuple[Domain, ...]
    general: tuple[FittedLaw, str] | None
    problem: Problem
    options: OptimizeOptions

    @property
    def strategy(self) -> str:
        return self.options.strategy

    @property
    def budget(self) -> float | None:
        return self.problem.budget

    def at_budget(self, budget: float | None) -> "Context":
        """The same request at another (already checked) budget."""
        return replace(self, problem=self.problem.with_budget(budget))


def _law_domain(law: FittedLaw, name: str, *, where: str) -> str:
    if not isinstance(law, FittedLaw):
        raise AllocationError(f"{where}: expected a FittedLaw (planner.law or planner.fit), got {type(law).__name__}")
    if law.form.kind != "loss" and law.form.target != "loss":
        raise AllocationError(f"{where}: the {law.form.name} law predicts {law.form.target}, not a loss; pass it as Domain(downstream=...)")
    if name in law.domains:
        return name
    if law.has_domain(name):
        return law.domains[0]
    if len(law.domains) == 1 and where.startswith("law["):
        return law.domains[0]
    raise AllocationError(f"{where}: the {law.form.name} law has parameters for domains {', '.join(law.domains)}, not {name!r}")


def _resolve_laws(law: Any, names: Sequence[str]) -> tuple[list[FittedLaw], list[str], tuple[FittedLaw, str] | None]:
    laws: list[FittedLaw] = []
    doms: list[str] = []
    if isinstance(law, Mapping):
        if not law:
            raise AllocationError("law: an empty dict of laws")
        for name in names:
            if name not in law:
                raise AllocationError(f"law: no law for domain {name!r}; laws given for {', '.join(map(str, law))}")
            laws.append(law[name])
            doms.append(_law_domain(law[name], name, where=f"law[{name!r}]"))
        if "general" in law:
            general = (law["general"], _law_domain(law["general"], "general", where="law['general']"))
        else:
            general = None
    elif isinstance(law, FittedLaw):
        for name in names:
            laws.append(law)
            doms.append(_law_domain(law, name, where="law"))
        general = (law, "general" if "general" in law.domains else law.domains[0]) if (law.has_domain("general") or "general" in law.domains) else None
    else:
        raise AllocationError(f"law must be a FittedLaw or a dict domain -> FittedLaw, not {type(law).__name__}")
    return laws, doms, general


def domain_params(laws: Sequence[FittedLaw], doms: Sequence[str], values: Sequence[Mapping[str, float]] | None = None) -> list[dict[str, float]]:
    """Scalar parameters of each (law, domain) pair, expanding each law's slots once (O(K), not O(K^2))."""
    expanded: dict[int, tuple[list[tuple[str, Any]], dict[str, int]]] = {}
    out = []
    for i, (law, dom) in enumerate(zip(laws, doms)):
        key = id(law) if values is None else i
        if key not in expanded:
            vals = law.params if values is None else values[i]
            per = law.layout.per_domain(vals)
            # per-domain arrays as Python lists (one conversion per law, not one per domain and parameter)
            items = [(name, v.tolist() if isinstance(v, np.ndarray) else float(v)) for name, v in per.items()]
            expanded[key] = (items, {d: j for j, d in enumerate(law.domains)})
        items, index = expanded[key]
        j = index.get(dom, 0)
        out.append({name: (float(v[j]) if isinstance(v, list) else v) for name, v in items})
    return out


def parameter_draws(laws: Sequence[FittedLaw], ldoms: Sequence[str], max_draws: int) -> tuple[ParameterDraw, ...]:
    """Per-draw scalar parameters of every domain (draw b of each law; laws without draws stay nominal)."""
    counts = [len(l.draws) for l in laws if l.draws is not None and len(l.draws)]
    if not counts:
        return ()
    B = min(min(counts), max_draws)
    idx = np.unique(np.linspace(0, min(counts) - 1, B).round().astype(int))
    out = []
    for b in idx:
        values = []
        for l in laws:
            if l.draws is None or not len(l.draws):
                values.append(dict(l.params))
            else:
                values.append(dict(zip(l.params, (float(v) for v in l.draws[b]))))
        out.append(ParameterDraw(tuple(domain_params(laws, ldoms, values))))
    return tuple(out)


def _check_physics(names: Sequence[str], forms: Sequence[Any], params: Sequence[Mapping[str, float]]) -> None:
    """Refuse laws whose parameters make no physical sense for planning (the fitting lane range-checks too).

    Exponents (alpha, beta, gamma, eta) must be > 0 and finite, amplitudes (A, B, C, E, ...) >= 0 and
    finite: with alpha = beta = 0 the loss does not fall with scale (any plan is "optimal"); a negative
    E gives negative losses.
    """
    bad = []
    seen: set[tuple[int, tuple]] = set()
    for name, form, p in zip(names, forms, params):
        key = (id(form), tuple(sorted(p.items())))
        if key in seen:
            continue
        seen.add(key)
        for q, v in p.items():
            if not math.isfinite(v):
                bad.append(f"{q} = {v!r} (domain {name!r}) is not finite")
            elif q in _EXPONENTS and v <= 0:
                bad.append(f"exponent {q} = {v:g} (domain {name!r}) must be > 0: the loss would not fall with scale")
            elif q in _AMPLITUDES and v < 0:
                bad.append(f"{q} = {v:g} (domain {name!r}) must be >= 0: a loss law cannot go negative")
        if len(bad) >= 5:
            break
    if bad:
        raise AllocationError("the law cannot be planned with: " + "; ".join(bad))


def _domain_list(domains: Any) -> tuple[Domain, ...]:
    if domains is None:
        return ()
    if isinstance(domains, (str, bytes, Domain, Mapping)):
        raise AllocationError(
            f"domains must be a list of domains (planner.Domain, dicts or names), not a single {type(domains).__name__} {domains!r}; "
            f"write domains=[{domains!r}]" if isinstance(domains, str) else
            f"domains must be a list of domains (planner.Domain, dicts or names), not a single {type(domains).__name__}"
        )
    try:
        items = list(domains)
    except TypeError:
        raise AllocationError(f"domains must be a list of domains, not {type(domains).__name__}") from None
    if len(items) > MAX_DOMAINS:
        raise AllocationError(f"{len(items)} domains: at most {MAX_DOMAINS} (planner.constants.MAX_DOMAINS) in one plan")
    return tuple(Domain.coerce(d) for d in items)


def build_context(law: Any, budget: Any, domains: Any, constraints: Any, options: OptimizeOptions, constraint_fields: Mapping[str, Any]) -> Context:
    """Check the arguments of ``optimize`` and resolve them into a :class:`Context` (raises AllocationError)."""
    known = Constraints.field_names()
    unknown = set(constraint_fields) - known
    if unknown:
        raise AllocationError(f"optimize: unknown options {sorted(unknown)}; options: see help(planner.optimize), plus the Constraints fields {sorted(known)}")
    cons = Constraints.coerce(constraints, **constraint_fields)
    strategy, mode = options.strategy, options.mode
    if budget is not None:
        budget = check_budget(budget)
    elif mode == "min-loss":
        raise AllocationError("a budget (FLOPs) is needed unless mode='min-compute'")
    doms = _domain_list(domains)
    names = [d.name for d in doms]
    if len(set(names)) != len(names):
        raise AllocationError(f"duplicate domain names: {names}")
    pseudo = not doms
    if pseudo:
        if isinstance(law, Mapping):
            if not law:
                raise AllocationError("law: an empty dict of laws")
            key = "general" if "general" in law else next(iter(law))
            gl = law[key]
            laws, ldoms = [gl], [_law_domain(gl, key, where=f"law[{key!r}]")]
        elif isinstance(law, FittedLaw):
            laws, ldoms = [law], ["general" if "general" in law.domains else law.domains[0]]
            _law_domain(law, ldoms[0], where="law")
        else:
            raise AllocationError(f"law must be a FittedLaw or a dict domain -> FittedLaw, not {type(law).__name__}")
        names = ["general"]
        doms_for_problem: tuple[Domain, ...] = (Domain("general", target_loss=None),)
        general: tuple[FittedLaw, str] | None = (laws[0], ldoms[0])
    else:
        laws, ldoms, general = _resolve_laws(law, names)
        doms_for_problem = doms
    weights = np.array([d.weight for d in doms_for_problem], dtype=float)
    if mode == "min-loss" and not np.any(weights > 0):
        raise AllocationError("every domain has weight 0: nothing to minimise")
    if mode == "min-compute" and not any(d.target_loss is not None for d in doms_for_problem):
        raise AllocationError("mode='min-compute' needs at least one Domain(target_loss=...)")
    forms = tuple(l.form for l in laws)
    params = tuple(domain_params(laws, ldoms))
    _check_physics(names, forms, params)
    can_spec = np.array([f.has_spec and d.name != "general" for f, d in zip(forms, doms_for_problem)], dtype=bool)
    if strategy == "no-split":
        can_spec[:] = False
    rep = cons.repetition
    spec_cap = np.array([math.inf if rep == "effective" else d.token_cap for d in doms_for_problem])
    spec_unique = np.array([math.inf if d.unique_tokens is None else float(d.unique_tokens) for d in doms_for_problem])
    inference_tokens = np.array([d.inference_tokens for d in doms_for_problem], dtype=float)
    targets = np.array([math.nan if d.target_loss is None else float(d.target_loss) for d in doms_for_problem])
    inference = options.inference_mode
    total_inference = float(inference_tokens.sum()) + float(cons.inference_tokens or 0.0)
    if options.inference_budget is not None and total_inference <= 0:
        raise AllocationError("inference_budget= is given but no inference tokens are (Domain(inference_tokens=...) or Constraints(inference_tokens=...)): the limit would not apply")
    draws: tuple[ParameterDraw, ...] = ()
    if options.robust is not None:
        draws = parameter_draws(laws, ldoms, options.max_draws if options.max_draws is not None else 100)
        if not draws:
            raise AllocationError(f"robust={options.robust!r} needs bootstrap draws: fit the law with bootstrap=B")
        for dr in draws:
            _check_physics(names, forms, dr.params)
    prob = Problem(
        names=tuple(names), pseudo_general=pseudo, weights=weights, forms=forms, params=params, can_spec=can_spec,
        spec_cap=spec_cap, spec_unique=spec_unique, inference_tokens=inference_tokens, targets=targets, budget=budget,
        flop_model=options.flop_model, constraints=cons, inference=inference, inference_budget=options.inference_budget, mode=mode,
        fixed_fraction=options.fixed_fraction if strategy == "fixed" else None, robust=options.robust, draws=draws,
    )
    return Context(laws=tuple(laws), law_domains=tuple(ldoms), domains=doms, general=general, problem=prob, options=options)
