"""Scenario files: numbers with units, schema validation with file/key/line errors, law
resolution, the mapping onto the optimizer, running a scenario, the schema exports."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import planner
from planner.scenario import (
    Scenario,
    ScenarioError,
    check_domains,
    check_scenario,
    constraints_for,
    curve_budgets,
    domains_for,
    load_scenario,
    optimize_options_for,
    parse_quantity,
    resolve_law,
    run_scenario,
    schema_json,
    schema_markdown,
)
from synthetic import INLINE_LAW_TABLE

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"

MINIMAL = """\
[budget]
flops = 1e21

[law]
runs = "runs.csv"   # or: file = "law.json"
form = "auto"

[[domains]]
name = "code"
weight = 2.0

[[domains]]
name = "math"
"""

INLINE_LAW = """\
[budget]
flops = 1e21

""" + INLINE_LAW_TABLE + """
[[domains]]
name = "code"
weight = 2

[[domains]]
name = "math"
unique_tokens = "2B"
max_epochs = 2

[report]
compute_points = 3
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- numbers
@pytest.mark.parametrize(
    "value, unit, expected",
    [
        (1e22, "flops", 1e22),
        (7, "", 7.0),
        ("1e21", "flops", 1e21),
        ("1e21 FLOPs", "flops", 1e21),
        ("3.5B", "params", 3.5e9),
        ("3.5G", "params", 3.5e9),
        ("7B params", "params", 7e9),
        ("1.2T", "tokens", 1.2e12),
        ("1.2T tokens", "tokens", 1.2e12),
        ("500M", "tokens", 5e8),
        ("20K", "tokens", 2e4),
        ("2P", "flops", 2e15),
        ("1_000_000", "tokens", 1e6),
    ],
)
def test_parse_quantity_accepts(value, unit, expected):
    assert parse_quantity(value, unit) == pytest.approx(expected)


@pytest.mark.parametrize(
    "value, unit, fragment",
    [
        ("3.5Q", "tokens", "unknown magnitude suffix 'Q'"),
        ("lots", "tokens", "not a number"),
        (-1, "", "positive"),
        (0, "flops", "positive"),
        (True, "", "expected a number"),
        ("2B params", "tokens", "unit 'params' does not fit"),
        ("1e21 tokens", "flops", "unit 'tokens' does not fit"),
        ([1], "", "expected a number"),
    ],
)
def test_parse_quantity_rejects(value, unit, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_quantity(value, unit)


# --------------------------------------------------------------------------- loading
def test_minimal_scenario_from_the_issue(tmp_path):
    path = write(tmp_path, "s.toml", MINIMAL)
    sc = load_scenario(path, check_files=False)
    assert sc.budget.budgets == [1e21] and not sc.budget.is_sweep
    assert sc.law.runs == "runs.csv" and sc.law.form == "auto" and sc.law.train_on == "auto"
    assert [(d.name, d.weight) for d in sc.domains] == [("code", 2.0), ("math", 1.0)]
    assert sc.resolve("runs.csv") == tmp_path.resolve() / "runs.csv"  # relative to the scenario file
    assert sc.compare.strategies == ["no-split", "fixed", "separate"]
    assert sc.report.formats == ["json", "md", "csv", "html"]


def test_yaml_is_accepted(tmp_path):
    text = "budget:\n  flops: 3e21 FLOPs\nlaw:\n  file: law.json\ndomains:\n  - name: code\n    unique_tokens: 2B\n"
    sc = load_scenario(write(tmp_path, "s.yaml", text), check_files=False)
    assert sc.budget.primary == 3e21
    assert sc.domains[0].unique_tokens == 2e9


def test_unknown_key_names_file_key_and_line(tmp_path):
    text = MINIMAL.replace('name = "math"', 'name = "math"\nwieght = 3')
    path = write(tmp_path, "s.toml", text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, check_files=False)
    msg = str(info.value)
    assert str(path) in msg and "domains[1].wieght" in msg and "line 14" in msg and "unknown key" in msg
    assert info.value.problems == [("domains[1].wieght", 14, info.value.problems[0][2])]


def test_several_problems_on_one_line(tmp_path):
    text = MINIMAL.replace("flops = 1e21", 'flops = "3.5Q"').replace("weight = 2.0", "weight = -2")
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, "s.toml", text), check_files=False)
    msg = str(info.value)
    assert "\n" not in msg
    assert "line 2: budget.flops" in msg and "line 10: domains[0].weight" in msg
    assert len(info.value.problems) == 2


