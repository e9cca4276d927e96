r"""``optimize`` and ``sweep``: from a fitted law, a budget and target domains to an :class:`Allocation`.

Path selection (``path="auto"``):

1. every domain's law is a posynomial (``form.monomials``), no effective-token
   repetition -> geometric program in log variables (:mod:`.gp`), certified;
2. every law has a cvxpy expression convex in the tokens -> DCP in the tokens for
   each N plus a 1-D search over log N (:mod:`.dcp`), not certified;
3. otherwise multi-start SLSQP on the law's formula (:mod:`.multistart`), not certified.

Every plan is then re-evaluated with the law's own ``FittedLaw.predict`` and
checked against random feasible perturbations (an independent local search); a
mismatch or an improvement removes the certificate and is reported as a warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy.optimize import brentq

from .._threads import blas_single_threaded
from ..fitting.law import FittedLaw
from .common import Solution, infeasible_solution
from .dcp import TokenModel, dcp_applicable, search_log_model_size
from .gp import GPModel, gp_applicable
from .model import (
    Allocation,
    AllocationError,
    AllocationWarning,
    Baseline,
    ConstraintRecord,
    Constraints,
    Domain,
    DomainPlan,
    FlopModel,
    SixN,
)
from .multistart import solve_multistart
from .problem import SPEC_FLOOR, Problem, Scenario

__all__ = ["optimize", "sweep", "STRATEGIES"]

STRATEGIES = ("split", "no-split", "fixed", "separate")
_OPTIONS = {
    "flops", "inference", "inference_budget", "mode", "fixed_fraction", "path", "uncertainty", "robust",
    "max_draws", "baselines", "marginal", "check", "solver", "seed",
}
BINDING_TOL = 1e-4
MULTIPLIER_RANGE = (1e-6, 1e6)


# ============================================================================ context
@dataclass(frozen=True)
class _Context:
    """What the caller asked for, resolved: a law per domain, options, the problem."""

    laws: tuple[FittedLaw, ...]
    law_domains: tuple[str, ...]
    domains: tuple[Domain, ...]
    general: tuple[FittedLaw, str] | None
    problem: Problem
    strategy: str
    path: str
    solver: str | None
    fixed_fraction: float
    uncertainty: str | None
    max_draws: int | None
    marginal: bool
    check: bool
    seed: int


def _law_domain(law: FittedLaw, name: str, *, where: str) -> str:
    if not isinstance(law, FittedLaw):
        raise AllocationError(f"{where}: expected a FittedLaw (planner.law or planner.fit), got {type(law).__name__}")
    if law.form.kind != "loss" and law.form.target != "loss":
        raise AllocationError(f"{where}: the {law.form.name} law predicts {law.form.target}, not a loss; pass it as Domain(downstream=...)")
    if name in law.domains:
        return name
    if law.has_domain(name):
        return law.domains[0]
    if len(law.domains) == 1 and where.startswith("law["):
        return law.domains[0]
    raise AllocationError(f"{where}: the {law.form.name} law has parameters for domains {', '.join(law.domains)}, not {name!r}")


def _resolve_laws(law: Any, names: Sequence[str]) -> tuple[list[FittedLaw], list[str], tuple[FittedLaw, str] | None]:
    laws: list[FittedLaw] = []
    doms: list[str] = []
    if isinstance(law, Mapping):
        if not law:
            raise AllocationError("law: an empty dict of laws")
        for name in names:
            if name not in law:
                raise AllocationError(f"law: no law for domain {name!r}; laws given for {', '.join(map(str, law))}")
            laws.append(law[name])
            doms.append(_law_domain(law[name], name, where=f"law[{name!r}]"))
        if "general" in law:
            general = (law["general"], _law_domain(law["general"], "general", where="law['general']"))
        else:
            general = None
    elif isinstance(law, FittedLaw):
        for name in names:
            laws.append(law)
            doms.append(_law_domain(law, name, where="law"))
        general = (law, "general" if "general" in law.domains else law.domains[0]) if (law.has_domain("general") or "general" in law.domains) else None
    else:
        raise AllocationError(f"law must be a FittedLaw or a dict domain -> FittedLaw, not {type(law).__name__}")
    return laws, doms, general


def _domain_params_all(laws: Sequence[FittedLaw], doms: Sequence[str], values: Sequence[Mapping[str, float]] | None = None) -> list[dict[str, float]]:
    """Scalar parameters of each (law, domain) pair, expanding each law's slots once (O(K), not O(K^2))."""
    expanded: dict[int, tuple[dict[str, Any], tuple[str, ...]]] = {}
    out = []
    for i, (law, dom) in enumerate(zip(laws, doms)):
        key = id(law) if values is None else i
        if key not in expanded:
            vals = law.params if values is None else values[i]
            expanded[key] = (law.layout.per_domain(vals), law.domains)
        per, ldoms = expanded[key]
        j = ldoms.index(dom) if dom in ldoms else 0
        out.append({name: (float(v[j]) if isinstance(v, np.ndarray) else float(v)) for name, v in per.items()})
    return out


