"""The registry of functional forms: built-ins plus whatever users register at run time."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from ..errors import PlannerError
from .base import CallableForm, Form, Param
from .chinchilla import Chinchilla, Overtrain
from .downstream import DownstreamExp, DownstreamSigmoid
from .repetition import Repetition
from .second_stage import SplitMultiplicative, SplitPrelearned, SplitTransfer
from .split import SplitAdditive, SplitEffective, SplitInteraction

__all__ = ["register_form", "get_form", "list_forms", "unregister_form", "FormError"]


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
    if isinstance(spec, Param):
        return spec
    if isinstance(spec, Mapping):
        return Param(name=name, **dict(spec))
    if isinstance(spec, Sequence) and len(spec) in (2, 3):
        lower, upper = float(spec[0]), float(spec[1])
        start = float(spec[2]) if len(spec) == 3 else (lower * upper) ** 0.5 if lower > 0 else (lower + upper) / 2
        return Param(name=name, lower=lower, upper=upper, start=start, positive=lower > 0)
    raise FormError(f"parameter {name!r}: give a Param, a dict of Param fields, or (lower, upper[, start]); got {spec!r}")


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
    ``monomials``) go to :class:`CallableForm`.
    """
    if isinstance(form, Form):
        obj = form
    else:
        if func is None or params is None:
            raise FormError(f"register_form({form!r}): give a callable and its parameters")
        if isinstance(params, Mapping):
            plist = [_as_param(n, s) for n, s in params.items()]
        else:
            plist = [_as_param(getattr(q, "name", str(i)), q) for i, q in enumerate(params)]
        obj = CallableForm(form, func, plist, **kwargs)
    if not obj.name:
        raise FormError("a form needs a name")
    names = [q.name for q in obj.params]
    if len(set(names)) != len(names):
        raise FormError(f"form {obj.name!r} declares a parameter twice: {names}")
    if obj.name in _REGISTRY and not replace:
        raise FormError(f"a form named {obj.name!r} is already registered (pass replace=True to override)")
    _REGISTRY[obj.name] = obj
    return obj


def unregister_form(name: str) -> None:
    """Remove a user form (built-ins cannot be removed)."""
    if any(f.name == name for f in _BUILTIN):
        raise FormError(f"{name!r} is a built-in form")
    _REGISTRY.pop(name, None)


def get_form(form: Form | str) -> Form:
    """The form registered under ``form`` (or ``form`` itself if it is a Form)."""
    if isinstance(form, Form):
        return form
    try:
        return _REGISTRY[form]
    except KeyError:
        raise FormError(f"unknown form {form!r}; known forms: {', '.join(sorted(_REGISTRY))}") from None


def list_forms(kind: str | None = None) -> list[Form]:
    """Registered forms, built-ins first, optionally only of one ``kind`` ("loss" or "downstream")."""
    return [f for f in _REGISTRY.values() if kind is None or f.kind == kind]
