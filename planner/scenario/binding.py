"""Binding a scenario to the Python API: the law it names, and ``optimize``'s arguments.

Each function translates one part of a validated :class:`~planner.scenario.schema.Scenario`
into what :func:`planner.fit`, :func:`planner.law`, :func:`planner.load_law` and
:func:`planner.optimize` take, with the same meaning (a scenario key and the API argument of
the same name are one option). Nothing here solves.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from ..fitting import FitError, FittedLaw, fit, law, load_law
from .loading import check_scenario
from .schema import Scenario, ScenarioError

__all__ = [
    "resolve_law", "domain_laws", "check_domains", "law_argument", "domains_for", "constraints_for", "optimize_options_for",
    "check_plan_arguments",
]


def _where(scenario: Scenario) -> str:
    return str(scenario.path or "<scenario>")


def resolve_law(scenario: Scenario, *, progress: Callable[[int, int], None] | None = None, n_jobs: int | None = -1) -> FittedLaw:
    """The :class:`~planner.FittedLaw` the scenario names: loaded, built from params, or fitted
    (``n_jobs``: the fit's workers, scikit-learn's convention, see :class:`~planner.fitting.LawFitter`).

    Raises ScenarioError for a missing file, FitError / RunsError for bad data or options.
    """
    spec = scenario.law
    problems = check_scenario(scenario)
    if problems:
        raise ScenarioError(f"{_where(scenario)}: " + "; ".join(problems))
    if spec.source == "file":
        try:
            return load_law(scenario.resolve(spec.file))  # type: ignore[arg-type]
        except FitError as exc:
            raise ScenarioError(f"{_where(scenario)}: law.file: {exc}") from None
    if spec.source == "params":
        params = dict(spec.params or {})
        _check_param_names(scenario, spec.form, params)
        # per-domain slots ("B[code]") name their domains; shared values apply to the scenario's domains
        names = None if _has_domain_slots(params) or not _form_per_domain(spec.form) else [d.name for d in scenario.domains] or None
        try:
            return law(spec.form, domains=names, tie=spec.tie, **params)  # type: ignore[arg-type]
        except (KeyError, ValueError) as exc:
            raise ScenarioError(f"{_where(scenario)}: law.params: {str(exc).strip(chr(34))}") from None
    options: dict[str, Any] = {
        "loss": spec.loss, "train_on": spec.train_on, "bootstrap": spec.bootstrap, "calibrate": spec.calibrate, "seed": spec.seed,
        "max_starts": spec.max_starts, "n_jobs": n_jobs,
    }
    if spec.columns:
        options["columns"] = dict(spec.columns)
    if spec.fix:
        options["fix"] = dict(spec.fix)
    if spec.tie:
        options["tie"] = list(spec.tie)
    if spec.min_tokens is not None:
        options["min_tokens"] = spec.min_tokens
    if progress is not None and spec.bootstrap:
        options["progress"] = progress
    return fit(scenario.resolve(spec.runs), form=spec.form, **options)  # type: ignore[arg-type]


def _check_param_names(scenario: Scenario, form: str | None, params: Mapping[str, float]) -> None:
    """Inline parameter names are the form's (``alpha``, or a per-domain slot ``B[code]``)."""
    from ..fitting.layout import parse_slot_name
    from ..laws import get_form

    known = [q.name for q in get_form(form).params]  # type: ignore[arg-type]
    unknown = [k for k in params if parse_slot_name(k)[0] not in known]
    if unknown:
        raise ScenarioError(f"{_where(scenario)}: law.params: the {form} form has no parameter {', '.join(map(repr, unknown))} "
                            f"(its parameters: {', '.join(known)})")


def _has_domain_slots(params: Mapping[str, float]) -> bool:
    return any("[" in k for k in params)


def _form_per_domain(form: str | None) -> bool:
    from ..laws import get_form

    try:
        return any(q.per_domain for q in get_form(form).params)  # type: ignore[arg-type]
    except KeyError:
        return False


def domain_laws(scenario: Scenario) -> dict[str, FittedLaw]:
    """Laws given per domain (``[[domains]] law = "..."``), by domain name."""
    out: dict[str, FittedLaw] = {}
    for i, d in enumerate(scenario.domains):
        if d.law is None:
            continue
        where = f"{_where(scenario)}: domains[{i}].law"
        try:
            found = load_law(scenario.resolve(d.law))
        except FitError as exc:
            raise ScenarioError(f"{where}: {exc}") from None
        if found.form.target != "loss":
            raise ScenarioError(f"{where}: the {found.form.name} law predicts {found.form.target}, not a loss")
        if not found.has_domain(d.name):
            raise ScenarioError(f"{where}: the law has parameters for {', '.join(found.domains)}, not for {d.name!r}")
        out[d.name] = found
    return out