def _build_context(law: Any, budget: float | None, domains: Any, constraints: Any, strategy: str, options: dict[str, Any]) -> _Context:
    unknown = set(options) - _OPTIONS - {f.name for f in fields(Constraints)}
    if unknown:
        raise AllocationError(f"optimize: unknown options {sorted(unknown)}; options: {sorted(_OPTIONS)} and the Constraints fields")
    cons_extra = {k: options.pop(k) for k in list(options) if k in {f.name for f in fields(Constraints)}}
    cons = Constraints.coerce(constraints, **cons_extra)
    if strategy not in STRATEGIES:
        raise AllocationError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    mode = options.get("mode", "min-loss")
    if mode not in ("min-loss", "min-compute"):
        raise AllocationError(f"mode must be 'min-loss' or 'min-compute', not {mode!r}")
    if budget is not None:
        try:
            budget = float(budget)
        except (TypeError, ValueError):
            raise AllocationError(f"budget must be a number of FLOPs, got {budget!r}") from None
        if not math.isfinite(budget) or budget <= 0:
            raise AllocationError(f"budget must be a positive finite number of FLOPs, got {budget!r}")
    elif mode == "min-loss":
        raise AllocationError("a budget (FLOPs) is needed unless mode='min-compute'")
    doms = tuple(Domain.coerce(d) for d in (domains or ()))
    names = [d.name for d in doms]
    if len(set(names)) != len(names):
        raise AllocationError(f"duplicate domain names: {names}")
    pseudo = not doms
    if pseudo:
        if isinstance(law, Mapping):
            key = "general" if "general" in law else next(iter(law))
            gl = law[key]
            laws, ldoms, general = [gl], [_law_domain(gl, key, where=f"law[{key!r}]")], None
        elif isinstance(law, FittedLaw):
            laws, ldoms = [law], ["general" if "general" in law.domains else law.domains[0]]
            _law_domain(law, ldoms[0], where="law")
            general = None
        else:
            raise AllocationError(f"law must be a FittedLaw or a dict domain -> FittedLaw, not {type(law).__name__}")
        names = ["general"]
        doms_for_problem = (Domain("general", target_loss=None),)
        general = (laws[0], ldoms[0])
    else:
        laws, ldoms, general = _resolve_laws(law, names)
        doms_for_problem = doms
    weights = np.array([d.weight for d in doms_for_problem], dtype=float)
    if mode == "min-loss" and not np.any(weights > 0):
        raise AllocationError("every domain has weight 0: nothing to minimise")
    if mode == "min-compute" and not any(d.target_loss is not None for d in doms_for_problem):
        raise AllocationError("mode='min-compute' needs at least one Domain(target_loss=...)")
    forms = tuple(l.form for l in laws)
    params = tuple(_domain_params_all(laws, ldoms))
    can_spec = np.array([f.has_spec and d.name != "general" for f, d in zip(forms, doms_for_problem)], dtype=bool)
    if strategy == "no-split":
        can_spec[:] = False
    rep = cons.repetition
    spec_cap = np.array([math.inf if rep == "effective" else d.token_cap for d in doms_for_problem])
    spec_unique = np.array([math.inf if d.unique_tokens is None else float(d.unique_tokens) for d in doms_for_problem])
    inference_tokens = np.array([d.inference_tokens for d in doms_for_problem], dtype=float)
    targets = np.array([math.nan if d.target_loss is None else float(d.target_loss) for d in doms_for_problem])

    flop_model = options.get("flops") or SixN()
    if not isinstance(flop_model, FlopModel):
        raise AllocationError(f"flops must be a FlopModel (SixN(), AttentionFlops(...)), got {type(flop_model).__name__}")
    inference_budget = options.get("inference_budget")
    inference = options.get("inference")
    if inference is None:
        inference = "separate" if inference_budget is not None else "in-budget"
    if inference not in ("in-budget", "separate", "ignore"):
        raise AllocationError(f"inference must be 'in-budget', 'separate' or 'ignore', not {inference!r}")
    if inference_budget is not None:
        inference_budget = float(inference_budget)
        if not inference_budget > 0:
            raise AllocationError(f"inference_budget must be positive, got {inference_budget!r}")
        if inference == "in-budget":
            raise AllocationError("inference='in-budget' and inference_budget= are exclusive: the budget either includes inference or inference has its own limit")
    fixed_fraction = float(options.get("fixed_fraction", 0.8))
    if not 0.0 < fixed_fraction < 1.0:
        raise AllocationError(f"fixed_fraction must be in (0, 1), got {fixed_fraction!r}")
    path = options.get("path", "auto")
    if path not in ("auto", "gp", "dcp", "multistart"):
        raise AllocationError(f"path must be 'auto', 'gp', 'dcp' or 'multistart', not {path!r}")
    robust = options.get("robust")
    if robust not in (None, "mean", "worst"):
        raise AllocationError(f"robust must be None, 'mean' or 'worst', not {robust!r}")
    uncertainty = options.get("uncertainty")
    if uncertainty not in (None, "draws"):
        raise AllocationError(f"uncertainty must be None or 'draws', not {uncertainty!r}")
    max_draws = options.get("max_draws")
    scenarios: tuple[Scenario, ...] = ()
    if robust is not None:
        scenarios = _scenarios(laws, ldoms, max_draws if max_draws is not None else 100)
        if not scenarios:
            raise AllocationError(f"robust={robust!r} needs bootstrap draws: fit the law with bootstrap=B")
    prob = Problem(
        names=tuple(names), pseudo_general=pseudo, weights=weights, forms=forms, params=params, can_spec=can_spec,
        spec_cap=spec_cap, spec_unique=spec_unique, inference_tokens=inference_tokens, targets=targets, budget=budget,
        flop_model=flop_model, constraints=cons, inference=inference, inference_budget=inference_budget, mode=mode,
        fixed_fraction=fixed_fraction if strategy == "fixed" else None, robust=robust, scenarios=scenarios,
    )
    return _Context(
        laws=tuple(laws), law_domains=tuple(ldoms), domains=doms, general=general, problem=prob, strategy=strategy,
        path=path, solver=options.get("solver"), fixed_fraction=fixed_fraction, uncertainty=uncertainty,
        max_draws=max_draws, marginal=bool(options.get("marginal", True)), check=bool(options.get("check", True)),
        seed=int(options.get("seed", 0)),
    )


