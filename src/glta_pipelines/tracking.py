"""MLflow logging through an explicit run id, shared by the nodes and the project hooks.

MLflow's "active run" is per thread and per process, so under ``ThreadRunner`` or
``ParallelRunner`` a node would log nowhere. The tracking hook instead publishes the run it opened
in the environment variable :data:`RUN_ENV` (tracking URI, run id, what to log); threads and worker
processes read it and log through ``MlflowClient`` into that run. Logging is a no-op when no run is
published (unit tests, a pipeline run without hooks).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

RUN_ENV = "GLTA_MLFLOW_RUN"


def publish_run(tracking_uri: str, run_id: str, **settings: Any) -> None:
    os.environ[RUN_ENV] = json.dumps({"tracking_uri": tracking_uri, "run_id": run_id, **settings})


def unpublish_run() -> None:
    os.environ.pop(RUN_ENV, None)


def current_run() -> dict[str, Any] | None:
    """``{"tracking_uri", "run_id", ...}`` of the run this process logs into, or None."""
    value = os.environ.get(RUN_ENV)
    return json.loads(value) if value else None


def client(tracking_uri: str) -> MlflowClient:
    """One client per process: a forked ParallelRunner worker must not share its parent's sqlite connections."""
    return _client(tracking_uri, os.getpid())


@lru_cache(maxsize=4)
def _client(tracking_uri: str, pid: int) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri)


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
    """Log finite numeric metrics to the published run, if there is one."""
    run = current_run()
    if run is None:
        return
    now = int(time.time() * 1000)
    clean = [Metric(f"{prefix}{k}", float(v), now, step or 0) for k, v in metrics.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    for start in range(0, len(clean), 1000):  # MLflow's batch limit
        client(run["tracking_uri"]).log_batch(run["run_id"], metrics=clean[start:start + 1000])


def log_dict(data: Mapping[str, Any], artifact_file: str) -> None:
    """Store ``data`` as a JSON artifact of the published run, if there is one."""
    run = current_run()
    if run is not None:
        client(run["tracking_uri"]).log_dict(run["run_id"], dict(data), artifact_file)


def epoch_logger(prefix: str) -> Callable[[int, dict[str, float]], None]:
    """Callback ``(epoch, metrics)`` that logs ``<prefix>.<metric>`` at ``step=epoch``."""
    return lambda epoch, metrics: log_metrics(metrics, step=epoch, prefix=f"{prefix}.")
