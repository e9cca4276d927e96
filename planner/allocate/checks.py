"""Checks of a plan: analytic infeasibility before solving, and after solving the independent evidence.

* :func:`precheck`: what can be decided analytically (a target at or below E, a menu outside the bounds,
  a budget below the smallest allowed model) gives a message naming the conflicting constraints;
* :func:`official_losses`: the plan re-evaluated with each law's own ``FittedLaw.predict``;
* :func:`perturbation_check`: random feasible perturbations of the plan (an independent local search);
* :func:`binding_records`: which constraints bind and by how much they do not.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import numpy as np

from .model import AllocationWarning, ConstraintRecord, Constraints
from .problem import MIN_PRETRAIN_TOKENS, N_RANGE, SPEC_FLOOR, Problem

if TYPE_CHECKING:  # pragma: no cover
    from ._context import Context

__all__ = [
    "BINDING_TOL", "precheck", "project_to_budget", "perturbation_check", "perturbation_checks", "official_losses", "loss_intervals",
    "binding_records", "named_constraints", "extrapolation_warnings", "fitted_compute",
]

#: relative slack under which a constraint is reported as binding
BINDING_TOL = 1e-4


def precheck(prob: Problem, budget: float | None) -> str | None:
    """Analytic infeasibility checks; a message naming the conflicting constraints, or None."""
    c = prob.constraints
    lo, hi = prob.model_size_bounds()
    if prob.inference == "separate" and prob.inference_budget is not None and prob.total_inference_tokens > 0 and hi < lo:
        floor = f"min_model_size {c.min_model_size:.4g}" if c.min_model_size is not None else f"the smallest model the planner considers ({N_RANGE[0]:.0e} parameters, an internal limit)"
        return (f"inference_budget {prob.inference_budget:.4g} FLOPs serves {prob.total_inference_tokens:.4g} inference tokens only with N <= {hi:.4g} "
                f"parameters (2 N FLOPs per token), below {floor}: the inference_budget and the inference tokens conflict")
    if c.model_sizes is not None:
        inside = [s for s in c.model_sizes if lo * (1 - 1e-12) <= s <= hi * (1 + 1e-12)]
        if not inside:
            return f"none of model_sizes {list(c.model_sizes)} lies within [{lo:.4g}, {hi:.4g}] parameters (min_model_size/max_model_size/inference_budget)"
        lo = min(inside)
    cap = prob.pretrain_cap
    if c.min_tokens_per_param is not None and math.isfinite(cap) and c.min_tokens_per_param * lo > cap * (1 + 1e-12):
        which = "max_pretrain_tokens" if c.max_pretrain_tokens is not None and c.max_pretrain_tokens <= cap else "pretrain_unique_tokens x pretrain_max_epochs"
        return (f"{which} ({cap:.4g} tokens) is below min_tokens_per_param ({c.min_tokens_per_param:g}) x the smallest allowed model "
                f"({lo:.4g} parameters) = {c.min_tokens_per_param * lo:.4g} tokens")
    # targets versus the loss floor of each law
    for k in np.flatnonzero(np.isfinite(prob.targets)):
        tgt = float(prob.targets[k])
        e = prob.params[k].get("E")
        if e is not None and tgt <= e:
            return f"target_loss {tgt:g} for domain {prob.names[k]!r} is not above the irreducible loss E = {e:.4g} of its law; no budget reaches it"
        floor = prob.loss_floor(k)
        if tgt <= floor:
            limits = []
            if c.max_model_size is not None or (prob.inference_budget is not None and prob.inference == "separate"):
                limits.append(f"model size <= {hi:.4g}")
            if math.isfinite(cap):
                limits.append(f"pretraining tokens <= {cap:.4g} (max_pretrain_tokens / pretrain_unique_tokens)")
            if prob.can_spec[k] and math.isfinite(prob.spec_cap[k]):
                limits.append(f"token cap of {prob.names[k]!r} = {prob.spec_cap[k]:.4g} (unique_tokens x max_epochs)")
            if c.max_tokens_per_param is not None:
                limits.append(f"max_tokens_per_param {c.max_tokens_per_param:g}")
            return (f"target_loss {tgt:g} for domain {prob.names[k]!r} is below {floor:.5g}, the lowest loss its law reaches under "
                    f"{'; '.join(limits) if limits else 'any budget'}")
    if budget is not None:
        fpt = float(prob.flops_per_token(lo))
        min_tokens = max((c.min_tokens_per_param or 0.0) * lo, MIN_PRETRAIN_TOKENS)
        infer = float(prob.inference_flops(lo)) if prob.inference_in_budget else 0.0
        need = fpt * min_tokens + infer
        if need > budget:
            parts = []
            if c.min_model_size is not None or c.model_sizes is not None:
                parts.append(f"smallest allowed model N = {lo:.4g}")
            else:
                parts.append(f"the smallest model the planner considers (N = {lo:.4g} parameters, an internal limit) trained on at least {min_tokens:.4g} token(s)")
            if c.min_tokens_per_param is not None:
                parts.append(f"min_tokens_per_param {c.min_tokens_per_param:g}")
            if infer:
                parts.append(f"inference of {prob.total_inference_tokens:.4g} tokens in the budget")
            return f"the budget {budget:.4g} FLOPs is below the {need:.4g} FLOPs needed by " + ", ".join(parts)
    if prob.mode == "min-loss":
        bad = prob.infinite_without_spec()
        if bad:
            return f"the law predicts an infinite loss for {', '.join(bad)} without specialization (specialization term C/D'^gamma with D0 = 0)"
    return None


def project_to_budget(prob: Problem, budget: float | None, N: float, D: float, S: np.ndarray) -> tuple[float, np.ndarray]:
    """Scale tokens down so the budget holds exactly (removes solver tolerance overshoot)."""
    if budget is None:
        return D, S
    fpt = float(prob.flops_per_token(N))
    infer = float(prob.inference_flops(N)) if prob.inference_in_budget else 0.0
    phi = prob.fixed_fraction if (prob.fixed_fraction is not None and len(prob.spec_index)) else None
    if phi is None:
        train = fpt * (D + float(S.sum()))
        allowed = budget - infer
        if train > allowed and train > 0:
            f = allowed / train * (1 - 1e-13)
            D, S = D * f, S * f
    else:
        if fpt * D > phi * (budget - infer):
            D = phi * (budget - infer) / fpt * (1 - 1e-13)
        if fpt * S.sum() > (1 - phi) * (budget - infer):
            S = S * ((1 - phi) * (budget - infer) / (fpt * S.sum())) * (1 - 1e-13)
    return D, S


_STEPS: dict[tuple[int, int, int, bool], tuple[np.ndarray, ...]] = {}


def _perturbation_steps(seed: int, n: int, n_spec: int, menu: bool) -> tuple[np.ndarray, ...]:
    """(scales, log steps of N, of D, of each D') of the perturbation check: the draws of a generator
    seeded with ``seed``, the same for every plan with the same sizes (cached: a sweep re-checks at
    every budget; read-only arrays)."""
    key = (int(seed), int(n), int(n_spec), bool(menu))
    got = _STEPS.get(key)
    if got is None:
        rng = np.random.default_rng(seed)
        scales = np.repeat([1e-4, 1e-3, 1e-2, 1e-1], n // 4)
        dx = np.zeros(len(scales)) if menu else rng.standard_normal(len(scales)) * scales
        dd = rng.standard_normal(len(scales)) * scales
        ds = rng.standard_normal((len(scales), n_spec)) * scales[:, None] if n_spec else np.zeros((len(scales), 0))
        got = (scales, dx, dd, ds)
        for a in got:
            a.setflags(write=False)
        if len(_STEPS) > 64:
            _STEPS.clear()
        _STEPS[key] = got
    return got


def perturbation_points(prob: Problem, budget: float, N: float, D: float, S: np.ndarray, seed: int, n: int = 240) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The feasible random perturbations of a plan (re-projected onto the budget) as arrays (N, D, S),
    or None when none is feasible (see :func:`perturbation_check`)."""
    K = prob.K
    spec = prob.spec_index
    # the cost is n x K law evaluations: keep it near 12,000 for many domains (at least 40 points)
    n = n if K <= 50 else max(40, 4 * (12_000 // K // 4))
    lo, hi = prob.model_size_bounds()
    menu = prob.constraints.model_sizes is not None
    scales, dx, dd, ds = _perturbation_steps(seed, n, len(spec), menu)
    Np = np.clip(N * np.exp(dx), lo, hi)
    Dp = D * np.exp(dd)
    Sp = np.broadcast_to(S, (len(scales), len(S))).copy()
    if len(spec):
        base = np.maximum(S[spec], SPEC_FLOOR)
        Sp[:, spec] = base * np.exp(ds)
    fpt = prob.flops_per_token(Np)
    infer = prob.inference_flops(Np) if prob.inference_in_budget else 0.0
    phi = prob.fixed_fraction if (prob.fixed_fraction is not None and len(spec)) else None
    allowed = budget - infer
    if phi is None:
        f = allowed / (fpt * (Dp + Sp.sum(axis=1)))
        Dp, Sp = Dp * f, Sp * f[:, None]
    else:
        Dp = phi * allowed / fpt
        tot = Sp.sum(axis=1)
        Sp = Sp * np.where(tot > 0, (1 - phi) * allowed / (fpt * np.where(tot > 0, tot, 1.0)), 1.0)[:, None]
    ok = allowed > 0
    cap = prob.pretrain_cap
    ok &= Dp <= cap
    ok &= np.all(Sp <= np.where(np.isfinite(prob.spec_cap), prob.spec_cap, np.inf)[None, :], axis=1)
    c = prob.constraints
    if c.min_tokens_per_param is not None:
        ok &= Dp >= c.min_tokens_per_param * Np
    if c.max_tokens_per_param is not None:
        ok &= Dp <= c.max_tokens_per_param * Np
    tgt = np.flatnonzero(np.isfinite(prob.targets))
    if len(tgt):
        L = prob.losses(Np, Dp, Sp)
        ok &= np.all(L[:, tgt] <= prob.targets[tgt][None, :], axis=1)
    if not np.any(ok):
        return None
    return Np[ok], Dp[ok], Sp[ok]


def _perturbation_result(points: tuple[np.ndarray, np.ndarray, np.ndarray] | None, vals: np.ndarray | None, value: float) -> dict[str, Any]:
    if points is None or vals is None:
        return {"n_perturbations": 0, "improved": False}
    j = int(np.argmin(vals))
    best = float(vals[j])
    improved = best < value - 1e-9 * abs(value)  # relative: a common scale of the weights changes nothing
    out: dict[str, Any] = {"n_perturbations": int(len(vals)), "best_perturbed": best, "improved": bool(improved)}
    if improved:
        out["point"] = (float(points[0][j]), float(points[1][j]), points[2][j].copy())
    return out


def perturbation_check(prob: Problem, budget: float | None, N: float, D: float, S: np.ndarray, value: float, seed: int, n: int = 240) -> dict[str, Any]:
    """Random feasible perturbations of the plan (re-projected onto the budget): none should be better."""
    if prob.mode != "min-loss" or budget is None:
        return {}
    pts = perturbation_points(prob, budget, N, D, S, seed, n)
    vals = None if pts is None else np.asarray(prob.objective(*pts), dtype=float)
    return _perturbation_result(pts, vals, value)


def perturbation_checks(prob: Problem, plans: list[tuple[float, float, float, np.ndarray, float]], seed: int) -> list[dict[str, Any]]:
    """:func:`perturbation_check` of several plans of one problem at their own budgets (a sweep), the
    objective evaluated once for all of them: ``plans`` are (budget, N, D, S, value)."""
    pts = [perturbation_points(prob, b, N, D, S, seed) for b, N, D, S, _ in plans]  # the budget is an argument
    have = [p for p in pts if p is not None]
    vals: list[np.ndarray | None] = [None] * len(pts)
    if have:
        allv = np.asarray(prob.objective(np.concatenate([p[0] for p in have]), np.concatenate([p[1] for p in have]),
                                         np.concatenate([p[2] for p in have])), dtype=float)
        start = 0
        for i, p in enumerate(pts):
            if p is not None:
                vals[i] = allv[start:start + len(p[0])]
                start += len(p[0])
    return [_perturbation_result(p, v, plan[4]) for p, v, plan in zip(pts, vals, plans)]


def law_groups(ctx: "Context") -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for k, law in enumerate(ctx.laws):
        groups.setdefault(id(law), []).append(k)
    return groups


def predict_kwargs(ctx: "Context", prob: Problem, ks: list[int], N: float, D: float, S: np.ndarray) -> dict[str, Any]:
    d_eff, s_eff = prob._effective(np.array([D]), np.atleast_2d(S) * prob.can_spec)
    law = ctx.laws[ks[0]]
    n = len(ks)
    kw: dict[str, Any] = dict(model_size=np.full(n, N), pretrain_tokens=np.full(n, d_eff[0]), domain=[ctx.law_domains[k] for k in ks])
    if "spec_tokens" in law.form.inputs:
        kw["spec_tokens"] = s_eff[0, ks]
    if "unique_tokens" in law.form.inputs:
        kw["unique_tokens"] = np.full(n, prob.pretrain_unique)
    return kw


def official_losses(ctx: "Context", prob: Problem, N: float, D: float, S: np.ndarray) -> np.ndarray:
    """Per-domain losses from each law's own ``FittedLaw.predict`` (the independent re-evaluation; one call per law)."""
    out = np.empty(prob.K)
    for ks in law_groups(ctx).values():
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            out[ks] = ctx.laws[ks[0]].predict(**predict_kwargs(ctx, prob, ks, N, D, S))
    return out


def loss_intervals(ctx: "Context", prob: Problem, N: float, D: float, S: np.ndarray) -> list[tuple[tuple[float, float], str] | None]:
    """Per domain: (low, high) and its kind. A calibrated law gives its extrapolation interval
    (honest for a plan beyond the data); otherwise the bootstrap parameter interval."""
    out: list[tuple[tuple[float, float], str] | None] = [None] * prob.K
    for ks in law_groups(ctx).values():
        law = ctx.laws[ks[0]]
        if getattr(law, "calibration", None):
            kind = "extrapolation"
        elif law.draws is not None and len(law.draws) >= 2:
            kind = "parameter"
        else:
            continue
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            lo, hi = law.predict_interval(**predict_kwargs(ctx, prob, ks, N, D, S), kind=kind)
        for i, k in enumerate(ks):
            out[k] = ((float(lo[i]), float(hi[i])), kind)
    return out


def binding_records(prob: Problem, budget: float | None, N: float, D: float, S: np.ndarray, losses: np.ndarray) -> list[ConstraintRecord]:
    recs: list[ConstraintRecord] = []

    def add(name: str, kind: str, value: float, limit: float) -> None:
        if not math.isfinite(limit):
            return
        slack = (limit - value) / abs(limit) if kind == "upper" else (value - limit) / abs(limit) if limit != 0 else value
        if name.startswith("internal limit") and slack > BINDING_TOL:
            return  # listed only when reached
        recs.append(ConstraintRecord(name, kind, float(value), float(limit), bool(slack <= BINDING_TOL), float(slack)))

    c = prob.constraints
    fpt = float(prob.flops_per_token(N))
    infer = float(prob.inference_flops(N))
    phi = prob.fixed_fraction if (prob.fixed_fraction is not None and len(prob.spec_index)) else None
    if budget is not None:
        if phi is None:
            add("budget", "upper", float(prob.budget_used(N, D, S)), budget)
        else:
            inb = infer if prob.inference_in_budget else 0.0
            add("budget (pretraining share)", "upper", fpt * D + phi * inb, phi * budget)
            add("budget (specialization share)", "upper", fpt * float(S.sum()) + (1 - phi) * inb, (1 - phi) * budget)
    if prob.inference == "separate" and prob.inference_budget is not None:
        add("inference_budget", "upper", infer, prob.inference_budget)
    if c.model_sizes is not None:
        recs.append(ConstraintRecord("model_sizes", "menu", N, N, True, 0.0))
    if c.min_model_size is not None:
        add("min_model_size", "lower", N, c.min_model_size)
    if c.max_model_size is not None:
        add("max_model_size", "upper", N, c.max_model_size)
    if math.isfinite(prob.pretrain_cap):
        add("max_pretrain_tokens" if c.max_pretrain_tokens is not None and c.max_pretrain_tokens <= prob.pretrain_cap else "pretrain_unique_tokens x epochs", "upper", D, prob.pretrain_cap)
    if c.min_tokens_per_param is not None:
        add("min_tokens_per_param", "lower", D / N, c.min_tokens_per_param)
    if c.max_tokens_per_param is not None:
        add("max_tokens_per_param", "upper", D / N, c.max_tokens_per_param)
    # the solver's internal limits (no user bound there): touching one means the plan is not an optimum
    lo_n, hi_n = prob.model_size_bounds()
    if c.min_model_size is None and c.model_sizes is None and lo_n <= N_RANGE[0] * (1 + 1e-9):
        add(f"internal limit: model_size >= {N_RANGE[0]:.0e}", "lower", N, N_RANGE[0])
    if c.max_model_size is None and c.model_sizes is None and hi_n >= N_RANGE[1] * (1 - 1e-9):
        add(f"internal limit: model_size <= {N_RANGE[1]:.0e}", "upper", N, N_RANGE[1])
    if c.min_tokens_per_param is None:
        add("internal limit: pretrain_tokens >= 1", "lower", D, MIN_PRETRAIN_TOKENS)
    for k in range(prob.K):
        if prob.pseudo_general:
            break
        name = prob.names[k]
        if prob.can_spec[k]:
            if math.isfinite(prob.spec_cap[k]):
                add(f"token_cap[{name}]", "upper", S[k], prob.spec_cap[k])
            recs.append(ConstraintRecord(f"spec_tokens[{name}] >= 0", "lower", float(S[k]), 0.0, bool(S[k] <= 0.0), float(S[k])))
        if np.isfinite(prob.targets[k]):
            add(f"target_loss[{name}]", "upper", float(losses[k]), float(prob.targets[k]))
    return recs


def named_constraints(prob: Problem) -> list[str]:
    c = prob.constraints
    names = ["budget"] if prob.budget is not None else []
    for f in fields(Constraints):
        v = getattr(c, f.name)
        if f.name in ("repetition", "repetition_decay", "inference_tokens"):
            continue
        if v is not None:
            names.append(f.name)
    for k in np.flatnonzero(np.isfinite(prob.targets)):
        names.append(f"target_loss[{prob.names[k]}]")
    for k in np.flatnonzero(np.isfinite(prob.spec_cap) & prob.can_spec):
        names.append(f"token_cap[{prob.names[k]}]")
    if prob.inference_budget is not None:
        names.append("inference_budget")
    if prob.inference_in_budget:
        names.append("inference in budget")
    return names


def fitted_compute(law: Any) -> float:
    """The extrapolation reference of a law: the largest training compute 6 N (D + D') among the runs
    it was fitted to (FLOPs; nan when unknown). One definition for the optimizer's extrapolation
    warning and the decision package's multiplier flags and notes.

    From the calibration's reference compute when the law was calibrated (the same maximum over the
    fitted rows), else from the fitted rows in ``law.points`` (held-out rows excluded), else from the
    data summary (largest size x (largest D + largest D'): an upper bound when the maxima come from
    different runs)."""
    cal = getattr(law, "calibration", None) or {}
    if cal.get("reference_compute"):
        return float(cal["reference_compute"])
    pts = getattr(law, "points", None)
    if pts is not None and len(pts) and "model_size" in pts:
        rows = pts[~pts["held_out"].astype(bool)] if "held_out" in pts else pts
        if len(rows):
            spec = rows["spec_tokens"].fillna(0.0) if "spec_tokens" in rows else 0.0
            return float(np.nanmax(6.0 * rows["model_size"] * (rows["pretrain_tokens"] + spec)))
    data = getattr(law, "data", None) or {}
    try:
        n = max(float(v) for v in data["model_sizes"])
        d = max(float(v) for v in data["pretrain_token_range"] if v is not None)
        s = max([float(v) for v in (data.get("spec_token_range") or []) if v is not None] or [0.0])
        return 6.0 * n * (d + s)
    except (KeyError, TypeError, ValueError):
        return math.nan


def extrapolation_warnings(ctx: "Context", N: float, D: float, S: np.ndarray | None = None) -> list[AllocationWarning]:
    """A warning per law whose extrapolation reference (:func:`fitted_compute`) the plan exceeds more
    than 10x; the plan's compute is that of its largest branch, 6 N (D + max_k D'_k), the quantity a
    run in the table measures."""
    out = []
    seen: set[int] = set()
    s_max = float(np.max(S)) if S is not None and np.size(S) else 0.0
    plan = 6.0 * N * (D + s_max)
    for law in ctx.laws:
        if id(law) in seen:
            continue
        seen.add(id(law))
        fitted = fitted_compute(law)
        if not (math.isfinite(fitted) and fitted > 0):
            continue
        if plan > 10.0 * fitted:
            out.append(AllocationWarning(
                "extrapolation",
                f"the plan's training compute 6 N (D + D') = {plan:.3g} FLOPs (largest branch) is {plan / fitted:.0f}x the largest "
                f"fitted compute 6 N (D + D') = {fitted:.3g} FLOPs of the {law.form.name} law's runs; predictions extrapolate",
            ))
    return out
