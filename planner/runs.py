"""Validated run tables: load, rename, check and filter the runs a scaling law is fitted to.

A *run table* has one row per measured checkpoint (or per final model) with these canonical columns:

==================== ==========================================================================
``model_size``       N, number of model parameters (count, > 0)
``pretrain_tokens``  D, tokens seen during pretraining (count, > 0)
``spec_tokens``      tokens seen during specialisation (continued training) after pretraining
                     (count, >= 0; 0 means "not specialised")
``domain``           the domain the loss was measured on (text; default ``"general"``)
``loss``             the measured loss, usually cross-entropy in nats per token (> 0)
==================== ==========================================================================

and these optional ones:

==================== ==========================================================================
``run``              run identifier; rows sharing it are checkpoints of one training run
``family``           model family / data set / recipe the run belongs to (text)
``flops``            training compute C in FLOPs (> 0)
``unique_tokens``    distinct tokens in the pretraining data (count, >= 0)
``spec_domain``      the domain the copy was specialised on (text; ``""`` if not specialised)
``spec_unique_tokens`` distinct tokens in the specialisation data (count, >= 0)
``error``            an evaluation error rate (fraction in [0, 1])
``step``             optimizer step of the checkpoint (count)
==================== ==========================================================================

:func:`load_runs` reads CSV/TSV, Parquet, JSON-lines / JSON or a DataFrame, maps user column names onto
the canonical ones, validates every value, fills documented defaults and applies explicit filters.
Everything it derived or removed is reported as :class:`RunsNote` objects in ``df.attrs["notes"]``;
nothing is dropped silently. Bad input raises :class:`RunsError` naming the source, the column and
the 1-based data row numbers (the first data row under a CSV header is row 1).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._warnings import warn_user
from .errors import PlannerError, PlannerWarning
from .selection import SelectionError, select_rows
__all__ = [
    "CANONICAL",
    "OPTIONAL",
    "RunsError",
    "RunsNote",
    "SANITY_CODES",
    "load_runs",
    "runs_from_arrays",
    "summarize_runs",
]

CANONICAL: tuple[str, ...] = ("model_size", "pretrain_tokens", "spec_tokens", "domain", "loss")
OPTIONAL: tuple[str, ...] = (
    "run",
    "family",
    "flops",
    "unique_tokens",
    "spec_domain",
    "spec_unique_tokens",
    "error",
    "step",
)
ALLOWED: tuple[str, ...] = CANONICAL + OPTIONAL

NUMERIC: tuple[str, ...] = (
    "model_size",
    "pretrain_tokens",
    "spec_tokens",
    "loss",
    "flops",
    "unique_tokens",
    "spec_unique_tokens",
    "error",
    "step",
)
TEXT: tuple[str, ...] = ("domain", "spec_domain", "run", "family")

DEFAULT_DOMAIN = "general"
ROW_NUMBERS_HINT = "(data row numbers, header excluded)"

# Value rules: columns that must be > 0, and columns that must be >= 0.
_POSITIVE = ("model_size", "pretrain_tokens", "loss", "flops")
_NON_NEGATIVE = ("spec_tokens", "unique_tokens", "spec_unique_tokens", "step")

_READERS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}
_COMPRESSION = (".gz", ".bz2", ".xz", ".zip", ".zst")
_SHOW = 10  # how many rows / values a message lists before "(and k more)"


class RunsError(PlannerError):
    """Bad run-table input. The message names the source file (or ``"<DataFrame>"``), the column
    and the 1-based data row numbers involved."""


@dataclass(frozen=True)
class RunsNote:
    """Something :func:`load_runs` derived, defaulted or filtered ("warnings as data").

    Attributes:
        code: short machine-readable kind, e.g. ``"derived-pretrain-tokens"``, ``"filtered"``,
            ``"default-domain"``, ``"default-spec-tokens"``, ``"default-spec-domain"``,
            ``"derived-run-ids"``.
        message: human-readable explanation.
        rows: 1-based data row numbers of the source affected (empty = all rows / not row-specific).
    """

    code: str
    message: str
    rows: tuple[int, ...] = ()


# --------------------------------------------------------------------------------------------
# formatting helpers


def _fmt_rows(rows: Sequence[int]) -> str:
    """``"row 3"`` / ``"rows 3, 7 (and 12 more)"``."""
    rows = [int(r) for r in rows]
    if len(rows) == 1:
        return f"row {rows[0]}"
    shown = ", ".join(str(r) for r in rows[:_SHOW])
    more = f" (and {len(rows) - _SHOW} more)" if len(rows) > _SHOW else ""
    return f"rows {shown}{more}"


def _fmt_values(values: Sequence[Any]) -> str:
    shown = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in values[:_SHOW])
    more = f", ... ({len(values) - _SHOW} more)" if len(values) > _SHOW else ""
    return shown + more


def _rows_of(mask: pd.Series) -> list[int]:
    """1-based source row numbers of the True entries (the index holds 0-based source positions)."""
    return [int(i) + 1 for i in mask.index[mask.to_numpy(dtype=bool)]]


# --------------------------------------------------------------------------------------------
# reading


def _reader_kind(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION:
        suffixes = suffixes[:-1]
    if not suffixes:
        return None
    kind = _READERS.get(suffixes[-1])
    if kind == "parquet" and path.suffix.lower() in _COMPRESSION:
        return None  # a compressed parquet file is not something pandas reads
    return kind


def _text_file_columns(columns: Mapping[str, str]) -> list[str]:
    """File column names that will become text columns (read them as strings, e.g. keep '007')."""
    names = [user for user, canon in columns.items() if canon in TEXT]
    names += [c for c in TEXT if c not in columns.values()]
    return names


def _read(path: Path, label: str, columns: Mapping[str, str]) -> pd.DataFrame:
    kind = _reader_kind(path)
    if kind is None:
        raise RunsError(
            f"{label}: unknown file type {''.join(path.suffixes) or '(no extension)'!r}; expected one of "
            f"{', '.join(sorted(_READERS))} (CSV/TSV and JSON-lines may also end in "
            f"{', '.join(_COMPRESSION)})"
        )
    if not path.exists():
        raise RunsError(f"{label}: file not found")
    if not path.is_file():
        raise RunsError(f"{label}: not a regular file")
    try:
        if kind in ("csv", "tsv"):
            text_cols = _text_file_columns(columns)
            sep = "\t" if kind == "tsv" else ","
            frame = pd.read_csv(path, sep=sep, dtype={c: str for c in text_cols})
            # pandas renames a repeated header name ('model_size' -> 'model_size.1'): read the header
            # as written to tell a repeat from a column really named 'model_size.1'
            header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False)
            names = [str(v) for v in header.iloc[0].tolist()] if len(header) else []
            frame.attrs["header_repeats"] = _repeats(names, list(map(str, frame.columns)))
            return frame
        if kind == "parquet":
            return pd.read_parquet(path)
        if kind == "jsonl":
            return pd.read_json(path, lines=True, dtype=False)
        with path.open(encoding="utf-8") as fh:
            records = json.load(fh)
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise RunsError(f"{label}: a .json file must hold a list of records (objects), one per row")
        return pd.DataFrame.from_records(records)
    except RunsError:
        raise
    except pd.errors.EmptyDataError:
        raise RunsError(f"{label}: the file is empty (no header and no data rows)") from None
    except ImportError as exc:
        raise RunsError(f"{label}: cannot read {kind} files ({exc}); install pyarrow") from exc
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise RunsError(f"{label}: could not be read as {kind}: {exc}") from exc
    except Exception as exc:  # pyarrow raises its own error types for corrupt files
        raise RunsError(f"{label}: could not be read as {kind}: {type(exc).__name__}: {exc}") from exc


def _repeats(header: Sequence[str], columns: Sequence[str]) -> dict[str, list[str]]:
    """Header names written more than once -> the names pandas gave the copies (``x``, ``x.1``, ...)."""
    out: dict[str, list[str]] = {}
    if len(header) != len(columns):
        return out
    for name in dict.fromkeys(header):
        positions = [i for i, h in enumerate(header) if h == name]
        if len(positions) > 1:
            out[name] = [columns[i] for i in positions]
    return out


# --------------------------------------------------------------------------------------------
# column mapping


def _parse_columns(columns: Mapping[str, str] | str | None, label: str) -> dict[str, str]:
    if columns is None:
        return {}
    if isinstance(columns, str):
        mapping: dict[str, str] = {}
        for piece in columns.split(","):
            if not piece.strip():
                continue
            user, sep, canon = piece.partition("=")
            user, canon = user.strip(), canon.strip()
            if not sep or not user or not canon or "=" in canon:
                raise RunsError(
                    f"{label}: malformed column mapping {piece.strip()!r} in columns={columns!r}; "
                    "expected comma-separated 'your_name=canonical_name' pairs, "
                    "e.g. 'N_params=model_size,D_tokens=pretrain_tokens'"
                )
            if user in mapping:
                raise RunsError(f"{label}: column {user!r} is mapped twice in columns={columns!r}")
            mapping[user] = canon
        return mapping
    if isinstance(columns, Mapping):
        return {k: v for k, v in columns.items()}
    raise RunsError(
        f"{label}: columns= must be a mapping {{your_name: canonical_name}} or a string "
        f"'your_name=canonical_name,...', not {type(columns).__name__}"
    )


def _apply_columns(raw: pd.DataFrame, mapping: dict[str, str], label: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """Rename the user's columns; return the renamed frame and {canonical: original name}."""
    have = list(raw.columns)
    dupes = sorted({str(c) for c in have if have.count(c) > 1})
    if dupes:
        raise RunsError(f"{label}: duplicate column names {dupes}")
    missing = [k for k in mapping if k not in raw.columns]
    if missing:
        raise RunsError(
            f"{label}: columns= maps {', '.join(repr(m) for m in missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not in the data; its columns are: "
            f"{', '.join(repr(str(c)) for c in have)}"
        )
    unknown = {k: v for k, v in mapping.items() if v not in ALLOWED}
    if unknown:
        bad = ", ".join(f"{k!r} -> {v!r}" for k, v in unknown.items())
        raise RunsError(
            f"{label}: columns= maps onto unknown name(s) {bad}; allowed canonical names are: "
            f"{', '.join(ALLOWED)}"
        )
    targets = [v for k, v in mapping.items() if k != v]
    twice = sorted({v for v in targets if list(mapping.values()).count(v) > 1})
    if twice:
        raise RunsError(f"{label}: columns= maps more than one column onto {', '.join(map(repr, twice))}")
    clash = [v for k, v in mapping.items() if k != v and v in raw.columns and v not in mapping]
    if clash:
        raise RunsError(
            f"{label}: columns= renames a column onto {', '.join(map(repr, clash))}, but the data already has "
            f"a column of that name; rename or drop the existing one first"
        )
    origin = {c: str(c) for c in raw.columns if c in ALLOWED and c not in mapping}
    origin.update({canon: str(user) for user, canon in mapping.items()})
    return raw.rename(columns=mapping), origin


