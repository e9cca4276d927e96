"""Allocation reports: one result document, rendered to JSON, Markdown, CSV and HTML.

The *result document* is a JSON-able dict (written as ``allocation.json``, schema
``planner.allocation/1``): the plan's keys at top level (``budget``, ``model_size``,
``pretrain_tokens``, ``objective``, ``certified``, ``domains``, ``baselines``, ``flops``,
``binding``, ``marginal_value``, ``warnings``, ...), plus ``laws`` (the law JSON of every law
used), ``scenario`` (the scenario echo), ``sweep`` (the plan at every budget of a sweep),
``curve`` (objective of the plan and the baselines against compute), ``title`` and
``planner_version``. Every renderer reads only this document, so ``planner report
RESULT.json`` re-renders without re-solving.

:func:`write_reports` renders everything in memory, writes into a temporary folder and
renames the files into place: after a failure no report file is left half written.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .._io import read_json
from ..constants import ALLOCATION_SCHEMA, package_version
from ..errors import PlannerError
from .._records import to_jsonable as _clean
from .render import render_csv, render_html, render_markdown

__all__ = [
    "ALLOCATION_SCHEMA",
    "FORMATS",
    "REPORT_FILES",
    "ReportError",
    "build_result",
    "load_result",
    "law_objects",
    "render",
    "write_reports",
    "render_markdown",
    "render_csv",
    "render_html",
]

#: report format -> file name
REPORT_FILES: dict[str, str] = {"json": "allocation.json", "md": "report.md", "csv": "allocation.csv", "html": "report.html"}
FORMATS: tuple[str, ...] = tuple(REPORT_FILES)


class ReportError(PlannerError):
    """A result file that cannot be read, or a bad report option."""


_version = package_version


def build_result(
    allocation: Mapping[str, Any],
    *,
    laws: Mapping[str, Mapping[str, Any]] | None = None,
    scenario: Mapping[str, Any] | None = None,
    sweep: Sequence[Mapping[str, Any]] = (),
    curve: Sequence[Mapping[str, Any]] = (),
    warnings: Sequence[Mapping[str, str]] = (),
    title: str | None = None,
    timings: Mapping[str, float] | None = None,
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
        "planner_version": _version(),
        "warnings": plan_warnings + _clean(law_warnings),
        "laws": _clean(dict(laws or {})),
        "scenario": _clean(dict(scenario or {})),
        "sweep": _clean([dict(s) for s in sweep]),
        "curve": _clean([dict(c) for c in curve]),
    })
    if timings:
        doc["timings"] = _clean(dict(timings))
    return doc


def load_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an ``allocation.json`` written by :func:`write_reports` (to re-render it)."""
    path = Path(path)
    doc = read_json(path, "result file", ReportError)
    if not isinstance(doc, dict) or not str(doc.get("schema", "")).startswith("planner.allocation/"):
        raise ReportError(f"{path}: not a planner result (expected a JSON object with \"schema\": \"{ALLOCATION_SCHEMA}\")")
    major = str(doc["schema"]).split("/", 1)[1]
    if major != ALLOCATION_SCHEMA.split("/", 1)[1]:
        raise ReportError(f"{path}: result schema {doc['schema']!r} is not supported by this planner ({ALLOCATION_SCHEMA})")
    for key in ("budget", "model_size", "pretrain_tokens", "objective", "domains"):
        if key not in doc:
            raise ReportError(f"{path}: result is missing key {key!r}")
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


def _json_text(result: Mapping[str, Any]) -> str:
    return json.dumps(result, indent=2, allow_nan=False) + "\n"


def _check_formats(formats: Iterable[str]) -> list[str]:
    out = []
    for f in formats:
        f = f.strip().lower()
        if f == "markdown":
            f = "md"
        if f not in REPORT_FILES:
            raise ReportError(f"unknown report format {f!r}; choose from {', '.join(FORMATS)}")
        if f not in out:
            out.append(f)
    if not out:
        raise ReportError("no report format chosen")
    return out


def render(result: Mapping[str, Any], formats: Iterable[str] = FORMATS) -> dict[str, str]:
    """Render the chosen formats in memory: file name -> text."""
    from .plots import render_plots

    texts: dict[str, str] = {}
    for fmt in _check_formats(formats):
        if fmt == "json":
            texts[REPORT_FILES[fmt]] = _json_text(result)
        elif fmt == "md":
            texts[REPORT_FILES[fmt]] = render_markdown(result)
        elif fmt == "csv":
            texts[REPORT_FILES[fmt]] = render_csv(result)
        elif fmt == "html":
            texts[REPORT_FILES[fmt]] = render_html(result, render_plots(result, law_objects(result)))
    return texts


def write_reports(result: Mapping[str, Any], out_dir: str | os.PathLike[str], formats: Iterable[str] = FORMATS) -> list[Path]:
    """Render and write the reports into ``out_dir`` atomically; returns the paths written.

    Everything is rendered first, then written into a temporary folder inside ``out_dir``
    and renamed into place; on any failure the temporary folder is removed and no report
    file is left (a folder this call created is removed again).
    """
    out = Path(out_dir)
    created = not out.exists()
    tmp: Path | None = None
    try:
        texts = render(result, formats)
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out, prefix=".planner-report-"))
        for name, text in texts.items():
            with open(tmp / name, "w", encoding="utf-8", newline="") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        written = []
        for name in texts:
            os.replace(tmp / name, out / name)
            written.append(out / name)
        return written
    except BaseException:
        if created and out.exists():
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
