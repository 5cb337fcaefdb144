"""Small MLflow helpers shared by the nodes and the project hook.

Logging is a no-op when no MLflow run is active (unit tests, a pipeline run without hooks).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import mlflow


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def log_metrics(metrics: Mapping[str, float], step: int | None = None, prefix: str = "") -> None:
    """Log finite numeric metrics to the active MLflow run, if there is one."""
    if mlflow.active_run() is None:
        return
    clean = {f"{prefix}{k}": float(v) for k, v in metrics.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    if clean:
        mlflow.log_metrics(clean, step=step)


def epoch_logger(prefix: str) -> Callable[[int, dict[str, float]], None]:
    """Callback ``(epoch, metrics)`` that logs ``<prefix>.<metric>`` at ``step=epoch``."""
    return lambda epoch, metrics: log_metrics(metrics, step=epoch, prefix=f"{prefix}.")
