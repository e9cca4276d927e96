"""The result document (``allocation.json``): building it, reading it back, the laws inside it.

The *result document* is a JSON-able dict (schema ``planner.allocation/1``): the plan's keys at
top level, exactly as ``Allocation.to_dict()`` writes them (``budget``, ``model_size``,
``pretrain_tokens``, ``objective``, ``certified``, ``domains``, ``baselines``, ``flops``,
``binding``, ``marginal_value``, ``warnings``, ...), plus ``laws`` (the law JSON of every law
used), ``scenario`` (the scenario echo), ``sweep`` (the plan at every budget of a sweep, each an
``Allocation.to_dict()``), ``curve`` (objective of the plan and the baselines against compute),
``title`` and ``planner_version``. Every renderer reads only this document, so ``planner report
RESULT.json`` re-renders without re-solving. No timings or dates: reruns are byte-identical.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from .._io import read_json
from .._records import to_jsonable as _clean
from ..constants import ALLOCATION_SCHEMA, package_version
from ..errors import PlannerError

__all__ = ["ReportError", "build_result", "load_result", "law_objects", "headline_block", "headline_tables", "headline_document", "HEADLINE_MEANING", "REQUIRED_KEYS"]

#: keys every result document has (``Allocation.from_dict`` needs them)
REQUIRED_KEYS: tuple[str, ...] = ("budget", "model_size", "pretrain_tokens", "objective", "certified", "domains")


class ReportError(PlannerError):
    """A result file that cannot be read, or a bad report option."""


def build_result(
    allocation: Mapping[str, Any],
    *,
    laws: Mapping[str, Mapping[str, Any]] | None = None,
    scenario: Mapping[str, Any] | None = None,
    sweep: Sequence[Mapping[str, Any]] = (),
    curve: Sequence[Mapping[str, Any]] = (),
    warnings: Sequence[Mapping[str, str]] = (),
    title: str | None = None,
) -> dict[str, Any]:
    """The result document from an allocation dict (``Allocation.to_dict()``) and its context.

    Plan warnings keep ``source: "plan"``; ``warnings`` given here (the law's) get ``source: "law"``
    unless they name their own source.
    """
    doc = dict(_clean(dict(allocation)))
    plan_warnings = [{**w, "source": w.get("source", "plan")} for w in doc.get("warnings") or []]
    law_warnings = [{**dict(w), "source": w.get("source", "law")} for w in warnings]
    doc.update({
        "schema": ALLOCATION_SCHEMA,
        "title": title or doc.get("title") or "Allocation report",
        "planner_version": package_version(),
        "warnings": plan_warnings + _clean(law_warnings),
        "laws": _clean(dict(laws or {})),
        "scenario": _clean(dict(scenario or {})),
        "sweep": _clean([dict(s) for s in sweep]),
        "curve": _clean([dict(c) for c in curve]),
    })
    return doc


def _is_number(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _numbers(path: Path, where: str, d: Mapping[str, Any], keys: Sequence[str] | None) -> None:
    """The values at ``keys`` (all values when None) are numbers or null."""
    if not isinstance(d, dict):
        raise ReportError(f"{path}: {where}: expected an object")
    for key in d if keys is None else keys:
        if not _is_number(d.get(key)):
            raise ReportError(f"{path}: {where}.{key}: expected a number or null, got {type(d.get(key)).__name__}")


def _check_plan(d: Any, where: str, path: Path) -> None:
    """The keys and types the renderers read, so a malformed file fails here with its key, not inside a renderer."""
    if not isinstance(d, dict):
        raise ReportError(f"{path}: {where}: expected an object, got {type(d).__name__}")
    for key in REQUIRED_KEYS:
        if key not in d:
            raise ReportError(f"{path}: {where or 'result'} is missing key {key!r}")
    for key in ("budget", "model_size", "pretrain_tokens", "objective", "pretrain_fraction", "marginal_value", "general_loss"):
        v = d.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ReportError(f"{path}: {where}{'.' if where else ''}{key}: expected a number or null, got {type(v).__name__}")
    for key in ("status", "message", "path", "strategy", "mode"):
        v = d.get(key)
        if v is not None and not isinstance(v, str):
            raise ReportError(f"{path}: {where}{'.' if where else ''}{key}: expected a string, got {type(v).__name__}")
    for key in ("domains", "baselines", "binding", "warnings"):
        v = d.get(key)
        if v is not None and (not isinstance(v, list) or not all(isinstance(x, dict) for x in v)):
            raise ReportError(f"{path}: {where}{'.' if where else ''}{key}: expected a list of objects")
    for i, dom in enumerate(d.get("domains") or []):
        for key in ("spec_tokens", "loss", "weight", "flops", "error"):
            v = dom.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise ReportError(f"{path}: {where}{'.' if where else ''}domains[{i}].{key}: expected a number or null, got {type(v).__name__}")
        iv = dom.get("loss_interval")
        if iv is not None and (not isinstance(iv, list) or len(iv) != 2 or not all(x is None or isinstance(x, (int, float)) for x in iv)):
            raise ReportError(f"{path}: {where}{'.' if where else ''}domains[{i}].loss_interval: expected [low, high]")
    for key in ("flops", "spec_tokens", "check", "flop_model", "constraints"):
        v = d.get(key)
        if v is not None and not isinstance(v, dict):
            raise ReportError(f"{path}: {where}{'.' if where else ''}{key}: expected an object")
    prefix = f"{where}." if where else ""
    flops = dict(d.get("flops") or {})
    _numbers(path, f"{prefix}flops.by_domain", flops.pop("by_domain", None) or {}, None)
    _numbers(path, f"{prefix}flops", flops, None)
    _numbers(path, f"{prefix}spec_tokens", d.get("spec_tokens") or {}, None)
    for i, b in enumerate(d.get("baselines") or []):
        _numbers(path, f"{prefix}baselines[{i}]", b, ("objective", "compute_multiplier"))
    for i, c in enumerate(d.get("binding") or []):
        _numbers(path, f"{prefix}binding[{i}]", c, ("value", "limit", "slack"))
    try:
        from ..allocate.model import Allocation

        Allocation.from_dict(d)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ReportError(f"{path}: {where or 'result'}: not a valid plan ({' '.join(str(exc).split())})") from None


def load_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an ``allocation.json`` written by :func:`write_reports` (to re-render it).

    Every malformed file raises :class:`ReportError` naming the file and the key.
    """
    path = Path(path)
    doc = read_json(path, "result file", ReportError, finite=True)
    if not isinstance(doc, dict) or not str(doc.get("schema", "")).startswith("planner.allocation/"):
        raise ReportError(f"{path}: not a planner result (expected a JSON object with \"schema\": \"{ALLOCATION_SCHEMA}\")")
    major = str(doc["schema"]).split("/", 1)[1]
    if major != ALLOCATION_SCHEMA.split("/", 1)[1]:
        raise ReportError(f"{path}: result schema {doc['schema']!r} is not supported by this planner ({ALLOCATION_SCHEMA})")
    _check_plan(doc, "", path)
    for key in ("sweep", "curve"):
        v = doc.get(key)
        if v is not None and (not isinstance(v, list) or not all(isinstance(x, dict) for x in v)):
            raise ReportError(f"{path}: {key}: expected a list of objects")
    for i, plan in enumerate(doc.get("sweep") or []):
        _check_plan(plan, f"sweep[{i}]", path)
    for i, point in enumerate(doc.get("curve") or []):
        for key in ("budget", "objective"):
            v = point.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise ReportError(f"{path}: curve[{i}].{key}: expected a number or null")
        b = point.get("baselines")
        if b is not None and (not isinstance(b, dict) or not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in b.values())):
            raise ReportError(f"{path}: curve[{i}].baselines: expected an object of numbers")
    for key in ("laws", "scenario"):
        if doc.get(key) is not None and not isinstance(doc.get(key), dict):
            raise ReportError(f"{path}: {key}: expected an object")
    for name, law in (doc.get("laws") or {}).items():
        if not isinstance(law, dict):
            raise ReportError(f"{path}: laws.{name}: expected an object")
    for key in ("title",):
        if doc.get(key) is not None and not isinstance(doc.get(key), str):
            raise ReportError(f"{path}: {key}: expected a string")
    return doc


