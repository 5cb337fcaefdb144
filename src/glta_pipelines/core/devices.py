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


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX): there bfloat16 matmuls are
    faster than float32; elsewhere (AVX2 alone, say) torch converts them and they are slower."""
    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def auto_dtype(device: torch.device) -> torch.dtype:
    """The precision ``auto`` picks for a frozen model's forward passes: bfloat16 on CUDA and on a
    CPU with native bfloat16, float32 elsewhere."""
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()):
        return torch.bfloat16
    return torch.float32
