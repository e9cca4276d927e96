"""Rendering the report set and writing it all-or-nothing.

The output folder is written as a *set*: a reader sees either the complete old set or the
complete new set, never a mix. :func:`write_reports`

1. renders every chosen format in memory (a renderer that fails leaves the disk untouched);
2. creates a fresh temporary folder beside the target (``.<name>.planner-tmp-XXXX`` in the
   same parent, so renames stay on one file system), hard-links (or copies) into it every file
   of the target that this call does not rewrite, and writes the new files (fsync'ed);
3. swaps the temporary folder in: one atomic ``renameat2(RENAME_EXCHANGE)`` of the two folders
   on Linux; elsewhere two renames (target -> ``.<name>.planner-old-XXXX``, temporary ->
   target; a failure between them renames the old folder back);
4. removes the old folder.

On any failure (an exception, SIGINT or SIGTERM) the temporary and old folders are removed and
the target is left as it was; a folder this call created is removed again. The target must be
a folder of plain files (a folder holding sub-folders is refused: it is not a report set).
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from .document import ReportError, law_objects
from .render import render_csv, render_html, render_markdown

__all__ = ["FORMATS", "REPORT_FILES", "render", "write_reports", "write_file_set", "check_formats", "TEMP_PREFIX"]

#: report format -> file name
REPORT_FILES: dict[str, str] = {"json": "allocation.json", "md": "report.md", "csv": "allocation.csv", "html": "report.html"}
FORMATS: tuple[str, ...] = tuple(REPORT_FILES)
#: temporary folders beside the target start with ``.<target name>`` followed by this
TEMP_PREFIX = ".planner-"


def _json_text(result: Mapping[str, Any]) -> str:
    return json.dumps(result, indent=2, allow_nan=False) + "\n"


def check_formats(formats: Iterable[str]) -> list[str]:
    """Normalise report format names (``markdown`` -> ``md``); unknown ones are a ReportError."""
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
    """Render the chosen formats in memory: file name -> text.

    The laws rebuilt from the document and each candidate's in-sample residuals are computed once and
    shared by the Markdown, CSV and HTML renderers."""
    texts: dict[str, str] = {}
    chosen = check_formats(formats)
    laws: dict[str, Any] | None = None
    residuals: list[dict[str, Any]] | None = None
    if "md" in chosen or "html" in chosen or "csv" in chosen:
        from .curves import form_residuals

        laws = law_objects(result)
        residuals = form_residuals(result, laws) if "md" in chosen or "html" in chosen else None
    for fmt in chosen:
        if fmt == "json":
            texts[REPORT_FILES[fmt]] = _json_text(result)
        elif fmt == "md":
            texts[REPORT_FILES[fmt]] = render_markdown(result, laws=laws, residuals=residuals)
        elif fmt == "csv":
            texts[REPORT_FILES[fmt]] = render_csv(result, laws=laws)
        elif fmt == "html":
            from .plots import render_plots  # matplotlib: only when a page with plots is asked for

            texts[REPORT_FILES[fmt]] = render_html(result, render_plots(result, laws or {}, residuals), laws=laws)
    return texts


# --------------------------------------------------------------------------- the swap
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two folders (Linux ``renameat2``); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: the file system cannot exchange
        return False
    raise OSError(err, os.strerror(err), str(a))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def _signals_raise() -> Iterator[None]:
    """While writing, SIGTERM raises SystemExit (SIGINT already raises KeyboardInterrupt), so cleanup runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except (ValueError, OSError):  # pragma: no cover - not the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _carry_over(src: Path, dst: Path, keep: Iterable[str]) -> None:
    """Hard-link (or copy) the files of ``src`` not rewritten into ``dst``."""
    for name in keep:
        try:
            os.link(src / name, dst / name)
        except OSError:
            shutil.copy2(src / name, dst / name)


def _write_file(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _existing_files(out: Path) -> list[str]:
    names = []
    for entry in sorted(os.listdir(out)):
        p = out / entry
        if p.is_dir() and not p.is_symlink():
            raise ReportError(f"{out}: the output folder holds a folder ({entry}); reports are written as a set into a "
                              "folder of plain files: choose a new or empty folder")
        names.append(entry)
    return names


def write_reports(result: Mapping[str, Any], out_dir: str | os.PathLike[str], formats: Iterable[str] = FORMATS) -> list[Path]:
    """Render and write the reports into ``out_dir`` as one all-or-nothing set; returns the paths written.

    Files of ``out_dir`` that this call does not rewrite are kept (e.g. ``allocation.json`` when
    only the HTML is re-rendered). See the module docstring for the scheme.
    """
    return write_file_set(out_dir, render(result, formats))


def write_file_set(out_dir: str | os.PathLike[str], texts: Mapping[str, str]) -> list[Path]:
    """Write ``{file name: text}`` into ``out_dir`` as one all-or-nothing set (the module docstring's
    scheme); files of ``out_dir`` not named in ``texts`` are kept. Every output folder planner writes
    (reports, ``planner design``) goes through here."""
    out = Path(out_dir)
    texts = dict(texts)
    if out.exists() and not out.is_dir():
        raise ReportError(f"{out}: the output path is a file, not a folder")
    resolved = out.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise ReportError(f"{out}: the output folder is the current folder or holds it; reports replace their folder as a set: "
                          "choose a sub-folder (e.g. -o out/plan)")
    existing = _existing_files(out) if out.exists() else None
    parent = resolved.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    old: Path | None = None
    with _signals_raise():
        try:
            tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{resolved.name}{TEMP_PREFIX}tmp-"))
            if existing is not None:
                _carry_over(resolved, tmp, [n for n in existing if n not in texts])
            for name, text in texts.items():
                _write_file(tmp / name, text)
            _fsync_dir(tmp)
            if existing is None:
                os.rename(tmp, resolved)  # fails if a folder appeared meanwhile: nothing replaced
                tmp = None
            elif _exchange(tmp, resolved):
                old, tmp = tmp, None  # the old set now sits at the temporary path
            else:
                old = parent / f".{resolved.name}{TEMP_PREFIX}old-{secrets.token_hex(6)}"
                os.rename(resolved, old)
                try:
                    os.rename(tmp, resolved)
                except BaseException:
                    os.rename(old, resolved)
                    old = None
                    raise
                tmp = None
            _fsync_dir(parent)
            return [resolved / name if out.is_absolute() else out / name for name in texts]
        finally:
            for leftover in (tmp, old):
                if leftover is not None:
                    shutil.rmtree(leftover, ignore_errors=True)
