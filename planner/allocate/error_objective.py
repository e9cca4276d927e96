"""Plans that minimise predicted downstream error instead of loss.

Objective: sum_k w_k Err_k(L_k(N, D, D'_k)), with Err_k a fitted downstream law of
domain k (``Domain(downstream=...)``, e.g. Err = eps - k exp(-gamma L)). Error laws are
increasing and concave in the loss, so the objective is not a geometric program.

Method (reweighting to a fixed point). At a plan x*, the gradient of the error objective
is sum_k w_k Err_k'(L_k(x*)) grad L_k(x*): the error objective and the *loss* objective
with weights v_k = w_k Err_k'(L_k(x*)) have the same first-order conditions there. So we
solve loss problems (each on the allocator's own path, certified when it is a GP),
update v_k from the slopes at the new plan, and stop when the weights settle
(relative change < ``tol``). The fixed point is a stationary point (a KKT point) of the
error objective; the plan is reported uncertified with path "<path>+reweighted". With one
domain the plan equals the loss-optimal plan (any positive weight gives the same optimum).

Baselines are evaluated in error at the same budget (their plans are the loss-optimal
plans of each strategy under the final weights v_k); their compute multipliers are those
of the locally equivalent weighted-loss objective, which the result says in a warning.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .model import Allocation, AllocationError, AllocationWarning, Baseline, Domain

__all__ = ["optimize_error"]


def _as_domain(d: Domain | Mapping[str, Any] | str) -> Domain:
    if isinstance(d, Domain):
        return d
    if isinstance(d, str):
        return Domain(d)
    if isinstance(d, Mapping):
        return Domain(**dict(d))
    raise AllocationError(f"a domain is a planner.Domain, a dict or a name, not {type(d).__name__}")


def _slope(law: Any, loss: float) -> float:
    """d Err / d L at ``loss`` by central differences (the laws are smooth)."""
    h = 1e-5 * max(1.0, abs(loss))
    up, down = law.predict(loss=[loss + h])[0], law.predict(loss=[loss - h])[0]
    return float((up - down) / (2 * h))


def _predict_loss(law: Any, name: str, model_size: float, pretrain_tokens: float, spec_tokens: float) -> float:
    one = law[name] if isinstance(law, Mapping) else law
    return float(one.predict(model_size=[model_size], pretrain_tokens=[pretrain_tokens], spec_tokens=[spec_tokens], domain=[name])[0])


def optimize_error(
    solve: Callable[[list[Domain], bool], Allocation],
    law: Any,
    domains: Sequence[Domain | Mapping[str, Any] | str],
    *,
    baselines: bool = True,
    tol: float = 1e-6,
    max_iter: int = 60,
) -> Allocation:
    """The error-optimal plan by reweighting loss problems; ``solve(domains, baselines)`` solves one loss problem."""
    doms = [_as_domain(d) for d in domains]
    if not doms:
        raise AllocationError("objective='error' needs domains, each with a downstream law (Domain(downstream=...))")
    missing = [d.name for d in doms if d.weight > 0 and d.downstream is None]
    if missing:
        raise AllocationError(f"objective='error': domain(s) {', '.join(missing)} have no downstream law (Domain(downstream=...))")
    weights = np.array([d.weight for d in doms], dtype=float)
    active = weights > 0
    effective = weights.copy()
    iterations, converged = 0, False
    plan: Allocation | None = None
    for iterations in range(1, max_iter + 1):
        plan = solve([replace(d, weight=float(v)) for d, v in zip(doms, effective)], False)
        if not plan.feasible:
            return plan
        losses = {p.name: p.loss for p in plan.domains}
        slopes = np.array([_slope(d.downstream, losses[d.name]) if a else 0.0 for d, a in zip(doms, active)])
        if np.any(slopes[active] <= 0):
            bad = [d.name for d, s, a in zip(doms, slopes, active) if a and s <= 0]
            raise AllocationError(f"objective='error': the downstream law of {', '.join(bad)} does not increase with the loss at the plan")
        new = weights * slopes
        new *= weights.sum() / new.sum()  # keep the scale of the weights (only ratios matter)
        change = float(np.max(np.abs(new[active] - effective[active]) / effective[active]))
        effective = new
        if change < tol:
            converged = True
            break
    final = solve([replace(d, weight=float(v)) for d, v in zip(doms, effective)], baselines)
    if not final.feasible:
        return final
    by_name = {d.name: d for d in doms}
    errors = {p.name: float(by_name[p.name].downstream.predict(loss=[p.loss])[0]) for p in final.domains if by_name[p.name].downstream is not None}
    objective = float(sum(by_name[n].weight * e for n, e in errors.items()))
    new_domains = tuple(replace(p, weight=by_name[p.name].weight, error=errors.get(p.name, p.error)) for p in final.domains)

    def baseline_error(b: Baseline) -> float:
        total = 0.0
        for d in doms:
            if d.weight == 0:
                continue
            n = b.model_size[d.name] if isinstance(b.model_size, Mapping) else b.model_size
            dd = b.pretrain_tokens[d.name] if isinstance(b.pretrain_tokens, Mapping) else b.pretrain_tokens
            if n is None or dd is None or not (math.isfinite(n) and math.isfinite(dd)):
                return math.nan
            loss = _predict_loss(law, d.name, n, dd, b.spec_tokens.get(d.name, 0.0))
            total += d.weight * float(d.downstream.predict(loss=[loss])[0])
        return total

    new_baselines = tuple(replace(b, objective=baseline_error(b), note=(b.note + "; " if b.note else "") + "objective in weighted error; multiplier on the equivalent weighted loss")
                          for b in final.baselines)
    warnings = list(final.warnings)
    warnings.append(AllocationWarning(
        "error-objective",
        f"minimised sum_k w_k Err_k by reweighting loss problems ({iterations} iterations, "
        + ("converged" if converged else f"NOT converged to {tol:g}") + "): a stationary point of the error objective, not certified; "
        "equivalent loss weights " + ", ".join(f"{d.name}={v:.4g}" for d, v in zip(doms, effective)),
    ))
    if final.baselines:
        warnings.append(AllocationWarning("baseline-multipliers", "baseline compute multipliers are computed on the locally equivalent weighted loss"))
    if not converged:
        warnings.append(AllocationWarning("not-converged", "the downstream reweighting did not settle; the plan may not be stationary"))
    return replace(
        final,
        objective=objective,
        certified=False,
        path=f"{final.path}+reweighted",
        domains=new_domains,
        baselines=new_baselines,
        warnings=tuple(warnings),
        marginal_value=None,
        mode="min-error",
        message=(final.message + "; " if final.message else "") + "objective: weighted downstream error",
    )
