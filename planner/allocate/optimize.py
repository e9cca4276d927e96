r"""The public API of the allocator: :func:`optimize` and :func:`sweep`.

Everything else lives in modules named for their one job: :mod:`._options` (the options, their legal
values, the budget check), :mod:`._context` (arguments resolved into a :class:`~.problem.Problem`),
:mod:`.engines` (the solver paths, an ordered table), :mod:`.strategies`, :mod:`.checks` (analytic
pre-checks, re-evaluation with the law's own predict, the perturbation check), :mod:`.assemble` (the
:class:`Allocation`), :mod:`.baselines` (baselines and compute multipliers) and :mod:`.draws`
(robust plans and uncertainty over bootstrap draws). See docs/optimizer.md.
"""

from __future__ import annotations

import warnings
from typing import Any, Iterable, Mapping, Sequence

from .._threads import blas_single_threaded
from ..errors import PlannerWarning
from ..fitting.law import FittedLaw
from ._context import _domain_list, build_context
from ._options import check_budget, check_options
from .assemble import perturb_plans, solve_and_assemble
from .baselines import DEFAULT_FIXED_FRACTION, STRATEGIES
from .model import Allocation, AllocationError, Constraints, Domain, FlopModel
from .strategies import StrategySolver

__all__ = ["optimize", "sweep", "STRATEGIES", "DEFAULT_FIXED_FRACTION"]


def _raise_plan_warnings(plans: Iterable[Allocation], stacklevel: int = 4) -> None:
    """Raise each distinct plan warning once through :mod:`warnings` (they stay as data on the plans)."""
    seen: set[tuple[str, str]] = set()
    for plan in plans:
        for w in plan.warnings:
            key = (w.code, w.message)
            if key in seen:
                continue
            seen.add(key)
            warnings.warn(f"{w.code}: {w.message}", PlannerWarning, stacklevel=stacklevel)


def _plan(law: Any, budget: Any, domains: Any, constraints: Any, options: Any, constraint_fields: Mapping[str, Any]) -> Allocation:
    """One plan, no warnings raised (the public functions raise them once)."""
    if options.objective == "error":
        from dataclasses import replace

        from .error_objective import optimize_error

        doms = _domain_list(domains)
        loss_options = replace(options, objective="loss")

        def solve(doms_: list[Domain], baselines: bool) -> Allocation:
            return _plan(law, budget, doms_, constraints, replace(loss_options, baselines=baselines), constraint_fields)

        return optimize_error(solve, law, doms, baselines=options.baselines)
    ctx = build_context(law, budget, domains, constraints, options, constraint_fields)
    strategies = {options.strategy: StrategySolver(ctx, options.strategy)}
    return solve_and_assemble(ctx, strategies)


