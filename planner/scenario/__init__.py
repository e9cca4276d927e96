"""Scenario files: a whole planning question in one TOML (or YAML) file.

A scenario names the FLOP budget (one number, or a list for a sweep), the target domains
with their weights and token availability (none: one general model), the scaling law (a saved
law JSON, inline parameters, or a runs file plus a form fitted on the fly), the constraints,
the inference demand, the strategies to compare and the report options.

The package in layers, each module one job:

- :mod:`.schema`: the pydantic models (unknown keys are errors), :class:`ScenarioError`;
- :mod:`.loading`: reading TOML/YAML, every problem at once with file, key path and line;
- :mod:`.binding`: the law the scenario names and ``optimize``'s arguments;
- :mod:`.running`: :func:`run_scenario` and the frozen :class:`ScenarioResult`;
- :mod:`.reference`: the JSON Schema and the Markdown reference generated from the schema.

Numbers: plain numbers (``1e21``), or strings with a magnitude suffix (``"3.5B"``,
``"1.2T tokens"``, ``"1e21 FLOPs"``), parsed by :func:`planner.quantities.parse_quantity`.

>>> from planner.scenario import parse_quantity
>>> parse_quantity("3.5B", "params")
3500000000.0
"""

from ..constants import ALLOCATION_SCHEMA, SCENARIO_SCHEMA
from ..quantities import parse_quantity
from .binding import check_domains, check_plan_arguments, constraints_for, domain_laws, domains_for, law_argument, optimize_options_for, resolve_law
from .loading import check_scenario, load_scenario
from .reference import schema_json, schema_markdown
from .running import CurvePoint, ScenarioResult, curve_budgets, run_scenario
from .schema import (
    BASELINE_STRATEGIES,
    BudgetSpec,
    CompareSpec,
    ConstraintsSpec,
    CostSpec,
    DomainSpec,
    InferenceSpec,
    LawSpec,
    OptimizerSpec,
    ReportSpec,
    Scenario,
    ScenarioError,
)

__all__ = [
    "ScenarioError", "Scenario", "BudgetSpec", "LawSpec", "DomainSpec", "ConstraintsSpec", "InferenceSpec", "CostSpec",
    "ReportSpec", "CompareSpec", "OptimizerSpec", "ScenarioResult", "CurvePoint", "ALLOCATION_SCHEMA", "SCENARIO_SCHEMA",
    "BASELINE_STRATEGIES", "parse_quantity", "load_scenario", "check_scenario", "resolve_law", "domain_laws", "check_domains",
    "law_argument", "check_plan_arguments", "domains_for", "constraints_for", "optimize_options_for", "curve_budgets", "run_scenario",
    "schema_json", "schema_markdown",
]
