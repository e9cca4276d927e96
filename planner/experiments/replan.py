r"""Re-plan a target run already under way (``[progress]``): what is spent is sunk.

The target run has a fixed model size N and has seen D_spent general tokens; its checkpoints'
losses are extra runs. The question left is how to spend the *remaining* compute
C - f(N) D_spent: keep pretraining (D > D_spent) or branch now (D = D_spent), and how far each
branch goes. This is the planner's problem with N fixed (``model_sizes=[N]``) and
D >= D_spent (``min_tokens_per_param = D_spent / N``) at the full budget C: the compute already
spent is part of f(N) D, so the plan covers exactly the remaining compute.

What the checkpoints change: the law is refitted with them (same form) and the plan made twice,
before (law without the checkpoints) and after (law with them); the report shows both, and how
far the law before was from the checkpoints (ARE). With a law but no runs to refit, the
checkpoints re-estimate each domain's irreducible loss E_k with every other parameter borrowed
(Choshen et al.: borrow exponents from a similar family, refit the scalars).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..allocate.model import Allocation, Constraints, Domain, FlopModel, SixN
from ..allocate.optimize import optimize
from ..fitting.core import fit
from ..fitting.law import FittedLaw
from ..runs import load_runs
from ._model import DesignError

__all__ = ["Progress", "Replan", "replan", "REPLAN_SCHEMA"]

REPLAN_SCHEMA = "planner.replan/1"


@dataclass(frozen=True)
class Progress:
    """The target run so far: N, general tokens spent, and its checkpoints' losses (a run table, or None)."""

    model_size: float
    tokens: float
    checkpoints: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        for k in ("model_size", "tokens"):
            v = getattr(self, k)
            if v is None or not math.isfinite(float(v)) or float(v) <= 0:
                raise DesignError(f"progress.{k} must be a positive number, got {v!r}")

    @classmethod
    def coerce(cls, p: "Progress | Mapping[str, Any]") -> "Progress":
        if isinstance(p, Progress):
            return p
        if not isinstance(p, Mapping):
            raise DesignError(f"progress must be a Progress or a mapping, not {type(p).__name__}")
        unknown = set(p) - {"model_size", "tokens", "checkpoints"}
        if unknown:
            raise DesignError(f"progress: unknown keys {sorted(unknown)}; known: checkpoints, model_size, tokens")
        ck = p.get("checkpoints")
        return cls(float(p["model_size"]), float(p["tokens"]), None if ck is None else _checkpoint_table(ck, float(p["model_size"])))


def _checkpoint_table(ck: Any, model_size: float) -> pd.DataFrame:
    df = pd.DataFrame(list(ck)) if isinstance(ck, (list, tuple)) else ck
    df = df.copy()
    if "model_size" not in df:
        df["model_size"] = model_size
    if "run" not in df:
        df["run"] = "target"
    table = load_runs(df)
    if not np.allclose(table["model_size"], model_size, rtol=1e-6):
        raise DesignError(f"progress.checkpoints: every checkpoint must be of the target run's size {model_size:.4g}")
    return table


@dataclass(frozen=True)
class Replan:
    """Plans before and after the target run's checkpoints, for the remaining compute."""

    status: str
    message: str
    budget: float
    progress: Progress
    spent_flops: float
    remaining_flops: float
    before: Allocation
    after: Allocation
    decision: str
    checkpoint_are_before: float | None
    checkpoint_are_after: float | None
    law_before: FittedLaw = field(repr=False)
    law_after: FittedLaw = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        def plan(a: Allocation) -> dict[str, Any]:
            return {"status": a.status, "model_size": a.model_size, "pretrain_tokens": a.pretrain_tokens,
                    "more_pretrain_tokens": max(a.pretrain_tokens - self.progress.tokens, 0.0), "spec_tokens": dict(a.spec_tokens),
                    "objective": a.objective, "losses": {d.name: d.loss for d in a.domains}}

        return {"schema": REPLAN_SCHEMA, "status": self.status, "message": self.message, "budget": self.budget,
                "model_size": self.progress.model_size, "tokens_spent": self.progress.tokens, "spent_flops": self.spent_flops,
                "remaining_flops": self.remaining_flops, "decision": self.decision,
                "checkpoints": 0 if self.progress.checkpoints is None else int(len(self.progress.checkpoints)),
                "checkpoint_are_before": self.checkpoint_are_before, "checkpoint_are_after": self.checkpoint_are_after,
                "before": plan(self.before), "after": plan(self.after)}

    def summary(self) -> str:
        d = self.to_dict()
        lines = [f"target run N = {self.progress.model_size:.4g}, {self.progress.tokens:.4g} tokens spent ({self.spent_flops:.3g} FLOPs sunk); "
                 f"{self.remaining_flops:.3g} of {self.budget:.3g} FLOPs left", f"decision: {self.decision}"]
        for key in ("before", "after"):
            p = d[key]
            spec = ", ".join(f"{k} {v:.3g}" for k, v in p["spec_tokens"].items())
            lines.append(f"  {key:<6} checkpoints: pretrain {p['more_pretrain_tokens']:.3g} more tokens, then D' = {spec}; objective {p['objective']:.5g}")
        if self.checkpoint_are_before is not None:
            lines.append(f"  law vs checkpoints: ARE {100 * self.checkpoint_are_before:.2f} % before, {100 * self.checkpoint_are_after:.2f} % after the refit")
        return "\n".join(lines)


