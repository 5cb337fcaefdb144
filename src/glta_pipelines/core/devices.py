"""Which torch device a stage runs on, from a parameter: ``auto`` (CUDA when present), ``cpu`` or ``cuda[:N]``."""

from __future__ import annotations

import torch

from glta_pipelines.core.errors import InputError


def check_device(spec: str, parameter: str) -> None:
    """Raise :class:`InputError` unless ``spec`` is auto, cpu or cuda[:N]."""
    if spec not in ("auto", "cpu") and not (spec == "cuda" or (spec.startswith("cuda:") and spec[5:].isdigit())):
        raise InputError(f"parameter {parameter}", repr(spec), "auto, cpu or cuda[:N]")


def resolve_device(spec: str) -> torch.device:
    """The device ``spec`` names; ``auto`` is CUDA when a GPU is visible, else the CPU."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)
