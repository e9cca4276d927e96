r"""Ladders of small runs: what to train, what it costs, which losses it yields.

A ladder is a set of **pretraining runs** (size N to a horizon of D tokens) and **branches**
(a copy of a pretraining checkpoint at D_b tokens, continued on one domain for D' tokens).

Schedule assumption (``schedule="constant"``): the learning rate is constant after warmup (or
warmup-stable-decay with a decay short enough to neglect), so every intermediate checkpoint is a
usable measurement of L(N, D, 0) on every domain, and every branch checkpoint of L(N, D_b, D').
Checkpoints are kept at 1/8, 1/4, 1/2 and all of each horizon (earlier ones sit in the warmup
transient; Choshen et al. drop the first tokens of every run for the same reason). The uniform
grid baseline instead assumes a cosine schedule per run (``schedule="cosine"``): only each run's
final checkpoint is usable, so every grid point is its own run.

FLOPs: f(N) tokens for each segment, f(N) = 6N by default or any :class:`~planner.FlopModel`.
A branch costs f(N) D' (the pretraining up to D_b is the parent's). Builders scale a ladder so
its total is exactly the experiment budget (never above it: the last step rescales every token
count down when snapping sizes to a menu would overshoot).

Ladders here:

* :func:`designed_ladder` from a :class:`LadderSpec` (searched by :mod:`.criterion`);
* :func:`default_ladder`: Choshen et al.'s advice as habit: 5 sizes spaced 2.5x, each to 20 tokens
  per parameter, branches per domain at 3 points (25, 50, 100 % of the run) on every size, each to
  D' = 20 % of its branch point (the habitual 80/20);
* :func:`uniform_grid`: 5 sizes x {10, 20, 40} tokens per parameter as separate cosine runs, a
  branch per domain from each run's end to D' = 10 % and 30 % of D, each only measured at its end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..allocate.model import FlopModel, SixN
from ._model import DesignError, Points

__all__ = ["PretrainRun", "Branch", "Ladder", "LadderSpec", "designed_ladder", "default_ladder", "uniform_grid", "CHECKPOINT_FRACTIONS"]

CHECKPOINT_FRACTIONS = (0.125, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class PretrainRun:
    """Pretrain a model of ``model_size`` to ``tokens``; losses measured at ``checkpoints`` (tokens) on every domain."""

    name: str
    model_size: float
    tokens: float
    checkpoints: tuple[float, ...]
    existing: bool = False


@dataclass(frozen=True)
class Branch:
    """Continue ``parent``'s checkpoint at ``from_tokens`` on ``domain`` for ``spec_tokens``; measured at ``checkpoints`` (D')."""

    name: str
    parent: str
    model_size: float
    from_tokens: float
    domain: str
    spec_tokens: float
    checkpoints: tuple[float, ...]
    existing: bool = False


def _ckpts(horizon: float, fractions: Sequence[float]) -> tuple[float, ...]:
    return tuple(float(horizon * f) for f in fractions)


@dataclass(frozen=True)
class Ladder:
    """A set of pretraining runs and branches (see the module doc for the schedule assumption)."""

    name: str
    pretrain: tuple[PretrainRun, ...]
    branches: tuple[Branch, ...] = ()
    schedule: str = "constant"
    description: str = ""

    @property
    def new_pretrain(self) -> tuple[PretrainRun, ...]:
        return tuple(r for r in self.pretrain if not r.existing)

    @property
    def new_branches(self) -> tuple[Branch, ...]:
        return tuple(b for b in self.branches if not b.existing)

    @property
    def n_new_runs(self) -> int:
        return len(self.new_pretrain) + len(self.new_branches)

    def flops(self, flop_model: FlopModel | None = None) -> float:
        """Training FLOPs of the new segments: sum f(N) D over runs plus f(N) D' over branches."""
        fm = flop_model or SixN()
        total = sum(float(fm.per_token(r.model_size)) * r.tokens for r in self.new_pretrain)
        total += sum(float(fm.per_token(b.model_size)) * b.spec_tokens for b in self.new_branches)
        return float(total)

    def scaled(self, factor: float) -> "Ladder":
        """Every token count (horizons, branch points, checkpoints) times ``factor``."""
        runs = tuple(replace(r, tokens=r.tokens * factor, checkpoints=tuple(c * factor for c in r.checkpoints)) for r in self.pretrain)
        brs = tuple(replace(b, from_tokens=b.from_tokens * factor, spec_tokens=b.spec_tokens * factor,
                            checkpoints=tuple(c * factor for c in b.checkpoints)) for b in self.branches)
        return replace(self, pretrain=runs, branches=brs)

    def points(self, law_domains: Sequence[str], eval_domains: Sequence[str] | None = None, new_only: bool = True) -> Points:
        """The measurements the ladder yields (pretraining checkpoints on every evaluated domain, branch checkpoints on their own)."""
        doms = list(law_domains)
        ev = [doms.index(d) for d in (eval_domains if eval_domains is not None else doms)]
        n, d, s, k = [], [], [], []
        for r in self.pretrain:
            if new_only and r.existing:
                continue
            for c in r.checkpoints:
                for j in ev:
                    n.append(r.model_size), d.append(c), s.append(0.0), k.append(j)
        for b in self.branches:
            if new_only and b.existing:
                continue
            j = doms.index(b.domain)
            for c in b.checkpoints:
                n.append(b.model_size), d.append(b.from_tokens), s.append(c), k.append(j)
        return Points(np.asarray(n, float), np.asarray(d, float), np.asarray(s, float), np.asarray(k, int))

    def segments(self, flop_model: FlopModel | None = None) -> pd.DataFrame:
        """One row per training segment (the ``runs.csv`` contract of ``planner design``)."""
        fm = flop_model or SixN()
        rows = []
        for r in self.new_pretrain:
            rows.append({"run": r.name, "model_size": r.model_size, "pretrain_tokens": r.tokens, "spec_domain": "", "spec_tokens": 0.0,
                         "branch_from_tokens": None, "flops": float(fm.per_token(r.model_size)) * r.tokens,
                         "checkpoints": " ".join(f"{c:.6g}" for c in r.checkpoints), "parent": ""})
        for b in self.new_branches:
            rows.append({"run": b.name, "model_size": b.model_size, "pretrain_tokens": b.from_tokens, "spec_domain": b.domain,
                         "spec_tokens": b.spec_tokens, "branch_from_tokens": b.from_tokens,
                         "flops": float(fm.per_token(b.model_size)) * b.spec_tokens,
                         "checkpoints": " ".join(f"{c:.6g}" for c in b.checkpoints), "parent": b.parent})
        cols = ["run", "model_size", "pretrain_tokens", "spec_domain", "spec_tokens", "branch_from_tokens", "flops", "checkpoints", "parent"]
        return pd.DataFrame(rows, columns=cols)

    def measurement_table(self, law_domains: Sequence[str]) -> pd.DataFrame:
        """The run table the ladder's measurements fill (``loss`` left empty): what to log while training."""
        pts = self.points(law_domains)
        names = []
        for r in self.new_pretrain:
            names += [r.name] * (len(r.checkpoints) * len(law_domains))
        for b in self.new_branches:
            names += [b.name] * len(b.checkpoints)
        doms = np.asarray(law_domains, dtype=object)[pts.dom]
        spec_dom = np.where(pts.spec_tokens > 0, doms, "")
        return pd.DataFrame({"run": names, "model_size": pts.model_size, "pretrain_tokens": pts.pretrain_tokens,
                             "spec_tokens": pts.spec_tokens, "domain": doms, "spec_domain": spec_dom, "loss": np.nan})

    def to_dict(self, flop_model: FlopModel | None = None) -> dict[str, Any]:
        seg = self.segments(flop_model)
        return {"name": self.name, "description": self.description, "schedule": self.schedule, "flops": self.flops(flop_model),
                "n_new_runs": self.n_new_runs,
                "segments": [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in seg.to_dict("records")]}