def law_objects(result: Mapping[str, Any]) -> dict[str, Any]:
    """FittedLaw objects rebuilt from the result's law JSON (a law that cannot be rebuilt is skipped)."""
    from ..fitting import FittedLaw

    out = {}
    for name, d in (result.get("laws") or {}).items():
        try:
            out[name] = FittedLaw.from_dict(d, source=f"laws.{name}")
        except Exception:  # unknown custom form, malformed parameters: the report goes on without it
            continue
    return out


#: what each headline choice means (``[uncertainty] headline``)
HEADLINE_MEANING: dict[str, str] = {
    "nominal": "the optimal plan under the point estimate of the law",
    "robust-mean": "the robust plan with the smallest expected regret over every candidate form and draw",
    "robust-worst": "the robust plan with the smallest worst-case regret over every candidate form and draw",
}


def _share_of_tokens(d: Any, spec: Mapping[str, Any]) -> float | None:
    try:
        total = float(d) + sum(float(v or 0.0) for v in spec.values())
        return float(d) / total if total > 0 else None
    except (TypeError, ValueError):
        return None


def _close(a: Any, b: Any, rel: float = 1e-6) -> bool:
    try:
        return abs(float(a) - float(b)) <= rel * max(abs(float(a)), abs(float(b)))
    except (TypeError, ValueError):
        return False


