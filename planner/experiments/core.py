r"""``planner.design``: choose the small runs to train for the planning decision.

Inputs: the target (domains with weights and token caps, target budget C, constraints on N), an
experiment budget in FLOPs, optionally the runs the team already has (or a law), candidate sizes for
the ladder (a menu or a range), the noise of a run's log loss (estimated from existing runs'
residuals, else 1 %).

Method:

1. **Prior** (:mod:`.prior`): published (Epoch's fit for pretraining, wide priors over the D' forms)
   or, with runs, each form's Laplace posterior weighted by its likelihood.
2. **Criterion** (:mod:`.criterion`): for ``n_truths`` truths of the prior, the linearized expected
   regret 1/2 tr(Q Sigma(ladder)) as a share of the target budget, mixed with the regret of planning
   with a rival form by the probability that the ladder's data select it (the forms' separation at
   the ladder's points, T-optimal design); the rivals' pseudo-truths are fitted on the default and
   uniform ladders' points (and the existing runs).
3. **Search**: coordinate descent over :class:`.ladder.LadderSpec` (number of sizes, spacing, tokens
   per parameter, one run far along, which sizes branch, branch
   points, branch horizon, share of the budget spent) from three starts, then backward greedy pruning
   of runs (:func:`prune`), minimising the expected total cost in units of the target budget,

       E[waste] + spend x experiment_budget / C,

   so a ladder is only as large as the information it buys is worth: a run whose information the
   existing runs (the prior is their posterior) or the other runs already give is pruned, and with
   good existing runs the design buys fewer runs and spends less. Every ladder is scaled to its spend
   of the budget, never above it.
   **Selection by simulation** (:func:`select_by_simulation`): the search's ladder, the next best it
   scored (:func:`shortlist`) and :data:`HABIT_VARIANTS` are simulated with the default and uniform
   ladders on ``select_simulations`` truths of the prior (common random numbers); the default stays
   unless another ladder's paired cost difference is below zero by a standard error, so under its
   prior the design is never worse than the default (the linearized criterion alone was, in simulation).
4. **Baselines at equal compute**: Choshen et al.'s default ladder and a uniform grid
   (:mod:`.ladder`), scored by the same criterion; a curve of the criterion against the experiment
   budget (0.1 % .. 10 % of C).
5. **Verification** (:mod:`.simulate`): the chosen ladder and both baselines simulated on
   ``n_simulations`` fresh truths (fit, select the form as ``auto`` does, plan, regret under the truth).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..allocate.model import Constraints, Domain, FlopModel, SixN
from ..constants import package_version
from ..fitting.law import FittedLaw
from ._model import DesignError, LawVec, Points
from ._plan import PlanProblem
from .criterion import WASTE_CAP, TruthSensitivity, linearized_regret, sensitivities
from .ladder import Ladder, LadderSpec, _guard, default_ladder, designed_ladder, uniform_grid
from .prior import SPLIT_FORMS, FormPrior, Prior, gaussian_sampler, prior_from_runs, published_prior
from .shapes import Shape, shape
from .simulate import SimulationSummary, simulate_ladders

__all__ = ["design", "Design", "LadderScore", "DESIGN_SCHEMA", "SEARCH_SPACE", "CURVE_FRACTIONS", "HABIT_VARIANTS", "runs_to_points",
           "shortlist", "select_by_simulation"]

DESIGN_SCHEMA = "planner.design/1"
#: ladder sizes searched without a ``sizes`` option: from 10M parameters (smaller models deviate from the
#: laws fitted at scale; Gadre et al.'s and Choshen et al.'s ladders start at 11M-70M) up
DEFAULT_SIZE_RANGE = (1e7, 1e13)
CURVE_FRACTIONS = (0.001, 0.003, 0.01, 0.03, 0.1)
SEARCH_SPACE: dict[str, tuple[Any, ...]] = {
    "n_sizes": (3, 4, 5, 6),
    "size_step": (2.0, 3.0, 4.0),
    "tokens_per_param": (10.0, 20.0, 40.0, 80.0),
    "branch_top": (0, 1, 2, 3),
    "branch_points": ((1.0,), (0.5, 1.0), (0.25, 1.0), (0.25, 0.5, 1.0)),
    "branch_ratio": (0.1, 0.3, 1.0, 3.0, 10.0),
    "long_factor": (1.0, 2.0, 4.0),
}
#: the default ladder's shape with longer branches, added to the short list of the simulation step (the
#: linearized criterion undervalues long branches for telling the D' forms apart, see docs/design.md)
HABIT_VARIANTS = (
    LadderSpec(5, 2.5, 20.0, 5, (0.25, 0.5, 1.0), 1.0),
    LadderSpec(5, 2.5, 10.0, 5, (0.25, 1.0), 3.0),
)
_STARTS = (
    LadderSpec(5, 3.0, 20.0, 5, (0.25, 0.5, 1.0), 0.3),
    LadderSpec(4, 3.0, 40.0, 2, (0.5, 1.0), 0.3),
    LadderSpec(3, 4.0, 80.0, 3, (0.25, 1.0), 1.0, long_factor=2.0),
)


@dataclass(frozen=True)
class LadderScore:
    """One ladder and its expected regret: linearized (mean, 90 % interval over truths), simulated when run."""

    name: str
    ladder: Ladder
    flops: float
    n_new_runs: int
    linearized: float
    linearized_interval: tuple[float, float]
    simulated: float | None = None
    simulated_interval: tuple[float, float] | None = None
    simulated_regret: float | None = None

    def to_dict(self, flop_model: FlopModel | None = None) -> dict[str, Any]:
        return {"name": self.name, "description": self.ladder.description, "schedule": self.ladder.schedule, "flops": self.flops,
                "n_new_runs": self.n_new_runs, "expected_waste_linearized": self.linearized,
                "expected_waste_linearized_interval": list(self.linearized_interval),
                "expected_waste_simulated": self.simulated,
                "expected_waste_simulated_interval": None if self.simulated_interval is None else list(self.simulated_interval),
                "expected_regret_simulated_nats": self.simulated_regret}


@dataclass(frozen=True)
class Design:
    r"""The runs to train, what they cost, and how much regret they are expected to leave.

    ``ladder``: the designed runs (:class:`.ladder.Ladder`); ``spec``: its search parameters;
    ``comparison``: designed, default and uniform ladders at equal compute (:class:`LadderScore`,
    expected regret as a share of the target budget: *waste*); ``curve``: the criterion against the
    experiment budget; ``simulation``: the verification (or None); ``shapes``: model size -> shape;
    ``selection``: the short list's simulated scores (:func:`select_by_simulation`; empty when not run).
    """

    status: str
    message: str
    target_budget: float
    experiment_budget: float
    domains: tuple[str, ...]
    weights: tuple[float, ...]
    noise: float
    prior: str
    schedule: str
    spec: LadderSpec | None
    ladder: Ladder | None
    comparison: tuple[LadderScore, ...] = ()
    curve: tuple[dict[str, Any], ...] = ()
    simulation: SimulationSummary | None = None
    shapes: Mapping[float, Shape] = field(default_factory=dict)
    existing_measurements: int = 0
    flop_model: FlopModel = field(default_factory=SixN)
    options: Mapping[str, Any] = field(default_factory=dict)
    selection: tuple[dict[str, Any], ...] = ()
    #: the ladders of the selection step, in the order of ``selection`` (not serialised: ``runs.csv`` holds the chosen one)
    candidates: tuple[Ladder, ...] = field(default=(), repr=False, compare=False)

    @property
    def flops(self) -> float:
        return 0.0 if self.ladder is None else self.ladder.flops(self.flop_model)

    def score(self, name: str) -> LadderScore:
        for s in self.comparison:
            if s.name == name:
                return s
        raise KeyError(f"no ladder {name!r}; ladders: {', '.join(s.name for s in self.comparison)}")

    def runs_frame(self) -> pd.DataFrame:
        """One row per training segment (the ``runs.csv`` contract), with each run's shape."""
        if self.ladder is None:
            return pd.DataFrame(columns=["run", "model_size", "pretrain_tokens", "spec_domain", "spec_tokens", "branch_from_tokens", "flops"])
        df = self.ladder.segments(self.flop_model)
        for col in ("n_layers", "d_model", "n_heads", "d_ff"):
            df[col] = [getattr(self.shapes[float(n)], col) if float(n) in self.shapes else None for n in df["model_size"]]
        return df

    def to_dict(self) -> dict[str, Any]:
        def clean(x: Any) -> Any:
            if isinstance(x, float) and not math.isfinite(x):
                return None
            if isinstance(x, dict):
                return {str(k): clean(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return [clean(v) for v in x]
            if isinstance(x, (np.floating, np.integer)):
                return clean(x.item())
            return x

        return clean({
            "schema": DESIGN_SCHEMA, "version": package_version(), "status": self.status, "message": self.message,
            "target_budget": self.target_budget, "experiment_budget": self.experiment_budget,
            "experiment_flops": self.flops, "domains": list(self.domains), "weights": list(self.weights), "noise": self.noise,
            "prior": self.prior, "schedule": self.schedule, "existing_measurements": self.existing_measurements,
            "spec": None if self.spec is None else {**self.spec.__dict__, "branch_points": list(self.spec.branch_points), "label": self.spec.label()},
            "ladder": None if self.ladder is None else self.ladder.to_dict(self.flop_model),
            "comparison": [s.to_dict() for s in self.comparison], "curve": list(self.curve),
            "simulation": None if self.simulation is None else self.simulation.to_dict(),
            "shapes": {f"{n:.6g}": s.to_dict() for n, s in self.shapes.items()},
            "flop_model": self.flop_model.to_dict() if hasattr(self.flop_model, "to_dict") else {"model": type(self.flop_model).__name__},
            "options": dict(self.options), "selection": list(self.selection),
        })

    def summary(self) -> str:
        if self.ladder is None:
            return f"status: {self.status}: {self.message}"
        lines = [f"experiment budget {self.experiment_budget:.3g} FLOPs ({100 * self.experiment_budget / self.target_budget:.2g} % of the target "
                 f"{self.target_budget:.3g}); designed ladder {self.flops:.3g} FLOPs, {self.ladder.n_new_runs} new runs",
                 f"  {self.ladder.description}"]
        if self.selection:
            lines.append(f"  selection by simulation ({self.options.get('select_simulations')} truths of the prior; cost = capped waste + spend, "
                         "shares of the target budget; the default stays unless beaten by a standard error of the paired difference):")
            for r in self.selection:
                lines.append(f"    {r['ladder']:<12} {r['n_new_runs']:>3} runs  waste {100 * r['expected_waste']:6.3g} % + spend "
                             f"{100 * r['flops'] / self.target_budget:.3g} % = {100 * r['cost']:.3g} %; minus the default's "
                             f"{100 * r['vs_default']:+.3g} ± {100 * r['vs_default_se']:.2g} %{'  <- chosen' if r.get('chosen') else ''}")
        for s in self.comparison:
            sim = "" if s.simulated is None else f"; simulated {100 * s.simulated:.3g} % [{100 * s.simulated_interval[0]:.3g}, {100 * s.simulated_interval[1]:.3g}]"
            lines.append(f"  {s.name:<9} {s.n_new_runs:>3} runs {s.flops:.3g} FLOPs: expected waste (linearized) {100 * s.linearized:.3g} % of the target budget{sim}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------- helpers
def runs_to_points(runs: Any, domains: Sequence[str]) -> tuple[Points, np.ndarray]:
    """(points, log losses) of a run table's rows measured on ``domains`` (cross-domain rows left out)."""
    from ..runs import load_runs

    df = runs if isinstance(runs, pd.DataFrame) and "cross_domain" in runs else load_runs(runs)
    keep = df["domain"].isin(list(domains)).to_numpy().copy()
    if "cross_domain" in df:
        keep = keep & ~df["cross_domain"].to_numpy(dtype=bool)  # not in place: pandas may hand out a read-only array
    df = df[keep]
    if df.empty:
        raise DesignError(f"none of the existing runs is measured on the design's domains ({', '.join(domains)})")
    dom = np.array([list(domains).index(d) for d in df["domain"]], dtype=int)
    pts = Points(df["model_size"].to_numpy(float), df["pretrain_tokens"].to_numpy(float), df["spec_tokens"].fillna(0.0).to_numpy(float), dom)
    return pts, np.log(df["loss"].to_numpy(float))


def _prior_from_law(law: FittedLaw, domains: Sequence[str], noise: float, seed: int) -> Prior:
    vec, theta = LawVec.of_law(law, domains)
    base = published_prior(domains, (law.form.name,), seed=seed) if law.form.name in SPLIT_FORMS + ("chinchilla",) else None
    if law.draws is not None and len(law.draws) >= vec.p + 2:
        draws = []
        for row in np.asarray(law.draws, dtype=float):
            if np.all(np.isfinite(row)) and np.all(row > 0):
                draws.append(LawVec.of_law(law.with_params(**dict(zip(law.params, row))), domains)[1])
        draws = np.asarray(draws)
        cov = np.cov(draws, rowvar=False) + 1e-6 * np.eye(vec.p)
        src = f"bootstrap draws of the given {law.form.name} law"
    elif base is not None:
        cov = base.components[0].cov
        src = f"the given {law.form.name} law with the published prior's spread"
    else:
        raise DesignError(f"a {law.form.name} law without bootstrap draws: fit it with bootstrap=... to design from it")
    return Prior((FormPrior(vec, 1.0, theta, cov, gaussian_sampler(theta, cov)),), src, noise)


def _baseline(builder: Any, budget: float, domains: Sequence[str], kw: Mapping[str, Any]) -> Ladder | None:
    """A baseline ladder at the budget; when it cannot fit above the smallest size, smaller sizes (down to 1e6), said in its description."""
    lad = builder(budget, domains, **kw)
    floor = float(kw["min_size"])
    while lad is None and floor > 1e6:
        floor = max(floor / 3.0, 1e6)
        lad = builder(budget, domains, **{**kw, "min_size": floor})
        if lad is not None:
            lad = replace(lad, description=lad.description + f" (smallest size lowered to {lad.pretrain[0].model_size:.3g} to fit the budget)")
    return lad


def _interval(x: np.ndarray, seed: int) -> tuple[float, float]:
    from .simulate import _boot_interval

    return _boot_interval(np.asarray(x, dtype=float), seed)


def _groups(lad: Ladder) -> list[tuple[frozenset[str], str]]:
    """What pruning may drop: a new pretraining run with its branches, or one branch point's branches (every domain)."""
    out: list[tuple[frozenset[str], str]] = []
    for r in lad.new_pretrain:
        out.append((frozenset([r.name] + [b.name for b in lad.branches if b.parent == r.name]), f"run {r.name}"))
    seen: dict[tuple[str, float], list[str]] = {}
    for b in lad.new_branches:
        seen.setdefault((b.parent, b.from_tokens), []).append(b.name)
    for (parent, at), names in seen.items():
        out.append((frozenset(names), f"branches of {parent} at {at:.3g}"))
    return out


def _without(lad: Ladder, names: frozenset[str]) -> Ladder:
    return replace(lad, pretrain=tuple(r for r in lad.pretrain if r.name not in names),
                   branches=tuple(b for b in lad.branches if b.name not in names))


def prune(lad: Ladder, cost: Any, *, min_sizes: int = 3, max_steps: int = 60) -> tuple[Ladder, list[str]]:
    """Backward greedy pruning: drop the run (or branch point) whose removal lowers ``cost`` most, while any does.

    ``cost(ladder)`` is E[waste] + FLOPs / C (both shares of the target budget), so a run is dropped when the
    regret it removes is worth less than its FLOPs: a run whose information the existing runs (the prior) or
    the other runs already give is not bought. At least ``min_sizes`` distinct sizes (new and existing) stay.
    """
    cur = cost(lad)
    dropped: list[str] = []
    for _ in range(max_steps):
        best = None
        for names, what in _groups(lad):
            cand = _without(lad, names)
            if not cand.new_pretrain or len({r.model_size for r in cand.pretrain}) < min_sizes:
                continue
            c = cost(cand)
            if c < cur - 1e-12 and (best is None or c < best[0]):
                best = (c, cand, what)
        if best is None:
            break
        cur, lad = best[0], best[1]
        dropped.append(best[2])
    return lad, dropped


def _search(budget: float, domains: Sequence[str], sens: Sequence[TruthSensitivity], noise: float, target: float, *,
            flop_model: FlopModel, min_size: float, max_size: float, menu: Sequence[float] | None,
            spend_options: Sequence[float], passes: int = 3, existing: Points | None = None,
            prune_runs: bool = True, seen: dict | None = None) -> tuple[LadderSpec | None, Ladder | None, float]:
    """Coordinate descent over :class:`LadderSpec`, then pruning of the best ladder's runs and a rescale to a spend option.

    ``seen``: a dict that receives every ladder the search scored (spec -> (cost, ladder)), for the short list.
    """
    cache: dict[LadderSpec, tuple[float, Ladder | None]] = {} if seen is None else seen
    ex = existing if existing is not None and len(existing) else None

    def ladder_cost(lad: Ladder) -> float:
        return linearized_regret(lad, sens, noise, known=ex) + lad.flops(flop_model) / target

    def cost(spec: LadderSpec) -> tuple[float, Ladder | None]:
        if spec not in cache:
            lad = designed_ladder(spec, budget, domains, flop_model=flop_model, min_size=min_size, max_size=max_size, menu=menu)
            if lad is None or not lad.pretrain:
                cache[spec] = (math.inf, None)
            else:
                cache[spec] = (ladder_cost(lad), lad)
        return cache[spec]

    dims = dict(SEARCH_SPACE)
    dims["spend"] = tuple(spend_options)
    best_spec, best_cost = None, math.inf
    for start in _STARTS:
        spec = replace(start, spend=max(spend_options))
        cur = cost(spec)[0]
        for _ in range(passes):
            improved = False
            for name, values in dims.items():
                for v in values:
                    cand = replace(spec, **{name: v})
                    c = cost(cand)[0]
                    if c < cur - 1e-12:
                        spec, cur, improved = cand, c, True
            if not improved:
                break
        if cur < best_cost:
            best_spec, best_cost = spec, cur
    if best_spec is None or not math.isfinite(best_cost):
        return None, None, math.inf
    lad = cost(best_spec)[1]
    if prune_runs:
        pruned, dropped = prune(lad, ladder_cost, min_sizes=1 if ex is not None else 3)
        if dropped:
            # the pruned ladder keeps its shape; its tokens are rescaled to the best spend option (never above the budget)
            options = []
            for sp in spend_options:
                scaled = _guard(pruned.scaled(budget * sp / pruned.flops(flop_model)), budget, flop_model)
                options.append((ladder_cost(scaled), scaled))
            c, lad = min(options, key=lambda t: t[0])
            if c <= best_cost:
                best_cost = c
                lad = replace(lad, description=lad.description + f"; pruned {len(dropped)} groups of runs ({', '.join(dropped)}), "
                              f"then every token count rescaled to spend {100 * lad.flops(flop_model) / budget:.3g} % of the budget")
            else:
                lad = cost(best_spec)[1]
    return best_spec, lad, best_cost


def shortlist(chosen: Ladder, chosen_spec: LadderSpec | None, seen: Mapping[LadderSpec, tuple[float, Ladder | None]],
              size: int) -> list[tuple[LadderSpec | None, Ladder]]:
    """The search's ladder and the next best ladders it scored, structurally distinct first.

    Ranked by the linearized cost; a ladder whose (sizes, spacing, tokens per parameter, branched sizes)
    is already on the list is skipped while distinct ones remain, so the list is not ``size`` variants
    of one branch horizon.
    """
    ranked = sorted(((c, spec, lad) for spec, (c, lad) in seen.items() if lad is not None and math.isfinite(c)), key=lambda t: t[0])
    out: list[tuple[LadderSpec | None, Ladder]] = [(chosen_spec, chosen)]
    def key(spec: LadderSpec) -> tuple:
        return (spec.n_sizes, spec.size_step, spec.tokens_per_param, spec.branch_top, spec.long_factor)

    labels, keys = {chosen.description}, ({key(chosen_spec)} if chosen_spec is not None else set())
    for distinct in (True, False):
        for _, spec, lad in ranked:
            if len(out) >= size:
                return out
            if lad.description in labels or (distinct and key(spec) in keys):
                continue
            out.append((spec, lad))
            labels.add(lad.description)
            keys.add(key(spec))
    return out


def select_by_simulation(candidates: Sequence[Ladder], baselines: Sequence[Ladder], fit_prior: Prior, truth_prior: Prior,
                         prob: PlanProblem, *, n_truths: int, seed: int, noise: float, flop_model: FlopModel,
                         existing: Points | None = None, existing_y: np.ndarray | None = None,
                         n_jobs: int | None = None, margin_se: float = 1.0) -> tuple[int, Ladder, list[dict[str, Any]], list[Ladder]]:
    r"""Pick among the short list and the baselines by simulated held-out regret under the design's prior.

    Every ladder is simulated on the same ``n_truths`` truths of the prior (:func:`.simulate.simulate_ladders`:
    common random numbers; truths drawn with their own seed, not the verification's), and scored by the
    expected total cost in units of the target budget,

        mean over truths of min(waste, 1) + FLOPs / C,

    (waste capped at one target budget, as in the criterion: a handful of truths whose plan is off by
    more than the whole budget would otherwise decide). The default ladder (the first baseline) is the
    incumbent: another ladder replaces it only when its paired cost difference to the default over the
    truths, mean + ``margin_se`` standard errors, is below zero (with a few truths of a wide prior the
    ranking is noisy, and a ladder that wins by noise is worse than the habit elsewhere); among those,
    the lowest cost wins. On these truths the design is never worse than the default ladder. The
    winner is returned as (its index in candidates + baselines, the ladder renamed ``designed``, one row
    per ladder with what it scored, the ladders of the rows).
    """
    named = [replace(l, name=f"candidate-{i + 1}") for i, l in enumerate(candidates)] + list(baselines)
    sim = simulate_ladders(named, fit_prior, prob, n_truths=n_truths, seed=seed, truth_prior=truth_prior, noise=noise,
                           existing=existing, existing_y=existing_y, n_jobs=n_jobs)
    target = prob.budget
    rows = []
    per: dict[str, np.ndarray] = {}
    for l in named:
        w = np.array([r["waste"][l.name] for r in sim.per_truth], dtype=float)
        capped = np.minimum(np.nan_to_num(w, nan=WASTE_CAP), WASTE_CAP)
        per[l.name] = capped + l.flops(flop_model) / target
        rows.append({"ladder": l.name, "description": l.description, "flops": l.flops(flop_model), "n_new_runs": l.n_new_runs,
                     "expected_waste": float(np.mean(capped)), "expected_waste_uncapped": float(np.nanmean(w)),
                     "median_waste": float(np.nanmedian(w)), "selected_true_form": sim.selected_true_form[l.name],
                     "cost": float(np.mean(capped)) + l.flops(flop_model) / target})
    incumbent = baselines[0].name if baselines else rows[0]["ladder"]
    n = len(sim.per_truth)
    for r in rows:
        d = per[r["ladder"]] - per[incumbent]
        r["vs_default"] = float(np.mean(d))
        r["vs_default_se"] = float(np.std(d, ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    beats = [r for r in rows if r["ladder"] != incumbent and r["vs_default"] + margin_se * r["vs_default_se"] < 0]
    best = min(beats, key=lambda r: r["cost"]) if beats else next(r for r in rows if r["ladder"] == incumbent)
    best["chosen"] = True
    lad = next(l for l in named if l.name == best["ladder"])
    how = (f"chosen by simulation among {len(named)} ladders ({n_truths} truths of the prior): "
           f"expected waste {100 * best['expected_waste']:.3g} % + spend {100 * best['flops'] / target:.3g} % of the target budget")
    if lad.name == incumbent:
        how = f"the {lad.name} ladder itself: no ladder beat it by {margin_se:g} standard error in simulation; " + how
    elif lad.name in ("default", "uniform"):
        how = f"the {lad.name} ladder itself; " + how
    return named.index(lad), replace(lad, name="designed", description=f"{lad.description} [{how}]"), rows, named


# ---------------------------------------------------------------------------- design
def design(
    domains: Sequence[Domain | Mapping[str, Any] | str] = (),
    budget: float | None = None,
    experiment_budget: float | None = None,
    *,
    constraints: Constraints | Mapping[str, Any] | None = None,
    runs: Any = None,
    law: FittedLaw | None = None,
    sizes: Sequence[float] | tuple[float, float] | None = None,
    noise: float | None = None,
    flop_model: FlopModel | None = None,
    forms: Sequence[str] = SPLIT_FORMS,
    n_truths: int = 24,
    n_simulations: int = 20,
    spend_options: Sequence[float] = (0.25, 0.5, 1.0),
    curve_fractions: Sequence[float] = CURVE_FRACTIONS,
    context: int = 2048,
    seed: int = 0,
    n_jobs: int | None = None,
    selection_risk: bool = True,
    select_simulations: int = 24,
    shortlist_size: int = 4,
) -> Design:
    """Design the ladder of small runs for the decision at ``budget`` (see the module doc).

    domains: target domains (:class:`~planner.Domain`, dicts or names; weights and token caps are used).
    budget: the target training budget C (FLOPs). experiment_budget: FLOPs for the ladder (a cap).
    runs: existing runs (path or DataFrame) -> the prior is their posterior; law: a law to centre the
    prior on (its bootstrap draws when it has them) when there are no runs.
    sizes: a menu of model sizes (list of >= 3 values) or a range ``(low, high)`` for the ladder
        (default 1e7 .. 1e13 parameters).
    noise: sd of a run's log loss (default: from the runs' residuals, else 0.01).
    n_truths: truths of the linearized criterion; n_simulations: truths of the verification (0: none).
    spend_options: shares of the experiment budget the search may use.
    selection_risk: count the risk of selecting a wrong form in the criterion (:mod:`.criterion`); False
        scores every truth as if its own form were fitted (the quadratic term alone).
    select_simulations, shortlist_size: the linearized search short-lists ``shortlist_size`` ladders;
        these and the default and uniform ladders are simulated on ``select_simulations`` truths of the
        prior and the lowest simulated cost wins (:func:`select_by_simulation`); 0 keeps the search's
        ladder (the linearized criterion alone).
    """
    if budget is None or experiment_budget is None:
        raise DesignError("design needs the target budget and the experiment budget (FLOPs)")
    try:
        budget, experiment_budget = float(budget), float(experiment_budget)
    except (TypeError, ValueError):
        raise DesignError(f"budgets must be numbers of FLOPs, got {budget!r} and {experiment_budget!r}") from None
    if not (math.isfinite(budget) and budget > 0 and math.isfinite(experiment_budget) and experiment_budget > 0):
        raise DesignError("budgets must be positive finite numbers of FLOPs")
    if experiment_budget >= budget:
        raise DesignError(f"the experiment budget {experiment_budget:.3g} is not below the target budget {budget:.3g}")
    doms = tuple(Domain.coerce(d) for d in domains)
    names = tuple(d.name for d in doms)
    if len(set(names)) != len(names):
        raise DesignError(f"duplicate domain names: {names}")
    if not names:
        law_domains: tuple[str, ...] = ("general",)
        forms = ("chinchilla",)
        weights, caps = (1.0,), (math.inf,)
    else:
        law_domains = names
        weights, caps = tuple(d.weight for d in doms), tuple(d.token_cap for d in doms)
    cons = Constraints.coerce(constraints)
    fm = flop_model or SixN()
    if not isinstance(fm, FlopModel):
        raise DesignError(f"flop_model must be a FlopModel, got {type(fm).__name__}")
    if noise is not None and not (0 < float(noise) < 1):
        raise DesignError(f"noise is the sd of a run's log loss, in (0, 1); got {noise!r}")
    if n_truths < 2 or n_simulations < 0 or select_simulations < 0 or shortlist_size < 1:
        raise DesignError("n_truths must be >= 2, n_simulations and select_simulations >= 0, shortlist_size >= 1")
    if not spend_options or any(not 0 < float(s) <= 1 for s in spend_options):
        raise DesignError(f"spend_options must be shares in (0, 1], got {spend_options!r}")
    menu: list[float] | None = None
    min_size, max_size = DEFAULT_SIZE_RANGE
    if sizes is not None:
        vals = [float(s) for s in sizes]
        if any(not math.isfinite(v) or v <= 0 for v in vals):
            raise DesignError(f"sizes must be positive parameter counts, got {sizes!r}")
        if isinstance(sizes, tuple) and len(vals) == 2:
            min_size, max_size = min(vals), max(vals)
        elif len(vals) >= 3:
            menu = sorted(set(vals))
            min_size, max_size = menu[0], menu[-1]
        else:
            raise DesignError("sizes: a menu of at least 3 sizes (list) or a range (low, high) (tuple)")

    # prior
    existing = Points.empty()
    existing_y = None
    if runs is not None:
        existing, existing_y = runs_to_points(runs, law_domains)
        prior = prior_from_runs(existing, existing_y, law_domains, forms, noise=noise, seed=seed)
        fit_prior = published_prior(law_domains, tuple(c.vec.form.name for c in prior.components), seed=seed)
    elif law is not None:
        prior = _prior_from_law(law, law_domains, noise or 0.01, seed)
        fit_prior = published_prior(law_domains, (law.form.name,), seed=seed) if law.form.name in SPLIT_FORMS else prior
    else:
        prior = published_prior(law_domains, forms, noise=noise or 0.01, seed=seed)
        fit_prior = prior
    sigma = float(noise if noise is not None else prior.noise)
    fit_prior = Prior(fit_prior.components, fit_prior.source, sigma)

    prob = PlanProblem(budget, np.arange(len(law_domains)) if names else np.zeros(1, dtype=int), np.asarray(weights, float),
                       np.asarray(caps, float), cons.min_model_size or 1e6, cons.max_model_size or 1e13, fm)
    ev_doms = names or ("general",)
    base_kw = dict(flop_model=fm, min_size=min_size, max_size=max_size)
    baselines = [x for x in (_baseline(default_ladder, experiment_budget, ev_doms, base_kw),
                             _baseline(uniform_grid, experiment_budget, ev_doms, base_kw)) if x is not None]
    # the rivals' pseudo-truths are fitted on the habitual ladders' points (and the existing runs)
    reference = Points.concat([b.points(law_domains) for b in baselines] + ([existing] if len(existing) else []))
    sens = sensitivities(prior, prob, n_truths, seed=seed, n_jobs=n_jobs, reference=reference if selection_risk else None, noise=sigma)
    ex = existing if len(existing) else None

    seen: dict = {}
    spec, lad, _ = _search(experiment_budget, ev_doms, sens, sigma, budget, flop_model=fm, min_size=min_size, max_size=max_size,
                           menu=menu, spend_options=spend_options, existing=ex, seen=seen)
    if lad is None:
        return Design("infeasible", f"no ladder of at least 3 sizes from {min_size:.3g} parameters fits {experiment_budget:.3g} FLOPs",
                      budget, experiment_budget, names, weights, sigma, prior.source, "constant", None, None, flop_model=fm)
    selection: list[dict[str, Any]] = []
    considered: list[Ladder] = []
    if select_simulations:
        short = shortlist(lad, spec, seen, shortlist_size)
        for v in HABIT_VARIANTS:
            v = replace(v, spend=max(spend_options))
            lv = designed_ladder(v, experiment_budget, ev_doms, menu=menu, **base_kw)
            if lv is not None and lv.description not in {l.description for _, l in short}:
                short.append((v, lv))
        k, lad, selection, considered = select_by_simulation(
            [l for _, l in short], baselines, fit_prior, prior, prob, n_truths=select_simulations, seed=seed + 2, noise=sigma,
            flop_model=fm, existing=existing if len(existing) else None, existing_y=existing_y, n_jobs=n_jobs)
        spec = short[k][0] if k < len(short) else None  # a baseline has no spec of the search
    ladders = [lad] + baselines

    def score(l: Ladder) -> tuple[float, tuple[float, float]]:
        per = linearized_regret(l, sens, sigma, known=ex, per_truth=True)
        return float(np.mean(per)), _interval(per, seed)

    sim = None
    if n_simulations:
        sim = simulate_ladders(ladders, fit_prior, prob, n_truths=n_simulations, seed=seed + 1, truth_prior=prior, noise=sigma,
                               existing=existing if len(existing) else None, existing_y=existing_y, n_jobs=n_jobs)
    comparison = []
    for l in ladders:
        m, iv = score(l)
        comparison.append(LadderScore(
            l.name, l, l.flops(fm), l.n_new_runs, m, iv,
            None if sim is None else sim.mean_waste[l.name], None if sim is None else sim.waste_interval[l.name],
            None if sim is None else sim.mean_regret[l.name]))

    curve = []
    for frac in curve_fractions:
        b = frac * budget
        row: dict[str, Any] = {"fraction": frac, "experiment_budget": b}
        s2, l2, _ = _search(b, ev_doms, sens, sigma, budget, flop_model=fm, min_size=min_size, max_size=max_size, menu=menu,
                            spend_options=(1.0,), passes=2, existing=ex, prune_runs=False)
        vals = [] if l2 is None else [linearized_regret(l2, sens, sigma, known=ex)]
        if spec is not None:  # the chosen shape at this budget too: the curve is the best the search knows
            l3 = designed_ladder(replace(spec, spend=1.0), b, ev_doms, menu=menu, **base_kw)
            if l3 is not None:
                vals.append(linearized_regret(l3, sens, sigma, known=ex))
        row["designed"] = min(vals) if vals else None
        for name, builder in (("default", default_ladder), ("uniform", uniform_grid)):
            lb = _baseline(builder, b, ev_doms, base_kw)
            row[name] = None if lb is None else linearized_regret(lb, sens, sigma, known=ex)
        curve.append(row)

    shapes = {}
    for n in sorted({r.model_size for r in lad.pretrain}):
        try:
            shapes[float(n)] = shape(n, context=context)
        except Exception:  # noqa: BLE001 - a size outside the shape range keeps no shape
            pass
    msg = (f"{lad.n_new_runs} new runs, {lad.flops(fm):.3g} of {experiment_budget:.3g} FLOPs; "
           f"expected waste {100 * comparison[0].linearized:.3g} % of the target budget (linearized)")
    return Design("ok", msg, budget, experiment_budget, names, weights, sigma, prior.source, lad.schedule, spec, lad, tuple(comparison),
                  tuple(curve), sim, shapes, len(existing), fm,
                  {"n_truths": n_truths, "n_simulations": n_simulations, "seed": seed, "forms": list(c.vec.form.name for c in prior.components),
                   "sizes": None if sizes is None else [float(s) for s in sizes], "spend_options": list(spend_options),
                   "selection_risk": selection_risk, "select_simulations": select_simulations, "shortlist_size": shortlist_size},
                  tuple(selection), tuple(considered))
