"""Reading a scenario file: parse TOML or YAML, validate, and report every problem at once.

:func:`load_scenario` collects the schema's errors (pydantic) *and* the checks that need the
file system or the form registry (files exist, forms are known, an option applies to the
chosen law source) into one :class:`~planner.scenario.schema.ScenarioError`, each problem with
the file, the key path (``domains[1].weight``) and the line. Nothing here solves or fits.

Every step is linear in the input: the TOML line scanner walks each line once by hand (no
backtracking regular expression), YAML goes through :func:`planner._io.parse_yaml` (duplicate
keys, depth and alias expansion capped), and files are capped at ``MAX_FILE_BYTES``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Iterable, Mapping

from pydantic import ValidationError

from .._io import parse_yaml, read_text
from .schema import Scenario, ScenarioError

__all__ = ["load_scenario", "check_scenario", "format_problems", "LAW_FIT_OPTIONS"]

Problem = tuple[str, "int | None", str]

#: ``[law]`` keys that only apply when the law is fitted from ``runs``
LAW_FIT_OPTIONS: tuple[str, ...] = (
    "columns", "train_on", "bootstrap", "calibrate", "loss", "fix", "min_tokens", "max_starts", "seed",
)

_RENAMED = {
    ("law", "holdout"): 'renamed: write train_on = "..." (the rule selects the rows that are fitted; the rest are held out)',
}


# --------------------------------------------------------------------------- parsing
def _parse_text(text: str, path: Path) -> tuple[Any, Mapping[tuple, int]]:
    """The file's data and its key-path -> line map."""
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        data, root = parse_yaml(text, str(path), ScenarioError)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ScenarioError(f"{path}: a scenario is a mapping of keys (budget, law, domains, ...), not a {type(data).__name__}")
        return data, _yaml_key_lines(root)
    if suffix not in (".toml", ""):
        raise ScenarioError(f"{path}: unknown scenario file type {suffix!r}: use .toml (or .yaml / .yml)")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        core = re.sub(r"\s*\(at line \d+, column \d+\)", "", msg)
        where = f", line {m.group(1)}" if m else ""
        raise ScenarioError(f"{path}{where}: invalid TOML: {core}") from None
    except RecursionError:
        raise ScenarioError(f"{path}: invalid TOML: nested too deeply") from None
    return data, _toml_key_lines(text)


def _split_key(text: str) -> tuple[str, ...]:
    return tuple(p.strip().strip("\"'") for p in text.split("."))


_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.\"' []")


def _toml_key_lines(text: str) -> dict[tuple, int]:
    """Map key paths (tuples of str / int) to 1-based line numbers, by a light scan of TOML text.

    Handles ``[table]``, ``[[array]]`` headers, ``key = value`` and dotted keys; keys inside
    inline tables are mapped to the line of the enclosing key. One pass over each line with
    ``str`` methods: linear in the text (a line of 10,000 spaces costs microseconds).
    """
    lines: dict[tuple, int] = {}
    current: tuple = ()
    counts: dict[tuple, int] = {}
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        if line[0] == "[":
            array = line.startswith("[[")
            close = line.find("]]" if array else "]")
            if close < 0:
                continue
            name = line[2 if array else 1:close]
            parts = _split_key(name)
            if array:
                idx = counts.get(parts, 0)
                counts[parts] = idx + 1
                current = parts + (idx,)
                lines.setdefault(parts, no)
            else:
                current = parts
            lines.setdefault(current, no)
            continue
        eq = line.find("=")
        if eq <= 0:
            continue
        key = line[:eq]
        if not set(key) <= _KEY_CHARS:
            continue
        lines.setdefault(current + _split_key(key), no)
    return lines


def _yaml_key_lines(root: Any) -> dict[tuple, int]:
    """Map key paths to 1-based lines using the YAML node tree (each node visited once)."""
    import yaml

    out: dict[tuple, int] = {}
    if root is None:
        return out
    seen: set[int] = set()
    stack: list[tuple[Any, tuple]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        out.setdefault(path, node.start_mark.line + 1)
        if id(node) in seen:  # an alias: its content was mapped where it was defined
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                kp = path + (key.value,)
                out[kp] = key.start_mark.line + 1
                stack.append((value, kp))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                stack.append((item, path + (i,)))
    return out


# --------------------------------------------------------------------------- problems
def _line_for(loc: tuple, key_lines: Mapping[tuple, int]) -> int | None:
    for n in range(len(loc), 0, -1):
        if loc[:n] in key_lines:
            return key_lines[loc[:n]]
    return None


def _key_path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


_PYDANTIC_INTERNAL = re.compile(r"^(function-[a-z-]+\[|list\[|union\[|literal\[|constrained-|dict\[|(float|int|str|bool)$)")


def _schema_problems(exc: ValidationError) -> list[tuple[tuple, str]]:
    out: list[tuple[tuple, str]] = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if isinstance(p, int) or not _PYDANTIC_INTERNAL.match(str(p)))
        kind, msg = err["type"], err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if kind == "extra_forbidden":
            msg = _RENAMED.get(loc) or "unknown key (check the spelling; see `planner schema` or docs/scenario-reference.md)"
        elif kind == "missing":
            msg = "required key is missing"
        out.append((loc, msg))
    return out


def _table(data: Any, key: str) -> dict[str, Any]:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def _given(table: Mapping[str, Any], key: str) -> bool:
    return key in table