def _are(law: FittedLaw, table: pd.DataFrame | None) -> float | None:
    if table is None or not len(table):
        return None
    pred = law.predict(table)
    return float(np.mean(np.abs(pred - table["loss"].to_numpy(float)) / table["loss"].to_numpy(float)))


def replan(
    budget: float,
    domains: Sequence[Domain | Mapping[str, Any] | str],
    progress: Progress | Mapping[str, Any],
    *,
    runs: Any = None,
    law: FittedLaw | None = None,
    form: str | None = None,
    constraints: Constraints | Mapping[str, Any] | None = None,
    flop_model: FlopModel | None = None,
    fit_options: Mapping[str, Any] | None = None,
) -> Replan:
    """Plan the remaining compute of a target run under way (module doc).

    Give ``runs`` (the ladder's run table; the law is fitted with ``form``, default the law's or
    ``"split-additive"``) or a ``law``; ``progress`` carries N, the tokens spent and the checkpoints.
    """
    prog = Progress.coerce(progress)
    budget = float(budget)
    fm = flop_model or SixN()
    spent = float(fm.per_token(prog.model_size)) * prog.tokens
    if not math.isfinite(budget) or spent >= budget:
        raise DesignError(f"the target run has spent {spent:.3g} FLOPs, not below the budget {budget:.3g}: nothing left to plan")
    opts = dict(fit_options or {})
    if runs is None and law is None:
        raise DesignError("replan needs the runs (to refit) or a law")
    if runs is not None:
        table = load_runs(runs) if not isinstance(runs, pd.DataFrame) or "cross_domain" not in runs else runs
        form = form or (law.form.name if law is not None else "split-additive")
        law_before = law if law is not None else fit(table, form, **opts)
        if prog.checkpoints is not None:
            law_after = fit(pd.concat([table, prog.checkpoints], ignore_index=True), law_before.form.name, **opts)
        else:
            law_after = law_before
    else:
        law_before = law
        if prog.checkpoints is not None:
            keep = {k: v for k, v in law.params.items() if not (k == "E" or k.startswith("E["))}
            import warnings

            with warnings.catch_warnings():  # one model size by construction: only E_k is free here
                warnings.simplefilter("ignore")
                law_after = fit(prog.checkpoints, law.form.name, fix=keep, **{k: v for k, v in opts.items() if k != "fix"})
            law_after = law.with_params(**{k: v for k, v in law_after.params.items() if k == "E" or k.startswith("E[")})
        else:
            law_after = law
    cons = Constraints.coerce(constraints)
    cons_d = {k: v for k, v in cons.to_dict().items() if v is not None and k not in ("min_model_size", "max_model_size", "model_sizes", "min_tokens_per_param")}
    floor = prog.tokens / prog.model_size
    if cons.min_tokens_per_param is not None:
        floor = max(floor, cons.min_tokens_per_param)
    cons_fixed = Constraints.coerce(cons_d, model_sizes=(prog.model_size,), min_tokens_per_param=floor * (1 + 1e-9))
    kw = dict(baselines=False, check=False, flops=fm)
    before = optimize(law_before, budget, domains, cons_fixed, **kw)
    after = optimize(law_after, budget, domains, cons_fixed, **kw)
    if not after.feasible:
        decision = f"no feasible plan: {after.message}"
        status = after.status
    else:
        more = after.pretrain_tokens - prog.tokens
        spec = ", ".join(f"{k} {v:.3g}" for k, v in after.spec_tokens.items() if v > 0) or "no domain"
        if more <= 1e-3 * prog.tokens:
            decision = f"branch now: specialize {spec} tokens"
        else:
            decision = f"keep pretraining {more:.3g} more tokens (to D = {after.pretrain_tokens:.3g}), then branch: {spec} tokens"
        status = "ok"
    return Replan(status, decision, budget, prog, spent, budget - spent, before, after, decision,
                  _are(law_before, prog.checkpoints), _are(law_after, prog.checkpoints), law_before, law_after)
