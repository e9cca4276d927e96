r"""Cross-regret: the plan chosen under one law, evaluated under every other law and draw.

For a plan x and a scenario s (a candidate's point estimate or one of its bootstrap draws),

    regret_s(x) = f_s(x) - f_s^*          (nats/token, weighted: the objective's units)
    relative    = regret_s(x) / f_s^*

with f_s^* the best known objective under s (see :mod:`.candidates`). A row of the table is
a plan (each candidate's plan, the robust plans, the baselines); a column is a candidate law:
its point estimate ("nominal") and the distribution over its draws (mean, upper percentile,
worst). ``expected`` and ``worst`` summarise a row over every scenario with its probability.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .._records import json_number as _num
from .candidates import Plan, ScenarioSet

__all__ = ["RegretTable", "cross_regret", "weighted_percentile"]


def weighted_percentile(values: np.ndarray, weights: np.ndarray, q: float | Sequence[float]) -> np.ndarray:
    """Percentile(s) ``q`` (0-100) of the discrete distribution putting probability ``weights`` on ``values``.

    The inverted CDF: the smallest value whose cumulative probability reaches q / 100 (numpy's
    ``method="inverted_cdf"``), so every percentile is one scenario's value. The scenarios are a few
    candidate forms (weights as unequal as 0.985 and 0.015) and their bootstrap draws: interpolating
    between them (midpoint rule) invented values no scenario has (the 5th percentile of the no-split gap
    on the three-domain runs came out 0.09, between one form's 0.00 at weight 0.015 and the other's 1.12).
    """
    v = np.asarray(values, dtype=float)
    w = np.asarray(weights, dtype=float)
    keep = np.isfinite(v) & (w > 0)
    v, w = v[keep], w[keep]
    qs = np.atleast_1d(np.asarray(q, dtype=float)) / 100.0
    if not len(v):
        return np.full(len(qs), np.nan)
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    cdf = np.cumsum(w) / w.sum()
    # a cumulative probability within rounding of q reaches it (equal weights: k/n against q exactly)
    idx = np.searchsorted(cdf, qs - 1e-12 * np.maximum(qs, 1.0), side="left")
    return v[np.clip(idx, 0, len(v) - 1)]


@dataclass(frozen=True)
class RegretTable:
    """Regret of each plan (rows) under each candidate law (columns), in loss units and relative.

    nominal[i, j]: regret of plan i under candidate j's point estimate; nominal_relative the same / f_j^*.
    draws_mean / draws_high / draws_worst[i, j]: mean, ``level`` upper percentile and maximum over
    candidate j's draws (equal to nominal when j has no draws).
    expected[i], worst[i]: probability-weighted mean and maximum over every scenario.
    """

    plans: tuple[str, ...]
    forms: tuple[str, ...]
    nominal: np.ndarray
    nominal_relative: np.ndarray
    draws_mean: np.ndarray
    draws_high: np.ndarray
    draws_worst: np.ndarray
    expected: np.ndarray
    worst: np.ndarray
    expected_relative: np.ndarray
    level: float

    def row(self, plan: str) -> int:
        return self.plans.index(plan)

    def to_frame(self) -> pd.DataFrame:
        """One row per (plan, law): the regrets in loss units and relative."""
        rows = []
        pct = int(round(100 * (0.5 + self.level / 2)))
        for i, p in enumerate(self.plans):
            for j, f in enumerate(self.forms):
                rows.append({
                    "plan": p, "law": f, "regret_nominal": self.nominal[i, j], "regret_nominal_relative": self.nominal_relative[i, j],
                    "regret_draws_mean": self.draws_mean[i, j], f"regret_draws_p{pct}": self.draws_high[i, j],
                    "regret_draws_worst": self.draws_worst[i, j], "expected_regret": self.expected[i], "worst_regret": self.worst[i],
                })
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        def mat(a: np.ndarray) -> list[list[float | None]]:
            return [[_num(x) for x in r] for r in a]

        return {
            "plans": list(self.plans), "laws": list(self.forms), "units": "objective units (weighted nats/token); relative = / optimum",
            "level": self.level, "nominal": mat(self.nominal), "nominal_relative": mat(self.nominal_relative),
            "draws_mean": mat(self.draws_mean), "draws_high": mat(self.draws_high), "draws_worst": mat(self.draws_worst),
            "expected": [_num(x) for x in self.expected], "worst": [_num(x) for x in self.worst],
            "expected_relative": [_num(x) for x in self.expected_relative],
        }

    def markdown(self, digits: int = 4) -> str:
        """A Markdown table: nominal regret per law, worst over the draws, expected and worst overall."""
        head = "| plan | " + " | ".join(f"under {f} (nominal / worst draw)" for f in self.forms) + " | expected | worst |"
        sep = "|" + "---|" * (len(self.forms) + 3)
        lines = [head, sep]
        for i, p in enumerate(self.plans):
            cells = [f"{self.nominal[i, j]:.{digits}f} ({100 * self.nominal_relative[i, j]:.2f} %) / {self.draws_worst[i, j]:.{digits}f}" for j in range(len(self.forms))]
            lines.append(f"| {p} | " + " | ".join(cells) + f" | {self.expected[i]:.{digits}f} | {self.worst[i]:.{digits}f} |")
        return "\n".join(lines)


def cross_regret(
    plans: Sequence[Plan], ss: ScenarioSet, optimum: np.ndarray, nominal_ss: ScenarioSet, nominal_optimum: np.ndarray,
    *, level: float = 0.9, values: np.ndarray | None = None, nominal_values: np.ndarray | None = None,
) -> RegretTable:
    """The regret table of ``plans`` over the scenarios ``ss`` (optimum f_s^*) and the point estimates
    ``nominal_ss`` (optimum per candidate). Values of the plans may be passed precomputed."""
    F = ss.evaluate(plans) if values is None else values  # (S, P)
    Fn = nominal_ss.evaluate(plans) if nominal_values is None else nominal_values  # (C, P)
    R = np.maximum(F - optimum[:, None], 0.0)
    Rn = np.maximum(Fn - nominal_optimum[:, None], 0.0)
    C = len(ss.candidates)
    P = len(plans)
    high = 100 * (0.5 + level / 2)
    dm, dh, dw = (np.empty((P, C)) for _ in range(3))
    for j in range(C):
        m = ss.candidate == j
        w = ss.prob[m]
        for i in range(P):
            r = R[m, i]
            dm[i, j] = float(np.average(r, weights=w))
            dh[i, j] = float(weighted_percentile(r, w, high)[0])
            dw[i, j] = float(np.max(r))
    expected = ss.prob @ R
    worst = R.max(axis=0)
    expected_rel = ss.prob @ (R / optimum[:, None])
    return RegretTable(
        tuple(p.label for p in plans), tuple(c.name for c in ss.candidates), Rn.T.copy(), (Rn / nominal_optimum[:, None]).T.copy(),
        dm, dh, dw, expected, worst, expected_rel, level,
    )
