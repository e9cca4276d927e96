"""The scenario schema: pydantic v2 models of a scenario file, every key declared once.

Every model forbids unknown keys (``extra="forbid"``) and is frozen. Quantity keys
(``flops``, ``*_tokens``, ``model_size``) take plain numbers or strings such as ``"3.5B"``,
``"1.2T tokens"``, ``"1e21 FLOPs"`` (parsed by :func:`planner.quantities.parse_quantity`);
the JSON Schema types them as number-or-string, so an editor accepts ``unique_tokens = "60B"``.

Rules that need more than the keys' own values (files exist, the form is known, an option
applies to the chosen law source) live in :mod:`planner.scenario.loading`, which reports every
problem at once with its key path and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Sequence

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from ..constants import MAX_BOOTSTRAP, MAX_DOMAINS, MAX_QUANTITY_CHARS, MAX_STARTS
from ..errors import PlannerError
from ..quantities import parse_quantity

__all__ = [
    "ScenarioError", "Scenario", "BudgetSpec", "LawSpec", "DomainSpec", "ConstraintsSpec", "InferenceSpec",
    "CostSpec", "CompareSpec", "OptimizerSpec", "ReportSpec", "UncertaintySpec", "BASELINE_STRATEGIES",
]

#: baseline strategies a scenario can compare the plan with (the allocator's names):
#: no-split (pretraining only, D' = 0), fixed (a fixed pretraining share, 80 % by default),
#: separate (one model per domain, the budget shared by weight)
BASELINE_STRATEGIES: tuple[str, ...] = ("no-split", "fixed", "separate")

class ScenarioError(PlannerError):
    """A scenario file that cannot be read or does not validate.

    The message names the file, the key path (``domains[1].weight``) and, where the parser
    allows, the line; several problems are joined by ``"; "`` on one line. ``problems`` holds
    one ``(key_path, line, message)`` per problem.
    """

    def __init__(self, message: str, problems: Sequence[tuple[str, int | None, str]] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


def _quantity(unit: str) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        return parse_quantity(value, unit)

    parse.__name__ = f"parse_{unit or 'number'}"
    return parse


def _quantity_schema(unit: str | None) -> WithJsonSchema:
    """Number or string ("3.5B", "1.2T tokens"): what the parser accepts, for editors."""
    schema: dict[str, Any] = {
        "anyOf": [
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "string", "maxLength": MAX_QUANTITY_CHARS, "pattern": r"^\s*[0-9.+_eE-]+\s*[KkMBGTP]?\s*[A-Za-z]*\s*$"},
        ],
    }
    if unit:
        schema["unit"] = unit
    return WithJsonSchema(schema)


Flops = Annotated[float, BeforeValidator(_quantity("flops")), _quantity_schema("FLOPs")]
Tokens = Annotated[float, BeforeValidator(_quantity("tokens")), _quantity_schema("tokens")]
Params = Annotated[float, BeforeValidator(_quantity("params")), _quantity_schema("parameters")]
Positive = Annotated[float, BeforeValidator(_quantity("")), _quantity_schema(None)]


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
    train_on: str = Field(
        "auto",
        description='Rows the fit is trained on (the rest are held out to score it), e.g. "model_size <= 3e8" or "token_fraction <= 0.7"; "auto" holds out the largest model size.',
    )
    bootstrap: int = Field(0, ge=0, le=MAX_BOOTSTRAP, description="Bootstrap draws for intervals (0: none).")
    calibrate: bool = Field(
        False, description="Calibrate extrapolation intervals on size backtests; the plan's loss intervals then cover the error of extrapolating (see docs/methods.md)."
    )
    loss: Literal["huber", "ls", "over"] = Field("huber", description="Fitting loss on log residuals.")
    fix: dict[str, float] | None = Field(None, description="Parameters held fixed during the fit, e.g. {alpha = 0.34}.")
    tie: list[str] = Field(default_factory=list, description='Per-domain parameters shared across domains, e.g. ["gamma"].')
    min_tokens: Tokens | None = Field(None, description="Drop checkpoints with fewer tokens (D + D') than this.")
    max_starts: int = Field(256, ge=1, le=MAX_STARTS, description="Multi-start budget of the fit (lower is faster).")
    seed: int = Field(0, ge=0, description="Random seed of the fit (bootstrap, starts).")

    @field_validator("train_on")
    @classmethod
    def _rule(cls, v: str) -> str:
        # the grammar is checked here so `planner validate` refuses what the fit would (never evaluated)
        if v.strip() != "auto":
            from ..selection import SelectionError, parse_rule

            try:
                parse_rule(v)
            except SelectionError as exc:
                raise ValueError(str(exc)) from None
        return v

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
        if self.accounting == "separate" and self.flops_limit is None:
            raise ValueError('accounting = "separate" needs flops_limit (the FLOPs limit of inference)')
        return self


class CompareSpec(_Spec):
    """``[compare]``: the usual baselines the plan is measured against."""

    strategies: list[Literal["no-split", "fixed", "separate"]] = Field(
        default_factory=lambda: list(BASELINE_STRATEGIES),
        description='Baselines: "no-split" (pretraining only), "fixed" (a fixed pretraining share), "separate" (one model per domain). [] compares with none.',
    )
    fixed_fraction: float | None = Field(
        None, gt=0, lt=1, description='Pretraining share of training compute in the "fixed" baseline (default: the optimizer\'s, 0.8).'
    )


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
    solver: Literal["auto", "numpy", "cvxpy"] = Field(
        "auto", description='How the convex paths are solved: "auto" (the numpy KKT solver where it applies, else cvxpy), "numpy" (an error where it does not apply) or "cvxpy" (the conic reference formulation, slower; for comparison).'
    )
    seed: int = Field(0, ge=0, description="Seed of the independent check and of the multi-start path.")
    objective: Literal["loss", "error"] = Field(
        "loss",
        description='"loss": minimise sum_k w_k L_k; "error": minimise sum_k w_k Err_k(L_k) with each domain\'s downstream law (stationary point by reweighting, uncertified).',
    )


class UncertaintySpec(_Spec):
    """``[uncertainty]``: decisions that hold up when the law is uncertain (docs/decisions.md): the plan under
    every candidate form, the cross-regret table, robust plans, decision ranges and honest baselines."""

    forms: list[str] = Field(
        default_factory=list,
        description='Candidate forms, each fitted to the [law] runs with equal weight; empty: the [law] law (with form = "auto", its ensemble weighted by size backtests).',
    )
    draws: int = Field(0, ge=0, le=10000, description="Bootstrap draws of each listed form (0: none, plans across forms only); without forms the [law] bootstrap is used.")
    max_draws: int = Field(100, ge=1, le=10000, description="Most draws per candidate used for plans, regret and ranges (evenly spaced).")
    robust: list[Literal["mean", "worst"]] = Field(
        default_factory=lambda: ["mean", "worst"], description='Robust plans to compute: minimum expected ("mean") and worst-case ("worst") regret.'
    )
    headline: Literal["nominal", "robust-mean", "robust-worst"] = Field(
        "nominal", description="The headline plan: the highest-weight candidate's own plan, or a robust plan. It is the plan of the report's main Plan section, the HTML cards, the console's first lines, allocation.json's `headline` block and the CSV rows marked headline; the decision tables compare the baselines against it."
    )
    epsilon: float = Field(1e-3, gt=0, lt=1, description="Flatness band: coordinates whose re-optimised objective is within this relative tolerance of the optimum.")
    level: float = Field(0.9, gt=0, lt=1, description="Central probability of every interval (ranges, gaps, multipliers).")
    multiplier_draws: int = Field(2, ge=0, le=1000, description="Draws per candidate used for the compute-multiplier intervals.")


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


class DesignSpec(_Spec):
    """``[design]``: the ladder of small runs for ``planner design`` (docs/design.md)."""

    experiment_budget: Flops | None = Field(None, description="FLOPs for the ladder (the CLI's --experiment-budget overrides it).")
    sizes: list[Params] | dict[str, Params] | None = Field(None, description='Ladder sizes: a menu ["20M", "50M", ...] or a range {min = "10M", max = "1B"}.')
    noise: float | None = Field(None, gt=0, lt=1, description="sd of a run's log loss (default: from the runs' residuals, else 0.01).")
    truths: int = Field(16, ge=2, le=10000, description="Truths of the linearized criterion.")
    simulations: int = Field(10, ge=0, le=10000, description="Truths of the verification by simulation (0: none).")
    select_simulations: int = Field(24, ge=0, le=10000, description="Truths of the prior on which the short list and the baselines are simulated to pick the ladder (0: the linearized search alone).")
    spend: list[float] | None = Field(None, description="Shares of the experiment budget the search may use (default [0.25, 0.5, 1.0]).")
    context: int = Field(2048, gt=0, description="Context length (tokens) for the shapes' FLOPs per token.")
    seed: int = Field(0, description="Random seed.")


class ProgressSpec(_Spec):
    """``[progress]``: a target run under way, re-planned by ``planner design`` (docs/design.md)."""

    model_size: Params = Field(description="N of the target run.")
    tokens: Tokens = Field(description="General pretraining tokens already spent.")
    checkpoints: str | list[dict[str, Any]] | None = Field(None, description="Its checkpoints' losses: a run table path, or a list of {pretrain_tokens, domain, loss}.")


class Scenario(_Spec):
    """A planning question: budget, domains, law, constraints, inference, strategies, report."""

    title: str | None = Field(None, description="A short name for the scenario.")
    description: str | None = Field(None, description="What question the scenario answers.")
    budget: BudgetSpec = Field(description="The FLOP budget.")
    law: LawSpec = Field(description="The scaling law.")
    domains: list[DomainSpec] = Field(
        default_factory=list, max_length=MAX_DOMAINS,
        description="Target domains; none plans one general model (compute-optimal pretraining, the Chinchilla case).",
    )
    constraints: ConstraintsSpec = Field(default_factory=ConstraintsSpec, description="Limits on the plan.")
    inference: InferenceSpec = Field(default_factory=InferenceSpec, description="Inference demand.")
    cost: CostSpec = Field(default_factory=lambda: CostSpec(), description="Training FLOPs per token (6N, or 6N plus attention).")
    compare: CompareSpec = Field(default_factory=lambda: CompareSpec(), description="Baselines the plan is compared with.")
    optimizer: OptimizerSpec = Field(default_factory=lambda: OptimizerSpec(), description="Solver options.")
    report: ReportSpec = Field(default_factory=ReportSpec, description="Report options.")
    design: DesignSpec | None = Field(None, description="The ladder of small runs (`planner design`).")
    progress: ProgressSpec | None = Field(None, description="A target run under way, to re-plan (`planner design`).")
    uncertainty: UncertaintySpec | None = Field(None, description="Decisions under an uncertain law (plans per form, regret, robust plans, ranges).")

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


