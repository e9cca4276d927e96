"""Scenario files: a whole planning question in one TOML (or YAML) file.

A scenario names the FLOP budget (one number, or a list for a sweep), the target domains
with their weights and token availability, the scaling law (a saved law JSON, inline
parameters, or a runs file plus a form fitted on the fly), the constraints, the inference
demand, the strategies to compare and the report options. The schema is a set of pydantic v2
models with ``extra="forbid"``: unknown keys are errors. :func:`load_scenario` reads and
validates a file; errors are :class:`ScenarioError` naming the file, the key path and (where
the parser allows) the line. :func:`run_scenario` resolves the law, calls the optimizer and
returns a :class:`ScenarioResult` whose :meth:`~ScenarioResult.to_dict` is the
``allocation.json`` the reports are rendered from.

Numbers: plain numbers (``1e21``), or strings with a magnitude suffix ``K`` (1e3), ``M``
(1e6), ``B`` or ``G`` (1e9), ``T`` (1e12), ``P`` (1e15): ``"3.5B"``, ``"1.2T"``, ``"1e21"``.
A unit word may follow and must match the key's unit: ``"3.5B params"``, ``"1.2T tokens"``,
``"1e21 FLOPs"``. Every key that holds a quantity names its unit (``flops``, ``*_tokens``,
``model_size`` in parameters).

>>> from planner.scenario import parse_quantity
>>> parse_quantity("3.5B", "params")
3500000000.0
"""

from __future__ import annotations

import json
import math
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Iterable, Literal, Mapping, Sequence

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._io import read_text
from .constants import ALLOCATION_SCHEMA, SCENARIO_SCHEMA
from .errors import PlannerError

__all__ = [
    "ScenarioError",
    "Scenario",
    "BudgetSpec",
    "LawSpec",
    "DomainSpec",
    "ConstraintsSpec",
    "InferenceSpec",
    "ReportSpec",
    "CompareSpec",
    "OptimizerSpec",
    "ScenarioResult",
    "ALLOCATION_SCHEMA",
    "SCENARIO_SCHEMA",
    "parse_quantity",
    "load_scenario",
    "resolve_law",
    "run_scenario",
    "schema_json",
    "schema_markdown",
    "BASELINE_STRATEGIES",
]


#: baseline strategies a scenario can compare the plan with (the allocator's names):
#: no-split (pretraining only, D' = 0), fixed (a fixed pretraining share, 80 % by default),
#: separate (one model per domain, the budget shared by weight)
BASELINE_STRATEGIES: tuple[str, ...] = ("no-split", "fixed", "separate")


