r"""The numbers behind the per-form plots: loss against D' per domain, and in-sample residuals per form.

Both read the result document (``allocation.json``) and the laws rebuilt from it
(:func:`planner.report.law_objects`); neither plots (the SVGs are drawn in :mod:`.plots`, the
Markdown tables in :mod:`.render`), so the Markdown report shows the same numbers without matplotlib.

*Candidates* are the law's ensemble (``law.candidates``, ``form = "auto"``), each with its weight,
or the law alone (weight 1).

Loss against D' (:func:`dprime_curves`), for every domain k of the plan and every candidate j:

- the *fit curve* L_k^j(N_ref, D_ref, D') through the runs: (N_ref, D_ref) is the largest model
  size with specialized rows in domain k and its largest branch point D, the runs drawn as points;
- the *plan curve* L_k^j(N_plan, D_plan, D') at the plan's N and D (nats/token), with the planned
  D'_k marked (and the headline plan's D'_k when the headline is a robust plan).

In-sample residuals (:func:`form_residuals`): each candidate's relative error
(predicted - observed) / observed on the rows it was fitted to (held-out rows left out), from
:func:`planner.fitting.adequacy.residual_table`; the report averages it by model size N, pretraining
tokens D and specialization tokens D' (the plot) and by kind of row (the table).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .document import predict_at

__all__ = ["candidate_laws", "dprime_curves", "form_residuals", "plan_rows", "predict_at", "GRID_POINTS"]

#: points per curve (log-spaced in D')
GRID_POINTS = 40


def candidate_laws(law_objects: Mapping[str, Any], result: Mapping[str, Any] | None = None) -> list[tuple[str, Any, float]]:
    """(form name, FittedLaw, weight) of every candidate: the forms a scenario's ``[uncertainty] forms`` fitted
    (laws ``candidates.<form>``, weighted as in the decision), else the main law's ensemble, else the law itself."""
    listed = {k.split(".", 1)[1]: v for k, v in law_objects.items() if k.startswith("candidates.")}
    if listed:
        weights = {c.get("name"): float(c.get("weight") or 0.0) for c in ((result or {}).get("decision") or {}).get("candidates") or []}
        w = [weights.get(name, 1.0 / len(listed)) for name in listed]
        total = sum(w) or 1.0
        return [(name, law, x / total) for (name, law), x in zip(listed.items(), w)]
    law = law_objects.get("law") if "law" in law_objects else next(iter(law_objects.values()), None)
    if law is None:
        return []
    ens = getattr(law, "candidates", None)
    if ens is not None and len(getattr(ens, "candidates", ())) > 0:
        return [(str(c.form.name), c, float(w)) for c, w in zip(ens.candidates, ens.weights)]
    return [(str(law.form.name), law, 1.0)]


def _points_frame(result: Mapping[str, Any]) -> pd.DataFrame | None:
    law = next(iter((result.get("laws") or {}).values()), None) or {}
    pts = law.get("points") or {}
    need = ("model_size", "pretrain_tokens", "observed")
    if not pts or any(not pts.get(k) for k in need):
        return None
    n = len(pts["observed"])
    df = pd.DataFrame({
        "model_size": pd.to_numeric(pd.Series(pts["model_size"]), errors="coerce"),
        "pretrain_tokens": pd.to_numeric(pd.Series(pts["pretrain_tokens"]), errors="coerce"),
        "spec_tokens": pd.to_numeric(pd.Series(pts.get("spec_tokens") or [0.0] * n), errors="coerce").fillna(0.0),
        "domain": [str(v) for v in (pts.get("domain") or ["general"] * n)],
        "observed": pd.to_numeric(pd.Series(pts["observed"]), errors="coerce"),
        "held_out": [bool(v) for v in (pts.get("held_out") or [False] * n)],
    })
    return df[np.isfinite(df["model_size"]) & np.isfinite(df["pretrain_tokens"]) & np.isfinite(df["observed"])].reset_index(drop=True)


