"""Reading files with one-line errors that name the file and the limit (shared by laws, results and scenarios).

Every reader here does bounded work: files are capped at ``MAX_FILE_BYTES``; JSON is checked
for nesting depth (a linear scan before parsing) and for the length of every number literal;
YAML is read by a safe loader that refuses duplicate keys, deep nesting and alias expansion
beyond a budget (a "billion laughs" file is refused before it is expanded).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

from .constants import MAX_FILE_BYTES

__all__ = ["read_text", "read_json", "parse_json", "parse_yaml", "MAX_JSON_DEPTH", "MAX_NUMBER_CHARS", "MAX_YAML_DEPTH", "MAX_YAML_NODES"]

#: deepest nesting of arrays/objects accepted in a JSON file
MAX_JSON_DEPTH = 64
#: longest number literal accepted in a JSON file (a float needs at most 25 characters)
MAX_NUMBER_CHARS = 100
#: deepest nesting of mappings/sequences accepted in a YAML file
MAX_YAML_DEPTH = 64
#: most nodes of a YAML document once its aliases are expanded
MAX_YAML_NODES = 100_000


def read_text(path: Path, what: str, error: type[Exception]) -> str:
    """The file's text, or ``error("<path>: <what> not found")`` and friends; at most ``MAX_FILE_BYTES``."""
    path = Path(path)
    try:
        if path.is_dir():
            raise error(f"{path}: {what} is a folder, not a file")
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    if len(data) > MAX_FILE_BYTES:
        raise error(f"{path}: {what} is larger than the limit of {MAX_FILE_BYTES} bytes (planner.constants.MAX_FILE_BYTES)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: {what} is not UTF-8 text (byte {exc.start})") from None


def _json_depth_problem(text: str) -> str | None:
    """Linear scan: the position where nesting exceeds ``MAX_JSON_DEPTH`` (strings skipped)."""
    depth = 0
    in_string = False
    escaped = False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                line = text.count("\n", 0, i) + 1
                return f"line {line}: nested deeper than the limit of {MAX_JSON_DEPTH} levels"
        elif ch in "]}":
            depth -= 1
    return None


def _number(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(literal: str) -> Any:
        if len(literal) > MAX_NUMBER_CHARS:
            raise ValueError(f"a number of {len(literal)} characters is longer than the limit of {MAX_NUMBER_CHARS}")
        value = kind(literal)
        if kind is float and not math.isfinite(value):
            raise ValueError(f"{literal} is beyond the float range (about 1.8e308)")
        return value

    return parse


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (write null for a missing value)")


def parse_json(text: str, where: str, error: type[Exception]) -> Any:
    """Parse JSON text with the depth and number-length caps; errors name ``where`` and the line."""
    problem = _json_depth_problem(text)
    if problem:
        raise error(f"{where}: invalid JSON at {problem}")
    try:
        return json.loads(text, parse_int=_number(int), parse_float=_number(float), parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise error(f"{where}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:
        raise error(f"{where}: invalid JSON: {exc}") from None


def read_json(path: Path, what: str, error: type[Exception]) -> Any:
    """Parsed JSON, with the line and column of a syntax error; depth and number size capped."""
    return parse_json(read_text(path, what, error), str(path), error)


# --------------------------------------------------------------------------- YAML
def _capped_loader() -> type:
    import yaml

    class CappedSafeLoader(yaml.SafeLoader):
        """``yaml.SafeLoader`` that refuses duplicate keys, deep nesting and alias blow-up."""

    return CappedSafeLoader


def _check_yaml_tree(root: Any, where: str, error: type[Exception]) -> None:
    """Depth, expanded size (aliases counted as often as they are used) and duplicate keys.

    The expanded size of each node is computed once (memoised by identity), so the check is
    linear in the composed document even when aliases would expand it exponentially.
    """
    import yaml

    sizes: dict[int, int] = {}
    # iterative post-order walk: (node, depth, children_done)
    stack: list[tuple[Any, int, bool]] = [(root, 1, False)]
    on_path: set[int] = set()
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            if isinstance(node, yaml.MappingNode):
                children = [c for pair in node.value for c in pair]
            elif isinstance(node, yaml.SequenceNode):
                children = list(node.value)
            else:
                children = []
            total = 1 + sum(sizes[id(c)] for c in children)
            if total > MAX_YAML_NODES:
                raise error(f"{where}: invalid YAML: the document expands to more than {MAX_YAML_NODES} values "
                            "(aliases repeat content; the limit guards against alias bombs)")
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise error(f"{where}, line {node.start_mark.line + 1}: invalid YAML: a recursive alias")
        if depth > MAX_YAML_DEPTH:
            raise error(f"{where}, line {node.start_mark.line + 1}: invalid YAML: nested deeper than the limit of {MAX_YAML_DEPTH} levels")
        on_path.add(key)
        stack.append((node, depth, True))
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in seen and k.tag != "tag:yaml.org,2002:merge":
                        raise error(f"{where}, line {k.start_mark.line + 1}: invalid YAML: key {k.value!r} is given twice "
                                    f"(first on line {seen[k.value]})")
                    seen[k.value] = k.start_mark.line + 1
                stack.append((k, depth + 1, False))
                stack.append((v, depth + 1, False))
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                stack.append((item, depth + 1, False))


def parse_yaml(text: str, where: str, error: type[Exception]) -> tuple[Any, Any]:
    """Safely parse one YAML document: ``(data, root_node)``; the node keeps line numbers.

    Raises ``error`` naming ``where`` and the line for syntax errors, duplicate keys, nesting
    deeper than ``MAX_YAML_DEPTH`` and documents whose aliases expand past ``MAX_YAML_NODES``.
    """
    import yaml

    loader = _capped_loader()(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f", line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise error(f"{where}{line}: invalid YAML: {' '.join(str(problem).split())}") from None
        except RecursionError:
            raise error(f"{where}: invalid YAML: nested deeper than the limit of {MAX_YAML_DEPTH} levels") from None
        if root is None:
            return None, None
        _check_yaml_tree(root, where, error)
        try:
            return loader.construct_document(root), root
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f", line {mark.line + 1}" if mark is not None else ""
            raise error(f"{where}{line}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    finally:
        loader.dispose()
