"""The plan over bootstrap draws: the objective's distribution for robust plans, and
(``uncertainty="draws"``) the distribution of the optimal allocation when each draw is planned for."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ._context import Context, parameter_draws
from .engines import PlanSolver, choose_path
from .model import AllocationError
from .problem import Problem

__all__ = ["draw_summary"]


def draw_summary(ctx: Context, prob: Problem, budget: float | None, N: float, D: float, S: np.ndarray, value: float) -> dict[str, Any] | None:
    has_draws = any(l.draws is not None and len(l.draws) > 1 for l in ctx.laws)
    if not has_draws:
        return None
    out: dict[str, Any] = {}
    if prob.robust and prob.draws:
        vals = np.array([float(prob.objective_of_losses(prob.losses(N, D, S, sc.params))) for sc in prob.draws])
        out["robust"] = prob.robust
        out["objective_over_draws"] = {"mean": float(vals.mean()), "worst": float(vals.max()), "p05": float(np.percentile(vals, 5)), "p50": float(np.median(vals)), "p95": float(np.percentile(vals, 95)), "n_draws": int(len(vals))}
        out["nominal_objective"] = float(prob.objective_of_losses(prob.losses(N, D, S)))
    if ctx.options.uncertainty == "draws":
        default = 100 if choose_path(prob, ctx.options.path)[0].name == "gp" else 20
        scen = parameter_draws(ctx.laws, ctx.law_domains, ctx.options.max_draws if ctx.options.max_draws is not None else default)
        rows = []
        failed = 0
        for sc in scen:
            p = replace(prob, params=sc.params, robust=None, draws=())
            try:
                eng = PlanSolver(p, ctx.options)
                sol = eng.solve(budget)
            except AllocationError:
                failed += 1
                continue
            if not sol.ok:
                failed += 1
                continue
            fpt = float(p.flops_per_token(sol.model_size))
            train = fpt * (sol.pretrain_tokens + float(sol.spec_tokens.sum()))
            rows.append([sol.model_size, sol.pretrain_tokens, fpt * sol.pretrain_tokens / train, sol.value, *sol.spec_tokens])
        if rows:
            arr = np.array(rows)

            def pct(col: np.ndarray) -> dict[str, float]:
                return {"p05": float(np.percentile(col, 5)), "p50": float(np.median(col)), "p95": float(np.percentile(col, 95))}

            out["allocation_over_draws"] = {
                "n_draws": int(len(scen)), "n_failed": int(failed),
                "model_size": pct(arr[:, 0]), "pretrain_tokens": pct(arr[:, 1]), "pretrain_fraction": pct(arr[:, 2]),
                "objective": pct(arr[:, 3]),
                "spec_tokens": {prob.names[k]: pct(arr[:, 4 + k]) for k in range(prob.K) if not prob.pseudo_general},
                "specialize_share": {prob.names[k]: float(np.mean(arr[:, 4 + k] > 0)) for k in range(prob.K) if not prob.pseudo_general},
            }
    return out or None
