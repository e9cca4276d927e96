"""Allocation reports: one result document, rendered to JSON, Markdown, CSV and HTML.

- :mod:`.document`: the result document (``allocation.json``): :func:`build_result`,
  :func:`load_result` (every malformed file a :class:`ReportError` naming the key), :func:`law_objects`;
- :mod:`.render`: Markdown, CSV and the self-contained HTML page, from the document;
- :mod:`.plots`: the plots as inline SVG (matplotlib, imported only for HTML);
- :mod:`.writing`: :func:`render` in memory and :func:`write_reports`, all-or-nothing as a set.
"""

from ..constants import ALLOCATION_SCHEMA
from .document import ReportError, build_result, law_objects, load_result
from .render import render_csv, render_html, render_markdown
from .writing import FORMATS, REPORT_FILES, check_formats, render, write_reports

__all__ = [
    "ALLOCATION_SCHEMA", "FORMATS", "REPORT_FILES", "ReportError", "build_result", "load_result", "law_objects", "render",
    "check_formats", "write_reports", "render_markdown", "render_csv", "render_html",
]
