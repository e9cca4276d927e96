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

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from .._io import read_json
from .._records import to_jsonable as _clean
from ..constants import ALLOCATION_SCHEMA, package_version
from ..errors import PlannerError

__all__ = ["ReportError", "build_result", "load_result", "law_objects", "REQUIRED_KEYS"]

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
    doc = read_json(path, "result file", ReportError)
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