def check_domains(scenario: Scenario, fitted_law: FittedLaw, own: Mapping[str, FittedLaw] | None = None) -> None:
    """Every scenario domain must be one the law has parameters for (its own law, or [law])."""
    own = own or {}
    missing = [d.name for d in scenario.domains if d.name not in own and not fitted_law.has_domain(d.name)]
    if missing:
        def shown(name: str) -> str:  # a name with a line break or control character is quoted: errors stay on one line
            return name if name.isprintable() else repr(name)

        raise ScenarioError(
            f"{_where(scenario)}: domains: the law has parameters for "
            f"{', '.join(shown(n) for n in fitted_law.domains)}, not for {', '.join(shown(n) for n in missing)}"
        )


def law_argument(scenario: Scenario, fitted_law: FittedLaw, own: Mapping[str, FittedLaw]) -> FittedLaw | dict[str, FittedLaw]:
    """``optimize``'s ``law``: the [law] law, or a dict domain -> law when domains bring their own.

    With per-domain laws, the [law] law serves the other domains and, when it has one, the general loss.
    """
    if not own:
        return fitted_law
    out = {d.name: own.get(d.name, fitted_law) for d in scenario.domains}
    if fitted_law.has_domain("general"):
        out["general"] = fitted_law
    return out


def domains_for(scenario: Scenario) -> list[dict[str, Any]]:
    """The scenario's domains in the allocator's terms (``planner.Domain`` fields)."""
    out = []
    for i, d in enumerate(scenario.domains):
        item: dict[str, Any] = {"name": d.name, "weight": d.weight}
        for key in ("unique_tokens", "max_epochs", "inference_tokens", "target_loss"):
            value = getattr(d, key)
            if value is not None:
                item[key] = value
        if d.downstream is not None:
            item["downstream"] = _downstream_law(scenario, i, d.downstream)
        out.append(item)
    return out


def _downstream_law(scenario: Scenario, index: int, rel: str) -> FittedLaw:
    where = f"{_where(scenario)}: domains[{index}].downstream"
    try:
        found = load_law(scenario.resolve(rel))
    except FitError as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    if found.form.target != "error":
        raise ScenarioError(f"{where}: the {found.form.name} law predicts {found.form.target}; a downstream law (loss -> error) is needed, e.g. downstream-exp")
    return found


def constraints_for(scenario: Scenario) -> dict[str, Any]:
    """The scenario's ``[constraints]`` (and general inference tokens) as ``planner.Constraints`` fields."""
    c = scenario.constraints
    out: dict[str, Any] = {k: v for k, v in c.model_dump(exclude_none=True).items() if k not in ("mode",)}
    if out.get("repetition") == "cap":
        out.pop("repetition")
    if scenario.inference.tokens is not None:
        out["inference_tokens"] = scenario.inference.tokens
    return out


def optimize_options_for(scenario: Scenario) -> dict[str, Any]:
    """Keyword options of ``planner.optimize`` that the scenario sets (only those it sets)."""
    opt, inf = scenario.optimizer, scenario.inference
    chosen = {  # option -> (the scenario's value, the value that leaves the optimizer's default)
        "fixed_fraction": (scenario.compare.fixed_fraction, None),
        "path": (opt.path, "auto"),
        "solver": (opt.solver, "auto"),
        "robust": (opt.robust, None),
        "seed": (opt.seed, 0),
        "objective": (opt.objective, "loss"),
        "mode": (scenario.constraints.mode, "min-loss"),
        "inference": (inf.accounting, "in-budget"),
        "inference_budget": (inf.flops_limit, None),
    }
    out: dict[str, Any] = {key: value for key, (value, unset) in chosen.items() if value != unset}
    cost = scenario.cost
    if cost.n_layers is not None:
        from ..allocate import AttentionFlops

        out["flops"] = AttentionFlops(cost.n_layers, cost.d_model, cost.context, scale_with_model_size=cost.scale_with_model_size)  # type: ignore[arg-type]
    return out


def check_plan_arguments(scenario: Scenario, law: FittedLaw | Mapping[str, FittedLaw] | None = None) -> None:
    """The optimizer's own argument checks, without solving (what ``planner validate`` adds to the schema).

    The options are checked by the optimizer's option table (an option that does not apply is an
    error); with a law at hand, the whole call is checked too (domains against the law, constraints,
    the law's parameters), exactly as ``optimize`` checks it before it solves. Raises AllocationError.
    """
    from ..allocate import Constraints, Domain
    from ..allocate._context import build_context
    from ..allocate._options import check_options

    domains = domains_for(scenario)
    for d in domains:
        Domain.coerce(d)
    constraints = constraints_for(scenario) or None
    Constraints.coerce(constraints)
    options = check_options("optimize", **optimize_options_for(scenario))
    if law is not None and options.objective == "loss":
        build_context(law, scenario.budget.primary, domains, constraints, options, {})