def _col_label(col: str, origin: Mapping[str, str]) -> str:
    src = origin.get(col)
    return f"column {col!r}" + (f" (your column {src!r})" if src and src != col else "")


# --------------------------------------------------------------------------------------------
# validation


def _coerce_numeric(
    df: pd.DataFrame, needed: set[str], origin: Mapping[str, str]
) -> tuple[dict[str, pd.Series], list[str]]:
    """Convert numeric columns to float64; return them and the list of problems found."""
    out: dict[str, pd.Series] = {}
    problems: list[str] = []
    for col in NUMERIC:
        if col not in df.columns:
            continue
        raw = df[col]
        if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
            num = raw.astype("float64")
            blank = num.isna()
        else:  # text or mixed cells; True/False are not accepted as numbers
            cells = raw.astype(object)
            blank = cells.map(_is_blank).astype(bool)
            is_bool = cells.map(lambda v: isinstance(v, (bool, np.bool_))).astype(bool)
            num = pd.to_numeric(cells.mask(is_bool | blank, None), errors="coerce").astype("float64")
        name = _col_label(col, origin)
        non_numeric = num.isna() & ~blank
        if non_numeric.any():
            problems.append(
                f"{name}: non-numeric values at {_fmt_rows(_rows_of(non_numeric))}: "
                f"{_fmt_values(list(raw[non_numeric]))}"
            )
        missing = num.isna() & ~non_numeric
        if col in needed and missing.any():
            problems.append(f"{name}: missing (empty or NaN) values at {_fmt_rows(_rows_of(missing))}")
        inf = np.isinf(num)
        if inf.any():
            problems.append(f"{name}: infinite values at {_fmt_rows(_rows_of(inf))}")
        finite = num.notna() & ~inf
        if col in _POSITIVE:
            bad = finite & (num <= 0)
            if bad.any():
                problems.append(
                    f"{name}: zero or negative values at {_fmt_rows(_rows_of(bad))}: {_fmt_values(list(num[bad]))}"
                )
        elif col in _NON_NEGATIVE:
            bad = finite & (num < 0)
            if bad.any():
                problems.append(
                    f"{name}: negative values at {_fmt_rows(_rows_of(bad))}: {_fmt_values(list(num[bad]))}"
                )
        elif col == "error":
            bad = finite & ((num < 0) | (num > 1))
            if bad.any():
                problems.append(
                    f"{name}: error rates outside [0, 1] at {_fmt_rows(_rows_of(bad))}: "
                    f"{_fmt_values(list(num[bad]))}"
                )
        out[col] = num
    return out, problems


