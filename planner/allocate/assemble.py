"""Assembly of an :class:`Allocation` from a solver's answer: projection onto the budget, branches at the
floor, the independent checks, flops per phase, per-domain plans, binding constraints, marginal value,
baselines and draws.

:func:`solve_and_assemble` runs a context's strategy at the context's budget and returns the plan;
its intermediate state travels in one frozen :class:`PlanRecord`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ._context import Context
from .baselines import baseline_records
from .checks import (
    binding_records,
    extrapolation_warnings,
    loss_intervals,
    named_constraints,
    official_losses,
    perturbation_check,
    perturbation_checks,
    precheck,
    project_to_budget,
)
from .common import Solution
from .draws import draw_summary
from .model import Allocation, AllocationWarning, Baseline, DomainPlan, FlopModel
from .problem import SPEC_FLOOR, Problem
from .strategies import StrategySolver

__all__ = ["PlanRecord", "solve_and_assemble", "infeasible_allocation", "path_message"]


#: relative disagreement between the law's prediction and the solver's objective beyond which a plan is "inaccurate"
MISMATCH_TOL = 1e-5


@dataclass(frozen=True)
class PlanRecord:
    """A solved plan on its way to an :class:`Allocation`.

    problem: the strategy's problem at the budget; model_size/pretrain_tokens/spec_tokens: the plan
    (parameters, tokens); value: the objective re-evaluated with the law's formula; losses: each law's
    own prediction per domain; solution: the solver's raw answer; path/why: the solver path and why the
    more exact ones were not taken; check: the independent re-evaluation; warnings: the plan's warnings.
    """

    problem: Problem
    model_size: float
    pretrain_tokens: float
    spec_tokens: np.ndarray
    value: float
    losses: np.ndarray
    solution: Solution
    path: str
    why: str
    status: str
    certified: bool
    check: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[AllocationWarning, ...] = ()

    @property
    def budget(self) -> float | None:
        return self.problem.budget


def path_message(path: str, why: str, status: str) -> str:
    base = path.split("+menu")[0]
    if base == "gp":
        msg = "geometric program in log variables solved to a global optimum"
    elif base == "dcp+search":
        msg = ("convex (DCP) in the tokens for each model size, so globally optimal in the tokens; the search over log N is "
               "one-dimensional (grid bracket + bounded Brent) and not certified")
    else:
        msg = "multi-start SLSQP on the law's formula (local optima; not certified)"
    if why:
        msg += f" [not a geometric program: {why}]"
    if "+menu" in path:
        msg += "; best size of the menu"
    if status == "optimal_inaccurate":
        msg += "; solver reported an inaccurate solution"
    elif status == "inaccurate":
        msg = "NOT an optimum: the law's prediction and the solver's objective disagree beyond tolerance (path: " + msg + ")"
    elif status == "limit":
        msg = "NOT an optimum: the plan sits at an internal limit of the solver, see the binding constraints (path: " + msg + ")"
    return msg


def infeasible_allocation(ctx: Context, budget: float | None, message: str, path: str = "", status: str = "infeasible") -> Allocation:
    prob = ctx.problem
    return Allocation(
        budget=math.nan if budget is None else float(budget), model_size=math.nan, pretrain_tokens=math.nan,
        spec_tokens={d.name: math.nan for d in ctx.domains}, objective=math.nan, certified=False, path=path,
        status=status, message=message, domains=(), strategy=ctx.strategy, mode=prob.mode,
        flop_model=flop_dict(prob.flop_model), constraints=prob.constraints.to_dict(),
    )


def flop_dict(fm: FlopModel) -> dict[str, Any]:
    return fm.to_dict() if hasattr(fm, "to_dict") else {"model": type(fm).__name__, "terms": [list(t) for t in fm.terms()]}


def solve_and_assemble(ctx: Context, strategies: dict[str, StrategySolver], *, draws: bool = True, warm: bool = False, perturb: bool = True) -> Allocation:
    """The plan of ``ctx.strategy`` at ``ctx.budget`` (the budget lives in the context's problem).

    ``warm``: start the search over N near the strategy's last plan (a sweep's previous budget).
    ``perturb=False`` leaves the perturbation check to the caller (a sweep checks every budget's plan
    at once: :func:`perturb_plans`)."""
    prob = ctx.problem
    budget = prob.budget
    baselines = ctx.options.baselines
    main = strategies[ctx.strategy]
    pre = precheck(prob if ctx.strategy != "no-split" else prob.no_split(), budget)
    if pre is not None:
        return infeasible_allocation(ctx, budget, pre, main.path)
    value, sols = main.solve(budget, warm=warm)
    warnings_: list[AllocationWarning] = []
    if ctx.strategy == "separate":
        return assemble_separate(ctx, strategies, budget, value, sols, baselines)
    sol = sols[0][1]
    eng_prob = main.engines[0][1].prob.with_budget(budget)
    if not sol.ok:
        msg = sol.message or "no feasible plan"
        if sol.status == "infeasible":
            active = named_constraints(prob)
            msg = f"no plan satisfies all constraints within the budget ({msg}); constraints in play: {', '.join(active) if active else 'budget only'}"
        return infeasible_allocation(ctx, budget, msg, sol.path, status=sol.status if sol.status in ("infeasible", "failed") else "infeasible")
    N, D, S = sol.model_size, sol.pretrain_tokens, sol.spec_tokens.copy()
    if prob.mode == "min-loss" or budget is not None:
        D, S = project_to_budget(eng_prob, budget, N, D, S)
    # branches at the floor: try no specialization at all
    spec_threshold = max(2 * SPEC_FLOOR, 1e-6 * (D + float(S.sum())))
    for k in eng_prob.spec_index:
        if S[k] <= spec_threshold:
            S0 = S.copy()
            S0[k] = 0.0
            # the freed tokens go to pretraining (same cost per token) unless the split is fixed
            D0 = D if eng_prob.fixed_fraction is not None else min(D + S[k], eng_prob.pretrain_cap)
            if prob.mode == "min-loss":
                v_old = float(eng_prob.objective(N, D, S))
                v_new = float(eng_prob.objective(N, D0, S0))
                if v_new <= v_old + 1e-9 * abs(v_old):
                    S, D = S0, D0
            else:
                L0 = eng_prob.losses(N, D, S0)
                tg = np.isfinite(eng_prob.targets)
                if np.all(L0[tg] <= eng_prob.targets[tg] * (1 + 1e-12)):
                    S = S0
    certified = sol.certified
    status = sol.status
    value = float(eng_prob.budget_used(N, D, S)) if prob.mode == "min-compute" else float(eng_prob.objective(N, D, S))
    check: dict[str, Any] = {}
    losses = official_losses(ctx, eng_prob, N, D, S)
    if ctx.options.check:
        if prob.mode == "min-loss":
            if eng_prob.robust and eng_prob.draws:
                predicted = value
            else:
                predicted = float(losses @ eng_prob.weights)
            check["objective_predict"] = predicted
            check["objective_solver"] = sol.solver_value if math.isfinite(sol.solver_value) else None
            if math.isfinite(sol.solver_value):
                rel = abs(sol.solver_value - predicted) / max(abs(predicted), 1e-12)
                check["relative_difference"] = rel
                if rel > MISMATCH_TOL:
                    certified = False
                    status = "inaccurate"
                    warnings_.append(AllocationWarning("check-mismatch", f"the solver's objective {sol.solver_value:.8g} differs from the law's prediction {predicted:.8g} (relative {rel:.2e} > {MISMATCH_TOL:g}); the plan is not a verified optimum (status 'inaccurate')"))
            pert = perturbation_check(eng_prob, budget, N, D, S, value, ctx.options.seed) if perturb else {}
            point = pert.pop("point", None)
            check.update(pert)
            if point is not None:
                certified = False
                warnings_.append(AllocationWarning("check-improved", f"a random feasible perturbation improved the objective from {value:.10g} to {pert['best_perturbed']:.10g}; the perturbed plan is returned, uncertified"))
                N, D, S = point
                value = float(eng_prob.objective(N, D, S))
                losses = official_losses(ctx, eng_prob, N, D, S)
        else:
            check["targets_met"] = bool(np.all(losses[np.isfinite(eng_prob.targets)] <= eng_prob.targets[np.isfinite(eng_prob.targets)] * (1 + 1e-6)))
            if not check["targets_met"]:
                warnings_.append(AllocationWarning("check-mismatch", "the law's prediction misses a target loss at the returned plan (status 'inaccurate')"))
                certified = False
                status = "inaccurate"
    if status == "optimal_inaccurate":
        certified = False
        warnings_.append(AllocationWarning("solver-inaccurate", "the conic solver reported an inaccurate solution"))
    engine = main.engines[0][1]
    record = PlanRecord(eng_prob, N, D, S, value, losses, sol, sol.path, engine.why, status, certified, check, tuple(warnings_))
    return finish(ctx, strategies, record, baselines=baselines, draws=draws)


def finish(ctx: Context, strategies: dict[str, StrategySolver], rec: PlanRecord, *, baselines: bool, draws: bool) -> Allocation:
    """The :class:`Allocation` of a solved plan: flops per phase, domains, binding constraints, marginal value, baselines, draws."""
    prob, budget = rec.problem, rec.budget
    N, D, S, value, losses, sol = rec.model_size, rec.pretrain_tokens, rec.spec_tokens, rec.value, rec.losses, rec.solution
    path, why, status, certified, check = rec.path, rec.why, rec.status, rec.certified, dict(rec.check)
    warnings_ = list(rec.warnings)
    fpt = float(prob.flops_per_token(N))
    infer = float(prob.inference_flops(N))
    spec_flops = fpt * S
    training = fpt * (D + float(S.sum()))
    flops = {
        "per_token": fpt, "pretrain": fpt * D, "specialization": float(spec_flops.sum()), "inference": infer,
        "training": training, "total": training + infer,
        "by_domain": {prob.names[k]: float(spec_flops[k]) for k in range(prob.K) if not prob.pseudo_general},
    }
    intervals = loss_intervals(ctx, prob, N, D, S)
    plans = []
    spec_tokens = {}
    if not prob.pseudo_general:
        for k, d in enumerate(ctx.domains):
            err = None
            if d.downstream is not None:
                err = float(d.downstream.predict(loss=[losses[k]])[0])
            specialize = bool(S[k] > 0)
            note = ""
            if not prob.can_spec[k]:
                note = "the law has no specialization term" if not prob.forms[k].has_spec else ("the base model (no branch)" if d.name == "general" else "no-split strategy")
            elif not specialize:
                note = "not worth specializing: D' = 0 is optimal"
            iv, iv_kind = intervals[k] if intervals[k] is not None else (None, None)
            plans.append(DomainPlan(d.name, d.weight, float(S[k]), float(losses[k]), iv, err, specialize, float(spec_flops[k]),
                                    2.0 * N * d.inference_tokens, d.target_loss, note, iv_kind))
            spec_tokens[d.name] = float(S[k])
            if prob.can_spec[k] and not specialize:
                warnings_.append(AllocationWarning("not-specialized", f"domain {d.name!r} is not worth specializing at this budget: the plan gives it D' = 0"))
    general_loss = None
    if ctx.general is not None:
        gl, gd = ctx.general
        if prob.pseudo_general:
            general_loss = float(losses[0])
        else:
            kw: dict[str, Any] = dict(model_size=[N], pretrain_tokens=[D], domain=gd)
            if "spec_tokens" in gl.form.inputs:
                kw["spec_tokens"] = [0.0]
            general_loss = float(gl.predict(**kw)[0])
    binding = binding_records(prob, budget, N, D, S, losses)
    limits = [r.name.removeprefix("internal limit: ") for r in binding if r.binding and r.name.startswith("internal limit")]
    if limits and status in ("optimal", "optimal_inaccurate", "inaccurate"):
        status = "limit"
        certified = False
        warnings_.append(AllocationWarning(
            "internal-limit",
            f"the plan sits at the solver's internal limit {', '.join(limits)} (N = {N:.4g}, D = {D:.4g}): the law keeps improving "
            "beyond it, so this is not an optimum (status 'limit'); check the law and the budget (extrapolation far from the data?) "
            "or set min_model_size/max_model_size"))
    if prob.inference == "ignore" and prob.total_inference_tokens > 0:
        warnings_.append(AllocationWarning(
            "inference-ignored",
            f"inference='ignore': the {prob.total_inference_tokens:.4g} inference tokens (2 N FLOPs each, {infer:.4g} FLOPs at this N) "
            "are reported but neither charged to the budget nor limited"))
    warnings_ = warnings_ + extrapolation_warnings(ctx, N, D, S)
    # marginal value
    marginal = None
    if prob.mode == "min-loss" and budget is not None and ctx.options.marginal:
        if math.isfinite(sol.d_value_d_log_budget):
            marginal = float(sol.d_value_d_log_budget)
            check["marginal_value_source"] = "dual"
        else:
            h = 0.02
            up, _ = strategies[ctx.strategy].solve(budget * math.exp(h), warm=True)
            dn, _ = strategies[ctx.strategy].solve(budget * math.exp(-h), warm=True)
            if math.isfinite(up) and math.isfinite(dn):
                marginal = (up - dn) / (2 * h)
                check["marginal_value_source"] = "finite-difference"
    total_budget = float(budget) if budget is not None else float(prob.budget_used(N, D, S))
    base_list: list[Baseline] = []
    if baselines and not prob.pseudo_general:
        base_list = baseline_records(ctx, strategies, budget, value, total_budget)
    summary = None
    if draws:
        summary = draw_summary(ctx, prob, budget, N, D, S, value)
    if summary is None and ctx.options.uncertainty == "draws":
        warnings_.append(AllocationWarning("no-draws", "uncertainty='draws' needs bootstrap draws in the law (fit with bootstrap=B)"))
    return Allocation(
        budget=total_budget, model_size=float(N), pretrain_tokens=float(D), spec_tokens=spec_tokens, objective=float(value),
        certified=bool(certified), path=path, status=status, message=path_message(path, why, status), domains=tuple(plans),
        flops=flops, pretrain_fraction=float(fpt * D / training) if training > 0 else math.nan, binding=tuple(binding),
        marginal_value=marginal, baselines=tuple(base_list), warnings=tuple(warnings_), draw_summary=summary,
        strategy=ctx.strategy, mode=prob.mode, general_loss=general_loss, check=check, flop_model=flop_dict(prob.flop_model),
        constraints=prob.constraints.to_dict(),
    )


def assemble_separate(ctx: Context, strategies: dict[str, StrategySolver], budget: float | None, value: float, sols: list, baselines: bool) -> Allocation:
    """strategy='separate' as the recommended plan: report the largest model and per-domain details in the message."""
    prob = ctx.problem
    if not math.isfinite(value):
        bad = [prob.names[k] for k, s in sols if not s.ok]
        return infeasible_allocation(ctx, budget, f"no feasible separate model for {', '.join(bad)}", sols[0][1].path if sols else "")
    plans = []
    spec_tokens = {}
    total_flops = 0.0
    pretrain_flops = 0.0
    for k, s in sols:
        pretrain_flops += float(prob.flops_per_token(s.model_size)) * s.pretrain_tokens
        sub = prob.restrict(k, None)
        L = sub.losses(s.model_size, s.pretrain_tokens, s.spec_tokens)[0]
        fpt = float(prob.flops_per_token(s.model_size))
        total_flops += fpt * (s.pretrain_tokens + float(s.spec_tokens.sum()))
        d = ctx.domains[k]
        plans.append(DomainPlan(d.name, d.weight, float(s.spec_tokens[0]), float(L), None, None, bool(s.spec_tokens[0] > 0), fpt * float(s.spec_tokens[0]), 0.0, d.target_loss,
                                f"separate model: N = {s.model_size:.4g}, D = {s.pretrain_tokens:.4g}"))
        spec_tokens[d.name] = float(s.spec_tokens[0])
    biggest = max(sols, key=lambda ks: ks[1].model_size)[1]
    base_list = baseline_records(ctx, strategies, budget, value, float(budget) if budget is not None else total_flops) if baselines else []
    return Allocation(
        budget=float(budget) if budget is not None else total_flops, model_size=float(biggest.model_size), pretrain_tokens=float(biggest.pretrain_tokens),
        spec_tokens=spec_tokens, objective=float(value), certified=all(s.certified for _, s in sols), path=sols[0][1].path, status="optimal",
        message="one separate model per domain (budget shared by weight); model_size/pretrain_tokens are the largest model's", domains=tuple(plans),
        flops={"pretrain": pretrain_flops, "specialization": total_flops - pretrain_flops, "training": total_flops, "total": total_flops},
        pretrain_fraction=pretrain_flops / total_flops if total_flops > 0 else math.nan, baselines=tuple(base_list), strategy="separate", mode=prob.mode,
        flop_model=flop_dict(prob.flop_model), constraints=prob.constraints.to_dict(),
    )


def perturb_plans(ctx: Context, strategies: dict[str, StrategySolver], plans: list[Allocation]) -> list[Allocation]:
    """The perturbation check of a sweep's plans (solved with ``perturb=False``), the law evaluated once
    for all of them; a plan that a perturbation improves is solved again with the check in place (it
    then carries the perturbed plan and the warning, as ``optimize`` would give)."""
    if not ctx.options.check or ctx.problem.mode != "min-loss" or ctx.strategy == "separate" or not plans:
        return plans
    prob = strategies[ctx.strategy].engines[0][1].prob
    todo = [i for i, p in enumerate(plans) if "objective_predict" in p.check and math.isfinite(p.model_size)]  # the check's branch ran
    if not todo:
        return plans
    rows = []
    for i in todo:
        p = plans[i]
        S = np.array([p.spec_tokens.get(n, 0.0) for n in prob.names], dtype=float) if not prob.pseudo_general else np.zeros(prob.K)
        rows.append((p.budget, p.model_size, p.pretrain_tokens, S, p.objective))
    out = list(plans)
    for i, pert in zip(todo, perturbation_checks(prob, rows, ctx.options.seed)):
        if pert.get("improved"):
            out[i] = solve_and_assemble(ctx.at_budget(plans[i].budget), strategies)
            continue
        check = {}
        for k, v in plans[i].check.items():  # the keys in optimize's order: the check's before the marginal value's source
            if k == "marginal_value_source":
                check.update(pert)
            check[k] = v
        check.update({k: v for k, v in pert.items() if k not in check})
        out[i] = replace(plans[i], check=check)
    return out