def headline_block(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Which plan is the headline, its numbers and the interval level (the ``headline`` key of ``allocation.json``).

    Without an ``[uncertainty]`` analysis the headline is the nominal plan (the document's top-level
    plan) and the intervals are its per-domain loss intervals (``interval_level`` of the law). With one,
    it is the decision's headline plan (``[uncertainty] headline``: nominal, robust-mean or
    robust-worst), with the decision ranges at the decision's interval level. Keys:

    - ``plan``: "nominal", "robust-mean" or "robust-worst"; ``label``; ``meaning`` (one sentence);
    - ``model_size``, ``pretrain_tokens``, ``spec_tokens`` (by domain);
    - ``pretrain_share_of_tokens`` = D / (D + sum_k D'_k) and ``pretrain_share_of_compute`` = pretraining
      FLOPs / training FLOPs (inference excluded; equal for one shared model, whose FLOPs per token
      are the same in both phases);
    - ``objective`` (the plan's objective under ``objective_under``, the highest-weight law's point
      estimate) and ``expected_objective`` (robust plans: the mean over every scenario);
    - ``interval_level``, ``interval_over`` and ``intervals`` (quantity -> [low, high]);
    - ``is_nominal``: whether the headline plan is the top-level plan of the document.
    """
    law = next(iter((doc.get("laws") or {}).values()), None) or {}
    dec = doc.get("decision")
    spec = dict(doc.get("spec_tokens") or {d.get("name"): d.get("spec_tokens") for d in doc.get("domains") or [] if d.get("name")})
    top_form = str(law.get("form") or "law")
    if not dec:
        kinds = sorted({str(d.get("interval_kind")) for d in doc.get("domains") or [] if d.get("interval_kind")})
        intervals = {f"loss[{d.get('name')}]": list(d["loss_interval"]) for d in doc.get("domains") or []
                     if d.get("loss_interval") and None not in d["loss_interval"]}
        return {
            "plan": "nominal", "label": f"optimal under the {top_form} point estimate", "meaning": HEADLINE_MEANING["nominal"],
            "model_size": doc.get("model_size"), "pretrain_tokens": doc.get("pretrain_tokens"), "spec_tokens": spec,
            "pretrain_share_of_tokens": _share_of_tokens(doc.get("pretrain_tokens"), spec),
            "pretrain_share_of_compute": doc.get("pretrain_fraction"),
            "objective": doc.get("objective"), "objective_under": f"{top_form} (point estimate)", "expected_objective": None,
            "interval_level": float(law.get("interval_level") or 0.9) if intervals else None,
            "interval_over": (", ".join(kinds) + " intervals of each domain's loss") if intervals else "no intervals (a law without draws or calibration)",
            "intervals": intervals, "is_nominal": True,
        }
    which = str(dec.get("headline") or "nominal")
    h = dec.get("headline_plan") or {}
    cands = dec.get("candidates") or []
    top = max(cands, key=lambda c: float(c.get("weight") or 0.0))["name"] if cands else top_form
    reg = dec.get("regret") or {}
    objective = None
    expected = None
    try:  # objective under the top law = its optimum + the headline plan's nominal regret
        j = list(reg.get("laws") or []).index(top)
        rows = list(reg.get("plans") or [])
        i_head, i_top = rows.index(h.get("label")), rows.index(f"plan under {top}")
        own = float(doc["objective"]) if (which == "nominal" or h.get("source") == top) else None
        optimum = float(doc["objective"]) - float(reg["nominal"][i_top][j]) if doc.get("objective") is not None else None
        objective = own if own is not None else (None if optimum is None else optimum + float(reg["nominal"][i_head][j]))
    except (ValueError, KeyError, IndexError, TypeError):
        objective = None
    for r in dec.get("robust") or []:
        if r.get("strategy") == which:
            expected = r.get("expected_loss")
    hspec = dict(h.get("spec_tokens") or {})
    share = _share_of_tokens(h.get("pretrain_tokens"), hspec)
    ranges = (dec.get("ranges") or {}).get("rows") or {}
    intervals = {k: [v.get("p_low"), v.get("p_high")] for k, v in ranges.items()}
    is_nominal = which == "nominal" and (h.get("source") == top_form or (_close(h.get("model_size"), doc.get("model_size"))
                                                                        and _close(h.get("pretrain_tokens"), doc.get("pretrain_tokens"))))
    if is_nominal:  # the very plan of the document's tables (the decision re-solves it to solver tolerance)
        h = {**h, "model_size": doc.get("model_size"), "pretrain_tokens": doc.get("pretrain_tokens")}
        hspec, share, objective = spec, _share_of_tokens(doc.get("pretrain_tokens"), spec), doc.get("objective")
    return {
        "plan": which, "label": str(h.get("label") or which), "meaning": HEADLINE_MEANING.get(which, which),
        "model_size": h.get("model_size"), "pretrain_tokens": h.get("pretrain_tokens"), "spec_tokens": hspec,
        "pretrain_share_of_tokens": share,
        # one shared model: the same FLOPs per token in both phases, so the shares agree (inference excluded)
        "pretrain_share_of_compute": share if not isinstance(h.get("model_size"), dict) else None,
        "objective": objective, "objective_under": f"{top} (point estimate)", "expected_objective": expected,
        "interval_level": dec.get("interval_level"),
        "interval_over": f"the optimal plans of {dec.get('n_scenarios')} scenarios: {(dec.get('ranges') or {}).get('over', 'draws and forms')}",
        "intervals": intervals, "is_nominal": bool(is_nominal),
    }


def _law_domain(law: Any, name: str) -> str | None:
    if name in law.domains:
        return name
    if len(law.domains) == 1:
        return law.domains[0]
    return None


def predict_at(law: Any, name: str, n: np.ndarray, d: np.ndarray, s: np.ndarray) -> np.ndarray | None:
    """``law``'s loss in domain ``name`` at (N, D, D') arrays, or None where it cannot predict (no such domain, a failing form)."""
    dom = _law_domain(law, name)
    if dom is None:
        return None
    try:
        y = np.asarray(law.predict(model_size=n, pretrain_tokens=d, spec_tokens=s, domain=dom), dtype=float)
    except Exception:  # noqa: BLE001 - a form that cannot predict there: no curve, not a failed report
        return None
    return y if y.shape == n.shape and np.isfinite(y).any() else None


def _main_law(laws: Mapping[str, Any]) -> Any:
    return laws.get("law") if "law" in laws else next(iter(laws.values()), None)


def headline_tables(doc: Mapping[str, Any], laws: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The headline plan's rows of the Domains, FLOPs-per-phase and baselines tables, beside the nominal plan's.

    The nominal plan's rows are the document's own (``domains``, ``flops``, ``baselines``). A robust headline
    plan (N_h, D_h, D'_h) is evaluated here under the same law as the nominal plan (the document's
    ``laws.law``, its point estimate), so both sit in one table on one scale:

    - loss_k = L_k(N_h, D_h, D'_{h,k}) with its interval of the nominal's kind where the law gives one;
    - FLOPs: pretraining c(N_h) D_h, specialization c(N_h) D'_{h,k} (c: the plan's FLOP model per token),
      inference 2 N_h I (the nominal's served tokens I: its inference FLOPs scaled by N_h / N);
    - ``objective`` = sum_k w_k loss_k (``mode = "min-error"``: the headline block's objective, as the
      law's losses are not the objective);
    - each baseline: its objective (as in the nominal table), ``gap`` to the headline plan, ``gap_to_nominal``,
      the decision's gap over forms and draws, and ``compute_multiplier_to_nominal`` (the nominal table's
      figure). The compute the baseline needs to match the headline plan is not solved for; as the headline's
      objective is no lower than the nominal optimum, that multiplier is at most the nominal one
      (``multiplier_is_upper_bound``).

    Returns ``{"plan", "is_nominal", "law", "objective", "domains": [...], "flops": {...}, "baselines": [...]}``
    (``available: False`` with a ``reason`` when the headline plan cannot be evaluated, e.g. per-domain model sizes).
    """
    h = headline_block(doc)
    dec = doc.get("decision") or {}
    gaps = {b.get("strategy"): b for b in dec.get("baselines") or []}
    nominal_obj = doc.get("objective")
    main_law = dict(doc.get("laws") or {}).get("law") or next(iter((doc.get("laws") or {}).values()), None) or {}
    out: dict[str, Any] = {"plan": h.get("plan"), "is_nominal": bool(h.get("is_nominal", True)), "law": main_law.get("form"), "available": True}

    def baselines(head_obj: Any) -> list[dict[str, Any]]:
        rows = []
        for b in doc.get("baselines") or []:
            obj = b.get("objective")
            g = gaps.get(b.get("strategy")) or {}
            rows.append({
                "strategy": b.get("strategy"), "objective": obj,
                "gap": None if obj is None or head_obj is None else float(obj) - float(head_obj),
                "gap_to_nominal": None if obj is None or nominal_obj is None else float(obj) - float(nominal_obj),
                "gap_over_scenarios": g.get("gap"), "gap_interval": g.get("gap_interval"), "gap_level": g.get("level"),
                "compute_multiplier_to_nominal": b.get("compute_multiplier"),
                "multiplier_is_upper_bound": not out["is_nominal"], "note": b.get("note") or "",
            })
        return rows

    if out["is_nominal"]:
        out["objective"] = nominal_obj
        out["domains"] = [{k: d.get(k) for k in ("name", "weight", "spec_tokens", "specialize", "loss", "loss_interval", "interval_kind",
                                                 "error", "target_loss", "flops", "inference_flops")} for d in doc.get("domains") or []]
        out["flops"] = {k: v for k, v in (doc.get("flops") or {}).items()}
        out["baselines"] = baselines(nominal_obj)
        return out

    n, d_tokens, spec = h.get("model_size"), h.get("pretrain_tokens"), dict(h.get("spec_tokens") or {})
    if n is None or d_tokens is None or isinstance(n, Mapping) or isinstance(d_tokens, Mapping):
        return {**out, "available": False, "reason": "the headline plan has no single model size and pretraining token count"}
    laws = law_objects(doc) if laws is None else laws
    law = _main_law(laws)
    try:
        from ..allocate.model import flop_model_from_dict

        per_token = float(np.asarray(flop_model_from_dict(doc.get("flop_model")).per_token(float(n)), dtype=float).ravel()[0])
    except Exception:  # noqa: BLE001 - an unknown FLOP model: the 6N count
        per_token = 6.0 * float(n)
    n_nominal = float(doc.get("model_size") or 0.0)
    scale = float(n) / n_nominal if n_nominal > 0 else math.nan
    domains, objective = [], 0.0
    for dom in doc.get("domains") or []:
        name = str(dom.get("name"))
        s = float(spec.get(name, 0.0) or 0.0)
        y = None if law is None else predict_at(law, name, np.array([float(n)]), np.array([float(d_tokens)]), np.array([s]))
        loss = None if y is None or not math.isfinite(float(y[0])) else float(y[0])
        interval = None
        kind = dom.get("interval_kind")
        if loss is not None and kind and dom.get("loss_interval"):
            try:
                lo, hi = law.predict_interval(kind=kind, model_size=[float(n)], pretrain_tokens=[float(d_tokens)], spec_tokens=[s],
                                              domain=[_law_domain(law, name)])
                interval = [float(lo[0]), float(hi[0])]
            except Exception:  # noqa: BLE001 - no draws or calibration for this interval: none shown
                interval = None
        inf = dom.get("inference_flops")
        domains.append({"name": name, "weight": dom.get("weight"), "spec_tokens": s, "specialize": s > 0, "loss": loss,
                        "loss_interval": interval, "interval_kind": kind if interval else None, "error": None,
                        "target_loss": dom.get("target_loss"), "flops": per_token * s,
                        "inference_flops": None if inf is None else float(inf) * scale})
        objective = None if objective is None or loss is None else objective + float(dom.get("weight") or 1.0) * loss
    if doc.get("mode") == "min-error":
        objective = h.get("objective")
    flops_nominal = doc.get("flops") or {}
    pre = per_token * float(d_tokens)
    specialization = sum(x["flops"] for x in domains)
    inference = float(flops_nominal.get("inference") or 0.0) * scale if flops_nominal.get("inference") else 0.0
    out.update({
        "objective": objective,
        "domains": domains,
        "flops": {"per_token": per_token, "pretrain": pre, "specialization": specialization, "inference": inference,
                  "training": pre + specialization, "total": pre + specialization + inference,
                  "by_domain": {x["name"]: x["flops"] for x in domains}},
    })
    out["baselines"] = baselines(objective)
    return out


def headline_document(doc: Mapping[str, Any], laws: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``headline`` block of ``allocation.json``: :func:`headline_block` with, under ``tables``, the headline plan's
    rows of the Domains, FLOPs-per-phase and baselines tables (:func:`headline_tables`)."""
    tables = headline_tables(doc, laws)
    return {**headline_block(doc), "tables": {k: v for k, v in tables.items() if k not in ("plan", "is_nominal")}}
