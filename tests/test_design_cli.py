"""`planner design`: the runs.csv contract, exit codes, reports, configs; [progress] re-planning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

import planner
from planner.cli import cli
from planner.experiments.config import plan_config, to_yaml
from planner.experiments.replan import replan

SHIPPED = {"A": 406.4, "alpha": 0.34, "beta": 0.28, "E[code]": 1.2, "E[math]": 1.45, "B[code]": 380.0, "B[math]": 420.0,
           "C[code]": 220.0, "C[math]": 160.0, "gamma[code]": 0.36, "gamma[math]": 0.33, "D0[code]": 1e8, "D0[math]": 1e8}
ZERO = """
title = "From zero runs"
[budget]
flops = 1e22
[[domains]]
name = "code"
weight = 2.0
[[domains]]
name = "math"
[design]
truths = 4
simulations = 2
select_simulations = 2
"""


def _invoke(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, list(args))
    return res.exit_code, res.stdout, res.stderr


@pytest.mark.slow
def test_design_command_writes_the_contract(tmp_path: Path) -> None:
    sc = tmp_path / "zero.toml"
    sc.write_text(ZERO)
    out = tmp_path / "out"
    code, stdout, stderr = _invoke("design", str(sc), "--experiment-budget", "1e20", "-o", str(out))
    assert code == 0, stderr
    runs = pd.read_csv(out / "runs.csv", keep_default_na=False)
    for col in ("run", "model_size", "pretrain_tokens", "spec_domain", "spec_tokens", "branch_from_tokens", "flops"):
        assert col in runs.columns
    assert runs["flops"].astype(float).sum() <= 1e20 * (1 + 1e-12)
    pre = runs[runs["spec_domain"] == ""]
    assert (pre["branch_from_tokens"] == "").all()
    br = runs[runs["spec_domain"] != ""]
    assert set(br["spec_domain"]) <= {"code", "math"}
    assert np.allclose(br["flops"].astype(float), 6 * br["model_size"].astype(float) * br["spec_tokens"].astype(float))
    doc = json.loads((out / "design.json").read_text())
    assert doc["schema"] == "planner.design/1"
    assert [c["name"] for c in doc["comparison"]] == ["designed", "default", "uniform"]
    assert len(doc["curve"]) == 5 and doc["curve"][0]["fraction"] == 0.001
    html = (out / "design.html").read_text()
    assert "<svg" in html and 'src="http' not in html and 'href="http' not in html and "<script" not in html
    md = (out / "design.md").read_text()
    assert "Against the habits" in md and "Selection by simulation" in md
    # the selection step: the short list and both baselines scored on the same truths; the chosen one is the cheapest
    sel = doc["selection"]
    assert {"default", "uniform"} <= {r["ladder"] for r in sel} and sum(bool(r.get("chosen")) for r in sel) == 1
    chosen = next(r for r in sel if r.get("chosen"))
    assert chosen["cost"] <= next(r for r in sel if r["ladder"] == "default")["cost"]
    assert chosen["flops"] == pytest.approx(doc["experiment_flops"], rel=1e-12)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg == json.loads((out / "config.json").read_text())
    for r in cfg["runs"]:
        assert abs(r["shape"]["params"] / r["shape"]["target_params"] - 1) <= 0.02


def test_design_command_bad_input_exits_2(tmp_path: Path) -> None:
    sc = tmp_path / "zero.toml"
    sc.write_text(ZERO)
    code, _, err = _invoke("design", str(sc), "--experiment-budget", "2e22", "-o", str(tmp_path / "o"))
    assert code == 2 and "not below the target budget" in err
    code, _, err = _invoke("design", str(sc), "--experiment-budget", "lots", "-o", str(tmp_path / "o"))
    assert code == 2
    bad = tmp_path / "bad.toml"
    bad.write_text(ZERO.replace("truths = 4", "truths = 4\nbogus = 1"))
    code, _, err = _invoke("design", str(bad), "--experiment-budget", "1e20")
    assert code == 2 and "bogus" in err
    code, _, err = _invoke("design", str(tmp_path / "missing.toml"), "--experiment-budget", "1e20")
    assert code == 2
    nothing = tmp_path / "nothing.toml"
    nothing.write_text(ZERO.replace("[design]\ntruths = 4\nsimulations = 2\nselect_simulations = 2\n", ""))
    code, _, err = _invoke("design", str(nothing))
    assert code == 2 and "experiment budget" in err


def test_yaml_writer_round_trips() -> None:
    doc = {"a": 1.5, "b": "x: \"y\"", "c": [1.0, 2.0], "d": [{"e": None, "f": True, "g": [3.0]}], "h": {}, "i": []}
    assert yaml.safe_load(to_yaml(doc)) == doc


def _checkpoints(law: planner.FittedLaw, n: float, tokens=(5e9, 1e10, 2e10)) -> pd.DataFrame:
    ck = pd.DataFrame([{"pretrain_tokens": t, "domain": d} for t in tokens for d in ("code", "math")])
    ck["model_size"] = n
    ck["loss"] = law.predict(ck)
    return ck


def test_replan_plans_only_the_remaining_compute() -> None:
    law = planner.law("split-additive", **SHIPPED)
    n, spent = 2e9, 2e10
    r = replan(1e22, ["code", "math"], {"model_size": n, "tokens": spent, "checkpoints": _checkpoints(law, n)}, law=law,
               fit_options={"max_starts": 4})
    assert r.status == "ok"
    assert r.spent_flops == pytest.approx(6 * n * spent)
    assert r.remaining_flops == pytest.approx(1e22 - 6 * n * spent)
    a = r.after
    assert a.model_size == pytest.approx(n)
    assert a.pretrain_tokens >= spent * (1 - 1e-6)
    # the whole budget, sunk part included, is used: 6 N (D + sum D') = C
    assert 6 * n * (a.pretrain_tokens + sum(a.spec_tokens.values())) == pytest.approx(1e22, rel=1e-3)
    # brute force over D for fixed N: the same objective (independent check of the fixed-N plan)
    best = min(planner.optimize(law, 1e22, ["code", "math"], model_sizes=[n], min_tokens_per_param=m, baselines=False, check=False).objective
               for m in (spent / n, 50.0, 100.0, 200.0, 300.0))
    assert a.objective <= best + 1e-6
    assert r.checkpoint_are_before == pytest.approx(0.0, abs=1e-9)  # the law is the truth


def test_replan_checkpoints_correct_a_wrong_law_and_branch_now() -> None:
    truth = planner.law("split-additive", **SHIPPED)
    wrong = truth.with_params(**{"E[code]": 1.35, "E[math]": 1.6})
    n = 1e9
    spent = 4.5e11  # past the D this law would choose for this N at this budget (about 4.1e11): branch now
    r = replan(3e21, ["code", "math"], {"model_size": n, "tokens": spent, "checkpoints": _checkpoints(truth, n, (1e11, 2e11, 4.5e11))},
               law=wrong, fit_options={"max_starts": 4})
    assert r.checkpoint_are_before > 0.03 and r.checkpoint_are_after < 1e-3
    assert r.after.pretrain_tokens == pytest.approx(spent, rel=1e-3)
    assert r.decision.startswith("branch now")
    cfg = plan_config(r.after, branch_from=r.after.pretrain_tokens)
    assert {x["kind"] for x in cfg["runs"]} == {"pretrain", "branch"}


def test_replan_rejects_spent_budget() -> None:
    law = planner.law("split-additive", **SHIPPED)
    with pytest.raises(planner.PlannerError):
        replan(1e20, ["code"], {"model_size": 1e9, "tokens": 1e12}, law=law)