def test_yaml_error_lines(tmp_path):
    text = "budget:\n  flops: 1e21\nlaw:\n  file: law.json\ndomains:\n  - name: a\n  - name: b\n    colour: red\n"
    with pytest.raises(ScenarioError, match=r"line 8: domains\[1\]\.colour: unknown key"):
        load_scenario(write(tmp_path, "s.yml", text), check_files=False)


def test_toml_syntax_error_names_line(tmp_path):
    with pytest.raises(ScenarioError, match=r"s\.toml, line 3: invalid TOML"):
        load_scenario(write(tmp_path, "s.toml", "[budget]\nflops = 1e21\nthis is not toml\n"))


def test_missing_file_and_bad_extension(tmp_path):
    with pytest.raises(ScenarioError, match="scenario file not found"):
        load_scenario(tmp_path / "nope.toml")
    with pytest.raises(ScenarioError, match="unknown scenario file type"):
        load_scenario(write(tmp_path, "s.json", "{}"))


def test_missing_required_keys(tmp_path):
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, "s.toml", "[title]\n"))
    keys = {p[0] for p in info.value.problems}
    assert keys == {"title", "budget", "law"}  # [[domains]] is optional
    assert "required key is missing" in str(info.value)


@pytest.mark.parametrize(
    "law, fragment",
    [
        ('runs = "r.csv"\nfile = "l.json"\nform = "auto"', "exactly one law source"),
        ("train_on = \"auto\"", "exactly one law source"),
        ('params = {E = 1.0}', "inline params need form"),
        ('runs = "r.csv"', "a runs file needs form"),
        ('file = "l.json"\nform = "auto"', "it needs runs"),
        ('runs = "r.csv"\nform = "auto"\nloss = "l1"', "law.loss"),
    ],
)
def test_law_source_rules(tmp_path, law, fragment):
    text = f"[budget]\nflops = 1e21\n[law]\n{law}\n[[domains]]\nname = \"a\"\n"
    with pytest.raises(ScenarioError, match=fragment):
        load_scenario(write(tmp_path, "s.toml", text), check_files=False)


def test_budget_list_and_plan(tmp_path):
    sc = load_scenario({"budget": {"flops": ["1e23", "1e21", "1e22"]}, "law": {"file": "x.json"}, "domains": [{"name": "a"}]}, check_files=False)
    assert sc.budget.budgets == [1e21, 1e22, 1e23] and sc.budget.is_sweep and sc.budget.primary == 1e22
    sc = load_scenario({"budget": {"flops": [1e21, 1e22], "plan": "1e21"}, "law": {"file": "x.json"}, "domains": [{"name": "a"}]}, check_files=False)
    assert sc.budget.primary == 1e21
    with pytest.raises(ScenarioError, match="is not one of the budgets"):
        load_scenario({"budget": {"flops": [1e21, 1e22], "plan": 5e21}, "law": {"file": "x.json"}, "domains": [{"name": "a"}]}, check_files=False)
    with pytest.raises(ScenarioError, match="at least one budget"):
        load_scenario({"budget": {"flops": []}, "law": {"file": "x.json"}, "domains": [{"name": "a"}]}, check_files=False)