def dprime_curves(result: Mapping[str, Any], law_objects: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per plan domain: the runs (D' > 0), each candidate's fit curve and plan curve, the planned D'_k.

    Returns one dict per domain with keys ``domain``, ``points`` (DataFrame of that domain's
    specialized rows: model_size, pretrain_tokens, spec_tokens, observed, held_out, reference),
    ``reference`` ((N_ref, D_ref) or None), ``plan`` ((N, D) of the plan), ``planned`` (D'_k of
    the plan), ``headline`` (the headline plan's D'_k and (N, D) when it is not the plan; else None)
    and ``curves``: per candidate ``{"form", "weight", "fit_x", "fit_y", "plan_x", "plan_y",
    "at_plan"}`` (``at_plan``: loss at (N, D, D'_k) of the plan; arrays None where the form
    cannot predict). Empty when the plan has no domains, no N or D, or no law could be rebuilt.
    """
    cands = candidate_laws(law_objects, result)
    n_plan, d_plan = result.get("model_size"), result.get("pretrain_tokens")
    domains = [d for d in (result.get("domains") or []) if d.get("name")]
    if not cands or not n_plan or not d_plan or not domains:
        return []
    n_plan, d_plan = float(n_plan), float(d_plan)
    from .document import headline_block

    head = headline_block(result)
    pts_all = _points_frame(result)
    out = []
    for dom in domains:
        name = str(dom["name"])
        planned = float(dom.get("spec_tokens") or 0.0)
        pts = pd.DataFrame(columns=["model_size", "pretrain_tokens", "spec_tokens", "observed", "held_out", "reference"])
        ref = None
        if pts_all is not None:
            sel = pts_all[(pts_all["spec_tokens"] > 0) & (pts_all["domain"] == name)]
            if sel.empty and len(set(pts_all["domain"])) == 1:
                sel = pts_all[pts_all["spec_tokens"] > 0]
            if not sel.empty:
                n_ref = float(sel["model_size"].max())
                d_ref = float(sel.loc[sel["model_size"] == n_ref, "pretrain_tokens"].max())
                ref = (n_ref, d_ref)
                pts = sel.assign(reference=(sel["model_size"] == n_ref) & (sel["pretrain_tokens"] == d_ref)).reset_index(drop=True)
        h_spec = None
        if head and not head.get("is_nominal", True) and not isinstance(head.get("model_size"), Mapping):
            v = (head.get("spec_tokens") or {}).get(name)
            if v is not None and head.get("model_size") and head.get("pretrain_tokens"):
                h_spec = (float(v), float(head["model_size"]), float(head["pretrain_tokens"]))
        xs = [x for x in [planned, h_spec[0] if h_spec else 0.0] if x > 0]
        if len(pts):
            xs += [float(pts["spec_tokens"].min()), float(pts["spec_tokens"].max())]
        if not xs:
            xs = [d_plan * 1e-3, d_plan * 0.3]
        plan_x = np.geomspace(min(xs) / 3.0, max(xs) * 3.0, GRID_POINTS)
        fit_x = None if ref is None else np.geomspace(float(pts["spec_tokens"].min()) / 1.5, float(pts["spec_tokens"].max()) * 1.5, GRID_POINTS)
        curves = []
        for form, law, w in cands:
            plan_y = predict_at(law, name, np.full(plan_x.size, n_plan), np.full(plan_x.size, d_plan), plan_x)
            fit_y = None if fit_x is None else predict_at(law, name, np.full(fit_x.size, ref[0]), np.full(fit_x.size, ref[1]), fit_x)
            at = predict_at(law, name, np.array([n_plan]), np.array([d_plan]), np.array([planned]))
            curves.append({"form": form, "weight": w, "fit_x": fit_x, "fit_y": fit_y, "plan_x": plan_x, "plan_y": plan_y,
                           "at_plan": None if at is None or not math.isfinite(float(at[0])) else float(at[0])})
        out.append({"domain": name, "points": pts, "reference": ref, "plan": (n_plan, d_plan), "planned": planned,
                    "headline": h_spec, "curves": curves})
    return out


def form_residuals(result: Mapping[str, Any], law_objects: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per candidate: its in-sample residual table and its adequacy (held-out rows left out).

    Each item: ``{"form", "weight", "table" (residual_table), "adequacy" {"base", "specialized": {"mean",
    "max", "n"}}}``; summaries by N, D or D' are ``planner.fitting.adequacy.residual_summary(item["table"], key)``
    (not computed here: no output shows them, and they were 60 % of this function's time).
    """
    from ..fitting.adequacy import residual_table

    pts = _points_frame(result)
    cands = candidate_laws(law_objects, result)
    if pts is None or not cands:
        return []
    fitted = pts[~pts["held_out"]].reset_index(drop=True)
    out = []
    for form, law, w in cands:
        runs = fitted.drop(columns=["held_out"]).assign(**{law.form.target: fitted["observed"]})
        try:
            t = residual_table(law, runs)
        except Exception:  # noqa: BLE001 - a candidate that cannot predict these rows: left out
            continue
        t = t[np.isfinite(t["rel_error"])]
        if t.empty:
            continue
        adequacy = {}
        for kind in ("base", "specialized"):
            e = t.loc[t["kind"] == kind, "rel_error"].abs()
            adequacy[kind] = {"mean": float(e.mean()) if len(e) else None, "max": float(e.max()) if len(e) else None, "n": int(len(e))}
        out.append({"form": form, "weight": w, "table": t, "adequacy": adequacy})
    return out


def plan_rows(r: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every candidate's plan and every robust plan of the decision, as records (numbers, not text).

    Keys: ``plan`` (label), ``kind`` ("candidate" or "robust"), ``weight`` (the candidate's weight; None
    for robust plans), ``model_size``, ``pretrain_tokens``, ``spec_tokens`` (by domain),
    ``pretrain_share`` = D / (D + sum_k D'_k), ``headline`` (bool).
    """
    d = r.get("decision") or {}
    weights = {c.get("name"): c.get("weight") for c in d.get("candidates") or []}
    head = (d.get("headline_plan") or {}).get("label")
    out = []
    for p in d.get("plans") or []:
        out.append({"plan": p.get("label"), "kind": "candidate", "weight": weights.get(p.get("source")), "plan_dict": p})
    for x in d.get("robust") or []:
        out.append({"plan": x["plan"].get("label"), "kind": "robust", "weight": None, "plan_dict": x["plan"]})
    rows = []
    for o in out:
        p = o.pop("plan_dict")
        spec = dict(p.get("spec_tokens") or {})
        total = None
        try:
            total = float(p.get("pretrain_tokens")) + sum(float(v or 0.0) for v in spec.values())
        except (TypeError, ValueError):
            pass
        rows.append({**o, "model_size": p.get("model_size"), "pretrain_tokens": p.get("pretrain_tokens"), "spec_tokens": spec,
                     "pretrain_share": (float(p["pretrain_tokens"]) / total) if total else None, "headline": o["plan"] == head})
    return rows