def _scenarios(laws: Sequence[FittedLaw], ldoms: Sequence[str], max_draws: int) -> tuple[Scenario, ...]:
    """Per-draw scalar parameters of every domain (draw b of each law; laws without draws stay nominal)."""
    counts = [len(l.draws) for l in laws if l.draws is not None and len(l.draws)]
    if not counts:
        return ()
    B = min(min(counts), max_draws)
    idx = np.unique(np.linspace(0, min(counts) - 1, B).round().astype(int))
    layouts: dict[int, Any] = {}
    out = []
    for b in idx:
        values = []
        for l in laws:
            if l.draws is None or not len(l.draws):
                values.append(dict(l.params))
            else:
                values.append(dict(zip(l.params, (float(v) for v in l.draws[b]))))
        out.append(Scenario(tuple(_domain_params_all(laws, ldoms, values))))
    return tuple(out)


# ============================================================================ engines
def _choose_path(prob: Problem, requested: str) -> tuple[str, str]:
    """(path, why the more exact paths were not taken)."""
    gp_ok, gp_why = gp_applicable(prob)
    dcp_ok, dcp_why = dcp_applicable(prob) if not gp_ok or requested == "dcp" else (True, "")
    if requested == "gp":
        if not gp_ok:
            raise AllocationError(f"path='gp' requested but the problem is not a geometric program: {gp_why}")
        return "gp", ""
    if requested == "dcp":
        if not dcp_ok:
            raise AllocationError(f"path='dcp' requested but {dcp_why}")
        return "dcp+search", gp_why
    if requested == "multistart":
        return "multistart", gp_why
    if gp_ok:
        return "gp", ""
    if dcp_ok:
        return "dcp+search", gp_why
    return "multistart", f"{gp_why}; {dcp_why}"


class _Engine:
    """Solves one strategy's problem at any budget, reusing what was compiled."""

    def __init__(self, prob: Problem, requested_path: str, solver: str | None) -> None:
        self.prob = prob
        self.path, self.why = _choose_path(prob, requested_path)
        self.solver = solver
        self._gp: GPModel | None = None
        self._tokens: TokenModel | None = None

    def _menu(self) -> list[float] | None:
        menu = self.prob.constraints.model_sizes
        if menu is None:
            return None
        lo, hi = self.prob.model_size_bounds()
        return [float(s) for s in menu if lo * (1 - 1e-12) <= s <= hi * (1 + 1e-12)]

    def solve(self, budget: float | None, warm: bool = False) -> Solution:
        """Optimal plan at ``budget``. ``warm``: start the N-search / multi-start near the last
        solution (scaled by sqrt of the budget ratio) - used for multipliers and finite differences."""
        sol = self._solve(budget, warm)
        if sol.ok and menu_free(self.prob):
            self._last = (budget, sol)
        return sol

    def _solve(self, budget: float | None, warm: bool) -> Solution:
        prob = self.prob.with_budget(budget) if budget != self.prob.budget else self.prob
        last = getattr(self, "_last", None) if warm else None
        menu = self._menu()
        if menu is not None and not menu:
            lo, hi = prob.model_size_bounds()
            return infeasible_solution(prob.K, self.path, f"none of model_sizes {list(prob.constraints.model_sizes or [])} lies within the allowed range [{lo:.4g}, {hi:.4g}] parameters (min_model_size/max_model_size/inference_budget)")
        if self.path == "gp":
            if self._gp is None:
                self._gp = GPModel(prob, solver=self.solver)
            if menu is None:
                return self._gp.solve(budget)
            sols = [self._gp.solve(budget, (s, s)) for s in menu]
        elif self.path == "dcp+search":
            if self._tokens is None:
                self._tokens = TokenModel(prob, solver=self.solver)
            tm = self._tokens
            if menu is None:
                lo, hi, hard_lo, hard_hi = prob.search_bounds(budget)
                points = 13
                if last is not None and last[0] is not None and budget is not None:
                    guess = last[1].model_size * math.sqrt(budget / last[0])
                    lo, hi = max(lo, guess / 8), min(hi, guess * 8)
                    hard_lo, hard_hi, points = hard_lo or lo > guess / 8 * 1.0001, hard_hi or hi < guess * 8 * 0.9999, 7
                    if lo > hi:
                        lo, hi, hard_lo, hard_hi = *prob.search_bounds(budget)[:2], False, False
                        points = 13
                sol, _ = search_log_model_size(lambda n: tm.solve_at(n, budget), lo, hi, hard_lo, hard_hi, grid_points=points)
                if sol is None:
                    return infeasible_solution(prob.K, self.path, "no model size gave a feasible plan")
                return sol
            sols = [tm.solve_at(s, budget) for s in menu]
        else:
            if menu is None:
                if last is not None and last[0] is not None and budget is not None:
                    r = budget / last[0]
                    ls = last[1]
                    init = (ls.model_size * math.sqrt(r), ls.pretrain_tokens * math.sqrt(r), ls.spec_tokens * math.sqrt(r))
                    return solve_multistart(prob, budget, initial=init)
                return solve_multistart(prob, budget)
            sols = [solve_multistart(prob, budget, (s, s)) for s in menu]
        ok = [s for s in sols if s.ok]
        if not ok:
            return sols[0]
        best = min(ok, key=lambda s: s.value)
        return replace(best, path=best.path + "+menu")