def _is_blank(v: Any) -> bool:
    """True for a missing cell (None, NaN, NA) or a whitespace-only string."""
    if isinstance(v, str):
        return not v.strip()
    return v is None or (pd.api.types.is_scalar(v) and bool(pd.isna(v)))


def _as_text(s: pd.Series) -> pd.Series:
    """Object column of Python str; missing cells become ""."""
    return s.astype(object).map(lambda v: "" if _is_blank(v) else str(v)).astype(object)


def _blank(s: pd.Series) -> pd.Series:
    return s.map(lambda v: not v.strip()).astype(bool)


# --------------------------------------------------------------------------------------------
# public API


def load_runs(
    source: str | os.PathLike[str] | pd.DataFrame,
    columns: Mapping[str, str] | str | None = None,
    *,
    min_tokens: float | None = None,
    max_token_fraction: float | None = None,
    where: str | None = None,
    require: Sequence[str] = ("model_size", "pretrain_tokens", "loss"),
    warn: bool = True,
) -> pd.DataFrame:
    """Load, validate and normalise a table of training runs.

    Sanity checks add notes (and, with ``warn``, :class:`~planner.errors.PlannerWarning`) for rows
    that repeat an earlier row, repeated header names, counts too small to be counts
    (``implausible-values``), a column whose values fall in two groups 3+ decades apart
    (``mixed-units``) and isolated extreme values (``outlier``: log10 value more than 6 robust
    standard deviations, 1.4826 x MAD, and 2 decades (loss: 1) from the median, and 1 decade
    (loss: 0.5) from every other value).

    Args:
        source: path (``str`` / ``Path``) to a ``.csv`` / ``.tsv`` (optionally compressed, e.g. ``.csv.gz``),
            ``.parquet`` / ``.pq``, ``.jsonl`` / ``.ndjson`` (one JSON object per line) or ``.json`` file
            (a list of records), or a pandas DataFrame (copied, never mutated; its index is ignored and
            rows are numbered by position).
        columns: maps your column names onto canonical ones, e.g. ``{"N_params": "model_size",
            "D_tokens": "pretrain_tokens", "final_val_loss": "loss"}``, or the same as a string
            ``"N_params=model_size,D_tokens=pretrain_tokens,final_val_loss=loss"`` (names in the string
            form cannot contain ``,`` or ``=``). Columns already named canonically need no mapping.
        min_tokens: drop rows whose total tokens ``pretrain_tokens + spec_tokens`` (count) are below this
            (the Hitchhiker's guide drops the first 1e10 tokens of each run).
        max_token_fraction: in (0, 1]; keep, per ``run``, only rows with total tokens <=
            ``max_token_fraction`` x that run's largest total tokens (measured before any filter).
        where: a row-selection rule (:mod:`planner.selection`) on the canonical names and the virtual
            columns ``tokens``, ``token_fraction``, ``compute`` and ``largest``, e.g.
            ``"model_size <= 1e9 and domain == 'general'"``; never passed to ``eval`` or pandas.
        require: columns that must be present and have a value in every row. ``pretrain_tokens``
            counts as present when ``flops`` and ``model_size`` are, see below.
        warn: also raise the sanity notes (codes in :data:`SANITY_CODES`) through
            :func:`warnings.warn` as :class:`~planner.errors.PlannerWarning` (the fitter passes False
            and raises them once, with its own warnings).

    Returns:
        A new DataFrame (RangeIndex) with the canonical columns first in :data:`CANONICAL` order,
        then the optional columns present (``run`` and ``spec_domain`` always are), then the derived
        boolean ``cross_domain``, then all other user columns unchanged. ``model_size`` (parameters),
        ``pretrain_tokens`` / ``spec_tokens`` / ``unique_tokens`` / ``spec_unique_tokens`` (tokens),
        ``loss`` (nats/token as given), ``flops`` (FLOPs), ``error`` (fraction) and ``step`` are float64;
        ``domain``, ``spec_domain``, ``run`` and ``family`` are object columns of ``str``.
        A canonical numeric column that is absent and not required is all-NaN.

        ``df.attrs["notes"]`` is a list of :class:`RunsNote`; ``df.attrs["source"]`` is the path
        as a string or ``"<DataFrame>"``. Row numbers in notes and errors are 1-based data rows of
        the source (header excluded; pandas skips blank CSV lines).

    Defaults and derivations (each reported as a note):
        * ``spec_tokens``: 0 where the column is absent or a cell is empty.
        * ``domain``: ``"general"`` where the column is absent or a cell is empty.
        * ``spec_domain``: where ``spec_tokens > 0`` and it is absent/empty it equals ``domain``; where
          ``spec_tokens == 0`` it is ``""``. ``cross_domain = (spec_tokens > 0) & (spec_domain != domain)``
          marks rows that measure forgetting (they are kept).
        * ``pretrain_tokens``: if absent but ``flops`` is present, ``flops / (6 * model_size)``. The
          FLOPs are taken to be pretraining compute only; specialisation tokens are *not* subtracted.
        * ``run``: if absent (or empty in a row) and a ``step`` column exists, rows with the same family,
          model size and specialisation domain are one run, ``"[family/]N=<model_size>[/spec=<spec_domain>]"``;
          without ``step`` every row is its own run, ``"row<k>"`` with k its data row number.

    Raises:
        RunsError: unreadable/unknown/missing file, bad mapping, missing required columns, an empty
            table, non-numeric / missing / infinite values, zero or negative ``model_size``,
            ``pretrain_tokens``, ``loss`` or ``flops``, negative ``spec_tokens``, ``unique_tokens``,
            ``spec_unique_tokens`` or ``step``, ``error`` outside [0, 1], a bad ``where`` expression or
            filters that remove every row. All value problems are collected and reported together.
    """
    if isinstance(source, pd.DataFrame):
        out = _load(source.copy(deep=True), "<DataFrame>", columns, min_tokens, max_token_fraction, where, require)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = str(source)
        mapping = _parse_columns(columns, label)
        raw = _read(path, label, mapping)
        out = _load(raw, label, mapping, min_tokens, max_token_fraction, where, require)
    else:
        raise RunsError(f"source must be a file path or a pandas DataFrame, not {type(source).__name__}")
    if warn:
        warn_sanity(out)
    return out


