"""Hand-made result documents for the report tests (no optimizer needed), and checks of them.

``make_law_dict`` builds a split-additive law JSON with synthetic fit points (held-out rows
marked); ``make_allocation_dict`` a plan in the shape of ``Allocation.to_dict()``;
``make_result`` the whole ``allocation.json`` document.
"""

from __future__ import annotations

import json

import numpy as np

import planner
from planner.report import build_result

DOMAINS = ("code", "math", "biomedical")
LAW_PARAMS = {
    "A": 406.4, "alpha": 0.34, "beta": 0.28,
    "E[code]": 1.2, "E[math]": 1.45, "E[biomedical]": 1.85,
    "B[code]": 380.0, "B[math]": 420.0, "B[biomedical]": 450.0,
    "C[code]": 220.0, "C[math]": 160.0, "C[biomedical]": 110.0,
    "gamma[code]": 0.36, "gamma[math]": 0.33, "gamma[biomedical]": 0.30,
    "D0[code]": 1e8, "D0[math]": 1e8, "D0[biomedical]": 1e8,
}


def make_law():
    return planner.law("split-additive", domains=list(DOMAINS), **LAW_PARAMS)


def make_law_dict(with_points: bool = True) -> dict:
    fitted = make_law()
    d = fitted.to_dict()
    if with_points:
        rng = np.random.default_rng(0)
        rows = {"model_size": [], "pretrain_tokens": [], "spec_tokens": [], "domain": [], "observed": [], "predicted": [], "held_out": []}
        for n in (2e7, 5e7, 1.25e8, 3.5e8, 1e9):
            for ratio in (10, 20, 40):
                for dom in DOMAINS:
                    for frac in (0.0, 0.1, 0.4):
                        dd, ds = ratio * n, frac * ratio * n
                        pred = float(fitted.predict(model_size=[n], pretrain_tokens=[dd], spec_tokens=[ds], domain=dom)[0])
                        rows["model_size"].append(n)
                        rows["pretrain_tokens"].append(dd)
                        rows["spec_tokens"].append(ds)
                        rows["domain"].append(dom)
                        rows["observed"].append(pred * float(np.exp(rng.normal(0, 0.01))))
                        rows["predicted"].append(pred)
                        rows["held_out"].append(n == 1e9)
        d["points"] = rows
        d["holdout"] = {"rule": "auto", "are": 0.0081, "r2": 0.993, "n_test": 27, "max_rel_error": 0.02, "n_train": 108}
        d["selection"] = [{"form": "split-additive", "are": 0.0081, "note": "selected"},
                          {"form": "split-effective", "are": 0.012, "note": ""}]
    return d