@pytest.mark.parametrize(
    "patch, fragment",
    [
        ({"domains": [{"name": "a"}, {"name": "a"}]}, "domain names repeat"),
        ({"domains": [{"name": "a", "max_epochs": 2}]}, "max_epochs needs unique_tokens"),
        ({"constraints": {"min_model_size": "7B", "max_model_size": "1B"}}, "above max_model_size"),
        ({"constraints": {"min_tokens_per_param": 50, "max_tokens_per_param": 10}}, "above max_tokens_per_param"),
        ({"constraints": {"pretrain_max_epochs": 2}}, "needs pretrain_unique_tokens"),
        ({"constraints": {"repetition": "maybe"}}, "constraints.repetition"),
        ({"inference": {"flops_limit": 1e22}}, "applies to accounting"),
        ({"compare": {"strategies": ["magic"]}}, "compare.strategies"),
        ({"compare": {"fixed_fraction": 1.5}}, "compare.fixed_fraction"),
        ({"compare": {"strategies": ["no-split"], "fixed_fraction": 0.5}}, 'compare.fixed_fraction: applies to the "fixed" baseline'),
        ({"domains": [], "compare": {"strategies": ["fixed"]}}, "with no \\[\\[domains\\]\\] there is nothing to compare"),
        ({"law": {"file": "x.json", "bootstrap": 10}}, r"law.bootstrap: applies to a law fitted from runs \(law.runs\); this law comes from law.file"),
        ({"law": {"file": "x.json", "tie": ["gamma"]}}, "law.tie: applies to a law fitted from runs or given by params"),
        ({"law": {"runs": "r.csv", "form": "auto", "holdout": "auto"}}, "law.holdout: renamed: write train_on"),
        ({"law": {"runs": "r.csv", "form": "auto", "bootstrap": 10**6}}, "law.bootstrap"),
        ({"law": {"runs": "r.csv", "form": "auto", "max_starts": 0}}, "law.max_starts"),
        ({"law": {"runs": "r.csv", "form": "auto", "seed": -1}}, "law.seed"),
        ({"cost": {"scale_with_model_size": True}}, "cost.scale_with_model_size: applies to the attention term"),
        ({"constraints": {"repetition_decay": 15}}, 'constraints.repetition_decay: applies to repetition = "effective"'),
        ({"budget": {"flops": 1e21, "plan": 1e21}}, "budget.plan: applies to a list of budgets"),
        ({"report": {"formats": ["pdf"]}}, "report.formats"),
        ({"report": {"compute_span": 1}}, "compute_span must be above 1"),
    ],
)
def test_schema_rules(patch, fragment):
    data = {"budget": {"flops": 1e21}, "law": {"file": "x.json"}, "domains": [{"name": "a"}], **patch}
    with pytest.raises(ScenarioError, match=fragment):
        load_scenario(data, check_files=False)


# --------------------------------------------------------------------------- law and mapping
def test_inline_law_and_mapping(tmp_path):
    sc = load_scenario(write(tmp_path, "s.toml", INLINE_LAW + '\n[constraints]\nmax_model_size = "30B"\nrepetition = "effective"\nmode = "min-loss"\n'
                             '[inference]\ntokens = "1T"\naccounting = "separate"\nflops_limit = 1e22\n[optimizer]\nrobust = "mean"\n'))
    law = resolve_law(sc)
    assert law.form.name == "split-additive" and set(law.domains) == {"code", "math"}
    check_domains(sc, law)
    assert domains_for(sc) == [{"name": "code", "weight": 2.0}, {"name": "math", "weight": 1.0, "unique_tokens": 2e9, "max_epochs": 2.0}]
    cons = constraints_for(sc)
    assert cons == {"max_model_size": 30e9, "repetition": "effective", "inference_tokens": 1e12}
    from planner.allocate import Constraints, Domain

    Constraints.coerce(cons)  # the optimizer accepts every key
    [Domain.coerce(d) for d in domains_for(sc)]
    assert optimize_options_for(sc) == {"inference": "separate", "inference_budget": 1e22, "robust": "mean"}


def test_check_scenario_reports_missing_files_and_unknown_form(tmp_path):
    sc = load_scenario(write(tmp_path, "s.toml", MINIMAL), check_files=False)
    assert any("law.runs: file not found" in p for p in check_scenario(sc))
    with pytest.raises(ScenarioError, match="law.runs: file not found"):
        resolve_law(sc)
    with pytest.raises(ScenarioError, match="law.form: unknown form 'nope'"):
        load_scenario({"budget": {"flops": 1e21}, "law": {"form": "nope", "params": {"E": 1}}, "domains": [{"name": "a"}]})