def _load(
    raw: pd.DataFrame,
    label: str,
    columns: Mapping[str, str] | str | None,
    min_tokens: float | None,
    max_token_fraction: float | None,
    where: str | None,
    require: Sequence[str],
) -> pd.DataFrame:
    mapping = _parse_columns(columns, label)
    require = (require,) if isinstance(require, str) else tuple(require)
    unknown_req = [r for r in require if r not in ALLOWED]
    if unknown_req:
        raise RunsError(
            f"{label}: require= names unknown column(s) {', '.join(map(repr, unknown_req))}; "
            f"allowed: {', '.join(ALLOWED)}"
        )
    if len(raw.columns) == 0 and len(raw) == 0:
        raise RunsError(f"{label}: the table is empty (no columns and no data rows)")
    if len(raw) == 0:
        raise RunsError(f"{label}: the table has no data rows")

    notes: list[RunsNote] = []
    _check_header_repeats(raw, mapping, label, notes)
    df, origin = _apply_columns(raw, mapping, label)
    df = df.reset_index(drop=True)  # index = 0-based source position; row number = index + 1
    n_source = len(df)

    # --- required columns --------------------------------------------------------------
    derive_tokens = "pretrain_tokens" not in df.columns and "flops" in df.columns
    absent = [
        r for r in require if r not in df.columns and not (r == "pretrain_tokens" and derive_tokens)
    ]
    if absent:
        hint = ""
        if "pretrain_tokens" in absent:
            hint = " (pretrain_tokens can also be derived from a 'flops' column as flops / (6 * model_size))"
        raise RunsError(
            f"{label}: missing required column(s) {', '.join(map(repr, absent))}{hint}. The data has columns: "
            f"{', '.join(repr(str(c)) for c in raw.columns)}. Map yours onto the canonical names with "
            f"columns=, e.g. columns={{'N_params': 'model_size', 'final_val_loss': 'loss'}}"
        )

    # --- numeric values ------------------------------------------------------------------
    needed = set(require) - {"pretrain_tokens"} if derive_tokens else set(require)
    if derive_tokens:
        needed |= {"flops", "model_size"}
    numbers, problems = _coerce_numeric(df, needed, origin)
    if problems:
        raise RunsError(
            f"{label}: invalid values {ROW_NUMBERS_HINT}:\n  - " + "\n  - ".join(problems)
        )
    for col, values in numbers.items():
        df[col] = values
    for col in ("model_size", "pretrain_tokens", "loss"):
        if col not in df.columns and not (col == "pretrain_tokens" and derive_tokens):
            df[col] = np.nan

    if derive_tokens:
        df["pretrain_tokens"] = df["flops"] / (6.0 * df["model_size"])
        notes.append(
            RunsNote(
                "derived-pretrain-tokens",
                f"no 'pretrain_tokens' column: derived for all {n_source} rows as flops / (6 * model_size); "
                "flops is taken as pretraining compute, spec_tokens are not subtracted",
            )
        )

    if "spec_tokens" not in df.columns:
        df["spec_tokens"] = 0.0
        notes.append(RunsNote("default-spec-tokens", f"no 'spec_tokens' column: set to 0 for all {n_source} rows"))
    elif df["spec_tokens"].isna().any():
        empty = df["spec_tokens"].isna()
        notes.append(
            RunsNote(
                "default-spec-tokens",
                f"{_col_label('spec_tokens', origin)}: empty at {_fmt_rows(_rows_of(empty))}, set to 0",
                tuple(_rows_of(empty)),
            )
        )
        df["spec_tokens"] = df["spec_tokens"].fillna(0.0)

    # --- text columns --------------------------------------------------------------------
    for col in TEXT:
        if col in df.columns:
            df[col] = _as_text(df[col])

    if "domain" not in df.columns:
        df["domain"] = pd.Series(DEFAULT_DOMAIN, index=df.index, dtype=object)
        notes.append(
            RunsNote("default-domain", f"no 'domain' column: set to {DEFAULT_DOMAIN!r} for all {n_source} rows")
        )
    elif _blank(df["domain"]).any():
        empty = _blank(df["domain"])
        notes.append(
            RunsNote(
                "default-domain",
                f"{_col_label('domain', origin)}: empty at {_fmt_rows(_rows_of(empty))}, set to {DEFAULT_DOMAIN!r}",
                tuple(_rows_of(empty)),
            )
        )
        df.loc[empty, "domain"] = DEFAULT_DOMAIN

    specialised = df["spec_tokens"] > 0
    if "spec_domain" not in df.columns:
        df["spec_domain"] = df["domain"].where(specialised, "").astype(object)
        if specialised.any():
            notes.append(
                RunsNote(
                    "default-spec-domain",
                    f"no 'spec_domain' column: rows with spec_tokens > 0 ({int(specialised.sum())}) are taken to "
                    "be specialised on the domain they are evaluated on",
                    tuple(_rows_of(specialised)),
                )
            )
    else:
        fill = specialised & _blank(df["spec_domain"])
        cleared = ~specialised & ~_blank(df["spec_domain"])
        if fill.any():
            notes.append(
                RunsNote(
                    "default-spec-domain",
                    f"{_col_label('spec_domain', origin)}: empty at {_fmt_rows(_rows_of(fill))} where spec_tokens > 0, "
                    "set to the row's domain",
                    tuple(_rows_of(fill)),
                )
            )
        if cleared.any():
            notes.append(
                RunsNote(
                    "cleared-spec-domain",
                    f"{_col_label('spec_domain', origin)}: set to '' at {_fmt_rows(_rows_of(cleared))} "
                    "because spec_tokens is 0 there (not specialised)",
                    tuple(_rows_of(cleared)),
                )
            )
        df["spec_domain"] = df["spec_domain"].mask(fill, df["domain"]).mask(~specialised, "").astype(object)
    df["cross_domain"] = (specialised & (df["spec_domain"] != df["domain"])).astype(bool)

    # --- sanity (warnings as data; load_runs also raises them as PlannerWarning) ------------
    _check_duplicate_rows(df, notes)
    _check_scales(df, origin, notes)

    # --- run ids -------------------------------------------------------------------------
    _derive_runs(df, origin, notes)

    # --- filters -------------------------------------------------------------------------
    df = _apply_filters(df, label, min_tokens, max_token_fraction, where, notes)

    # --- order and finish -----------------------------------------------------------------
    ordered = [*CANONICAL, *(c for c in OPTIONAL if c in df.columns), "cross_domain"]
    others = [c for c in df.columns if c not in ordered]
    out = df[ordered + others].reset_index(drop=True)
    out.attrs.pop("header_repeats", None)
    out.attrs["notes"] = notes
    out.attrs["source"] = label
    out.attrs["fingerprint"] = table_fingerprint(out)
    return out


