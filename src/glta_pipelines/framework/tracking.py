"""MLflow logging through an explicit run id, shared by the nodes and the project hooks.

MLflow's "active run" is per thread and per process, so under ``ThreadRunner`` or
``ParallelRunner`` a node would log nowhere. The tracking hook instead publishes the run it opened
in the environment variable :data:`RUN_ENV` (tracking URI, run id, what to log); threads and worker
processes read it and log through ``MlflowClient`` into that run. Logging is a no-op when no run is
published (unit tests, a pipeline run without hooks).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import subprocess
import time
import warnings
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

RUN_ENV = "GLTA_MLFLOW_RUN"
PARENT_ENV = "GLTA_MLFLOW_PARENT_RUN"  # set by `kedro seeds`: each run is nested under this one
TRIAL_ENV = "GLTA_TUNE_TRIAL"  # set by `kedro tune`: the trial number, a tag of the nested run
TRIAL_TAG = "trial"
SEED_ENV = "GLTA_SEED"  # the seed a nested run was started for (tag `seed`)
PROCESS_TAG = "glta.process"  # host:boot:pid-namespace:pid of the process that owns a RUNNING run


def process_owner(pid: int | None = None) -> str:
    """Who owns a RUNNING run, as its ``glta.process`` tag: host, the kernel's boot id and the PID
    namespace, then the pid. A pid is only checked for liveness where all three match: not after
    a reboot (pids are reused) nor from another container that shares the host name."""
    return f"{machine_identity()}:{os.getpid() if pid is None else pid}"


def machine_identity() -> str:
    """``host:boot:pid-namespace`` of this process (the last two empty where the system has none)."""
    import socket

    def read(path: str, link: bool = False) -> str:
        try:
            return (os.readlink(path) if link else Path(path).read_text()).strip()
        except OSError:
            return ""

    boot = read("/proc/sys/kernel/random/boot_id")[:8]
    namespace = re.sub(r"\D", "", read("/proc/self/ns/pid", link=True))
    return f"{socket.gethostname()}:{boot}:{namespace}"


def resolve_tracking_uri(uri: str, project_path: Path) -> str:
    """``sqlite:///relative.db`` is resolved against the project root, not the cwd."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not Path(uri[len(prefix):]).is_absolute():
        return prefix + str(Path(project_path) / uri[len(prefix):])
    return uri


@contextlib.contextmanager
def store_lock(uri: str):
    """An inter-process lock beside a local sqlite store; other stores migrate on their own server."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        yield
        return
    with FileLock(uri[len(prefix):] + ".lock", timeout=600):
        yield


# MLflow 3's UI opens an experiment by its kind: without it, on the GenAI overview (traces, token
# usage), which this project never fills; with it, on the training runs and their charts.
EXPERIMENT_KIND, MODEL_DEVELOPMENT = "mlflow.experimentKind", "custom_model_development"


def experiment(tracking_uri: str, name: str) -> str:
    """The id of experiment ``name``, created if missing (under the store lock: the first use of a new
    sqlite store migrates its schema, once, not twice), and marked as model development for MLflow's
    UI. Call it before :func:`client` opens the store."""
    with store_lock(tracking_uri):
        mlflow_client = client(tracking_uri)
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            return mlflow_client.create_experiment(name, tags={EXPERIMENT_KIND: MODEL_DEVELOPMENT})
        if EXPERIMENT_KIND not in found.tags:  # made by an older version or by hand; a user's own kind stays
            mlflow_client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND, MODEL_DEVELOPMENT)
        return found.experiment_id


def git_commit(path: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


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
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


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


def log_history(prefix: str, rows: list[Mapping[str, float]]) -> None:
    """A finished training's per-epoch rows (each with its ``epoch``) logged as :func:`epoch_logger` would."""
    log_epoch = epoch_logger(prefix)
    for row in rows:
        log_epoch(int(row["epoch"]), {key: value for key, value in row.items() if key != "epoch"})


METRICS_TABLE, COMPARISON = "evaluate.metrics", "evaluate.comparison"


def chart_filter(patterns: list[str] | None) -> Callable[[Mapping[str, float]], dict[str, float]]:
    """Keeps the metrics whose names match one of ``patterns`` (regular expressions); all without patterns
    (the default: every method's every metric and the comparison's every number are metrics)."""
    compiled = [re.compile(p) for p in patterns or []]
    if not compiled:
        return dict
    return lambda metrics: {k: v for k, v in metrics.items() if any(p.search(k) for p in compiled)}


SCHEMA_ROWS = 10_000


def log_input(data: pd.DataFrame, name: str, context: str, source: str) -> None:
    """Record ``data`` as an input dataset of the published run: name, digest, schema and row count."""
    run = current_run()
    if run is None:
        return
    import mlflow.data
    from mlflow.entities import Dataset, DatasetInput, InputTag

    with warnings.catch_warnings():  # MLflow registers its local-file source twice and says so on every call
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        whole = mlflow.data.from_pandas(data, source=source, name=name)  # digest and row count of all rows
        # MLflow infers a schema by visiting every value (5 s a MovieLens-100K run, linear in the rows):
        # the column types are read from the first SCHEMA_ROWS rows
        head = mlflow.data.from_pandas(data.head(SCHEMA_ROWS), source=source, name=name)._to_mlflow_entity()
    entity = Dataset(name=name, digest=whole.digest, source_type=head.source_type, source=head.source,
                     schema=head.schema, profile=json.dumps(whole.profile))
    client(run["tracking_uri"]).log_inputs(run["run_id"], datasets=[
        DatasetInput(entity, tags=[InputTag("mlflow.data.context", context)])])