def make_allocation_dict(budget: float = 1e22, status: str = "optimal") -> dict:
    n, d = 2.0e9 * (budget / 1e22) ** 0.5, 6.0e11 * (budget / 1e22) ** 0.5
    spec = {"code": 1.2e11, "math": 8.0e10, "biomedical": 0.0}
    flops_spec = {k: 6 * n * v for k, v in spec.items()}
    doms = []
    for i, name in enumerate(DOMAINS):
        doms.append({
            "name": name, "weight": [2.0, 1.0, 1.0][i], "spec_tokens": spec[name], "loss": [1.62, 1.87, 2.31][i],
            "loss_interval": [[1.6, 1.65], [1.85, 1.9], [2.28, 2.34]][i], "error": None, "specialize": spec[name] > 0,
            "flops": flops_spec[name], "inference_flops": 0.0, "target_loss": None, "note": "",
        })
    return {
        "schema": "planner.allocation/1",
        "budget": budget, "model_size": n, "pretrain_tokens": d, "spec_tokens": spec,
        "objective": 7.42 - 0.1 * np.log10(budget / 1e22), "certified": True, "path": "dcp+search", "status": status,
        "message": "" if status == "optimal" else "max_model_size and min_tokens_per_param conflict with the budget",
        "strategy": "split", "mode": "min-loss", "domains": doms,
        "flops": {"pretrain": 6 * n * d, "specialization": sum(flops_spec.values()), "inference": 0.0,
                  "training": 6 * n * d + sum(flops_spec.values()), "total": 6 * n * d + sum(flops_spec.values()),
                  "by_domain": flops_spec},
        "pretrain_fraction": 6 * n * d / (6 * n * d + sum(flops_spec.values())),
        "binding": [{"name": "budget", "kind": "upper", "value": budget, "limit": budget, "binding": True, "slack": 0.0},
                    {"name": "spec_tokens[biomedical] cap", "kind": "upper", "value": 0.0, "limit": 2e10, "binding": False, "slack": 1.0}],
        "marginal_value": -0.31,
        "baselines": [
            {"strategy": "no-split", "objective": 7.55, "compute_multiplier": 2.4, "model_size": n, "pretrain_tokens": d, "spec_tokens": {}, "status": "optimal", "note": ""},
            {"strategy": "fixed", "objective": 7.47, "compute_multiplier": 1.3, "model_size": n, "pretrain_tokens": d, "spec_tokens": {}, "status": "optimal", "note": "80/20"},
            {"strategy": "separate", "objective": 7.9, "compute_multiplier": None, "model_size": {"code": n}, "pretrain_tokens": {"code": d}, "spec_tokens": {}, "status": "optimal", "note": ""},
        ],
        "warnings": [{"code": "spec-floor", "message": "biomedical is not worth specializing at this budget"}],
        "draw_summary": None, "general_loss": None, "check": {}, "flop_model": {"model": "6N"}, "constraints": {},
    }


def make_decision(plan: dict, headline: str = "robust-worst") -> dict:
    """A hand-made ``decision`` block (the shape of ``Decision.to_dict()``) around the plan ``plan``:
    two candidate forms, two robust plans, ranges, a flatness band and two baselines."""
    n, d, spec = plan["model_size"], plan["pretrain_tokens"], dict(plan["spec_tokens"])

    def p(label: str, strategy: str, source: str, f: float) -> dict:
        return {"label": label, "strategy": strategy, "source": source, "model_size": n * f, "pretrain_tokens": d / f,
                "spec_tokens": {k: v * f for k, v in spec.items()}}

    plans = [p("plan under split-additive", "split", "split-additive", 1.0), p("plan under split-interaction", "split", "split-interaction", 0.6)]
    robust = [{"strategy": "robust-mean", "kind": "mean", "plan": p("robust (expected regret)", "robust-mean", "robust", 0.95), "expected_regret": 0.001,
               "worst_regret": 0.04, "expected_loss": 7.43, "certified": False, "method": "multi-start", "n_scenarios": 2},
              {"strategy": "robust-worst", "kind": "worst", "plan": p("robust (worst-case regret)", "robust-worst", "robust", 0.8), "expected_regret": 0.01,
               "worst_regret": 0.01, "expected_loss": 7.44, "certified": False, "method": "multi-start", "n_scenarios": 2}]
    head = {"nominal": plans[0], "robust-mean": robust[0]["plan"], "robust-worst": robust[1]["plan"]}[headline]
    labels = [x["label"] for x in plans] + [x["plan"]["label"] for x in robust]
    nominal = [[0.0, 0.05], [0.04, 0.0], [0.001, 0.03], [0.01, 0.01]]
    rows = {"model_size": (0.6 * n, n), "pretrain_tokens": (d, d / 0.6)}
    rows.update({f"spec_tokens[{k}]": (0.6 * v, v) for k, v in spec.items()})
    return {
        "headline": headline, "headline_plan": head, "interval_level": 0.9,
        "candidates": [{"name": "split-additive", "weight": 0.7}, {"name": "split-interaction", "weight": 0.3}],
        "plans": plans,
        "regret": {"plans": labels, "laws": ["split-additive", "split-interaction"], "units": "objective units", "level": 0.9,
                   "nominal": nominal, "nominal_relative": [[x / 7.42 for x in r] for r in nominal], "draws_mean": nominal,
                   "draws_high": nominal, "draws_worst": nominal, "expected": [0.015, 0.028, 0.0097, 0.01], "worst": [0.05, 0.04, 0.03, 0.01],
                   "expected_relative": [0.002, 0.004, 0.001, 0.001]},
        "robust": robust,
        "ranges": {"level": 0.9, "over": "forms (point estimates)", "n_scenarios": 2, "n_failed": 0,
                   "rows": {**{k: {"p_low": lo, "median": (lo + hi) / 2, "p_high": hi} for k, (lo, hi) in rows.items()},
                            "pretrain_share": {"p_low": 0.78, "median": 0.8, "p_high": 0.85}}},
        "flatness": {"objective": "worst-case regret over the scenarios", "optimum": 0.01, "epsilon": 0.001, "method": "profile",
                     "rows": {k: {"optimum": (lo + hi) / 2, "low": lo, "low_at_bound": False, "high": hi, "high_at_bound": k == "model_size"}
                              for k, (lo, hi) in rows.items()}},
        "baselines": [
            {"strategy": "no-split", "gap": 0.5, "gap_interval": [0.1, 0.9], "gap_by_law": {}, "multiplier": 898.0, "multiplier_interval": [77.0, 898.0],
             "multiplier_by_law": {}, "beyond_fitted_range": True, "extrapolation_factor": 1e4, "scaled_binding": ["max_model_size"],
             "n_multiplier_samples": 2, "level": 0.9, "plans": {}, "text": "no-split: gap +0.5 [+0.1, +0.9]; compute multiplier > 100x (beyond the fitted range)"},
            {"strategy": "fixed", "gap": 0.01, "gap_interval": [0.0, 0.02], "gap_by_law": {}, "multiplier": 1.2, "multiplier_interval": [1.1, 1.4],
             "multiplier_by_law": {}, "beyond_fitted_range": False, "extrapolation_factor": 2.0, "scaled_binding": [],
             "n_multiplier_samples": 2, "level": 0.9, "plans": {}, "text": "fixed: gap +0.01 [+0, +0.02]; compute multiplier 1.2x [1.1x, 1.4x]"},
        ],
        "sensitivity": [], "notes": [], "n_scenarios": 2, "draw_method": "local", "timings": {},
    }


