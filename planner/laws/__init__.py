"""Scaling-law forms and their registry."""

from .base import CallableForm, Form, Inputs, Monomial, Param
from .chinchilla import Chinchilla, Overtrain
from .downstream import DownstreamExp, DownstreamSigmoid
from .registry import FormError, get_form, list_forms, register_form, unregister_form
from .repetition import Repetition, effective_tokens
from .second_stage import SplitMultiplicative, SplitPrelearned, SplitTransfer
from .split import SplitAdditive, SplitEffective, SplitInteraction

__all__ = [
    "CallableForm", "Form", "Inputs", "Monomial", "Param",
    "Chinchilla", "Overtrain", "DownstreamExp", "DownstreamSigmoid", "Repetition", "effective_tokens",
    "SplitAdditive", "SplitEffective", "SplitInteraction", "SplitMultiplicative", "SplitPrelearned", "SplitTransfer",
    "FormError", "get_form", "list_forms", "register_form", "unregister_form",
]