def test_every_problem_at_once_with_file_key_and_line(tmp_path):
    # the issue's example: an unknown form, a missing runs file and a negative weight, all three in one message
    text = MINIMAL.replace('form = "auto"', 'form = "chinchila"').replace("weight = 2.0", "weight = -2")
    path = write(tmp_path, "s.toml", text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert [(key, line) for key, line, _ in info.value.problems] == [("law.runs", 5), ("law.form", 6), ("domains[0].weight", 10)]
    assert f"{path}, line 5: law.runs: file not found" in msg
    assert f"{path}, line 6: law.form: unknown form 'chinchila'" in msg
    assert f"{path}, line 10: domains[0].weight" in msg and "positive" in msg


def test_no_domains_plans_one_general_model(tmp_path):
    # the closed form of Hoffmann et al. (2022), approach 3: G = (alpha A / beta B)^(1/(alpha+beta)),
    # N_opt = G (C/6)^(beta/(alpha+beta)), D_opt = (C/6) / N_opt
    E, A, B, alpha, beta = 1.69, 406.4, 410.7, 0.34, 0.28
    text = f'[budget]\nflops = 1e23\n[law]\nform = "chinchilla"\nparams = {{E = {E}, A = {A}, B = {B}, alpha = {alpha}, beta = {beta}}}\n'
    result = run_scenario(write(tmp_path, "general.toml", text))
    assert result.ok and result.allocation.domains == () and result.allocation.baselines == ()
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    n_opt = G * (1e23 / 6) ** (beta / (alpha + beta))
    assert result.allocation.model_size == pytest.approx(n_opt, rel=1e-4)
    assert result.allocation.pretrain_tokens == pytest.approx(1e23 / 6 / n_opt, rel=1e-4)
    assert all(c.baselines == {} for c in result.curve)


def test_domain_not_in_law(tmp_path):
    sc = load_scenario(write(tmp_path, "s.toml", INLINE_LAW.replace('name = "math"', 'name = "legal"')))
    law = resolve_law(sc)  # the inline params name code and math
    assert set(law.domains) == {"code", "math"}
    with pytest.raises(ScenarioError, match="has parameters for code, math, not for legal"):
        check_domains(sc, law)


def test_bad_inline_params_name_the_key(tmp_path):
    sc = load_scenario(write(tmp_path, "s.toml", INLINE_LAW.replace('"D0[math]" = 1e8', '"D0[math]" = 1e8, zeta = 2')))
    with pytest.raises(ScenarioError, match=r"s\.toml: law\.params: .*zeta"):
        resolve_law(sc)


def test_shared_inline_params_apply_to_every_domain(tmp_path):
    text = INLINE_LAW.replace('"E[code]" = 1.2, "E[math]" = 1.45, "B[code]" = 380, "B[math]" = 420, "C[code]" = 220, "C[math]" = 160, "gamma[code]" = 0.36, "gamma[math]" = 0.33, "D0[code]" = 1e8, "D0[math]" = 1e8',
                              'E = 1.3, B = 400, C = 200, gamma = 0.35, D0 = 1e8')
    law = resolve_law(load_scenario(write(tmp_path, "s.toml", text)))
    assert set(law.domains) == {"code", "math"} and law.params["B[math]"] == 400


def test_law_from_saved_file(tmp_path):
    shutil.copy(SCENARIOS / "data" / "support_law.json", tmp_path / "law.json")
    sc = load_scenario(write(tmp_path, "s.toml", '[budget]\nflops = 1e22\n[law]\nfile = "law.json"\n[[domains]]\nname = "support-chat"\n'))
    law = resolve_law(sc)
    assert law.form.name == "split-additive" and law.points is not None


def test_curve_budgets():
    sc = load_scenario({"budget": {"flops": 1e22}, "law": {"file": "x.json"}, "domains": [{"name": "a"}], "report": {"compute_points": 3, "compute_span": 10}},
                       check_files=False)
    assert curve_budgets(sc) == pytest.approx([1e21, 1e22, 1e23])
    sc = load_scenario({"budget": {"flops": [1e21, 1e23]}, "law": {"file": "x.json"}, "domains": [{"name": "a"}]}, check_files=False)
    assert curve_budgets(sc) == [1e21, 1e23]


# --------------------------------------------------------------------------- running
@pytest.mark.slow
def test_run_scenario_inline_law(tmp_path):
    sc = load_scenario(write(tmp_path, "s.toml", INLINE_LAW))
    seen = []
    result = run_scenario(sc, progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert result.ok
    # one result shape: the API's own objects, frozen
    assert isinstance(result.law, planner.FittedLaw) and isinstance(result.allocation, planner.Allocation)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.allocation = None  # type: ignore[misc]
    assert result.to_dict()["domains"] == result.allocation.to_dict()["domains"]
    doc = result.to_dict()
    assert doc["schema"] == "planner.allocation/1"
    for key in ("budget", "model_size", "pretrain_tokens", "objective", "certified", "domains", "baselines", "path", "status",
                "message", "flops", "pretrain_fraction", "binding", "marginal_value", "warnings", "laws", "scenario", "curve"):
        assert key in doc, key
    assert doc["budget"] == 1e21
    assert {d["name"] for d in doc["domains"]} == {"code", "math"}
    math_plan = next(d for d in doc["domains"] if d["name"] == "math")
    assert math_plan["spec_tokens"] <= 4e9 * (1 + 1e-6)  # unique_tokens x max_epochs
    assert {b["strategy"] for b in doc["baselines"]} == {"no-split", "fixed", "separate"}
    assert [c["budget"] for c in doc["curve"]] == pytest.approx([1e20, 1e21, 1e22])
    assert all(set(c["baselines"]) == {"no-split", "fixed", "separate"} for c in doc["curve"])
    assert doc["laws"]["law"]["form"] == "split-additive"
    assert doc["scenario"]["budget"]["flops"] == 1e21
    assert seen and seen[-1][0] == "solve" and seen[-1][1] == seen[-1][2]
    json.dumps(doc, allow_nan=False)
    # the plan re-renders through the allocator's own class
    again = planner.allocate.Allocation.from_dict(doc)
    assert again.model_size == pytest.approx(doc["model_size"])


@pytest.mark.slow
def test_run_scenario_sweep_and_strategies(tmp_path):
    text = INLINE_LAW.replace("flops = 1e21", "flops = [1e20, 1e21]") + '[compare]\nstrategies = ["no-split"]\n'
    result = run_scenario(write(tmp_path, "s.toml", text))
    doc = result.to_dict()
    assert [p["budget"] for p in doc["sweep"]] == [1e20, 1e21]
    assert doc["budget"] == 1e21  # the middle of two is the second
    assert [b["strategy"] for b in doc["baselines"]] == ["no-split"]
    assert all(set(c["baselines"]) == {"no-split"} for c in doc["curve"])


def test_infeasible_scenario_is_not_ok(tmp_path):
    text = INLINE_LAW + '[constraints]\nmin_model_size = "1T"\nmin_tokens_per_param = 20\n'
    result = run_scenario(write(tmp_path, "s.toml", text))
    assert not result.ok
    assert result.to_dict()["status"] == "infeasible"


# --------------------------------------------------------------------------- examples and schema
@pytest.mark.parametrize("name", ["three-domains", "data-limited", "inference-heavy", "split-lab"])
def test_shipped_scenarios_validate(name):
    sc = load_scenario(SCENARIOS / f"{name}.toml")
    assert check_scenario(sc) == []
    assert sc.title and sc.description


def test_shipped_data_limited_scenario_caps_a_domain():
    sc = load_scenario(SCENARIOS / "data-limited.toml")
    legal = next(d for d in sc.domains if d.name == "legal")
    assert legal.unique_tokens * legal.max_epochs == 16e9


def test_json_schema_export():
    schema = schema_json()
    assert schema["$id"] == "planner.scenario/1"
    assert schema["additionalProperties"] is False
    assert all(d.get("additionalProperties") is False for d in schema["$defs"].values())
    assert set(schema["required"]) == {"budget", "law"}  # no [[domains]]: one general model
    # quantity keys take numbers or strings such as "60B", so an editor accepts the shipped scenarios
    unique = schema["$defs"]["DomainSpec"]["properties"]["unique_tokens"]
    kinds = json.dumps(unique)
    assert '"type": "number"' in kinds and '"type": "string"' in kinds
    json.dumps(schema)


def test_scenario_reference_is_generated_from_the_schema():
    committed = (ROOT / "docs" / "scenario-reference.md").read_text()
    assert committed == schema_markdown(), (
        "docs/scenario-reference.md is stale: regenerate with "
        "`planner schema --markdown > docs/scenario-reference.md`"
    )


def test_reference_mentions_every_key():
    text = schema_markdown()
    for model in (Scenario,):
        for key in model.model_fields:
            assert f"`{key}`" in text


def test_curve_budgets_do_not_repeat_the_plan():
    sc = load_scenario({"budget": {"flops": 1e23}, "law": {"file": "x.json"}, "domains": [{"name": "a"}]}, check_files=False)
    budgets = curve_budgets(sc, sweep=True)
    assert len(budgets) == 5 and 1e23 in budgets


def test_cost_section_adds_the_attention_term(tmp_path):
    plain = run_scenario(write(tmp_path, "a.toml", INLINE_LAW + '[compare]\nstrategies = []\n')).to_dict()
    text = INLINE_LAW + '[compare]\nstrategies = []\n[cost]\nn_layers = 32\nd_model = 4096\ncontext = 8192\n'
    with_attention = run_scenario(write(tmp_path, "b.toml", text)).to_dict()
    assert with_attention["flop_model"] != plain["flop_model"]
    assert "6" in json.dumps(with_attention["flop_model"])
    # the same budget buys fewer tokens once attention FLOPs are counted
    total = lambda d: d["pretrain_tokens"] + sum(x["spec_tokens"] for x in d["domains"])  # noqa: E731
    assert total(with_attention) < total(plain)


def test_cost_section_needs_the_whole_architecture(tmp_path):
    with pytest.raises(ScenarioError, match="cost.*context"):
        load_scenario(write(tmp_path, "c.toml", INLINE_LAW + "[cost]\nn_layers = 32\nd_model = 4096\n"))


def test_downstream_law_per_domain_adds_predicted_error(tmp_path):
    from planner.report.render import render_csv, render_html, render_markdown

    err = planner.law("downstream-exp", eps=0.85, k=2.0, gamma=1.0)
    err.save(tmp_path / "code_err.json")
    text = INLINE_LAW.replace('name = "code"\nweight = 2\n', 'name = "code"\nweight = 2\ndownstream = "code_err.json"\n')
    text += '[compare]\nstrategies = []\n'
    doc = run_scenario(write(tmp_path, "s.toml", text)).to_dict()
    code = next(d for d in doc["domains"] if d["name"] == "code")
    math_plan = next(d for d in doc["domains"] if d["name"] == "math")
    assert code["error"] == pytest.approx(0.85 - 2.0 * np.exp(-code["loss"]))
    assert math_plan["error"] is None
    assert "predicted error" in render_markdown(doc) and "predicted error" in render_html(doc, {})
    header, first, second = render_csv(doc).splitlines()[:3]
    assert "error" in header.split(",")
    # a loss law is not a downstream law; a missing file is named
    planner.law("chinchilla", E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28).save(tmp_path / "loss.json")
    with pytest.raises(ScenarioError, match=r"domains\[0\].downstream: the chinchilla law predicts loss"):
        run_scenario(write(tmp_path, "t.toml", text.replace("code_err.json", "loss.json")))
    with pytest.raises(ScenarioError, match=r"domains\[0\].downstream: file not found"):
        run_scenario(write(tmp_path, "u.toml", text.replace("code_err.json", "nope.json")))


@pytest.mark.slow
def test_a_domain_can_bring_its_own_law(tmp_path):
    # [law] covers code and math; legal comes with a law fitted elsewhere
    legal = planner.law("split-additive", domains=["legal"], **{"E[legal]": 1.6, "A": 406.4, "alpha": 0.34, "B[legal]": 430.0, "beta": 0.28,
                                                                "C[legal]": 240.0, "gamma[legal]": 0.36, "D0[legal]": 1e8})
    legal.save(tmp_path / "legal.json")
    text = INLINE_LAW + '[[domains]]\nname = "legal"\nlaw = "legal.json"\n\n[compare]\nstrategies = ["no-split"]\n'
    sc = write(tmp_path, "s.toml", text)
    doc = run_scenario(sc).to_dict()
    legal_plan = next(d for d in doc["domains"] if d["name"] == "legal")
    predicted = legal.predict(model_size=[doc["model_size"]], pretrain_tokens=[doc["pretrain_tokens"]],
                              spec_tokens=[legal_plan["spec_tokens"]], domain=["legal"])[0]
    assert legal_plan["loss"] == pytest.approx(predicted, rel=1e-9)
    assert set(doc["laws"]) == {"law", "domains.legal.law"}
    # without its own law the domain is unknown to [law]
    with pytest.raises(ScenarioError, match="not for legal"):
        run_scenario(write(tmp_path, "t.toml", text.replace('law = "legal.json"\n', "")))
    # a law for another domain is refused with the key path
    with pytest.raises(ScenarioError, match=r"domains\[2\].law: the law has parameters for legal, not for 'tax'"):
        run_scenario(write(tmp_path, "u.toml", text.replace('name = "legal"', 'name = "tax"')))


@pytest.mark.slow
def test_scenario_can_minimise_downstream_error(tmp_path):
    from planner.report.render import render_markdown

    planner.law("downstream-exp", eps=0.85, k=2.0, gamma=1.0).save(tmp_path / "code_err.json")
    planner.law("downstream-exp", eps=0.9, k=60.0, gamma=2.5).save(tmp_path / "math_err.json")
    text = (INLINE_LAW.replace('name = "code"\nweight = 2\n', 'name = "code"\nweight = 2\ndownstream = "code_err.json"\n')
            .replace('name = "math"\n', 'name = "math"\ndownstream = "math_err.json"\n'))
    text += '[compare]\nstrategies = ["fixed"]\n\n[optimizer]\nobjective = "error"\n'
    doc = run_scenario(write(tmp_path, "s.toml", text)).to_dict()
    assert doc["mode"] == "min-error" and doc["path"].endswith("+reweighted") and not doc["certified"]
    weights = {"code": 2.0, "math": 1.0}
    assert doc["objective"] == pytest.approx(sum(weights[d["name"]] * d["error"] for d in doc["domains"]), rel=1e-9)
    # the curve is in error too, for the plan and the baseline
    assert all(c["objective"] is None or 0 < c["objective"] < sum(weights.values()) for c in doc["curve"])  # errors are below 1
    assert all(c["baselines"]["fixed"] is None or c["baselines"]["fixed"] >= c["objective"] - 1e-9 for c in doc["curve"])
    assert "Σ w_k Err_k" in render_markdown(doc)
    # every weighted domain needs a downstream law
    with pytest.raises(planner.AllocationError, match="math have no downstream law"):
        run_scenario(write(tmp_path, "t.toml", text.replace('downstream = "math_err.json"\n', "")))


def test_a_domain_name_with_a_line_break_is_quoted_in_the_error(tmp_path):
    """Fuzz find: a domain named "\\n0" made a two-line error; it is shown as repr() on one line."""
    text = INLINE_LAW.replace('name = "math"', 'name = "\\n0"')
    with pytest.raises(ScenarioError) as info:
        run_scenario(write(tmp_path, "s.toml", text))
    assert "not for '\\n0'" in str(info.value) and "\n" not in str(info.value)


def test_optimizer_solver_selects_the_cvxpy_reference_path(tmp_path):
    """``[optimizer] solver = "cvxpy"`` solves the split-additive law (D0 > 0: the dcp path) with the conic
    formulation: the same plan as the default numpy KKT solver, to the reference path's accuracy in N."""
    default = run_scenario(write(tmp_path, "auto.toml", INLINE_LAW))
    reference = run_scenario(write(tmp_path, "cvxpy.toml", INLINE_LAW + '\n[optimizer]\nsolver = "cvxpy"\n'))
    a, b = default.allocation, reference.allocation
    assert a.path == b.path == "dcp+search"
    assert b.objective == pytest.approx(a.objective, rel=1e-7) and a.objective <= b.objective * (1 + 1e-9)
    assert b.model_size == pytest.approx(a.model_size, rel=2e-3)
    assert load_scenario(tmp_path / "cvxpy.toml").optimizer.solver == "cvxpy"
    assert optimize_options_for(load_scenario(tmp_path / "cvxpy.toml"))["solver"] == "cvxpy"
    assert "solver" not in optimize_options_for(load_scenario(tmp_path / "auto.toml"))  # the default is left to the optimizer


def test_optimizer_solver_rejects_an_unknown_value_naming_the_key(tmp_path):
    path = write(tmp_path, "s.toml", INLINE_LAW + '\n[optimizer]\nsolver = "gurobi-fast"\n')
    with pytest.raises(ScenarioError, match=r"s\.toml, line \d+: optimizer\.solver"):
        load_scenario(path)