def menu_free(prob: Problem) -> bool:
    return prob.constraints.model_sizes is None


class _Strategy:
    """A strategy's optimal value as a function of the budget (for baselines and multipliers)."""

    def __init__(self, ctx: _Context, strategy: str) -> None:
        self.ctx = ctx
        self.strategy = strategy
        prob = ctx.problem
        self.engines: list[tuple[int | None, _Engine]] = []
        if strategy == "separate":
            total_w = float(prob.weights.sum()) if prob.mode == "min-loss" else float(len(prob.weights))
            self.shares = (prob.weights / total_w) if prob.mode == "min-loss" else np.full(prob.K, 1.0 / prob.K)
            for k in range(prob.K):
                if prob.mode == "min-loss" and prob.weights[k] <= 0:
                    continue
                if prob.mode == "min-compute" and not np.isfinite(prob.targets[k]):
                    continue
                sub = replace(prob.restrict(k, None), fixed_fraction=None)
                self.engines.append((k, _Engine(sub, ctx.path, ctx.solver)))
        else:
            variant = {"split": replace(prob, fixed_fraction=None), "no-split": replace(prob.no_split(), fixed_fraction=None), "fixed": prob.fixed(ctx.fixed_fraction)}[strategy]
            if strategy == "split" and ctx.strategy == "no-split":
                variant = _with_spec(ctx, variant)
            if strategy == "fixed" and ctx.strategy == "no-split":
                variant = _with_spec(ctx, variant)
            if strategy == "fixed" and prob.mode == "min-compute":
                # a fixed split is not a GP in min-compute form (an equality between D and sum D');
                # find the least budget at which the min-loss fixed problem meets every target instead
                self.min_budget_engine = _Engine(replace(variant, mode="min-loss"), ctx.path, ctx.solver)
            self.engines.append((None, _Engine(variant, ctx.path, ctx.solver)))

    def _least_feasible_budget(self, cap: float | None) -> Solution:
        eng = self.min_budget_engine
        lo, hi = None, 1e18
        while True:
            sol = eng.solve(hi)
            if sol.ok:
                break
            lo = hi
            hi *= 10.0
            if hi > (cap if cap is not None else 1e32):
                return sol
        best = sol
        if lo is None:
            lo = hi
            while lo > 1e10:
                lo /= 10.0
                s2 = eng.solve(lo)
                if not s2.ok:
                    break
                hi, best = lo, s2
        for _ in range(60):
            if hi / lo < 1 + 1e-7:
                break
            mid = math.sqrt(lo * hi)
            s2 = eng.solve(mid)
            if s2.ok:
                hi, best = mid, s2
            else:
                lo = mid
        used = float(eng.prob.budget_used(best.model_size, best.pretrain_tokens, best.spec_tokens))
        return replace(best, value=used)

    @property
    def path(self) -> str:
        return self.engines[0][1].path if self.engines else ""

    def solve(self, budget: float | None, warm: bool = False) -> tuple[float, list[tuple[int | None, Solution]]]:
        sols = []
        total = 0.0
        for k, eng in self.engines:
            b = budget
            if k is not None and budget is not None:
                b = budget * float(self.shares[k])
            if hasattr(self, "min_budget_engine"):
                sol = self._least_feasible_budget(b)
            else:
                sol = eng.solve(b, warm=warm)
            sols.append((k, sol))
            if not sol.ok:
                return math.inf, sols
            total += sol.value
        return total, sols


def _with_spec(ctx: _Context, prob: Problem) -> Problem:
    can = np.array([f.has_spec and n != "general" for f, n in zip(prob.forms, prob.names)], dtype=bool)
    return replace(prob, can_spec=can)


# ============================================================================ checks
def _precheck(prob: Problem, budget: float | None) -> str | None:
    """Analytic infeasibility checks; a message naming the conflicting constraints, or None."""
    c = prob.constraints
    lo, hi = prob.model_size_bounds()
    if prob.inference == "separate" and prob.inference_budget is not None and prob.total_inference_tokens > 0 and c.min_model_size is not None and hi < c.min_model_size:
        return (f"inference_budget {prob.inference_budget:.4g} FLOPs serves {prob.total_inference_tokens:.4g} tokens only with N <= {hi:.4g}, "
                f"below min_model_size {c.min_model_size:.4g}")
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
        min_tokens = (c.min_tokens_per_param or 0.0) * lo
        infer = float(prob.inference_flops(lo)) if prob.inference_in_budget else 0.0
        need = fpt * min_tokens + infer
        if need > budget:
            parts = []
            if c.min_model_size is not None or c.model_sizes is not None:
                parts.append(f"smallest allowed model N = {lo:.4g}")
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


def _project_to_budget(prob: Problem, budget: float | None, N: float, D: float, S: np.ndarray) -> tuple[float, np.ndarray]:
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


