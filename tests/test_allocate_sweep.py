"""A sweep's perturbation checks, evaluated once for every budget, against the one-plan check."""

from __future__ import annotations

import numpy as np
import pytest

import planner
from planner.allocate import Domain, assemble, optimize, sweep
from planner.allocate._context import build_context
from planner.allocate._options import OptimizeOptions
from planner.allocate.checks import perturbation_check, perturbation_checks


def _law(d0: float = 1e9) -> planner.FittedLaw:
    rng = np.random.default_rng(4)
    names = ["code", "math", "bio"]
    kw: dict[str, float] = {"A": 406.4, "alpha": 0.34, "beta": 0.28}
    for n in names:
        kw.update({f"E[{n}]": float(rng.uniform(1, 2)), f"B[{n}]": float(rng.uniform(300, 800)), f"C[{n}]": float(rng.uniform(10, 60)),
                   f"gamma[{n}]": float(rng.uniform(0.2, 0.35)), f"D0[{n}]": d0})
    return planner.law("split-additive", domains=names, **kw)


DOMS = [Domain("code", 2.0), Domain("math", 1.0), Domain("bio", 1.0, unique_tokens=6e10, max_epochs=4)]


@pytest.mark.parametrize("strategy", ["split", "no-split", "fixed"])
def test_sweep_checks_equal_optimize_checks(strategy: str) -> None:
    law = _law()
    budgets = [1e20, 3e21, 1e23]
    plans = sweep(law, budgets, DOMS, strategy=strategy)
    for b, p in zip(budgets, plans):
        one = optimize(law, b, DOMS, strategy=strategy, baselines=False)
        assert list(p.check) == list(one.check)  # same keys, same order
        for k in ("n_perturbations", "improved"):
            assert p.check[k] == one.check[k]
        assert p.check["best_perturbed"] == pytest.approx(one.check["best_perturbed"], rel=1e-12)
        assert p.model_size == pytest.approx(one.model_size, rel=1e-9)


def test_batched_check_equals_the_single_check_including_an_improvement() -> None:
    law = _law()
    prob = build_context(law, 1e22, DOMS, None, OptimizeOptions(), {}).problem
    rows = []
    for b in (1e21, 1e22, 1e23):
        a = optimize(law, b, DOMS, baselines=False)
        S = np.array([a.spec_tokens[d.name] for d in DOMS])
        rows.append((b, a.model_size, a.pretrain_tokens, S, a.objective))
    rows[1] = rows[1][:4] + (rows[1][4] + 0.01,)  # a plan claimed worse than it is: a perturbation beats it
    batched = perturbation_checks(prob, rows, seed=0)
    for (b, N, D, S, v), got in zip(rows, batched):
        ref = perturbation_check(prob.with_budget(b), b, N, D, S, v, 0)
        assert got.keys() == ref.keys()
        assert got["improved"] == ref["improved"] and got["n_perturbations"] == ref["n_perturbations"]
        assert got["best_perturbed"] == pytest.approx(ref["best_perturbed"], rel=1e-13)
        if ref["improved"]:
            np.testing.assert_allclose(np.hstack([got["point"][0], got["point"][1], got["point"][2]]),
                                       np.hstack([ref["point"][0], ref["point"][1], ref["point"][2]]), rtol=1e-13)
    assert [r["improved"] for r in batched] == [False, True, False]


def test_a_plan_the_batched_check_improves_is_solved_again_with_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """The re-solve path: the plan then comes from solve_and_assemble with its own check in place."""
    law = _law()
    budgets = [1e21, 1e22]
    real = assemble.perturbation_checks

    def flag_second(prob, rows, seed):
        out = real(prob, rows, seed)
        out[1] = {**out[1], "improved": True}
        return out

    monkeypatch.setattr(assemble, "perturbation_checks", flag_second)
    plans = sweep(law, budgets, DOMS)
    one = optimize(law, 1e22, DOMS, baselines=False)
    assert plans[1].check["n_perturbations"] == one.check["n_perturbations"]
    assert plans[1].check["improved"] is False  # its own check ran again
    assert plans[1].model_size == pytest.approx(one.model_size, rel=1e-9)
