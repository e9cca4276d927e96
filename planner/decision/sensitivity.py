r"""Which parameters the decision rests on: plan moves per standard error, and identifiability notes.

For a candidate law with bootstrap standard errors sigma_j, the sensitivity of plan quantity
q (N, D, D'_k, the objective) to parameter theta_j, per standard error, is the central
finite difference

    dq/dSE_j = (q(theta_j + h sigma_j) - q(theta_j - h sigma_j)) / (2 h)        (h = 0.1)

in log theta_j for positive parameters (sigma_j the standard deviation of log theta_j over the
draws: bootstrap draws of amplitudes are often heavy-tailed, their plain SE exceeding the value
by orders of magnitude), in theta_j otherwise,
with both perturbed plans re-optimised by SLSQP warm-started at the point-estimate plan (the
same local optimum branch; local). The step is shrunk when theta_j -+ h sigma_j would leave
the parameter's bounds. A parameter whose interval spans more than a decade, or whose
standard error exceeds its value, is noted as weakly identified.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .._records import Note
from ..fitting.layout import parse_slot_name
from .candidates import Candidate, LocalSolver, Plan, ScenarioSet, Setting

__all__ = ["plan_sensitivity", "identifiability_notes", "Sensitivity"]


@dataclass(frozen=True)
class Sensitivity:
    """Per parameter of one candidate: how the plan moves per standard error (``table``)."""

    candidate: str
    table: pd.DataFrame
    step: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        from .._records import to_jsonable

        return {"candidate": self.candidate, "step_in_se": self.step, "method": self.method, "rows": to_jsonable(self.table.to_dict(orient="records"))}

    def top(self, n: int = 5) -> pd.DataFrame:
        """The ``n`` parameters that move the plan most (largest |relative move| of N, D or D')."""
        rel = [c for c in self.table.columns if c.endswith("_rel_per_se")]
        score = self.table[rel].abs().max(axis=1)
        return self.table.assign(score=score).sort_values("score", ascending=False).head(n)


def plan_sensitivity(candidate: Candidate, setting: Setting, plan: Plan, *, step: float = 0.1) -> Sensitivity:
    """Central finite differences of the re-optimised plan in every parameter with a standard error."""
    law = candidate.law
    se = law.standard_errors
    names = setting.names
    N0, D0, S0 = plan.arrays(names)
    start = (float(N0[0]), float(D0[0]), S0)
    base_ss = ScenarioSet([Candidate(candidate.name, law, 1.0)], setting, use_draws=False)
    Nb, Db, Sb, Fb = LocalSolver(base_ss, np.array([0])).solve(start)
    rows = []
    for pname, value in law.params.items():
        sigma = se.get(pname, math.nan)
        if not (math.isfinite(sigma) and sigma > 0):
            continue
        base, _ = parse_slot_name(pname)
        q = law.form.param(base)
        j = list(law.params).index(pname)
        col = law.draws[:, j]
        col = col[np.isfinite(col)]
        # positive parameters move in log space (their draws are often heavy-tailed): SE of log theta
        log_scale = bool(q.positive and value > 0 and len(col) > 1 and np.all(col > 0))
        sig = float(np.std(np.log(col), ddof=1)) if log_scale else float(sigma)
        cur = math.log(value) if log_scale else float(value)
        lo_b = math.log(q.lower) if log_scale else q.lower
        hi_b = math.log(q.upper) if log_scale else q.upper
        if not sig > 0:
            continue
        h = min(step, 0.9 * (cur - lo_b) / sig, 0.9 * (hi_b - cur) / sig)
        if not h > 0:
            continue
        res = []
        for sign in (-1.0, 1.0):
            new = cur + sign * h * sig
            l2 = law.with_params(**{pname: math.exp(new) if log_scale else new})
            ss = ScenarioSet([Candidate(candidate.name, l2, 1.0)], setting, use_draws=False)
            res.append(LocalSolver(ss, np.array([0])).solve((Nb, Db, Sb)))
        sigma = sig
        (N1, D1, S1, F1), (N2, D2, S2, F2) = res
        row = {"param": pname, "value": float(value), "se": float(sigma), "se_of": "log" if log_scale else "value",
               "model_size_per_se": (N2 - N1) / (2 * h), "model_size_rel_per_se": (N2 - N1) / (2 * h) / Nb,
               "pretrain_tokens_per_se": (D2 - D1) / (2 * h), "pretrain_tokens_rel_per_se": (D2 - D1) / (2 * h) / Db}
        for k, n in enumerate(names):
            row[f"spec_tokens[{n}]_per_se"] = (S2[k] - S1[k]) / (2 * h)
            tot = Db + float(Sb.sum())
            row[f"spec_tokens[{n}]_rel_per_se"] = (S2[k] - S1[k]) / (2 * h) / tot  # share of all training tokens
        row["objective_per_se"] = (F2 - F1) / (2 * h)
        rows.append(row)
    method = (f"central differences at +-{step:g} SE (of log theta for positive parameters; shrunk inside the bounds), each perturbed plan re-optimised by SLSQP "
              "warm-started at the point-estimate plan; D'_k moves relative to all training tokens")
    return Sensitivity(candidate.name, pd.DataFrame(rows), step, method)


def identifiability_notes(candidates: Sequence[Candidate]) -> list[Note]:
    """A note per parameter whose interval spans more than a decade or whose standard error exceeds its value."""
    out = []
    for c in candidates:
        se = c.law.standard_errors
        for name, value in c.law.params.items():
            s = se.get(name)
            lo, hi = c.law.intervals.get(name, (math.nan, math.nan))
            reasons = []
            if s is not None and math.isfinite(s) and s > abs(value):
                reasons.append(f"standard error {s:.3g} exceeds its value {value:.4g}")
            if lo > 0 and hi > 0 and math.isfinite(lo) and math.isfinite(hi) and hi / lo > 10:
                reasons.append(f"its {int(round(100 * c.law.interval_level))} % interval [{lo:.3g}, {hi:.3g}] spans {math.log10(hi / lo):.1f} decades")
            if reasons:
                out.append(Note("identifiability", f"{c.name}: {name} is weakly identified: {'; '.join(reasons)}"))
    return out