def _cross_problems(data: Any, base_dir: Path | None, check_files: bool) -> list[tuple[tuple, str]]:
    """Checks beyond each key's own value, on the raw data (so they run even when the schema fails).

    Files named by the scenario exist; the form is known; options apply to what was chosen
    (an option that does not apply is an error, never ignored).
    """
    out: list[tuple[tuple, str]] = []
    law = _table(data, "law")
    base = base_dir or Path.cwd()

    def exists(loc: tuple, rel: Any) -> None:
        if check_files and isinstance(rel, str) and rel:
            p = Path(rel).expanduser()
            p = p if p.is_absolute() else base / p
            if not p.is_file():
                out.append((loc, f"file not found: {p}"))

    for key in ("file", "runs"):
        exists(("law", key), law.get(key))
    form = law.get("form")
    if isinstance(form, str) and form and form != "auto":
        from ..laws import get_form

        try:
            get_form(form)
        except KeyError as exc:
            out.append((("law", "form"), str(exc).strip("\"'")))
    if "runs" not in law and ("file" in law or "params" in law):
        source = "file" if "file" in law else "params"
        for key in LAW_FIT_OPTIONS:
            if key in law:
                out.append((("law", key), f"applies to a law fitted from runs (law.runs); this law comes from law.{source}"))
    if "file" in law and "tie" in law:
        out.append((("law", "tie"), "applies to a law fitted from runs or given by params; a saved law file keeps its own ties"))
    domains = data.get("domains") if isinstance(data, dict) else None
    if isinstance(domains, list):
        for i, d in enumerate(domains):
            if isinstance(d, dict):
                for key in ("law", "downstream"):
                    exists(("domains", i, key), d.get(key))
    compare = _table(data, "compare")
    strategies = compare.get("strategies")
    if "fixed_fraction" in compare and isinstance(strategies, list) and "fixed" not in strategies:
        out.append((("compare", "fixed_fraction"), 'applies to the "fixed" baseline, which compare.strategies does not list'))
    if isinstance(strategies, list) and strategies and not domains:
        out.append((("compare", "strategies"), "baselines split the budget across domains: with no [[domains]] there is nothing to compare (write strategies = [])"))
    cost = _table(data, "cost")
    if cost.get("scale_with_model_size") and "n_layers" not in cost:
        out.append((("cost", "scale_with_model_size"), "applies to the attention term: give n_layers, d_model and context"))
    constraints = _table(data, "constraints")
    if "repetition_decay" in constraints and constraints.get("repetition", "cap") != "effective":
        out.append((("constraints", "repetition_decay"), 'applies to repetition = "effective"'))
    budget = _table(data, "budget")
    if "plan" in budget and not isinstance(budget.get("flops"), list):
        out.append((("budget", "plan"), "applies to a list of budgets (flops = [...]); with one budget the plan is that budget"))
    return out


def format_problems(path: Path | str, problems: Iterable[Problem]) -> str:
    """One line: ``<file>, line N: key.path: message; ...``."""
    return "; ".join(f"{path}" + (f", line {line}" if line else "") + f": {key}: {msg}" for key, line, msg in problems)


def _raise_problems(path: Path | str, found: list[tuple[tuple, str]], key_lines: Mapping[tuple, int]) -> None:
    problems: list[Problem] = []
    seen: set[str] = set()
    for loc, msg in found:
        key = _key_path(loc)
        if key in seen:  # a union (number or list) reports each branch: keep the first message per key
            continue
        seen.add(key)
        problems.append((key, _line_for(loc, key_lines), msg))
    if problems:
        problems.sort(key=lambda p: (p[1] is None, p[1] or 0))
        raise ScenarioError(format_problems(path, problems), problems)


def load_scenario(source: str | Path | Mapping[str, Any], *, base_dir: str | Path | None = None, check_files: bool = True) -> Scenario:
    """Read and validate a scenario file (TOML, or YAML by extension) or a mapping.

    Every problem is reported at once in one :class:`ScenarioError` (one line, problems joined
    by ``"; "``), each naming the file, the key path and the line: schema errors, files that
    do not exist (``check_files=False`` skips that check), unknown forms, options that do not
    apply. Paths in the scenario are relative to the file (to ``base_dir`` for a mapping).
    """
    if isinstance(source, Mapping):
        root = Path(base_dir).resolve() if base_dir is not None else None
        where: Path | str = (root / "<scenario>") if root is not None else "<scenario>"
        data: Any = dict(source)
        key_lines: Mapping[tuple, int] = {}
    else:
        path = Path(source)
        text = read_text(path, "scenario file", ScenarioError)
        data, key_lines = _parse_text(text, path)
        root = path.resolve().parent
        where = path
    found: list[tuple[tuple, str]] = []
    scenario: Scenario | None = None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        found += _schema_problems(exc)
    found += _cross_problems(data, root, check_files)
    _raise_problems(where, found, key_lines)
    assert scenario is not None
    if not isinstance(source, Mapping):
        scenario._path = Path(source).resolve()
    elif root is not None:
        scenario._path = root / "<scenario>"
    return scenario


def check_scenario(scenario: Scenario) -> list[str]:
    """The file checks of :func:`load_scenario` again, for a scenario built elsewhere: files exist, forms are known.

    Returns one ``"key.path: message"`` per problem (empty when fine).
    """
    data = scenario.model_dump(mode="python", exclude_unset=True)
    return [f"{_key_path(loc)}: {msg}" for loc, msg in _cross_problems(data, scenario.base_dir, True)]