# ------------------------------------------------------------------------ builders
@dataclass(frozen=True)
class LadderSpec:
    """Shape of a designed ladder (the search space of :func:`planner.design`).

    n_sizes sizes spaced ``size_step`` x apart (the largest set by the budget), each pretrained to
    ``tokens_per_param`` x N; the ``branch_top`` largest sizes (0: none) branch on every domain at
    ``branch_points`` (fractions of the horizon), each branch to D' = ``branch_ratio`` x its branch point;
    ``spend`` is the share of the experiment budget used; the largest size runs ``long_factor`` x
    further than the others (one run far along, Choshen et al.'s most informative run). ``tilt``
    gives the smaller sizes more tokens per parameter: size N_i is pretrained to
    ``tokens_per_param`` x N_i x (N_top / N_i)^tilt tokens (0: the same ratio for every size; 1: the
    same number of tokens, so the small cheap runs reach the data regime of the largest).
    ``branch_bottom`` branches the ``branch_top`` *smallest* sizes instead of the largest (where a
    token of D' is cheapest).
    """

    n_sizes: int = 4
    size_step: float = 3.0
    tokens_per_param: float = 20.0
    branch_top: int = 2
    branch_points: tuple[float, ...] = (0.5, 1.0)
    branch_ratio: float = 0.3
    spend: float = 1.0
    long_factor: float = 1.0
    tilt: float = 0.0
    branch_bottom: bool = False

    def label(self) -> str:
        bp = ",".join(f"{100 * p:g}%" for p in self.branch_points)
        end = "bottom" if self.branch_bottom else "top"
        on = "every size" if self.branch_top >= self.n_sizes else f"the {end} {self.branch_top}"
        which = "no branches" if not self.branch_top else f"branches on {on} at {bp} to D'={self.branch_ratio:g} D_b"
        far = "" if self.long_factor == 1.0 else f"; the largest to {self.long_factor:g}x that"
        if self.tilt:
            far += f"; smaller sizes x(N_top/N)^{self.tilt:g} more tokens/param"
        return (f"{self.n_sizes} sizes x{self.size_step:g} apart to {self.tokens_per_param:g} tok/param{far}; {which}; "
                f"spend {100 * self.spend:g} %")


