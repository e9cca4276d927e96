r"""Which parameters the decision rests on, which runs pin them: plan moves per standard error,
information shares of the fitted runs, and identifiability notes.

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

**Which runs pin a parameter** (:func:`information_shares`). With J the Jacobian of the log
predictions on the fitted rows in the fit's coordinates (log theta for positive parameters) and
Sigma = (J'J)^+ the Gauss-Newton covariance (up to the noise variance), row i's share of the
information on theta_j is

    s_ij = (Sigma J_i')_j^2 / Sigma_jj,        sum_i s_ij = 1   (Sigma J'J Sigma = Sigma),

the first-order fraction of Var(theta_j) that doubling row i's weight would remove. Summed over
the runs of a group (a model size; with or without specialization tokens) it says where the
parameter's information comes from: more runs like the group with the largest share pin the
parameter down fastest (to first order, and for this form; ``planner design`` plans new runs).
The least-squares information is used whatever the fitting loss: the Huber weights of the fit,
min(1, delta/|r_i|), would credit whichever rows happen to fit best.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .._records import Note
from ..fitting.layout import parse_slot_name
from .candidates import Candidate, LocalSolver, Plan, ScenarioSet, Setting

__all__ = ["plan_sensitivity", "identifiability_notes", "Sensitivity", "plan_move", "information_shares"]


@dataclass(frozen=True)
class Sensitivity:
    """Per parameter of one candidate: how the plan moves per standard error (``table``), and which
    groups of fitted runs carry its information (``information``: parameter -> ((group, share), ...),
    largest first; see :func:`information_shares`)."""

    candidate: str
    table: pd.DataFrame
    step: float
    method: str
    information: Mapping[str, tuple[tuple[str, float], ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from .._records import to_jsonable

        return {"candidate": self.candidate, "step_in_se": self.step, "method": self.method, "rows": to_jsonable(self.table.to_dict(orient="records")),
                "information": {k: [[g, float(v)] for g, v in shares] for k, shares in self.information.items()},
                "information_method": INFORMATION_METHOD}

    def top(self, n: int = 5) -> pd.DataFrame:
        """The ``n`` parameters that move the plan most (:func:`plan_move`)."""
        score = [plan_move(row) for row in self.table.to_dict(orient="records")]
        return self.table.assign(score=score).sort_values("score", ascending=False, kind="stable").head(n)


def plan_move(row: Mapping[str, Any]) -> float:
    """How much one parameter moves the plan: the largest |relative move| of N, D or a D'_k per standard
    error (a row of :attr:`Sensitivity.table`, or of its JSON)."""
    vals = [abs(float(v)) for k, v in row.items() if k.endswith("_rel_per_se") and v is not None and math.isfinite(float(v))]
    return max(vals, default=0.0)


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
    information = information_shares(law, top=3)
    table = pd.DataFrame(rows)
    if len(table):
        table["pinned_by"] = [", ".join(f"{g} ({100 * v:.0f} %)" for g, v in information.get(p, ())) or "–" for p in table["param"]]
    return Sensitivity(candidate.name, table, step, method, {p: information[p] for p in table.get("param", []) if p in information})


#: how :func:`information_shares` measures where a parameter's information comes from (for reports)
INFORMATION_METHOD = ("share of the Gauss-Newton information on the parameter carried by each group of fitted runs: "
                      "s_ij = (Sigma J_i')_j^2 / Sigma_jj with Sigma = (J'J)^+, J the Jacobian of the log predictions "
                      "(log theta for positive parameters); more runs like the group with the largest share pin the parameter "
                      "down fastest (first order)")


def run_group(model_size: float, spec_tokens: float) -> str:
    """The group of a fitted run in :func:`information_shares`: its model size, with or without specialization tokens."""
    return f"N = {model_size:.3g}, {'with' if spec_tokens > 0 else 'no'} D'"


def information_shares(law: Any, *, top: int | None = None) -> dict[str, tuple[tuple[str, float], ...]]:
    """For each free parameter of ``law`` (a fitted law with its fit points), the share of its
    Gauss-Newton information carried by each group of fitted runs (:func:`run_group`), largest first
    (``top``: the first ``top`` groups). Empty when the law has no fit points (a law given by
    parameters) or no analytic Jacobian; a parameter the runs carry no information on is left out.
    See the module docstring for the formula."""
    from ..fitting.layout import ParamLayout
    from ..fitting.objective import Objective, make_loss
    from ..laws.base import Inputs

    pts = getattr(law, "points", None)
    if pts is None or len(pts) == 0:
        return {}
    # every row of the points was fitted: with train_on, held_out marks the rows a training-only fit was scored
    # on, while the law itself (refit=True) is the fit on every row
    if "domain" in pts and len(law.domains) > 1:
        known = pts["domain"].astype(str).isin(law.domains)
        pts = pts[known]
        domain_index = np.array([law.domains.index(d) for d in pts["domain"].astype(str)], dtype=int)
    else:
        domain_index = np.zeros(len(pts), dtype=int)
    if len(pts) == 0:
        return {}
    spec = pts["spec_tokens"].to_numpy(float) if "spec_tokens" in pts else np.zeros(len(pts))
    x = Inputs.build(model_size=pts["model_size"].to_numpy(float), pretrain_tokens=pts["pretrain_tokens"].to_numpy(float),
                     spec_tokens=spec, unique_tokens=pts["unique_tokens"].to_numpy(float) if "unique_tokens" in pts else None)
    layout = ParamLayout(law.form, law.domains, fix={name: law.params[name] for name in law.fixed}, tie=law.tied)
    # the Jacobian of log predictions does not depend on the observed losses: any positive stand-in serves
    obj = Objective(law.form, layout, x, np.ones(len(pts)), domain_index, np.ones(len(pts)), make_loss("ls"))
    if not obj.analytic:
        return {}
    _, jac = obj.residual_jacobian(layout.to_theta(dict(law.params)))
    if jac is None or not np.all(np.isfinite(jac)):
        return {}
    sigma = np.linalg.pinv(jac.T @ jac, rcond=1e-12, hermitian=True)
    contrib = (jac @ sigma) ** 2  # rows x free: (Sigma J_i')_j^2
    groups = np.array([run_group(n, d) for n, d in zip(x.model_size, x.spec_tokens)])
    names = np.unique(groups)
    out: dict[str, tuple[tuple[str, float], ...]] = {}
    for j, slot in enumerate(layout.free):
        var = sigma[j, j]
        if not (math.isfinite(var) and var > 0):
            continue
        shares = sorted(((str(g), float(contrib[groups == g, j].sum() / var)) for g in names), key=lambda gs: -gs[1])
        out[slot.name] = tuple(shares[:top] if top else shares)
    return out


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