def table_fingerprint(table: pd.DataFrame) -> str:
    """A digest of a run table's columns, index and values (linear in its size).

    :func:`load_runs` stores it in ``attrs["fingerprint"]``; the fitter trusts a table's checks
    only while it still has this digest, so a table edited after loading is checked again.
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update("\x1f".join(map(str, table.columns)).encode())
    digest.update(pd.util.hash_pandas_object(table, index=True).to_numpy().tobytes())
    return digest.hexdigest()


def _check_header_repeats(raw: pd.DataFrame, mapping: Mapping[str, str], label: str, notes: list[RunsNote]) -> None:
    """A repeated header name: an error for a column planner reads (which copy is meant?), a note otherwise."""
    repeats: dict[str, list[str]] = raw.attrs.get("header_repeats") or {}
    for name, copies in repeats.items():
        renamed = ", ".join(repr(c) for c in copies[1:])
        if name in ALLOWED or name in mapping or any(c in mapping for c in copies):
            raise RunsError(
                f"{label}: the header names column {name!r} {len(copies)} times (pandas would read the "
                f"copies as {renamed}); keep one, or rename the others"
            )
        notes.append(RunsNote(
            "duplicate-columns",
            f"the header names column {name!r} {len(copies)} times; the copies are kept as {renamed}",
        ))


def _check_duplicate_rows(df: pd.DataFrame, notes: list[RunsNote]) -> None:
    """Rows repeating an earlier row in every column: each copy would count again in a fit."""
    cols = [c for c in df.columns if c != "cross_domain"]
    try:
        dup = df[cols].duplicated(keep="first")
    except TypeError:  # unhashable cells (lists from JSON): compare their text
        dup = df[cols].astype(str).duplicated(keep="first")
    if not dup.any():
        return
    rows = _rows_of(dup)
    notes.append(RunsNote(
        "duplicate-rows",
        f"{_fmt_rows(rows)} repeat an earlier row in every column; each copy counts again in a fit "
        "(remove them unless they are repeated measurements)",
        tuple(rows),
    ))


#: counts that are never this small in a language-model run (a size of 0.4 means 0.4B written in billions)
_SMALLEST = {"model_size": 1e4, "pretrain_tokens": 1e4}
#: columns checked for mixed units and isolated extreme values, with the smallest deviation (decades)
#: from the median that counts as extreme
_SCALE_COLUMNS = {"model_size": 2.0, "pretrain_tokens": 2.0, "spec_tokens": 2.0, "flops": 2.0, "unique_tokens": 2.0, "loss": 1.0}
#: a gap of this many decades between two groups of values suggests two units in one column
_UNIT_GAP_DECADES = 3.0
#: robust z-score (|log x - median| / (1.4826 MAD)) beyond which a value is isolated
_OUTLIER_Z = 6.0


def _check_scales(df: pd.DataFrame, origin: Mapping[str, str], notes: list[RunsNote]) -> None:
    """Implausibly small counts, mixed units (two groups of values far apart) and isolated extreme
    values (robust outlier test on log10 values: median and MAD), one note per column and kind."""
    for col, floor in _SCALE_COLUMNS.items():
        if col not in df.columns:
            continue
        values = df[col].to_numpy(dtype=float)
        ok = np.isfinite(values) & (values > 0)
        if ok.sum() < 3:
            continue
        name = _col_label(col, origin)
        idx = df.index[ok]
        logs = np.log10(values[ok])
        if col in _SMALLEST:
            small = values[ok] < _SMALLEST[col]
            if small.any():
                rows = [int(i) + 1 for i in idx[small]]
                notes.append(RunsNote(
                    "implausible-values",
                    f"{name}: values below {_SMALLEST[col]:,.0f} at {_fmt_rows(rows)} ({_fmt_values(list(values[ok][small]))}): "
                    "counts are plain numbers (400M parameters is 4e8, not 400 or 0.4)",
                    tuple(rows),
                ))
        distinct = np.unique(logs)
        gaps = np.diff(distinct)
        if len(gaps) and gaps.max() >= _UNIT_GAP_DECADES:
            cut = distinct[int(np.argmax(gaps))]
            low, high = logs <= cut, logs > cut
            if low.sum() >= 2 and high.sum() >= 2:
                rows = [int(i) + 1 for i in idx[low]]
                notes.append(RunsNote(
                    "mixed-units",
                    f"{name}: values fall in two groups {gaps.max():.1f} decades apart "
                    f"({10 ** logs[low].min():.3g} to {10 ** logs[low].max():.3g} and {10 ** logs[high].min():.3g} to "
                    f"{10 ** logs[high].max():.3g}); are some given in other units (e.g. billions)? The smaller values are at {_fmt_rows(rows)}",
                    tuple(rows),
                ))
                continue
        median = float(np.median(logs))
        mad = 1.4826 * float(np.median(np.abs(logs - median)))
        dev = np.abs(logs - median)
        # isolated: far from the median in robust units and from every other distinct value
        # (early checkpoints of a long run are far from the median but not isolated)
        if len(distinct) > 1:
            pos = np.searchsorted(distinct, logs)
            left = np.where(pos > 0, logs - distinct[np.maximum(pos - 1, 0)], np.inf)
            right = np.where(pos < len(distinct) - 1, distinct[np.minimum(pos + 1, len(distinct) - 1)] - logs, np.inf)
            nearest = np.minimum(left, right)
        else:
            nearest = np.zeros_like(logs)
        extreme = (dev > floor) & (dev > _OUTLIER_Z * mad) & (nearest >= floor / 2)
        if extreme.any():
            rows = [int(i) + 1 for i in idx[extreme]]
            notes.append(RunsNote(
                "outlier",
                f"{name}: isolated extreme values at {_fmt_rows(rows)} ({_fmt_values(list(values[ok][extreme]))}), "
                f"more than {max(floor, _OUTLIER_Z * mad):.2g} decades from the median {10 ** median:.3g}; check them",
                tuple(rows),
            ))


#: note codes that flag a probable problem in the data (raised as PlannerWarning by load_runs)
SANITY_CODES: frozenset[str] = frozenset({"duplicate-columns", "duplicate-rows", "implausible-values", "mixed-units", "outlier"})


def warn_sanity(table: pd.DataFrame) -> None:
    """Raise the table's sanity notes (:data:`SANITY_CODES`) through :func:`warnings.warn` as
    :class:`~planner.errors.PlannerWarning`; they stay in ``table.attrs["notes"]``."""
    label = table.attrs.get("source", "<DataFrame>")
    for note in table.attrs.get("notes", []):
        if note.code in SANITY_CODES:
            warn_user(f"{label}: [{note.code}] {note.message}", PlannerWarning)


def _derive_runs(df: pd.DataFrame, origin: Mapping[str, str], notes: list[RunsNote]) -> None:
    rows = pd.Series(df.index + 1, index=df.index)
    if "step" in df.columns:
        family = df["family"] if "family" in df.columns else pd.Series("", index=df.index)
        derived = (
            family.map(lambda f: f"{f}/" if f else "")
            + df["model_size"].map(lambda n: f"N={n:.12g}")
            + df["spec_domain"].map(lambda s: f"/spec={s}" if s else "")
        )
        rule = (
            "rows with the same family, model_size and spec_domain are checkpoints of one run "
            "('[family/]N=<model_size>[/spec=<spec_domain>]'), because a 'step' column exists"
        )
    else:
        derived = "row" + rows.astype(str)
        rule = "each row is its own run ('row<k>', k = data row number), because there is no 'step' column"

    if "run" not in df.columns:
        df["run"] = derived.astype(object)
        notes.append(RunsNote("derived-run-ids", f"no 'run' column: {rule}"))
        return
    empty = _blank(df["run"])
    if empty.any():
        df.loc[empty, "run"] = derived[empty]
        notes.append(
            RunsNote(
                "derived-run-ids",
                f"{_col_label('run', origin)}: empty at {_fmt_rows(_rows_of(empty))}; {rule}",
                tuple(_rows_of(empty)),
            )
        )


def _check_number(name: str, value: Any, label: str, low: float, high: float, low_open: bool) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise RunsError(f"{label}: {name}= must be a number, got {value!r}") from None
    ok = math.isfinite(x) and (x > low if low_open else x >= low) and x <= high
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise RunsError(f"{label}: {name}= must be in {interval}, got {value!r}")
    return x


def _apply_filters(
    df: pd.DataFrame,
    label: str,
    min_tokens: float | None,
    max_token_fraction: float | None,
    where: str | None,
    notes: list[RunsNote],
) -> pd.DataFrame:
    total = df["pretrain_tokens"] + df["spec_tokens"]
    run_max = total.groupby(df["run"]).transform("max")  # the run's full length, before any filter
    applied: list[str] = []

    def drop(keep: pd.Series, what: str) -> pd.DataFrame:
        removed = ~keep
        notes.append(
            RunsNote(
                "filtered",
                f"{what} removed {int(removed.sum())} of {len(keep)} rows",
                tuple(_rows_of(removed)),
            )
        )
        applied.append(notes[-1].message)
        return df[keep]

    if min_tokens is not None:
        m = _check_number("min_tokens", min_tokens, label, 0.0, math.inf, low_open=False)
        df = drop(total.loc[df.index] >= m, f"min_tokens={m:g} (pretrain_tokens + spec_tokens < {m:g})")
    if max_token_fraction is not None:
        f = _check_number("max_token_fraction", max_token_fraction, label, 0.0, 1.0, low_open=True)
        keep = total.loc[df.index] <= f * run_max.loc[df.index]
        df = drop(keep, f"max_token_fraction={f:g} (tokens > {f:g} x the run's maximum)")
    if where is not None:
        try:
            mask = pd.Series(select_rows(df, where), index=df.index)
        except SelectionError as exc:
            raise RunsError(
                f"{label}: where= {exc}. Columns available: {', '.join(map(str, df.columns))}"
            ) from None
        df = drop(mask, f"where={where!r}")

    if df.empty:
        raise RunsError(f"{label}: the filters removed every row: " + "; ".join(applied))
    return df


def runs_from_arrays(
    model_size: Any,
    pretrain_tokens: Any,
    loss: Any,
    spec_tokens: Any = None,
    domain: Any = None,
    **extra: Any,
) -> pd.DataFrame:
    """Build and validate a run table from arrays (or scalars, broadcast to the arrays' length).

    Args:
        model_size: parameters per row (count).
        pretrain_tokens: pretraining tokens per row (count).
        loss: loss per row (nats/token).
        spec_tokens: specialisation tokens per row (count); omitted -> 0.
        domain: evaluation domain per row (text); omitted -> ``"general"``.
        **extra: further columns, canonical optional ones (``run``, ``family``, ``flops``, ``step``, ...)
            or any others, which are kept unchanged.

    Returns:
        The table as :func:`load_runs` returns it (``attrs["source"] == "<arrays>"``).
    """
    data: dict[str, Any] = {"model_size": model_size, "pretrain_tokens": pretrain_tokens, "loss": loss}
    if spec_tokens is not None:
        data["spec_tokens"] = spec_tokens
    if domain is not None:
        data["domain"] = domain
    data.update(extra)
    arrays = {k: np.asarray(v, dtype=object if k in TEXT else None) for k, v in data.items()}
    lengths = {k: len(a) for k, a in arrays.items() if a.ndim > 0}
    if any(a.ndim > 1 for a in arrays.values()):
        bad = [k for k, a in arrays.items() if a.ndim > 1]
        raise RunsError(f"<arrays>: {', '.join(bad)} must be one-dimensional")
    if len(set(lengths.values())) > 1:
        raise RunsError(
            "<arrays>: arrays have different lengths: " + ", ".join(f"{k}={n}" for k, n in lengths.items())
        )
    n = next(iter(lengths.values()), 1)
    frame = pd.DataFrame({k: (np.repeat(a, n) if a.ndim == 0 else a) for k, a in arrays.items()})
    out = _load(frame, "<arrays>", None, None, None, None, ("model_size", "pretrain_tokens", "loss"))
    warn_sanity(out)
    return out


def _json_float(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def summarize_runs(df: pd.DataFrame) -> dict[str, Any]:
    """JSON-able facts about a table returned by :func:`load_runs`.

    Returns a dict with ``n_rows``, ``n_runs``, ``model_sizes`` (sorted distinct parameter counts),
    ``n_model_sizes``, ``pretrain_token_range`` and ``spec_token_range`` ([min, max] tokens),
    ``domains`` (sorted distinct), ``loss_range`` ([min, max]), ``source`` and ``notes``
    (list of ``{"code", "message"}``). Missing values appear as ``None``.
    """
    label = df.attrs.get("source", "<DataFrame>")
    missing = [c for c in (*CANONICAL, "run") if c not in df.columns]
    if missing:
        raise RunsError(f"{label}: summarize_runs needs a table from load_runs; missing {', '.join(missing)}")

    def span(col: str) -> list[float | None]:
        return [_json_float(df[col].min()), _json_float(df[col].max())]

    sizes = sorted(float(x) for x in df["model_size"].dropna().unique())
    return {
        "source": str(label),
        "n_rows": int(len(df)),
        "n_runs": int(df["run"].nunique()),
        "model_sizes": sizes,
        "n_model_sizes": len(sizes),
        "pretrain_token_range": span("pretrain_tokens"),
        "spec_token_range": span("spec_tokens"),
        "domains": sorted(str(d) for d in df["domain"].unique()),
        "loss_range": span("loss"),
        "notes": [{"code": n.code, "message": n.message} for n in df.attrs.get("notes", [])],
    }
