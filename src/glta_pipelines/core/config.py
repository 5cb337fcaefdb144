"""Typed configs built from (nested) parameter dicts, with errors that name the parameter.

Kedro 1.7's typed parameters instantiate a dataclass from its dict without checking field types
(``kedro.validation.model_factory``), so ``learning_rate: abc`` would reach the model. Here each
value is checked against its field's annotation first, unknown keys are refused with the nearest
known key, and nested dataclass fields are built the same way with their own parameter path.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from glta_pipelines.core.errors import InputError

T = TypeVar("T")


def config_from_params(cls: type[T], params: Mapping[str, Any] | None, where: str) -> T:
    """Instantiate dataclass ``cls`` from ``params``, check every value's type, run ``validate()``.

    ``where`` is the parameter path shown in errors (e.g. ``pretrain_gnn.lightgcn``). Unknown keys
    are rejected by name with the nearest known one, so a typo never goes unnoticed.
    """
    if params is not None and not isinstance(params, Mapping):
        raise InputError(f"parameter {where}", repr(params), "a mapping of parameters")
    params = dict(params or {})
    hints = typing.get_type_hints(cls)
    check_known_keys(params, [f.name for f in dataclasses.fields(cls)], where)
    for name, value in list(params.items()):
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and not dataclasses.is_dataclass(value):
            params[name] = config_from_params(hint, value, f"{where}.{name}")
        else:
            params[name] = coerce_value(value, hint, f"{where}.{name}")
    config = cls(**params)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def check_known_keys(params: Mapping[str, Any], known: Iterable[str], where: str) -> None:
    """Refuse keys not in ``known``, naming the closest known key."""
    known = sorted(known)
    for key in params:
        if key not in known:
            raise InputError(f"parameter {join(where, key)}", "an unknown key", known_key_hint(key, known, where))


def known_key_hint(key: str, known: list[str], where: str) -> str:
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.5)
    keys = ", ".join(known)
    if close:
        return f"a known key: did you mean {join(where, close[0])}? (keys here: {keys})"
    return f"one of the keys {keys}"


def join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else str(key)


def coerce_value(value: Any, hint: Any, where: str) -> Any:
    """``value`` checked against the annotation ``hint``; lists become tuples for tuple fields.

    Accepts ints for floats (``1`` for ``1.0``), never bools for numbers. A list typed on the
    command line with spaces arrives as one string (``["0.8 0.1 0.1"]``) and is refused with the
    form that works (``--params graph.split.ratios=[0.8,0.1,0.1]``, see ``glta_pipelines.cli``).
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            try:
                return coerce_value(value, option, where)
            except InputError:
                continue
        raise InputError(f"parameter {where}", describe(value), _expected(hint))
    if origin is tuple:
        items = _split_list(value)
        if items is None:
            raise InputError(f"parameter {where}", describe(value), _expected(hint))
        if len(args) == 2 and args[1] is Ellipsis:
            element_types = [args[0]] * len(items)
        elif len(args) != len(items):
            raise InputError(f"parameter {where}", describe(value), _expected(hint))
        else:
            element_types = list(args)
        return tuple(coerce_value(v, t, f"{where}[{i}]") for i, (v, t) in enumerate(zip(items, element_types)))
    if origin is list:
        items = _split_list(value)
        if items is None:
            raise InputError(f"parameter {where}", describe(value), _expected(hint))
        return [coerce_value(v, args[0], f"{where}[{i}]") for i, v in enumerate(items)] if args else list(items)
    if hint is Any:
        return value
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is str:
        if isinstance(value, str):
            return value
    elif isinstance(hint, type) and isinstance(value, hint):
        return value
    raise InputError(f"parameter {where}", describe(value), _expected(hint))


def describe(value: Any) -> str:
    """A value and its YAML-level type, as an error message shows it."""
    kind = {bool: "boolean", int: "integer", float: "number", str: "text", type(None): "null",
            list: "list", tuple: "list", dict: "mapping"}.get(type(value), type(value).__name__)
    return f"{value!r} ({kind})"


def _expected(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_expected(a) for a in args)
    if origin is tuple:
        example = "[0.8,0.1,0.1]" if float in args else "[10,20]" if int in args else "[q_proj,v_proj]"
        size = "a list" if len(args) == 2 and args[1] is Ellipsis else f"a list of {len(args)} values"
        return f"{size}, each {_expected(args[0])} (on the command line, commas and no spaces: {example})"
    if origin is list:
        return f"a list of {_expected(args[0])}" if args else "a list"
    return {float: "a number", int: "an integer (no decimals)", bool: "true or false", str: "text",
            type(None): "null"}.get(hint, getattr(hint, "__name__", str(hint)))


def _split_list(value: Any) -> list[Any] | None:
    """A list's items, or None for anything else (a string such as ``"[0.8 0.1 0.1]"`` included)."""
    if isinstance(value, (list, tuple)) and not (len(value) == 1 and isinstance(value[0], str) and " " in value[0]):
        return list(value)
    return None