@blas_single_threaded
def optimize(
    law: FittedLaw | Mapping[str, FittedLaw],
    budget: float | str | None = None,
    domains: Sequence[Domain | Mapping[str, Any] | str] = (),
    constraints: Constraints | Mapping[str, Any] | None = None,
    strategy: str = "split",
    *,
    mode: str = "min-loss",
    objective: str = "loss",
    flops: FlopModel | None = None,
    inference: str | None = None,
    inference_budget: float | None = None,
    fixed_fraction: float = DEFAULT_FIXED_FRACTION,
    path: str = "auto",
    solver: str = "auto",
    robust: str | None = None,
    uncertainty: str | None = None,
    max_draws: int | None = None,
    baselines: bool = True,
    marginal: bool = True,
    check: bool = True,
    seed: int = 0,
    **constraint_fields: Any,
) -> Allocation:
    r"""Recommend N, D and every D'_k for a FLOP budget.

    Minimises sum_k w_k L_k(N, D, D'_k) subject to f(N) (D + sum_k D'_k) [+ 2 N I] <= budget
    (f(N) = 6N by default) and the constraints; ``domains=[]`` plans plain
    compute-optimal pretraining of the general loss.

    Parameters
    ----------
    law: one FittedLaw (per-domain parameters named ``B[code]``), or a dict
        domain -> FittedLaw (``"general"`` for the general loss).
    budget: FLOPs (training, plus inference with ``inference="in-budget"``): a positive
        number or a quantity such as ``"1e22 FLOPs"``. Optional in ``mode="min-compute"``
        (then an upper limit).
    domains: a list of :class:`Domain` objects, dicts with the same keys, or names.
    constraints: :class:`Constraints` or a dict; its fields may also be passed as keywords
        (``max_model_size="30B"``).
    strategy: "split" (default), "no-split" (D' = 0), "fixed" (``fixed_fraction`` of
        the training compute in pretraining, the rest split optimally across the
        domains), "separate" (one model per domain, budget shared by weight).

    Options (keyword-only; an option that cannot apply is an error)
    -------
    mode: "min-loss" (default) or "min-compute" (least compute meeting every target_loss).
    objective: "loss" (default: sum_k w_k L_k) or "error" (sum_k w_k Err_k(L_k) with each
        domain's ``downstream`` law; solved by reweighting loss problems to a stationary
        point, uncertified; see ``planner.allocate.error_objective``).
    flops: FLOPs-per-token model (``SixN()`` default, ``AttentionFlops(...)``).
    inference: "in-budget" (default; inference FLOPs 2 N I share the budget), "separate"
        (needs ``inference_budget=``, its own limit; the default when it is given) or
        "ignore" (inference demand only reported; a warning says so).
    inference_budget: FLOPs limit of inference (needs inference tokens).
    fixed_fraction: pretraining share of the ``fixed`` strategy (default
        ``DEFAULT_FIXED_FRACTION`` = 0.8), in (0, 1).
    path: "auto" (first path of the table that accepts the problem), "gp", "dcp" or "multistart".
    solver: "auto" (numpy KKT solver where it applies, else cvxpy), "numpy", "cvxpy" (the
        reference conic formulations) or a cvxpy solver name ("CLARABEL", "SCS", ...).
    robust: None, "mean" or "worst" (over bootstrap draws). uncertainty: None or "draws".
    max_draws: draws used for robust plans and uncertainty (default 100 for GP, 20 otherwise).
    baselines (True), marginal (True), check (True): what to compute besides the plan.
    seed: seed of the perturbation check.

    Returns an :class:`Allocation`; infeasible problems return ``status="infeasible"``
    with a message naming the conflicting constraints (see docs/optimizer.md for every
    status). Plan warnings are kept on ``plan.warnings`` and also raised once through
    :mod:`warnings` as :class:`planner.PlannerWarning`. Raises :class:`AllocationError`
    for bad input.
    """
    opts = check_options(
        "optimize", strategy=strategy, mode=mode, objective=objective, flops=flops, inference=inference,
        inference_budget=inference_budget, fixed_fraction=fixed_fraction, path=path, solver=solver, robust=robust,
        uncertainty=uncertainty, max_draws=max_draws, baselines=baselines, marginal=marginal, check=check, seed=seed,
    )
    plan = _plan(law, budget, domains, constraints, opts, constraint_fields)
    _raise_plan_warnings([plan])
    return plan


@blas_single_threaded
def sweep(
    law: FittedLaw | Mapping[str, FittedLaw],
    budgets: Sequence[float | str],
    domains: Sequence[Domain | Mapping[str, Any] | str] = (),
    constraints: Constraints | Mapping[str, Any] | None = None,
    strategy: str = "split",
    *,
    mode: str = "min-loss",
    objective: str = "loss",
    flops: FlopModel | None = None,
    inference: str | None = None,
    inference_budget: float | None = None,
    fixed_fraction: float = DEFAULT_FIXED_FRACTION,
    path: str = "auto",
    solver: str = "auto",
    robust: str | None = None,
    uncertainty: str | None = None,
    max_draws: int | None = None,
    baselines: bool = False,
    marginal: bool = True,
    check: bool = True,
    seed: int = 0,
    **constraint_fields: Any,
) -> list[Allocation]:
    """``optimize`` at every budget, compiling the problem once (same options; baselines off by default).

    Every budget is checked as ``optimize`` checks its one. The compiled problem, the chosen path and
    the last solution (warm start) are reused from budget to budget; plan warnings are raised once
    per distinct warning for the whole sweep.
    """
    opts = check_options(
        "sweep", strategy=strategy, mode=mode, objective=objective, flops=flops, inference=inference,
        inference_budget=inference_budget, fixed_fraction=fixed_fraction, path=path, solver=solver, robust=robust,
        uncertainty=uncertainty, max_draws=max_draws, baselines=baselines, marginal=marginal, check=check, seed=seed,
    )
    if isinstance(budgets, (str, bytes)) or not isinstance(budgets, Iterable):
        raise AllocationError(f"sweep: budgets must be a list of FLOP budgets, not {type(budgets).__name__} {budgets!r}")
    checked = [check_budget(b, where=f"sweep: budget {i}") for i, b in enumerate(budgets)]
    if not checked:
        return []
    if opts.objective == "error":
        plans = [_plan(law, b, domains, constraints, opts, constraint_fields) for b in checked]
    else:
        ctx = build_context(law, checked[0], domains, constraints, opts, constraint_fields)
        strategies = {opts.strategy: StrategySolver(ctx, opts.strategy)}
        plans = [solve_and_assemble(ctx.at_budget(b), strategies, warm=i > 0, perturb=False) for i, b in enumerate(checked)]
        plans = perturb_plans(ctx, strategies, plans)  # every budget's perturbation check, the law evaluated once
    _raise_plan_warnings(plans)
    return plans