class ScenarioError(PlannerError):
    """A scenario file that cannot be read or does not validate.

    The message names the file, the key path (``domains[1].weight``) and, where the parser
    allows, the line. ``problems`` holds one ``(key_path, line, message)`` per problem.
    """

    def __init__(self, message: str, problems: Sequence[tuple[str, int | None, str]] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


from .quantities import parse_quantity  # noqa: E402  (re-exported: scenario keys and the CLI parse with it)


def _quantity(unit: str) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        return parse_quantity(value, unit)

    parse.__name__ = f"parse_{unit or 'number'}"
    return parse


Flops = Annotated[float, BeforeValidator(_quantity("flops")), Field(json_schema_extra={"unit": "FLOPs"})]
Tokens = Annotated[float, BeforeValidator(_quantity("tokens")), Field(json_schema_extra={"unit": "tokens"})]
Params = Annotated[float, BeforeValidator(_quantity("params")), Field(json_schema_extra={"unit": "parameters"})]
Positive = Annotated[float, BeforeValidator(_quantity(""))]


# --------------------------------------------------------------------------- schema
class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class BudgetSpec(_Spec):
    """``[budget]``: the training compute to plan."""

    flops: Flops | list[Flops] = Field(
        description="Training FLOPs: one number, or a list of budgets for a sweep (e.g. [1e21, 1e22, 1e23])."
    )
    plan: Flops | None = Field(
        None, description="With a list: the budget whose plan the report details (default: the middle one)."
    )

    @field_validator("flops")
    @classmethod
    def _non_empty(cls, v: Any) -> Any:
        if isinstance(v, list):
            if not v:
                raise ValueError("give at least one budget")
            if len(set(v)) != len(v):
                raise ValueError("budgets repeat")
        return v

    @model_validator(mode="after")
    def _plan_in_list(self) -> "BudgetSpec":
        if self.plan is not None and self.plan not in self.budgets:
            raise ValueError(f"plan = {self.plan:g} is not one of the budgets {', '.join(f'{b:g}' for b in self.budgets)}")
        return self

    @property
    def budgets(self) -> list[float]:
        """Every budget, ascending."""
        return sorted(self.flops) if isinstance(self.flops, list) else [self.flops]

    @property
    def is_sweep(self) -> bool:
        return isinstance(self.flops, list) and len(self.flops) > 1

    @property
    def primary(self) -> float:
        """The budget whose plan is detailed."""
        if self.plan is not None:
            return self.plan
        b = self.budgets
        return b[len(b) // 2]


class LawSpec(_Spec):
    """``[law]``: where the scaling law comes from: exactly one of ``file``, ``params`` or ``runs``.

    Paths are relative to the scenario file.
    """

    file: str | None = Field(None, description="A saved law JSON (written by `planner fit -o` or FittedLaw.save).")
    runs: str | None = Field(None, description="A run table (CSV, TSV, Parquet, JSON lines) to fit `form` on.")
    form: str | None = Field(
        None,
        description='Form name (see `planner forms`); with `runs`, "auto" picks the form with the lowest held-out error.',
    )
    params: dict[str, float] | None = Field(
        None, description='Inline parameter values for `form`, per-domain ones named like "B[code]".'
    )
    columns: dict[str, str] | None = Field(None, description="Rename run-table columns: {your_name = canonical_name}.")
    holdout: str | None = Field(
        "auto", description='Held-out rule for the fit, e.g. "model_size <= 3e8" or "token_fraction <= 0.7"; "auto" holds out the largest model size.'
    )
    bootstrap: int = Field(0, ge=0, le=10000, description="Bootstrap draws for intervals (0: none).")
    calibrate: bool = Field(
        False, description="Calibrate extrapolation intervals on size backtests; the plan's loss intervals then cover the error of extrapolating (see docs/methods.md)."
    )
    loss: Literal["huber", "ls", "over"] = Field("huber", description="Fitting loss on log residuals.")
    fix: dict[str, float] | None = Field(None, description="Parameters held fixed during the fit, e.g. {alpha = 0.34}.")
    tie: list[str] = Field(default_factory=list, description='Per-domain parameters shared across domains, e.g. ["gamma"].')
    min_tokens: Tokens | None = Field(None, description="Drop checkpoints with fewer tokens (D + D') than this.")
    max_starts: int = Field(256, ge=1, description="Multi-start budget of the fit (lower is faster).")
    seed: int = Field(0, description="Random seed of the fit (bootstrap, starts).")

    @model_validator(mode="after")
    def _one_source(self) -> "LawSpec":
        sources = [k for k in ("file", "params", "runs") if getattr(self, k) is not None]
        if len(sources) != 1:
            raise ValueError(
                "give exactly one law source: file = \"law.json\", runs = \"runs.csv\" (with form), or form + params"
                + (f" (got {', '.join(sources)})" if sources else "")
            )
        if self.params is not None and not self.form:
            raise ValueError("inline params need form = \"...\"")
        if self.runs is not None and not self.form:
            raise ValueError('a runs file needs form = "..." (or form = "auto")')
        if self.form == "auto" and self.runs is None:
            raise ValueError('form = "auto" selects a form by fitting: it needs runs = "..."')
        return self

    @property
    def source(self) -> str:
        return "file" if self.file is not None else "runs" if self.runs is not None else "params"


class DomainSpec(_Spec):
    """``[[domains]]``: one target domain."""

    name: str = Field(min_length=1, description="Domain name, as in the law (per-domain parameters) or the runs' domain column.")
    weight: Positive = Field(1.0, description="Weight of this domain's loss in the objective (relative).")
    unique_tokens: Tokens | None = Field(None, description="Unique specialization tokens available for this domain.")
    max_epochs: Positive | None = Field(None, description="Most passes over the unique tokens (cap D' <= unique_tokens * max_epochs).")
    inference_tokens: Tokens | None = Field(None, description="Lifetime inference tokens served by this domain's model (2 N FLOPs each).")
    target_loss: Positive | None = Field(None, description="Loss this domain must reach (nats/token).")
    law: str | None = Field(
        None,
        description="A saved law JSON for this domain only (e.g. fitted on that domain's runs); overrides [law] for this domain, which then sets the general loss.",
    )
    downstream: str | None = Field(
        None,
        description="A saved downstream law JSON (loss -> error, e.g. `planner fit evals.csv --form downstream-exp -o err.json`); the report adds the predicted error of this domain.",
    )

    @model_validator(mode="after")
    def _epochs_need_unique(self) -> "DomainSpec":
        if self.max_epochs is not None and self.unique_tokens is None:
            raise ValueError("max_epochs needs unique_tokens")
        return self


class ConstraintsSpec(_Spec):
    """``[constraints]``: limits the plan must respect (names as in ``planner.Constraints``)."""

    min_model_size: Params | None = Field(None, description="Smallest model size N (parameters).")
    max_model_size: Params | None = Field(None, description="Largest model size N (parameters).")
    model_sizes: list[Params] | None = Field(None, description='A menu of allowed model sizes, e.g. ["1B", "3B", "7B"].')
    max_pretrain_tokens: Tokens | None = Field(None, description="Cap on general pretraining tokens D.")
    pretrain_unique_tokens: Tokens | None = Field(None, description="Unique general tokens available (see pretrain_max_epochs, repetition).")
    pretrain_max_epochs: Positive | None = Field(None, description="Most passes over the general unique tokens (default 1 with pretrain_unique_tokens).")
    min_tokens_per_param: Positive | None = Field(None, description="Lower bound on D / N (general tokens per parameter).")
    max_tokens_per_param: Positive | None = Field(None, description="Upper bound on D / N (general tokens per parameter).")
    repetition: Literal["cap", "effective"] = Field(
        "cap",
        description='How repeated data counts: "cap" limits tokens to unique tokens x max epochs; "effective" lets data repeat but counts Muennighoff effective tokens.',
    )
    repetition_decay: Positive | None = Field(None, description="R*_D of the effective-tokens model (published 15.39).")
    mode: Literal["min-loss", "min-compute"] = Field(
        "min-loss", description='"min-loss": best objective within the budget; "min-compute": least compute that reaches every domain\'s target_loss.'
    )

    @model_validator(mode="after")
    def _consistent(self) -> "ConstraintsSpec":
        if self.min_model_size and self.max_model_size and self.min_model_size > self.max_model_size:
            raise ValueError("min_model_size is above max_model_size")
        if self.min_tokens_per_param and self.max_tokens_per_param and self.min_tokens_per_param > self.max_tokens_per_param:
            raise ValueError("min_tokens_per_param is above max_tokens_per_param")
        if self.pretrain_max_epochs is not None and self.pretrain_unique_tokens is None:
            raise ValueError("pretrain_max_epochs needs pretrain_unique_tokens")
        return self


class InferenceSpec(_Spec):
    """``[inference]``: serving demand (about 2 N FLOPs per inference token)."""

    tokens: Tokens | None = Field(None, description="Lifetime inference tokens of the general model (domains add their own inference_tokens).")
    accounting: Literal["in-budget", "separate"] = Field(
        "in-budget", description='"in-budget": inference FLOPs share the training budget; "separate": they have their own limit.'
    )
    flops_limit: Flops | None = Field(None, description='Limit on inference FLOPs (with accounting = "separate").')

    @model_validator(mode="after")
    def _limit(self) -> "InferenceSpec":
        if self.accounting == "in-budget" and self.flops_limit is not None:
            raise ValueError('flops_limit applies to accounting = "separate"')
        return self


class CompareSpec(_Spec):
    """``[compare]``: the usual baselines the plan is measured against."""

    strategies: list[Literal["no-split", "fixed", "separate"]] = Field(
        default_factory=lambda: list(BASELINE_STRATEGIES),
        description='Baselines: "no-split" (pretraining only), "fixed" (a fixed pretraining share), "separate" (one model per domain). [] compares with none.',
    )
    fixed_fraction: float = Field(0.8, gt=0, lt=1, description='Pretraining share of training compute in the "fixed" baseline.')


class CostSpec(_Spec):
    """``[cost]``: training FLOPs per token. Without architecture facts, 6 N (Kaplan et al.)."""

    n_layers: int | None = Field(None, gt=0, description="Transformer layers: with d_model and context, adds the attention term 6 n_layers context d_model FLOPs per token.")
    d_model: int | None = Field(None, gt=0, description="Model width (with n_layers and context).")
    context: int | None = Field(None, gt=0, description="Training context length in tokens (with n_layers and d_model).")
    scale_with_model_size: bool = Field(
        False, description="Keep the width/depth ratio of the given architecture as N changes (attention term ~ N^(2/3)) instead of a fixed architecture."
    )

    @model_validator(mode="after")
    def _all_or_none(self) -> "CostSpec":
        given = [k for k in ("n_layers", "d_model", "context") if getattr(self, k) is not None]
        if given and len(given) != 3:
            missing = sorted({"n_layers", "d_model", "context"} - set(given))
            raise ValueError(f"the attention FLOP term needs n_layers, d_model and context; missing {', '.join(missing)}")
        return self


class OptimizerSpec(_Spec):
    """``[optimizer]``: how the plan is solved."""

    path: Literal["auto", "gp", "dcp", "multistart"] = Field(
        "auto", description='Solver path: "auto" picks the geometric program when the law allows it (certified), else DCP with a search over N, else multi-start.'
    )
    robust: Literal["mean", "worst"] | None = Field(
        None, description='Optimise the mean or the worst case over the law\'s bootstrap draws (needs law.bootstrap > 0).'
    )
    seed: int = Field(0, description="Seed of the independent check and of the multi-start path.")
    objective: Literal["loss", "error"] = Field(
        "loss",
        description='"loss": minimise sum_k w_k L_k; "error": minimise sum_k w_k Err_k(L_k) with each domain\'s downstream law (stationary point by reweighting, uncertified).',
    )


class ReportSpec(_Spec):
    """``[report]``: what to write."""

    title: str | None = Field(None, description="Report title (default: the scenario's title or file name).")
    formats: list[Literal["md", "json", "csv", "html"]] = Field(
        default_factory=lambda: ["json", "md", "csv", "html"], description="Report files to write."
    )
    compute_span: Positive = Field(10.0, description="The objective-against-compute plot spans budget / span .. budget * span.")
    compute_points: int = Field(5, ge=2, le=50, description="Budgets solved for that plot (single-budget scenarios).")

    @field_validator("compute_span")
    @classmethod
    def _span(cls, v: float) -> float:
        if v <= 1:
            raise ValueError("compute_span must be above 1")
        return v


class Scenario(_Spec):
    """A planning question: budget, domains, law, constraints, inference, strategies, report."""

    title: str | None = Field(None, description="A short name for the scenario.")
    description: str | None = Field(None, description="What question the scenario answers.")
    budget: BudgetSpec = Field(description="The FLOP budget.")
    law: LawSpec = Field(description="The scaling law.")
    domains: list[DomainSpec] = Field(min_length=1, description="Target domains.")
    constraints: ConstraintsSpec = Field(default_factory=ConstraintsSpec, description="Limits on the plan.")
    inference: InferenceSpec = Field(default_factory=InferenceSpec, description="Inference demand.")
    cost: CostSpec = Field(default_factory=lambda: CostSpec(), description="Training FLOPs per token (6N, or 6N plus attention).")
    compare: CompareSpec = Field(default_factory=lambda: CompareSpec(), description="Baselines the plan is compared with.")
    optimizer: OptimizerSpec = Field(default_factory=lambda: OptimizerSpec(), description="Solver options.")
    report: ReportSpec = Field(default_factory=ReportSpec, description="Report options.")

    @field_validator("domains")
    @classmethod
    def _unique_names(cls, v: list[DomainSpec]) -> list[DomainSpec]:
        names = [d.name for d in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"domain names repeat: {', '.join(dupes)}")
        return v

    # the file this scenario came from (not part of the schema)
    _path: Path | None = None

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def base_dir(self) -> Path:
        return self._path.parent if self._path is not None else Path.cwd()

    def resolve(self, relative: str) -> Path:
        """A path from the scenario, relative to the scenario file."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    @property
    def name(self) -> str:
        return self.title or (self._path.stem if self._path else "scenario")

    def echo(self) -> dict[str, Any]:
        """The scenario as JSON-able data (what the reports echo)."""
        out = self.model_dump(mode="json", exclude_none=True)
        if self._path is not None:
            out["file"] = str(self._path)
        return out


# --------------------------------------------------------------------------- reading
def _parse_text(text: str, path: Path) -> tuple[dict[str, Any], str]:
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f", line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ScenarioError(f"{path}{where}: invalid YAML: {problem}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ScenarioError(f"{path}: a scenario is a mapping of keys (budget, law, domains, ...), not a {type(data).__name__}")
        return data, "yaml"
    if suffix not in (".toml", ""):
        raise ScenarioError(f"{path}: unknown scenario file type {suffix!r}: use .toml (or .yaml / .yml)")
    try:
        return tomllib.loads(text), "toml"
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        core = re.sub(r"\s*\(at line \d+, column \d+\)", "", msg)
        where = f", line {m.group(1)}" if m else ""
        raise ScenarioError(f"{path}{where}: invalid TOML: {core}") from None


def _toml_key_lines(text: str) -> dict[tuple, int]:
    """Map key paths (tuples of str / int) to 1-based line numbers, by a light scan of TOML text.

    Handles ``[table]``, ``[[array]]`` headers, ``key = value`` and dotted keys; keys inside
    inline tables are mapped to the line of the enclosing key.
    """
    lines: dict[tuple, int] = {}
    current: tuple = ()
    counts: dict[tuple, int] = {}
    header = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*(\]\]?)\s*(#.*)?$")
    keyline = re.compile(r"^\s*([A-Za-z0-9_\-\.\"' ]+?)\s*=")
    for no, raw in enumerate(text.splitlines(), start=1):
        m = header.match(raw)
        if m:
            parts = tuple(p.strip().strip('"\'') for p in m.group(2).split("."))
            if m.group(1) == "[[":
                idx = counts.get(parts, 0)
                counts[parts] = idx + 1
                current = parts + (idx,)
            else:
                current = parts
            lines.setdefault(current, no)
            lines.setdefault(current[:-1] if isinstance(current[-1], int) else current, no)
            continue
        k = keyline.match(raw)
        if k:
            parts = tuple(p.strip().strip('"\'') for p in k.group(1).split("."))
            lines.setdefault(current + parts, no)
    return lines


def _yaml_key_lines(text: str) -> dict[tuple, int]:
    """Map key paths to 1-based lines using the YAML node tree."""
    out: dict[tuple, int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return out

    def walk(node: Any, path: tuple) -> None:
        out.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                kp = path + (key.value,)
                out[kp] = key.start_mark.line + 1
                walk(value, kp)
                out[kp] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, path + (i,))

    if root is not None:
        walk(root, ())
    return out


def _line_for(loc: tuple, key_lines: Mapping[tuple, int]) -> int | None:
    for n in range(len(loc), 0, -1):
        if loc[:n] in key_lines:
            return key_lines[loc[:n]]
    return None


def _key_path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _format_validation(exc: ValidationError, path: Path, key_lines: Mapping[tuple, int]) -> ScenarioError:
    problems: list[tuple[str, int | None, str]] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if isinstance(p, int) or not re.match(r"^(function-|list\[|float|union\[|literal\[|constrained)", str(p)))
        kind = err["type"]
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if kind == "extra_forbidden":
            msg = "unknown key (check the spelling; see `planner schema` or docs/scenario-reference.md)"
        elif kind == "missing":
            msg = "required key is missing"
        key = _key_path(loc)
        if (key, msg) in seen:
            continue
        seen.add((key, msg))
        problems.append((key, _line_for(loc, key_lines), msg))
    # a union (number or list) reports each branch: keep the most specific message per key
    by_key: dict[str, tuple[str, int | None, str]] = {}
    for p in problems:
        by_key.setdefault(p[0], p)
    problems = list(by_key.values())
    parts = [f"{path}" + (f", line {line}" if line else "") + f": {key}: {msg}" for key, line, msg in problems]
    # one line, so the CLI prints one line per error (several problems are joined by "; ")
    return ScenarioError("; ".join(parts), problems)


def load_scenario(source: str | Path | Mapping[str, Any], *, base_dir: str | Path | None = None) -> Scenario:
    """Read and validate a scenario file (TOML, or YAML by extension) or a mapping.

    Raises :class:`ScenarioError` naming the file, the key path and the line.
    """
    if isinstance(source, Mapping):
        path = Path(base_dir or ".") / "<scenario>"
        data, key_lines = dict(source), {}
    else:
        path = Path(source)
        text = read_text(path, "scenario file", ScenarioError)
        data, kind = _parse_text(text, path)
        key_lines = _toml_key_lines(text) if kind == "toml" else _yaml_key_lines(text)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise _format_validation(exc, path, key_lines) from None
    scenario._path = path.resolve() if not isinstance(source, Mapping) else (Path(base_dir).resolve() / "<scenario>" if base_dir else None)
    return scenario


def check_scenario(scenario: Scenario) -> list[str]:
    """Checks beyond the schema that need no solving: files exist, forms are known.

    Returns a list of problems (empty when fine); each names the key path.
    """
    from .laws import get_form

    problems: list[str] = []
    spec = scenario.law
    for key in ("file", "runs"):
        rel = getattr(spec, key)
        if rel is not None and not scenario.resolve(rel).is_file():
            problems.append(f"law.{key}: file not found: {scenario.resolve(rel)}")
    if spec.form and spec.form != "auto":
        try:
            get_form(spec.form)
        except KeyError as exc:
            problems.append(f"law.form: {exc}")
    for i, d in enumerate(scenario.domains):
        if d.downstream is not None and not scenario.resolve(d.downstream).is_file():
            problems.append(f"domains[{i}].downstream: file not found: {scenario.resolve(d.downstream)}")
        if d.law is not None and not scenario.resolve(d.law).is_file():
            problems.append(f"domains[{i}].law: file not found: {scenario.resolve(d.law)}")
    return problems


# --------------------------------------------------------------------------- running
def resolve_law(scenario: Scenario, *, progress: Callable[[int, int], None] | None = None) -> Any:
    """The :class:`~planner.FittedLaw` the scenario names: loaded, built from params, or fitted.

    Raises ScenarioError for a missing file, FitError / RunsError for bad data or options.
    """
    from . import fit, law, load_law

    spec = scenario.law
    problems = check_scenario(scenario)
    if problems:
        raise ScenarioError(f"{scenario.path or '<scenario>'}: " + "; ".join(problems))
    if spec.source == "file":
        return load_law(scenario.resolve(spec.file))  # type: ignore[arg-type]
    if spec.source == "params":
        params = dict(spec.params or {})
        # per-domain slots ("B[code]") name their domains; shared values apply to the scenario's domains
        names = None if _has_domain_slots(params) or not _form_per_domain(spec.form) else [d.name for d in scenario.domains]
        try:
            return law(spec.form, domains=names, tie=spec.tie, **params)  # type: ignore[arg-type]
        except (KeyError, ValueError) as exc:
            raise ScenarioError(f"{scenario.path or '<scenario>'}: law.params: {str(exc).strip(chr(34))}") from None
    options: dict[str, Any] = {
        "loss": spec.loss, "train_on": spec.holdout, "bootstrap": spec.bootstrap, "calibrate": spec.calibrate, "seed": spec.seed,
        "max_starts": spec.max_starts,
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


def _has_domain_slots(params: Mapping[str, float]) -> bool:
    return any("[" in k for k in params)


def _form_per_domain(form: str | None) -> bool:
    from .laws import get_form

    try:
        return any(q.per_domain for q in get_form(form).params)  # type: ignore[arg-type]
    except KeyError:
        return False


def domain_laws(scenario: Scenario) -> dict[str, Any]:
    """Laws given per domain (``[[domains]] law = "..."``), by domain name."""
    from . import FitError, load_law

    out: dict[str, Any] = {}
    for i, d in enumerate(scenario.domains):
        if d.law is None:
            continue
        where = f"{scenario.path or '<scenario>'}: domains[{i}].law"
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


def check_domains(scenario: Scenario, fitted_law: Any, own: Mapping[str, Any] | None = None) -> None:
    """Every scenario domain must be one the law has parameters for (its own law, or [law])."""
    own = own or {}
    missing = [d.name for d in scenario.domains if d.name not in own and not fitted_law.has_domain(d.name)]
    if missing:
        raise ScenarioError(
            f"{scenario.path or '<scenario>'}: domains: the law has parameters for "
            f"{', '.join(fitted_law.domains)}, not for {', '.join(missing)}"
        )


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


def _downstream_law(scenario: Scenario, index: int, rel: str) -> Any:
    from . import FitError, load_law

    where = f"{scenario.path or '<scenario>'}: domains[{index}].downstream"
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
    """Keyword options of ``planner.optimize`` that the scenario sets (mode, inference accounting)."""
    out: dict[str, Any] = {}
    if scenario.compare.fixed_fraction != 0.8:
        out["fixed_fraction"] = scenario.compare.fixed_fraction
    opt = scenario.optimizer
    if opt.path != "auto":
        out["path"] = opt.path
    if opt.robust is not None:
        out["robust"] = opt.robust
    if opt.seed:
        out["seed"] = opt.seed
    if opt.objective != "loss":
        out["objective"] = opt.objective
    if scenario.constraints.mode != "min-loss":
        out["mode"] = scenario.constraints.mode
    inf = scenario.inference
    if inf.accounting != "in-budget":
        out["inference"] = inf.accounting
    if inf.flops_limit is not None:
        out["inference_budget"] = inf.flops_limit
    cost = scenario.cost
    if cost.n_layers is not None:
        from .allocate import AttentionFlops

        out["flops"] = AttentionFlops(cost.n_layers, cost.d_model, cost.context, scale_with_model_size=cost.scale_with_model_size)  # type: ignore[arg-type]
    return out


def _allocator() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``planner.allocate.optimize`` and ``sweep`` (imported late: the optimizer is heavy)."""
    from .allocate import optimize, sweep

    return optimize, sweep


def _allocation_dict(alloc: Any) -> dict[str, Any]:
    return alloc.to_dict() if hasattr(alloc, "to_dict") else dict(alloc)


def _feasible(d: Mapping[str, Any]) -> bool:
    status = str(d.get("status", "optimal")).lower()
    return status not in ("infeasible", "failed", "error", "unbounded")


@dataclass
class ScenarioResult:
    """The outcome of :func:`run_scenario`: the law, the plan at every budget, the comparison curve.

    ``allocation`` is the plan at the primary budget (``planner.Allocation`` or its dict);
    ``allocations`` one per budget solved; ``curve`` the objective of the plan and of each
    baseline against compute; :meth:`to_dict` is the ``allocation.json`` document.
    """

    scenario: Scenario
    law: Any
    allocation: Any
    allocations: list[Any] = field(default_factory=list)
    domain_laws: dict[str, Any] = field(default_factory=dict)
    curve: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """False when the plan at the primary budget is infeasible or failed (exit code 1)."""
        return _feasible(_allocation_dict(self.allocation))

    def to_dict(self) -> dict[str, Any]:
        from .report import build_result

        return build_result(
            allocation=_allocation_dict(self.allocation),
            laws={"law": self.law.to_dict() if hasattr(self.law, "to_dict") else dict(self.law),
                  **{f"domains.{name}.law": own.to_dict() for name, own in self.domain_laws.items()}},
            scenario=self.scenario.echo(),
            sweep=[_allocation_dict(a) for a in self.allocations],
            curve=self.curve,
            warnings=self.warnings,
            title=self.scenario.report.title or self.scenario.name,
            timings=self.timings,
        )


def curve_budgets(scenario: Scenario, *, sweep: bool = False) -> list[float]:
    """Budgets for the objective-against-compute plot (the sweep list, or a span around the plan)."""
    b = scenario.budget
    if b.is_sweep and not sweep:
        return b.budgets
    span, n = scenario.report.compute_span, scenario.report.compute_points
    center = b.primary
    lo, hi = math.log10(center / span), math.log10(center * span)
    values = [10 ** (lo + (hi - lo) * i / (n - 1)) for i in range(n)]
    # the scenario's own budgets exactly (10**23.0 may come out as 1.0000000000000002e23)
    values = [v for v in values if not any(abs(v - x) <= 1e-9 * x for x in b.budgets)]
    return sorted(set(values) | set(b.budgets))


def run_scenario(
    scenario: Scenario | str | Path,
    *,
    sweep: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    optimize_options: Mapping[str, Any] | None = None,
) -> ScenarioResult:
    """Resolve the law, solve the plan and the comparison curve, and build the result.

    The plan at the primary budget is solved with ``planner.optimize`` (baselines, compute
    multipliers, marginal value, independent check). The objective-against-compute curve
    solves the plan and each baseline strategy at every curve budget with ``planner.sweep``
    (the sweep list, or ``report.compute_points`` budgets across ``report.compute_span``).
    ``sweep=True`` lists the plan at every curve budget even for a single budget.
    ``progress(stage, done, total)`` is called for the fit's bootstrap ("fit") and the solves
    ("solve"). Raises ScenarioError / FitError / RunsError / AllocationError on bad input.
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    fit_progress = (lambda done, total: progress("fit", done, total)) if progress else None
    fitted_law = resolve_law(scenario, progress=fit_progress)
    timings["law_seconds"] = time.perf_counter() - t0
    own_laws = domain_laws(scenario)
    check_domains(scenario, fitted_law, own_laws)
    # with per-domain laws the optimizer takes a dict (the [law] law serves the other domains
    # and, when it has one, the general loss)
    law_arg: Any = fitted_law
    if own_laws:
        law_arg = {d.name: own_laws.get(d.name, fitted_law) for d in scenario.domains}
        if fitted_law.has_domain("general"):
            law_arg["general"] = fitted_law
    optimize, sweep_plans = _allocator()
    domains = domains_for(scenario)
    constraints = constraints_for(scenario) or None
    options = {**optimize_options_for(scenario), **dict(optimize_options or {})}
    strategies = list(scenario.compare.strategies)
    budgets = curve_budgets(scenario, sweep=sweep)
    primary = scenario.budget.primary
    steps = 1 + 1 + len(strategies)
    t1 = time.perf_counter()
    plan = optimize(law_arg, primary, domains, constraints, baselines=bool(strategies), **options)
    plan_dict = _allocation_dict(plan)
    plan_dict["baselines"] = [b for b in plan_dict.get("baselines") or [] if b.get("strategy") in strategies]
    if progress:
        progress("solve", 1, steps)
    curve_options = {**options, "check": False}
    by_strategy: dict[str, list[dict[str, Any]]] = {}
    for i, strategy in enumerate(["split"] + strategies):
        if options.get("objective") == "error":
            # no compiled sweep in error: each strategy's error-optimal plan at every curve budget
            plans = [plan if (strategy == "split" and b == primary) else
                     optimize(law_arg, b, domains, constraints, strategy=strategy, baselines=False, **curve_options) for b in budgets]
        else:
            plans = sweep_plans(law_arg, budgets, domains, constraints, strategy=strategy, baselines=False,
                                **({**curve_options, "marginal": strategy == "split"}))
        by_strategy[strategy] = [_allocation_dict(p) for p in plans]
        if progress:
            progress("solve", 2 + i, steps)
    timings["solve_seconds"] = time.perf_counter() - t1
    curve = []
    for j, budget in enumerate(budgets):
        d = plan_dict if budget == primary else by_strategy["split"][j]
        curve.append({
            "budget": budget,
            "objective": d.get("objective") if _feasible(d) else None,
            "status": d.get("status"),
            "baselines": {s: (by_strategy[s][j].get("objective") if _feasible(by_strategy[s][j]) else None) for s in strategies},
        })
    listed = scenario.budget.budgets if scenario.budget.is_sweep else (budgets if sweep else [])
    sweep_list = [plan_dict if b == primary else by_strategy["split"][budgets.index(b)] for b in listed]
    warnings = [{"code": w.code, "message": w.message} for w in getattr(fitted_law, "warnings", ())]
    for name, own in own_laws.items():
        warnings += [{"code": w.code, "message": f"[{name} law] {w.message}"} for w in own.warnings]
    return ScenarioResult(
        scenario=scenario,
        law=fitted_law,
        domain_laws=own_laws,
        allocation=plan_dict,
        allocations=sweep_list,
        curve=curve,
        warnings=warnings,
        timings=timings,
    )


# --------------------------------------------------------------------------- schema export
def schema_json() -> dict[str, Any]:
    """JSON Schema of a scenario file (for editors: ``planner schema > scenario.schema.json``)."""
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCENARIO_SCHEMA
    return schema


def _type_text(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
    if "$ref" in prop:
        return "table"
    if "anyOf" in prop:
        kinds = [_type_text(p, defs) for p in prop["anyOf"] if p.get("type") != "null"]
        return " or ".join(dict.fromkeys(kinds))
    if "enum" in prop:
        return " | ".join(f'"{v}"' for v in prop["enum"])
    t = prop.get("type")
    if t == "array":
        items = prop.get("items", {})
        if items.get("$ref"):
            return "array of tables"
        return f"list of {_type_text(items, defs)}"
    if t == "object":
        extra = prop.get("additionalProperties")
        return f"table of {_type_text(extra, defs)}" if isinstance(extra, dict) else "table"
    unit = prop.get("unit")
    if t == "number" and unit:
        return f"{unit} (number or \"3.5B\")"
    return {"number": "number", "integer": "integer", "string": "string", "boolean": "boolean"}.get(str(t), str(t or "any"))


def _default_text(prop: Mapping[str, Any], required: bool) -> str:
    if required:
        return "required"
    if "default" not in prop:
        return "optional"
    d = prop["default"]
    if d is None:
        return "(none)"
    return f"`{json.dumps(d)}`"


def schema_markdown() -> str:
    """docs/scenario-reference.md, generated from the schema (a test keeps the file equal to this)."""
    schema = Scenario.model_json_schema()
    defs = schema.get("$defs", {})
    tables = [
        ("(top level)", "Scenario", schema),
        ("[budget]", "BudgetSpec", defs["BudgetSpec"]),
        ("[law]", "LawSpec", defs["LawSpec"]),
        ("[[domains]]", "DomainSpec", defs["DomainSpec"]),
        ("[constraints]", "ConstraintsSpec", defs["ConstraintsSpec"]),
        ("[inference]", "InferenceSpec", defs["InferenceSpec"]),
        ("[cost]", "CostSpec", defs["CostSpec"]),
        ("[compare]", "CompareSpec", defs["CompareSpec"]),
        ("[optimizer]", "OptimizerSpec", defs["OptimizerSpec"]),
        ("[report]", "ReportSpec", defs["ReportSpec"]),
    ]
    lines = [
        "# Scenario file reference",
        "",
        "<!-- GENERATED by planner.scenario.schema_markdown(); do not edit by hand.",
        "     Regenerate: planner schema --markdown > docs/scenario-reference.md -->",
        "",
        "A scenario is a TOML file (YAML with the same keys is accepted: `.yaml`/`.yml`). Unknown keys are",
        "errors. Paths are relative to the scenario file. Quantities take plain numbers (`1e21`) or strings",
        "with a magnitude suffix: `K` (1e3), `M` (1e6), `B` or `G` (1e9), `T` (1e12), `P` (1e15), e.g.",
        "`\"3.5B\"`, `\"1.2T\"`; a unit word may follow and must match the key (`\"1.2T tokens\"`,",
        "`\"7B params\"`, `\"1e21 FLOPs\"`). `planner schema` prints the JSON Schema for editors;",
        "`planner validate FILE` checks a file without solving.",
        "",
        "Minimal scenario:",
        "",
        "```toml",
        "[budget]",
        "flops = 1e21",
        "",
        "[law]",
        'runs = "runs.csv"   # or: file = "law.json"',
        'form = "auto"',
        "",
        "[[domains]]",
        'name = "code"',
        "weight = 2.0",
        "",
        "[[domains]]",
        'name = "math"',
        "```",
        "",
    ]
    for header, _, node in tables:
        lines += [f"## `{header}`", ""]
        doc = (node.get("description") or "").strip()
        if doc:
            lines += [" ".join(doc.split()), ""]
        lines += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        required = set(node.get("required", []))
        for key, prop in node.get("properties", {}).items():
            desc = (prop.get("description") or "").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{key}` | {_type_text(prop, defs).replace('|', '/')} | {_default_text(prop, key in required)} | {desc} |")
        lines.append("")
    return "\n".join(lines)
