"""Row-selection rules: a small, safe language for "which rows" (``train_on=``, ``where=``, ``--where``).

A rule is a Python-looking boolean expression over the columns of a run table, for example::

    model_size <= 1e9
    token_fraction <= 0.7 and domain == 'code'
    1e8 < model_size < "3.5B" or largest
    domain in ('code', 'math') and not (spec_tokens > 0)

It is parsed with :func:`ast.parse` and only a whitelist of node types is accepted; the tree is then
evaluated by this module with numpy on the table's columns. Nothing is ever passed to ``eval``,
``exec``, ``DataFrame.eval`` or ``DataFrame.query``, so a rule read from a shared scenario file cannot
reach Python objects, attributes, functions or the shell (pandas' ``@name`` syntax included).

Grammar (everything else is refused, naming the offending token)::

    rule    := expr
    expr    := expr 'or' expr | expr 'and' expr | 'not' expr
             | expr ('&' | '|') expr | '~' expr            (same as and / or / not, on booleans)
             | arith (cmp arith)+                          (chained: a < b < c is a < b and b < c)
             | arith 'in' list | arith 'not in' list
             | NAME                                        (a boolean column, e.g. largest)
    arith   := arith ('+' | '-' | '*' | '/') arith | '-' arith | '+' arith | '(' expr ')'
             | NAME | NUMBER | STRING | True | False
    cmp     := '<' | '<=' | '>' | '>=' | '==' | '!='
    list    := '(' atom, ... ')' | '[' atom, ... ']'       (numbers or strings)

Names are the table's columns plus the virtual columns

* ``tokens``: total tokens D + D' of the row (``pretrain_tokens + spec_tokens``),
* ``token_fraction``: ``tokens`` divided by the largest ``tokens`` of the row's run,
* ``compute``: training compute 6 N (D + D') in FLOPs,
* ``largest``: True on the rows of the largest model size.

A string compared with a numeric column is read as a quantity (``"3.5B"``, ``"1.2T tokens"``,
``"1e21 FLOPs"``, see :func:`planner.quantities.parse_quantity`); compared with a text column it is
text. Arithmetic is in float64 (a comparison with NaN is False). Rules are at most
:data:`~planner.constants.MAX_RULE_CHARS` characters and nest at most :data:`MAX_DEPTH` levels; the
work is linear in the rule length times the number of rows.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .constants import MAX_RULE_CHARS
from .errors import PlannerError
from .quantities import parse_quantity

__all__ = ["SelectionError", "Rule", "parse_rule", "select_rows", "with_virtual_columns", "VIRTUAL_COLUMNS", "MAX_DEPTH"]

#: virtual columns a rule may name besides the table's own
VIRTUAL_COLUMNS: tuple[str, ...] = ("tokens", "token_fraction", "compute", "largest")
#: deepest nesting of a rule's expression tree
MAX_DEPTH = 64

# the unit a quantity string takes when compared with a column
_UNITS = {
    "model_size": "params",
    "pretrain_tokens": "tokens", "spec_tokens": "tokens", "unique_tokens": "tokens", "spec_unique_tokens": "tokens",
    "tokens": "tokens",
    "flops": "flops", "compute": "flops",
}

_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}
_ARITH: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
}
_SYMBOL = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%", ast.Pow: "**", ast.FloorDiv: "//",
    ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>", ast.BitXor: "^", ast.BitAnd: "&", ast.BitOr: "|",
    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
}
# node types the checker accepts (operators are checked where they occur)
_ALLOWED_NODES = (
    ast.Expression, ast.BoolOp, ast.UnaryOp, ast.BinOp, ast.Compare, ast.Name, ast.Constant, ast.Tuple, ast.List,
    ast.Load, ast.And, ast.Or, ast.Not, ast.USub, ast.UAdd, ast.Invert,
    *_COMPARE, *_ARITH, ast.BitAnd, ast.BitOr, ast.In, ast.NotIn,
)
_WHAT = {
    ast.Attribute: "attribute access", ast.Call: "a function call", ast.Subscript: "indexing", ast.Lambda: "a lambda",
    ast.Starred: "unpacking", ast.Dict: "a dict", ast.Set: "a set", ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension", ast.DictComp: "a comprehension", ast.GeneratorExp: "a generator",
    ast.IfExp: "an if-expression", ast.NamedExpr: "an assignment", ast.JoinedStr: "an f-string",
    ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield", ast.Slice: "a slice",
    ast.Tuple: "a list (outside 'x in (...)')", ast.List: "a list (outside 'x in [...]')",
}


class SelectionError(PlannerError):
    """A row-selection rule that is not valid: the message names the rule and the offending token."""


@dataclass(frozen=True)
class Rule:
    """A parsed, checked rule: ``text`` as written and the names of the columns it reads."""

    text: str
    tree: ast.Expression
    names: frozenset[str]

    def mask(self, table: pd.DataFrame) -> np.ndarray:
        """Boolean mask over the rows of ``table`` (one entry per row)."""
        return _Evaluator(self, table).mask()


def _segment(text: str, node: ast.AST) -> str:
    seg = ast.get_source_segment(text, node)
    if seg is None:
        return type(node).__name__
    return seg if len(seg) <= 60 else seg[:57] + "..."


def _fail(text: str, problem: str, node: ast.AST | None = None) -> SelectionError:
    where = ""
    if node is not None and hasattr(node, "col_offset"):
        where = f" at {_segment(text, node)!r} (column {node.col_offset + 1})"
    return SelectionError(f"rule {text!r}: {problem}{where}")


def parse_rule(text: Any, *, columns: Iterable[str] | None = None) -> Rule:
    """Parse and check a rule; with ``columns``, also check that every name it reads exists.

    Raises:
        SelectionError: not a string, empty, longer than MAX_RULE_CHARS, not a valid expression, or
            any construct outside the grammar (the message names the rule and the token).
    """
    if not isinstance(text, str):
        raise SelectionError(f"a row-selection rule must be a string such as 'model_size <= 1e9', not {type(text).__name__}")
    if len(text) > MAX_RULE_CHARS:
        raise SelectionError(f"rule of {len(text)} characters is longer than the limit of {MAX_RULE_CHARS} characters")
    stripped = text.strip()
    if not stripped:
        raise SelectionError("empty rule: write a comparison such as 'model_size <= 1e9'")
    if "@" in stripped:
        col = text.index("@") + 1
        raise SelectionError(
            f"rule {text!r}: '@' (pandas' reference to Python variables) is not allowed, at column {col}; "
            "a rule can only name columns and give numbers or quoted text"
        )
    if "`" in stripped:
        raise SelectionError(f"rule {text!r}: backquoted column names are not supported; name columns that are identifiers")
    try:
        tree = ast.parse(stripped, mode="eval")
    except SyntaxError as exc:
        col = f" at column {exc.offset}" if exc.offset else ""
        raise SelectionError(f"rule {text!r} is not a valid expression{col}: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise SelectionError(f"rule {text!r} is nested too deeply") from None
    names = _check(stripped, tree)
    rule = Rule(stripped, tree, frozenset(names))
    if columns is not None:
        known = set(columns) | set(VIRTUAL_COLUMNS)
        unknown = sorted(rule.names - known)
        if unknown:
            raise SelectionError(
                f"rule {stripped!r}: unknown column {', '.join(map(repr, unknown))}; columns available: "
                f"{', '.join(sorted(known))}"
            )
    return rule


def _check(text: str, tree: ast.Expression) -> set[str]:
    """Walk the tree iteratively (no recursion): whitelist of nodes, operators and names; depth cap."""
    names: set[str] = set()
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _fail(text, f"nested more than {MAX_DEPTH} levels deep", node)
        if not isinstance(node, _ALLOWED_NODES):
            what = _WHAT.get(type(node), f"{type(node).__name__}")
            raise _fail(text, f"{what} is not allowed (a rule holds column names, numbers, quoted text, comparisons, and/or/not)", node)
        if isinstance(node, ast.BinOp) and type(node.op) not in _ARITH and not isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            raise _fail(text, f"operator {_SYMBOL.get(type(node.op), type(node.op).__name__)!r} is not allowed (use + - * / and comparisons)", node)
        if isinstance(node, ast.Compare):
            for op in node.ops:
                if type(op) not in _COMPARE and not isinstance(op, (ast.In, ast.NotIn)):
                    raise _fail(text, f"comparison {_SYMBOL.get(type(op), type(op).__name__)!r} is not allowed (use < <= > >= == != in)", node)
                if isinstance(op, (ast.In, ast.NotIn)) and len(node.ops) != 1:
                    raise _fail(text, "'in' cannot be chained with other comparisons", node)
            if isinstance(node.ops[0], (ast.In, ast.NotIn)):
                right = node.comparators[0]
                if not isinstance(right, (ast.Tuple, ast.List)) or not all(_is_literal(e) for e in right.elts):
                    raise _fail(text, "'in' needs a list of numbers or quoted texts, e.g. domain in ('code', 'math')", right)
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, str, bool)):
            raise _fail(text, f"constant {node.value!r} is not allowed", node)
        if isinstance(node, ast.Name):
            if node.id.startswith("_"):
                raise _fail(text, f"name {node.id!r} is not allowed (names starting with '_' are not columns here)", node)
            names.add(node.id)
        for child in ast.iter_child_nodes(node):
            stack.append((child, depth + 1))
    return names


def _is_literal(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)) and not isinstance(node.value, bool)


def with_virtual_columns(table: pd.DataFrame, names: Iterable[str] = VIRTUAL_COLUMNS) -> dict[str, np.ndarray]:
    """The virtual columns ``names`` of ``table`` as float / bool arrays (see the module docstring)."""
    names = set(names)
    n = len(table)
    out: dict[str, np.ndarray] = {}

    def col(name: str, default: float) -> np.ndarray:
        if name in table:
            return pd.to_numeric(table[name], errors="coerce").to_numpy(dtype=float)
        return np.full(n, default)

    if names & {"tokens", "token_fraction", "compute"}:
        tokens = col("pretrain_tokens", np.nan) + np.nan_to_num(col("spec_tokens", 0.0), nan=0.0)
        out["tokens"] = tokens
        if "token_fraction" in names:
            key = table["run"].astype(str).to_numpy() if "run" in table else np.arange(n).astype(str)
            run_max = pd.Series(tokens).groupby(key).transform("max").to_numpy(dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                out["token_fraction"] = tokens / run_max
        if "compute" in names:
            out["compute"] = 6.0 * col("model_size", np.nan) * tokens
    if "largest" in names:
        size = col("model_size", np.nan)
        top = np.nanmax(size) if n and np.isfinite(size).any() else np.nan
        out["largest"] = size == top
    return {k: v for k, v in out.items() if k in names}


class _Evaluator:
    """Evaluates a checked tree on a table: values are numpy arrays (per row) or Python scalars."""

    def __init__(self, rule: Rule, table: pd.DataFrame) -> None:
        self.rule = rule
        self.table = table
        self.n = len(table)
        self.cache: dict[str, np.ndarray] = {}
        virtual = [v for v in VIRTUAL_COLUMNS if v in rule.names and v not in table.columns]
        self.virtual = with_virtual_columns(table, virtual)
        unknown = sorted(rule.names - set(map(str, table.columns)) - set(VIRTUAL_COLUMNS))
        if unknown:
            known = sorted({*map(str, table.columns), *VIRTUAL_COLUMNS})
            raise SelectionError(
                f"rule {rule.text!r}: unknown column {', '.join(map(repr, unknown))}; columns available: {', '.join(known)}"
            )

    def fail(self, problem: str, node: ast.AST) -> SelectionError:
        return _fail(self.rule.text, problem, node)

    def mask(self) -> np.ndarray:
        with np.errstate(all="ignore"):
            value = self.evaluate(self.rule.tree.body)
        if not self._is_bool(value):
            raise self.fail("the rule must give True/False per row (a comparison such as 'model_size <= 1e9')", self.rule.tree.body)
        return np.broadcast_to(np.asarray(value, dtype=bool), (self.n,)).copy()

    # ---------------------------------------------------------------- values
    @staticmethod
    def _is_bool(v: Any) -> bool:
        return isinstance(v, (bool, np.bool_)) or (isinstance(v, np.ndarray) and v.dtype == bool)

    @staticmethod
    def _is_text(v: Any) -> bool:
        return isinstance(v, str) or (isinstance(v, np.ndarray) and v.dtype == object)

    def column(self, name: str, node: ast.AST) -> np.ndarray:
        if name not in self.cache:
            self.cache[name] = self._column(name, node)
        return self.cache[name]

    def _column(self, name: str, node: ast.AST) -> np.ndarray:
        if name in self.table.columns:
            s = self.table[name]
            if pd.api.types.is_bool_dtype(s):
                return s.to_numpy(dtype=bool)
            if pd.api.types.is_numeric_dtype(s):
                return s.to_numpy(dtype=float)
            return s.astype(object).where(s.notna(), "").astype(str).to_numpy(dtype=object)
        if name in self.virtual:
            return self.virtual[name]
        raise self.fail(f"unknown column {name!r}", node)

    def evaluate(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, int) and not isinstance(node.value, bool):
                try:
                    return float(node.value)
                except OverflowError:
                    raise self.fail("number too large", node) from None
            return node.value
        if isinstance(node, ast.Name):
            return self.column(node.id, node)
        if isinstance(node, ast.BoolOp):
            values = [self.boolean(v) for v in node.values]
            combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            out = values[0]
            for v in values[1:]:
                out = combine(out, v)
            return out
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, (ast.Not, ast.Invert)):
                return np.logical_not(self.boolean(node.operand))
            v = self.number(node.operand, None)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, (ast.BitAnd, ast.BitOr)):
                left, right = self.boolean(node.left, hint=True), self.boolean(node.right, hint=True)
                return np.logical_and(left, right) if isinstance(node.op, ast.BitAnd) else np.logical_or(left, right)
            left = self.number(node.left, self._unit_of(node.right))
            right = self.number(node.right, self._unit_of(node.left))
            return _ARITH[type(node.op)](np.asarray(left, dtype=float), np.asarray(right, dtype=float))
        if isinstance(node, ast.Compare):
            return self.compare(node)
        raise self.fail(f"{_WHAT.get(type(node), type(node).__name__)} is not allowed here", node)

    def boolean(self, node: ast.AST, hint: bool = False) -> Any:
        v = self.evaluate(node)
        if not self._is_bool(v):
            extra = " (with & and |, put each comparison in parentheses, or write and / or)" if hint else ""
            raise self.fail(f"expected True/False (a comparison or a boolean column){extra}", node)
        return v

    def _unit_of(self, node: ast.AST) -> str | None:
        """The quantity unit of the other side of a comparison, from a column name."""
        if isinstance(node, ast.Name):
            return _UNITS.get(node.id, "")
        return None

    def number(self, node: ast.AST, unit: str | None) -> Any:
        v = self.evaluate(node)
        if isinstance(v, str):
            return self.quantity(v, unit, node)
        if self._is_text(v):
            raise self.fail("a text column cannot be used in arithmetic or ordered comparisons", node)
        if isinstance(v, (bool, np.bool_)) or (isinstance(v, np.ndarray) and v.dtype == bool):
            raise self.fail("True/False cannot be used as a number", node)
        return v

    def quantity(self, text: str, unit: str | None, node: ast.AST) -> float:
        try:
            return parse_quantity(text, unit or "")
        except ValueError as exc:
            raise self.fail(f"quoted text compared with a number must be a quantity: {exc}", node) from None

    def operand(self, node: ast.AST, other: ast.AST) -> Any:
        """One side of a comparison: text stays text next to a text column, else numbers/quantities."""
        v = self.evaluate(node)
        if isinstance(v, str):
            w = self.evaluate(other) if isinstance(other, ast.Name) else None
            if w is not None and self._is_text(w):
                return v
            return self.quantity(v, self._unit_of(other), node)
        return v

    def compare(self, node: ast.Compare) -> Any:
        if isinstance(node.ops[0], (ast.In, ast.NotIn)):
            left = self.evaluate(node.left)
            items = node.comparators[0]
            assert isinstance(items, (ast.Tuple, ast.List))
            if self._is_text(left):
                values = [self._literal(e) for e in items.elts]
                if not all(isinstance(x, str) for x in values):
                    raise self.fail("a text column is compared with quoted texts", items)
                out = np.isin(np.asarray(left, dtype=object), np.asarray(values, dtype=object))
            else:
                left = self.number(node.left, None)
                unit = self._unit_of(node.left)
                values = [self._literal(e) for e in items.elts]
                try:
                    nums = [self.quantity(x, unit, items) if isinstance(x, str) else float(x) for x in values]
                except OverflowError:
                    raise self.fail("number too large", items) from None
                out = np.isin(np.asarray(left, dtype=float), np.asarray(nums, dtype=float))
            return np.logical_not(out) if isinstance(node.ops[0], ast.NotIn) else out
        result: Any = None
        nodes = [node.left, *node.comparators]
        for op, a, b in zip(node.ops, nodes[:-1], nodes[1:]):
            left, right = self.operand(a, b), self.operand(b, a)
            text = self._is_text(left) or self._is_text(right)
            if text:
                if not (self._is_text(left) and self._is_text(right)):
                    raise self.fail("text is compared with a number", node)
                if not isinstance(op, (ast.Eq, ast.NotEq)):
                    raise self.fail(f"text can only be compared with == or !=, not {_SYMBOL[type(op)]}", node)
                part = np.asarray(left, dtype=object) == np.asarray(right, dtype=object)
                part = np.asarray(part, dtype=bool)
                if isinstance(op, ast.NotEq):
                    part = ~part
            else:
                if self._is_bool(left) or self._is_bool(right):
                    if not (self._is_bool(left) and self._is_bool(right)):
                        raise self.fail("True/False is compared with a number", node)
                    if not isinstance(op, (ast.Eq, ast.NotEq)):
                        raise self.fail("True/False can only be compared with == or !=", node)
                    part = _COMPARE[type(op)](np.asarray(left, dtype=bool), np.asarray(right, dtype=bool))
                else:
                    left = self.number(a, None) if not isinstance(left, (float, int, np.ndarray)) else left
                    part = _COMPARE[type(op)](np.asarray(left, dtype=float), np.asarray(right, dtype=float))
            result = part if result is None else np.logical_and(result, part)
        return result

    @staticmethod
    def _literal(node: ast.AST) -> Any:
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -node.operand.value  # type: ignore[attr-defined]
        return node.value  # type: ignore[attr-defined]


def select_rows(table: pd.DataFrame, rule: str | Rule) -> np.ndarray:
    """Boolean mask of the rows of ``table`` a rule selects (see the module docstring for the grammar)."""
    parsed = rule if isinstance(rule, Rule) else parse_rule(rule)
    return parsed.mask(table)