def _perturbation_check(prob: Problem, budget: float | None, N: float, D: float, S: np.ndarray, value: float, seed: int, n: int = 240) -> dict[str, Any]:
    """Random feasible perturbations of the plan (re-projected onto the budget): none should be better."""
    if prob.mode != "min-loss" or budget is None:
        return {}
    rng = np.random.default_rng(seed)
    K = prob.K
    spec = prob.spec_index
    scales = np.repeat([1e-4, 1e-3, 1e-2, 1e-1], n // 4)
    lo, hi = prob.model_size_bounds()
    menu = prob.constraints.model_sizes is not None
    dx = np.zeros(len(scales)) if menu else rng.standard_normal(len(scales)) * scales
    Np = np.clip(N * np.exp(dx), lo, hi)
    Dp = D * np.exp(rng.standard_normal(len(scales)) * scales)
    Sp = np.tile(S, (len(scales), 1))
    if len(spec):
        base = np.maximum(S[spec], SPEC_FLOOR)
        Sp[:, spec] = base * np.exp(rng.standard_normal((len(scales), len(spec))) * scales[:, None])
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
        return {"n_perturbations": 0, "improved": False}
    vals = np.asarray(prob.objective(Np[ok], Dp[ok], Sp[ok]), dtype=float)
    j = int(np.argmin(vals))
    best = float(vals[j])
    improved = best < value - 1e-9 * max(1.0, abs(value))
    out: dict[str, Any] = {"n_perturbations": int(ok.sum()), "best_perturbed": best, "improved": bool(improved)}
    if improved:
        idx = np.flatnonzero(ok)[j]
        out["point"] = (float(Np[idx]), float(Dp[idx]), Sp[idx].copy())
    return out


# ============================================================================ results
def _law_groups(ctx: _Context) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for k, law in enumerate(ctx.laws):
        groups.setdefault(id(law), []).append(k)
    return groups


def _predict_kwargs(ctx: _Context, prob: Problem, ks: list[int], N: float, D: float, S: np.ndarray) -> dict[str, Any]:
    d_eff, s_eff = prob._effective(np.array([D]), np.atleast_2d(S) * prob.can_spec)
    law = ctx.laws[ks[0]]
    n = len(ks)
    kw: dict[str, Any] = dict(model_size=np.full(n, N), pretrain_tokens=np.full(n, d_eff[0]), domain=[ctx.law_domains[k] for k in ks])
    if "spec_tokens" in law.form.inputs:
        kw["spec_tokens"] = s_eff[0, ks]
    if "unique_tokens" in law.form.inputs:
        kw["unique_tokens"] = np.full(n, prob.pretrain_unique)
    return kw


def _official_losses(ctx: _Context, prob: Problem, N: float, D: float, S: np.ndarray) -> np.ndarray:
    """Per-domain losses from each law's own ``FittedLaw.predict`` (the independent re-evaluation; one call per law)."""
    out = np.empty(prob.K)
    for ks in _law_groups(ctx).values():
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            out[ks] = ctx.laws[ks[0]].predict(**_predict_kwargs(ctx, prob, ks, N, D, S))
    return out


def _loss_intervals(ctx: _Context, prob: Problem, N: float, D: float, S: np.ndarray) -> list[tuple[tuple[float, float], str] | None]:
    """Per domain: (low, high) and its kind. A calibrated law gives its extrapolation interval
    (honest for a plan beyond the data); otherwise the bootstrap parameter interval."""
    out: list[tuple[tuple[float, float], str] | None] = [None] * prob.K
    for ks in _law_groups(ctx).values():
        law = ctx.laws[ks[0]]
        if getattr(law, "calibration", None):
            kind = "extrapolation"
        elif law.draws is not None and len(law.draws) >= 2:
            kind = "parameter"
        else:
            continue
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            lo, hi = law.predict_interval(**_predict_kwargs(ctx, prob, ks, N, D, S), kind=kind)
        for i, k in enumerate(ks):
            out[k] = ((float(lo[i]), float(hi[i])), kind)
    return out


def _binding_records(prob: Problem, budget: float | None, N: float, D: float, S: np.ndarray, losses: np.ndarray) -> list[ConstraintRecord]:
    recs: list[ConstraintRecord] = []

    def add(name: str, kind: str, value: float, limit: float) -> None:
        if not math.isfinite(limit):
            return
        slack = (limit - value) / abs(limit) if kind == "upper" else (value - limit) / abs(limit) if limit != 0 else value
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


def _extrapolation_warnings(ctx: _Context, N: float, D: float) -> list[AllocationWarning]:
    out = []
    seen: set[int] = set()
    for law in ctx.laws:
        if id(law) in seen:
            continue
        seen.add(id(law))
        data = law.data or {}
        sizes = data.get("model_sizes")
        rng = data.get("pretrain_token_range")
        if not sizes or not rng:
            continue
        try:
            n_max = float(max(sizes))
            d_max = float(max(v for v in rng if v is not None))
        except (TypeError, ValueError):
            continue
        fitted = 6.0 * n_max * d_max
        plan = 6.0 * N * D
        if plan > 10.0 * fitted:
            out.append(AllocationWarning(
                "extrapolation",
                f"the plan's pretraining compute 6 N D = {plan:.3g} FLOPs is {plan / fitted:.0f}x the largest fitted compute "
                f"({fitted:.3g} FLOPs: N = {n_max:.3g}, D = {d_max:.3g}) of the {law.form.name} law; predictions extrapolate",
            ))
    return out


def _path_message(path: str, why: str, status: str) -> str:
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
    return msg


def _infeasible_allocation(ctx: _Context, budget: float | None, message: str, path: str = "", status: str = "infeasible") -> Allocation:
    prob = ctx.problem
    return Allocation(
        budget=math.nan if budget is None else float(budget), model_size=math.nan, pretrain_tokens=math.nan,
        spec_tokens={d.name: math.nan for d in ctx.domains}, objective=math.nan, certified=False, path=path,
        status=status, message=message, domains=(), strategy=ctx.strategy, mode=prob.mode,
        flop_model=_flop_dict(prob.flop_model), constraints=prob.constraints.to_dict(),
    )


def _flop_dict(fm: FlopModel) -> dict[str, Any]:
    return fm.to_dict() if hasattr(fm, "to_dict") else {"model": type(fm).__name__, "terms": [list(t) for t in fm.terms()]}


def _solve_and_assemble(
    ctx: _Context,
    strategies: dict[str, _Strategy],
    budget: float | None,
    *,
    baselines: bool,
    draws: bool = True,
) -> Allocation:
    prob = ctx.problem.with_budget(budget)
    main = strategies[ctx.strategy]
    pre = _precheck(prob if ctx.strategy != "no-split" else prob.no_split(), budget)
    if pre is not None:
        return _infeasible_allocation(ctx, budget, pre, main.path)
    value, sols = main.solve(budget)
    warnings_: list[AllocationWarning] = []
    if ctx.strategy == "separate":
        return _assemble_separate(ctx, strategies, budget, value, sols, baselines)
    sol = sols[0][1]
    eng_prob = main.engines[0][1].prob.with_budget(budget)
    if not sol.ok:
        msg = sol.message or "no feasible plan"
        if sol.status == "infeasible":
            active = _named_constraints(prob)
            msg = f"no plan satisfies all constraints within the budget ({msg}); constraints in play: {', '.join(active) if active else 'budget only'}"
        return _infeasible_allocation(ctx, budget, msg, sol.path, status=sol.status if sol.status in ("infeasible", "failed") else "infeasible")
    N, D, S = sol.model_size, sol.pretrain_tokens, sol.spec_tokens.copy()
    if prob.mode == "min-loss" or budget is not None:
        D, S = _project_to_budget(eng_prob, budget, N, D, S)
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
    losses = _official_losses(ctx, eng_prob, N, D, S)
    if ctx.check:
        if prob.mode == "min-loss":
            if eng_prob.robust and eng_prob.scenarios:
                predicted = value
            else:
                predicted = float(losses @ eng_prob.weights)
            check["objective_predict"] = predicted
            check["objective_solver"] = sol.solver_value if math.isfinite(sol.solver_value) else None
            if math.isfinite(sol.solver_value):
                rel = abs(sol.solver_value - predicted) / max(abs(predicted), 1e-12)
                check["relative_difference"] = rel
                if rel > 1e-5:
                    certified = False
                    warnings_.append(AllocationWarning("check-mismatch", f"the solver's objective {sol.solver_value:.8g} differs from the law's prediction {predicted:.8g} (relative {rel:.2e}); certificate withdrawn"))
            pert = _perturbation_check(eng_prob, budget, N, D, S, value, ctx.seed)
            point = pert.pop("point", None)
            check.update(pert)
            if point is not None:
                certified = False
                warnings_.append(AllocationWarning("check-improved", f"a random feasible perturbation improved the objective from {value:.10g} to {pert['best_perturbed']:.10g}; the perturbed plan is returned, uncertified"))
                N, D, S = point
                value = float(eng_prob.objective(N, D, S))
                losses = _official_losses(ctx, eng_prob, N, D, S)
        else:
            check["targets_met"] = bool(np.all(losses[np.isfinite(eng_prob.targets)] <= eng_prob.targets[np.isfinite(eng_prob.targets)] * (1 + 1e-6)))
            if not check["targets_met"]:
                warnings_.append(AllocationWarning("check-mismatch", "the law's prediction misses a target loss at the returned plan"))
                certified = False
    if status == "optimal_inaccurate":
        certified = False
        warnings_.append(AllocationWarning("solver-inaccurate", "the conic solver reported an inaccurate solution"))
    engine = main.engines[0][1]
    return _finish(ctx, strategies, eng_prob, budget, N, D, S, value, losses, sol, sol.path, engine.why, status, certified, check, warnings_, baselines, draws)


def _named_constraints(prob: Problem) -> list[str]:
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


def _finish(
    ctx: _Context, strategies: dict[str, _Strategy], prob: Problem, budget: float | None, N: float, D: float, S: np.ndarray,
    value: float, losses: np.ndarray, sol: Solution, path: str, why: str, status: str, certified: bool,
    check: dict[str, Any], warnings_: list[AllocationWarning], baselines: bool, draws: bool,
) -> Allocation:
    fpt = float(prob.flops_per_token(N))
    infer = float(prob.inference_flops(N))
    spec_flops = fpt * S
    training = fpt * (D + float(S.sum()))
    flops = {
        "per_token": fpt, "pretrain": fpt * D, "specialization": float(spec_flops.sum()), "inference": infer,
        "training": training, "total": training + infer,
        "by_domain": {prob.names[k]: float(spec_flops[k]) for k in range(prob.K) if not prob.pseudo_general},
    }
    intervals = _loss_intervals(ctx, prob, N, D, S)
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
    binding = _binding_records(prob, budget, N, D, S, losses)
    warnings_ = warnings_ + _extrapolation_warnings(ctx, N, D)
    # marginal value
    marginal = None
    if prob.mode == "min-loss" and budget is not None and ctx.marginal:
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
        base_list = _baselines(ctx, strategies, budget, value, total_budget)
    draw_summary = None
    if draws:
        draw_summary = _draw_summary(ctx, prob, budget, N, D, S, value)
    if draw_summary is None and ctx.uncertainty == "draws":
        warnings_.append(AllocationWarning("no-draws", "uncertainty='draws' needs bootstrap draws in the law (fit with bootstrap=B)"))
    return Allocation(
        budget=total_budget, model_size=float(N), pretrain_tokens=float(D), spec_tokens=spec_tokens, objective=float(value),
        certified=bool(certified), path=path, status=status, message=_path_message(path, why, status), domains=tuple(plans),
        flops=flops, pretrain_fraction=float(fpt * D / training) if training > 0 else math.nan, binding=tuple(binding),
        marginal_value=marginal, baselines=tuple(base_list), warnings=tuple(warnings_), draw_summary=draw_summary,
        strategy=ctx.strategy, mode=prob.mode, general_loss=general_loss, check=check, flop_model=_flop_dict(prob.flop_model),
        constraints=prob.constraints.to_dict(),
    )


def _assemble_separate(ctx: _Context, strategies: dict[str, _Strategy], budget: float | None, value: float, sols: list, baselines: bool) -> Allocation:
    """strategy='separate' as the recommended plan: report the largest model and per-domain details in the message."""
    prob = ctx.problem
    if not math.isfinite(value):
        bad = [prob.names[k] for k, s in sols if not s.ok]
        return _infeasible_allocation(ctx, budget, f"no feasible separate model for {', '.join(bad)}", sols[0][1].path if sols else "")
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
    base_list = _baselines(ctx, strategies, budget, value, float(budget) if budget is not None else total_flops) if baselines else []
    return Allocation(
        budget=float(budget) if budget is not None else total_flops, model_size=float(biggest.model_size), pretrain_tokens=float(biggest.pretrain_tokens),
        spec_tokens=spec_tokens, objective=float(value), certified=all(s.certified for _, s in sols), path=sols[0][1].path, status="optimal",
        message="one separate model per domain (budget shared by weight); model_size/pretrain_tokens are the largest model's", domains=tuple(plans),
        flops={"pretrain": pretrain_flops, "specialization": total_flops - pretrain_flops, "training": total_flops, "total": total_flops},
        pretrain_fraction=pretrain_flops / total_flops if total_flops > 0 else math.nan, baselines=tuple(base_list), strategy="separate", mode=prob.mode,
        flop_model=_flop_dict(prob.flop_model), constraints=prob.constraints.to_dict(),
    )


# ============================================================================ baselines
def _baselines(ctx: _Context, strategies: dict[str, _Strategy], budget: float | None, plan_value: float, plan_compute: float) -> list[Baseline]:
    out = []
    prob = ctx.problem
    for name in STRATEGIES:
        if name == ctx.strategy:
            continue
        strat = strategies.get(name)
        if strat is None:
            strat = strategies[name] = _Strategy(ctx, name)
        val, sols = strat.solve(budget)
        note = ""
        if not math.isfinite(val):
            msgs = [s.message for _, s in sols if not s.ok]
            note = msgs[0] if msgs else "infeasible"
        if prob.mode == "min-compute":
            mult = val / plan_compute if math.isfinite(val) else math.inf
        else:
            mult = _compute_multiplier(lambda b: strat.solve(b, warm=True)[0], plan_value, float(budget)) if budget is not None else math.nan
        if name == "separate":
            ms = {prob.names[k]: s.model_size for k, s in sols}
            pt = {prob.names[k]: s.pretrain_tokens for k, s in sols}
            st = {prob.names[k]: float(s.spec_tokens[0]) for k, s in sols}
        else:
            s = sols[0][1]
            ms, pt = s.model_size, s.pretrain_tokens
            st = {prob.names[k]: float(s.spec_tokens[k]) for k in range(prob.K)}
        out.append(Baseline(name, float(val), float(mult), ms, pt, st, "optimal" if math.isfinite(val) else "infeasible", note))
    return out


def _compute_multiplier(value_at: Callable[[float], float], target: float, budget: float) -> float:
    """m with V(m * budget) = target, by bracketing and Brent in log m (inf when not reached by 1e6 x)."""
    big = 1e30

    def g(log_m: float) -> float:
        v = value_at(budget * math.exp(log_m))
        return (v if math.isfinite(v) else big) - target

    g0 = g(0.0)
    tol = 1e-9 * max(1.0, abs(target))
    if abs(g0) <= tol:
        return 1.0
    lo_lim, hi_lim = math.log(MULTIPLIER_RANGE[0]), math.log(MULTIPLIER_RANGE[1])
    if g0 > 0:
        a, ga = 0.0, g0
        b = math.log(2.0)
        while True:
            gb = g(b)
            if gb <= 0:
                break
            if b >= hi_lim:
                return math.inf
            a, ga = b, gb
            b = min(b * 2 if b > 0 else math.log(2.0), hi_lim)
    else:
        b, gb = 0.0, g0
        a = -math.log(2.0)
        while True:
            ga = g(a)
            if ga >= 0:
                break
            if a <= lo_lim:
                return 0.0
            b, gb = a, ga
            a = max(a * 2, lo_lim)
    if ga == 0:
        return math.exp(a)
    if gb == 0:
        return math.exp(b)
    return math.exp(brentq(g, a, b, xtol=1e-8, rtol=1e-10))


# ============================================================================ draws
def _draw_summary(ctx: _Context, prob: Problem, budget: float | None, N: float, D: float, S: np.ndarray, value: float) -> dict[str, Any] | None:
    has_draws = any(l.draws is not None and len(l.draws) > 1 for l in ctx.laws)
    if not has_draws:
        return None
    out: dict[str, Any] = {}
    if prob.robust and prob.scenarios:
        vals = np.array([float(prob.objective_of_losses(prob.losses(N, D, S, sc.params))) for sc in prob.scenarios])
        out["robust"] = prob.robust
        out["objective_over_draws"] = {"mean": float(vals.mean()), "worst": float(vals.max()), "p05": float(np.percentile(vals, 5)), "p50": float(np.median(vals)), "p95": float(np.percentile(vals, 95)), "n_draws": int(len(vals))}
        out["nominal_objective"] = float(prob.objective_of_losses(prob.losses(N, D, S)))
    if ctx.uncertainty == "draws":
        default = 100 if _choose_path(prob, ctx.path)[0] == "gp" else 20
        scen = _scenarios(ctx.laws, ctx.law_domains, ctx.max_draws if ctx.max_draws is not None else default)
        rows = []
        failed = 0
        for sc in scen:
            p = replace(prob, params=sc.params, robust=None, scenarios=())
            try:
                eng = _Engine(p, ctx.path, ctx.solver)
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


# ============================================================================ public API
@blas_single_threaded
def optimize(
    law: FittedLaw | Mapping[str, FittedLaw],
    budget: float | None = None,
    domains: Sequence[Domain | Mapping[str, Any] | str] = (),
    constraints: Constraints | Mapping[str, Any] | None = None,
    strategy: str = "split",
    **options: Any,
) -> Allocation:
    r"""Recommend N, D and every D'_k for a FLOP budget.

    Minimises sum_k w_k L_k(N, D, D'_k) subject to f(N) (D + sum_k D'_k) [+ 2 N I] <= budget
    (f(N) = 6N by default) and the constraints; ``domains=[]`` plans plain
    compute-optimal pretraining of the general loss.

    Parameters
    ----------
    law: one FittedLaw (per-domain parameters named ``B[code]``), or a dict
        domain -> FittedLaw (``"general"`` for the general loss).
    budget: FLOPs (training, plus inference with ``inference="in-budget"``).
        Optional in ``mode="min-compute"`` (then an upper limit).
    domains: :class:`Domain` objects, dicts with the same keys, or names.
    constraints: :class:`Constraints` or a dict; its fields may also be passed as keywords.
    strategy: "split" (default), "no-split" (D' = 0), "fixed" (``fixed_fraction`` of
        the training compute in pretraining, the rest split optimally across the
        domains), "separate" (one model per domain, budget shared by weight).

    Options
    -------
    flops: FLOPs-per-token model (``SixN()`` default, ``AttentionFlops(...)``).
    inference: "in-budget" (default when any inference tokens), "separate" (with
        ``inference_budget=``, its own limit) or "ignore".
    mode: "min-loss" (default) or "min-compute" (least compute meeting every target_loss).
    fixed_fraction: pretraining share of the ``fixed`` strategy (0.8).
    path: "auto", "gp", "dcp" or "multistart".
    robust: None, "mean" or "worst" (over bootstrap draws). uncertainty: None or "draws".
    max_draws: draws used for robust plans and uncertainty (default 100 for GP, 20 otherwise).
    baselines (True), marginal (True), check (True): what to compute besides the plan.
    objective: "loss" (default: sum_k w_k L_k) or "error" (sum_k w_k Err_k(L_k) with each
        domain's ``downstream`` law; solved by reweighting loss problems to a stationary
        point, uncertified; see ``planner.allocate.error_objective``).
    solver: cvxpy solver name (default Clarabel with fallbacks).

    Returns an :class:`Allocation`; infeasible problems return ``status="infeasible"``
    with a message naming the conflicting constraints. Raises :class:`AllocationError`
    for bad input.
    """
    baselines = bool(options.pop("baselines", True))
    objective = options.pop("objective", "loss")
    if objective == "error":
        from .error_objective import optimize_error

        return optimize_error(optimize, law, budget, domains, constraints, strategy, baselines=baselines, options=options)
    if objective != "loss":
        raise AllocationError(f"objective must be 'loss' or 'error', not {objective!r}")
    ctx = _build_context(law, budget, domains, constraints, strategy, dict(options))
    strategies = {strategy: _Strategy(ctx, strategy)}
    return _solve_and_assemble(ctx, strategies, ctx.problem.budget, baselines=baselines)


@blas_single_threaded
def sweep(
    law: FittedLaw | Mapping[str, FittedLaw],
    budgets: Sequence[float],
    domains: Sequence[Domain | Mapping[str, Any] | str] = (),
    constraints: Constraints | Mapping[str, Any] | None = None,
    strategy: str = "split",
    *,
    baselines: bool = False,
    **options: Any,
) -> list[Allocation]:
    """``optimize`` at every budget, compiling the problem once.

    On the geometric-program path the log budget is a cvxpy Parameter (the problem
    is DPP), so each budget costs one conic solve; the DCP path reuses its compiled
    token problem. Baselines are skipped unless ``baselines=True``.
    """
    budgets = list(budgets)
    if not budgets:
        return []
    if any(b is None for b in budgets):
        raise AllocationError("sweep: every budget must be a number of FLOPs")
    options.setdefault("marginal", True)
    ctx = _build_context(law, budgets[0], domains, constraints, strategy, dict(options))
    strategies = {strategy: _Strategy(ctx, strategy)}
    out = []
    for b in budgets:
        try:
            bf = float(b)
        except (TypeError, ValueError):
            raise AllocationError(f"sweep: budget {b!r} is not a number") from None
        if not math.isfinite(bf) or bf <= 0:
            raise AllocationError(f"sweep: budget must be positive, got {b!r}")
        out.append(_solve_and_assemble(ctx, strategies, bf, baselines=baselines))
    return out
