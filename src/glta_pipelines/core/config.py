"""Typed configs built from (nested) parameter dicts, with errors that name the parameter."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from glta_pipelines.core.errors import InputError

T = TypeVar("T")


def config_from_params(cls: type[T], params: Mapping[str, Any] | None, where: str) -> T:
    """Instantiate dataclass ``cls`` from ``params`` and run its ``validate()``.

    ``where`` is the parameter path shown in errors (e.g. ``pretrain_gnn.lightgcn``).
    Unknown keys are rejected by name rather than ignored, so a typo never goes unnoticed.
    """
    params = dict(params or {})
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise InputError(f"parameters {where}", f"unknown keys {unknown}", f"keys among {sorted(fields)}")
    for field in dataclasses.fields(cls):
        if isinstance(field.default, tuple) and isinstance(params.get(field.name), list):
            params[field.name] = tuple(params[field.name])
    config = cls(**params)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config