def make_result(sweep: bool = False, with_points: bool = True, status: str = "optimal", decision: str | None = None) -> dict:
    """The whole document; ``decision`` (a headline: "nominal", "robust-mean", "robust-worst") adds a decision block."""
    from planner.report.document import headline_document

    budgets = [1e21, 1e22, 1e23]
    plans = [make_allocation_dict(b, status) for b in budgets]
    curve = [{"budget": p["budget"], "objective": p["objective"], "status": p["status"],
              "baselines": {b["strategy"]: b["objective"] - 0.1 * np.log10(p["budget"] / 1e22) for b in p["baselines"]}} for p in plans]
    doc = build_result(
        plans[1], laws={"law": make_law_dict(with_points)},
        scenario={"title": "fixture", "description": "A hand-made three-domain plan.", "budget": {"flops": budgets}},
        sweep=plans if sweep else [], curve=curve,
        warnings=[{"code": "few-model-sizes", "message": "synthetic"}], title="Fixture plan",
    )
    if decision is not None:
        doc["decision"] = make_decision(plans[1], decision)
    doc["headline"] = headline_document(doc)
    return doc


def test_fixture_is_json_serialisable():
    doc = make_result(sweep=True)
    again = json.loads(json.dumps(doc, allow_nan=False))
    assert again["schema"] == "planner.allocation/1"
    assert {"budget", "model_size", "pretrain_tokens", "objective", "certified", "domains", "baselines", "laws", "scenario"} <= set(again)
    assert [w["source"] for w in again["warnings"]] == ["plan", "law"]


def test_fixture_law_rebuilds():
    law = planner.FittedLaw.from_dict(make_law_dict())
    assert law.form.name == "split-additive"
    assert set(law.domains) == set(DOMAINS)
