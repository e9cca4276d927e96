"""The registry of functional forms: built-ins, forms registered at run time, and forms that
installed packages declare under the ``planner.forms`` entry-point group.

A package ships a form by declaring, in its ``pyproject.toml``::

    [project.entry-points."planner.forms"]
    my-law = "my_package.laws:MyLaw"

where the object is a :class:`Form` instance, a :class:`Form` subclass (instantiated with no
arguments) or a callable returning a Form, whose ``name`` equals the entry-point name. The group is
read lazily, the first time a name is not registered, so scenario files, the CLI and saved law files
can name the form as soon as the package is installed.
"""

from __future__ import annotations

import math
import re
from importlib.metadata import entry_points
from typing import Any, Callable, Mapping, Sequence

from ..errors import PlannerError
from .base import CallableForm, Form, Param
from .chinchilla import Chinchilla, Overtrain
from .downstream import DownstreamExp, DownstreamSigmoid
from .repetition import Repetition
from .second_stage import SplitMultiplicative, SplitPrelearned, SplitTransfer
from .split import SplitAdditive, SplitEffective, SplitInteraction

__all__ = ["register_form", "get_form", "list_forms", "unregister_form", "FormError", "ENTRY_POINT_GROUP"]

#: entry-point group searched for forms of other installed packages
ENTRY_POINT_GROUP = "planner.forms"
_KNOWN_INPUTS = ("model_size", "pretrain_tokens", "spec_tokens", "unique_tokens", "loss")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class FormError(KeyError, PlannerError):
    """Unknown form name, or a bad custom form declaration."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0]) if self.args else ""


_BUILTIN: tuple[Form, ...] = (
    Chinchilla(),
    SplitEffective(),
    SplitInteraction(),
    SplitAdditive(),
    Overtrain(),
    Repetition(),
    DownstreamExp(),
    DownstreamSigmoid(),
    SplitTransfer(),
    SplitMultiplicative(),
    SplitPrelearned(),
)
_REGISTRY: dict[str, Form] = {f.name: f for f in _BUILTIN}


def _as_param(name: str, spec: Any) -> Param:
    try:
        if isinstance(spec, Param):
            return spec
        if isinstance(spec, Mapping):
            return Param(name=name, **dict(spec))
        if isinstance(spec, Sequence) and not isinstance(spec, str) and len(spec) in (2, 3):
            lower, upper = float(spec[0]), float(spec[1])
            start = float(spec[2]) if len(spec) == 3 else (lower * upper) ** 0.5 if lower > 0 else (lower + upper) / 2
            return Param(name=name, lower=lower, upper=upper, start=start, positive=lower > 0)
    except (TypeError, ValueError) as exc:
        raise FormError(f"parameter {name!r}: {exc}") from None
    raise FormError(f"parameter {name!r}: give a Param, a dict of Param fields, or (lower, upper[, start]); got {spec!r}")


def _check_form(obj: Form) -> None:
    """Refuse a form that cannot be fitted or predicted: names, parameters, inputs, callables."""
    if not isinstance(obj.name, str) or not obj.name.strip() or any(c in obj.name for c in "[]\n"):
        raise FormError(f"a form needs a name (text without brackets), got {obj.name!r}")
    where = f"form {obj.name!r}"
    if not callable(getattr(obj, "predict", None)):
        raise FormError(f"{where}: predict must be callable")
    if isinstance(obj, CallableForm):
        if not callable(obj.func):
            raise FormError(f"{where}: the law must be a callable func(x, **params), not {type(obj.func).__name__}")
        for label, fn in (("grad", obj._grad), ("monomials", obj._monomials)):
            if fn is not None and not callable(fn):
                raise FormError(f"{where}: {label}= must be callable or None, not {type(fn).__name__}")
    params = tuple(obj.params)
    if not params:
        raise FormError(f"{where} declares no parameters")
    for q in params:
        if not isinstance(q, Param):
            raise FormError(f"{where}: parameters must be Param objects, got {type(q).__name__}")
        if not _NAME.match(q.name):
            raise FormError(f"{where}: parameter name {q.name!r} must be an identifier (letters, digits, _)")
        if not (math.isfinite(q.lower) or q.lower == -math.inf) or math.isnan(q.upper):
            raise FormError(f"{where}: parameter {q.name!r} has bounds [{q.lower}, {q.upper}]")
    names = [q.name for q in params]
    if len(set(names)) != len(names):
        raise FormError(f"{where} declares a parameter twice: {names}")
    if isinstance(obj.inputs, str) or not all(isinstance(c, str) for c in obj.inputs):
        raise FormError(f"{where}: inputs must be a list of column names from {', '.join(_KNOWN_INPUTS)}")
    unknown = [c for c in obj.inputs if c not in _KNOWN_INPUTS]
    if unknown:
        raise FormError(f"{where}: unknown inputs {unknown}; a form reads {', '.join(_KNOWN_INPUTS)}")
    if not isinstance(obj.target, str) or not obj.target:
        raise FormError(f"{where}: target must be a column name such as 'loss' or 'error'")


def register_form(
    form: Form | str,
    func: Callable[..., Any] | None = None,
    params: Mapping[str, Any] | Sequence[Param] | None = None,
    *,
    replace: bool = False,
    **kwargs: Any,
) -> Form:
    """Add a form to the registry, without editing the package.

    Either pass a :class:`Form` instance, or a name, a callable
    ``func(x, **params)`` (``x`` has arrays ``model_size``, ``pretrain_tokens``,
    ``spec_tokens``, ``unique_tokens``, ``loss``) and the parameters as
    ``{"E": (0.1, 10), "alpha": (0.01, 2, 0.3)}`` (lower, upper[, start]) or a list of
    :class:`Param`. Other keywords (``equation``, ``inputs``, ``grad``, ``target``,
    ``monomials``) go to :class:`CallableForm`. A form from another package can instead be
    declared under the ``planner.forms`` entry-point group (see the module docstring).

    Raises:
        FormError: a non-callable law, bad parameter declarations, unknown inputs, a name
            already taken (without ``replace=True``).
    """
    if isinstance(form, Form):
        obj = form
    elif isinstance(form, str):
        if func is None or params is None:
            raise FormError(f"register_form({form!r}): give a callable and its parameters")
        if not callable(func):
            raise FormError(f"register_form({form!r}): the law must be a callable func(x, **params), not {type(func).__name__}")
        if isinstance(params, Mapping):
            plist = [_as_param(str(n), s) for n, s in params.items()]
        elif isinstance(params, Sequence) and not isinstance(params, str):
            plist = [_as_param(getattr(q, "name", str(i)), q) for i, q in enumerate(params)]
        else:
            raise FormError(f"register_form({form!r}): params must be a mapping name -> (lower, upper[, start]) or a list of Param")
        try:
            obj = CallableForm(form, func, plist, **kwargs)
        except TypeError as exc:
            raise FormError(f"register_form({form!r}): {exc}") from None
    else:
        raise FormError(f"register_form: give a Form or a form name, not {type(form).__name__}")
    _check_form(obj)
    if obj.name in _REGISTRY and not replace:
        raise FormError(f"a form named {obj.name!r} is already registered (pass replace=True to override)")
    _REGISTRY[obj.name] = obj
    return obj


def unregister_form(name: str) -> None:
    """Remove a user form (built-ins cannot be removed)."""
    if any(f.name == name for f in _BUILTIN):
        raise FormError(f"{name!r} is a built-in form")
    _REGISTRY.pop(name, None)


def _entry_points() -> dict[str, Any]:
    """Installed ``planner.forms`` entry points by name (read each time: installs can change)."""
    try:
        return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    except Exception:  # a broken distribution's metadata must not break planner
        return {}


def _load_entry_point(name: str, ep: Any) -> Form:
    """Load, build, check and register the form an entry point declares."""
    where = f"entry point {ep.value!r} ({ENTRY_POINT_GROUP} {name!r})"
    try:
        obj = ep.load()
        if isinstance(obj, type) and issubclass(obj, Form):
            obj = obj()
        elif not isinstance(obj, Form) and callable(obj):
            obj = obj()
    except Exception as exc:
        raise FormError(f"form {name!r}: could not load {where}: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, Form):
        raise FormError(f"form {name!r}: {where} gives {type(obj).__name__}, not a planner Form")
    if obj.name != name:
        raise FormError(f"form {name!r}: {where} gives a form named {obj.name!r}; the names must match")
    return register_form(obj)


def get_form(form: Form | str) -> Form:
    """The form registered under ``form`` (or ``form`` itself if it is a Form).

    A name not registered is looked up in the ``planner.forms`` entry points of the installed
    packages, loaded and registered.
    """
    if isinstance(form, Form):
        return form
    if not isinstance(form, str):
        raise FormError(f"a form is a name or a Form, not {type(form).__name__}")
    if form in _REGISTRY:
        return _REGISTRY[form]
    plugins = _entry_points()
    if form in plugins:
        return _load_entry_point(form, plugins[form])
    known = sorted(set(_REGISTRY) | set(plugins))
    raise FormError(f"unknown form {form!r}; known forms: {', '.join(known)}")


def list_forms(kind: str | None = None) -> list[Form]:
    """Registered forms, built-ins first, optionally only of one ``kind`` ("loss" or "downstream")."""
    return [f for f in _REGISTRY.values() if kind is None or f.kind == kind]