def _structure(sizes: Sequence[float], tokens_per_param: Sequence[float] | float, domains: Sequence[str], branch_sizes: Sequence[float],
               branch_points: Sequence[float], branch_ratio: float, name: str, description: str) -> Ladder:
    m = np.broadcast_to(np.asarray(tokens_per_param, dtype=float), (len(sizes),))
    runs, brs = [], []
    for n, mi in zip(sizes, m):
        rn = f"n{n:.3g}-d{n * mi:.3g}"
        runs.append(PretrainRun(rn, float(n), float(n * mi), _ckpts(n * mi, CHECKPOINT_FRACTIONS)))
        if any(np.isclose(n, b, rtol=1e-9) for b in branch_sizes):
            for p in branch_points:
                db = n * mi * p
                for dom in domains:
                    ds = branch_ratio * db
                    brs.append(Branch(f"{rn}-at{db:.3g}-{dom}-s{ds:.3g}", rn, float(n), float(db), dom, float(ds), _ckpts(ds, CHECKPOINT_FRACTIONS)))
    return Ladder(name, tuple(runs), tuple(brs), "constant", description)


def _fit_budget(make: Any, budget: float, flop_model: FlopModel, lo: float, hi: float) -> Ladder | None:
    """Bisect log of the largest size so the ladder costs ``budget`` (None when even ``lo`` is too dear)."""
    if make(lo).flops(flop_model) > budget:
        return None
    if make(hi).flops(flop_model) <= budget:
        lad = make(hi)
    else:
        a, b = math.log(lo), math.log(hi)
        for _ in range(60):
            mid = 0.5 * (a + b)
            if make(math.exp(mid)).flops(flop_model) <= budget:
                a = mid
            else:
                b = mid
        lad = make(math.exp(a))
    return _guard(lad, budget, flop_model)


def _guard(lad: Ladder, budget: float, flop_model: FlopModel) -> Ladder:
    f = lad.flops(flop_model)
    if f > budget:  # rounding in the bisection or a snapped menu: scale every token count down
        lad = lad.scaled(budget / f * (1 - 1e-9))
    return lad


def _snap(sizes: Sequence[float], menu: Sequence[float] | None) -> list[float]:
    if not menu:
        return list(sizes)
    m = np.asarray(sorted(menu), dtype=float)
    out = []
    for n in sizes:
        s = float(m[np.argmin(np.abs(np.log(m / n)))])
        if s not in out:
            out.append(s)
    return out


def designed_ladder(spec: LadderSpec, budget: float, domains: Sequence[str], *, flop_model: FlopModel | None = None,
                    min_size: float = 1e6, max_size: float = 1e13, menu: Sequence[float] | None = None) -> Ladder | None:
    """The ladder of ``spec`` scaled to ``spec.spend`` x ``budget`` (None when it cannot fit)."""
    fm = flop_model or SixN()
    target = budget * spec.spend

    def make(top: float) -> Ladder:
        sizes = _snap([top / spec.size_step ** i for i in range(spec.n_sizes)][::-1], menu)
        k = min(spec.branch_top, len(sizes))
        bsz = (sizes[:k] if spec.branch_bottom else sizes[len(sizes) - k:]) if spec.branch_top else []
        tpp = [spec.tokens_per_param * (sizes[-1] / n) ** spec.tilt for n in sizes]
        tpp[-1] *= spec.long_factor
        return _structure(sizes, tpp, domains, bsz, spec.branch_points, spec.branch_ratio, "designed", spec.label())

    lo = min_size * spec.size_step ** (spec.n_sizes - 1)
    if lo > max_size:
        return None
    if menu:
        lad = make(max_size)
        # with a menu the sizes are fixed by the grid: pick the largest top size whose ladder fits at full tokens,
        # then scale the tokens to spend the budget exactly
        cands = sorted(float(x) for x in menu if x >= min(menu) * spec.size_step ** (spec.n_sizes - 1) * 0.999)
        best = None
        for top in cands:
            lad = make(top)
            if lad.flops(fm) <= target:
                best = lad
        if best is None:
            if not cands:
                return None
            best = make(cands[0])
        return _guard(best.scaled(target / best.flops(fm)), budget, fm)
    return _fit_budget(make, target, fm, lo, max_size)


def default_ladder(budget: float, domains: Sequence[str], *, flop_model: FlopModel | None = None, min_size: float = 1e6,
                   max_size: float = 1e13) -> Ladder | None:
    """Choshen et al.'s habit (module doc), scaled to ``budget``."""
    fm = flop_model or SixN()

    def make(top: float) -> Ladder:
        sizes = [top / 2.5 ** i for i in range(5)][::-1]
        return _structure(sizes, 20.0, domains, sizes, (0.25, 0.5, 1.0), 0.2, "default",
                          "Choshen et al.'s advice: 5 sizes 2.5x apart, each to 20 tokens/param; branches per domain at 25/50/100 % to D' = 20 % of D_b")

    return _fit_budget(make, budget, fm, min_size * 2.5 ** 4, max_size)


def uniform_grid(budget: float, domains: Sequence[str], *, flop_model: FlopModel | None = None, min_size: float = 1e6,
                 max_size: float = 1e13) -> Ladder | None:
    """Separate cosine runs on a grid (module doc), scaled to ``budget``."""
    fm = flop_model or SixN()

    def make(top: float) -> Ladder:
        runs, brs = [], []
        for n in [top / 2.5 ** i for i in range(5)][::-1]:
            for m in (10.0, 20.0, 40.0):
                rn = f"n{n:.3g}-d{n * m:.3g}"
                runs.append(PretrainRun(rn, n, n * m, (n * m,)))
                for dom in domains:
                    for r in (0.1, 0.3):
                        brs.append(Branch(f"{rn}-{dom}-s{r * n * m:.3g}", rn, n, n * m, dom, r * n * m, (r * n * m,)))
        return Ladder("uniform", tuple(runs), tuple(brs), "cosine",
                      "uniform grid: 5 sizes 2.5x apart x {10, 20, 40} tokens/param as separate runs; per domain branches to D' = 10 %, 30 % of D; final checkpoints only")

    return _fit_budget(make, budget, fm, min_size * 2.5 ** 4, max_size)
