"""Project hooks: every ``kedro run`` is one MLflow run.

Configured by ``conf/<env>/mlflow.yml``. Parameters are validated and logged before any node
runs, so bad parameters fail before anything is written; outputs named in the config are
logged as final metrics or artifacts as soon as they are saved; a failing run is marked FAILED.
"""

from __future__ import annotations

import atexit
import json
import logging
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from kedro.framework.hooks import hook_impl
from matplotlib.figure import Figure

from glta_pipelines.parameters import validate_parameters
from glta_pipelines.tracking import flatten, log_metrics

log = logging.getLogger(__name__)


class MlflowTrackingHook:
    """Opens, fills and closes one MLflow run per pipeline run."""

    def __init__(self) -> None:
        self._config: dict[str, Any] = {}
        self._params: dict[str, Any] = {}
        self._project_path = Path.cwd()

    @hook_impl
    def after_context_created(self, context) -> None:
        self._config = dict(context.config_loader["mlflow"])
        self._params = context.params
        self._project_path = Path(context.project_path)

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        mlflow.set_tracking_uri(self._tracking_uri())
        mlflow.set_experiment(self._config.get("experiment_name", "glta-pipelines"))
        pipelines = run_params.get("pipeline_names") or ["__default__"]
        dataset = self._params.get("dataset", {}).get("name", "unknown")
        if mlflow.active_run() is not None:  # a run left open by an earlier failure in this process
            mlflow.end_run("FAILED")
        mlflow.start_run(run_name=f"{'+'.join(pipelines)}:{dataset}")
        _end_open_run_on_exit()
        mlflow.set_tags({
            "git_commit": _git_commit(self._project_path),
            "pipeline_names": ",".join(pipelines),
            "dataset": dataset,
            "kedro_env": run_params.get("env") or "",
            "kedro_run_id": run_params.get("run_id") or "",
            # what this run changed from conf (ablations, sweeps): `kedro run --params ...`
            "runtime_params": json.dumps(run_params.get("runtime_params") or {}, sort_keys=True, default=str)[:5000],
        })
        try:
            validate_parameters(self._params)
        except Exception:
            mlflow.end_run("FAILED")
            raise
        flat = {k: str(v)[:6000] for k, v in flatten(self._params).items()}
        mlflow.log_params(flat)
        log.info("MLflow run %s in %s", mlflow.active_run().info.run_id, mlflow.get_tracking_uri())

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        if mlflow.active_run() is None:
            return
        metric_tables = self._config.get("metric_tables", [])
        metric_dicts = self._config.get("metric_dicts", {})
        if dataset_name in metric_tables and isinstance(data, pd.DataFrame):
            log_metrics({f"{r.split}.{r.method}.{r.metric}_at_{r.k}": r.value for r in data.itertuples()})
        if dataset_name in metric_dicts and isinstance(data, dict):
            log_metrics(flatten(data), prefix=f"{metric_dicts[dataset_name]}.")
        if dataset_name in self._config.get("artifacts", []):
            _log_artifact(dataset_name, data)

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        if mlflow.active_run() is not None:
            mlflow.end_run("FINISHED")

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params, pipeline, catalog) -> None:
        if mlflow.active_run() is not None:
            mlflow.set_tag("error", f"{type(error).__name__}: {error}"[:5000])
            mlflow.end_run("FAILED")

    def _tracking_uri(self) -> str:
        """``sqlite:///relative.db`` is resolved against the project root, not the cwd."""
        uri = self._config.get("tracking_uri", "sqlite:///mlflow.db")
        prefix = "sqlite:///"
        if uri.startswith(prefix) and not Path(uri[len(prefix):]).is_absolute():
            return prefix + str(self._project_path / uri[len(prefix):])
        return uri


class NodeTimingHook:
    """Wall time of every node as MLflow metrics ``time.<node>`` (seconds), and ``time.pipeline``.

    Registered after :class:`MlflowTrackingHook`: pluggy calls the later hook first, so the
    pipeline's total is logged before the tracking hook closes the run.
    """

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self._pipeline_start = 0.0
        self.seconds: dict[str, float] = {}

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        self._pipeline_start, self.seconds = time.perf_counter(), {}

    @hook_impl
    def before_node_run(self, node, catalog, inputs, is_async, run_id) -> None:
        self._started[node.name] = time.perf_counter()

    @hook_impl
    def after_node_run(self, node, catalog, inputs, outputs, is_async, run_id) -> None:
        seconds = time.perf_counter() - self._started.pop(node.name, time.perf_counter())
        self.seconds[node.name] = seconds
        log_metrics({f"time.{node.name}": seconds})

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        self.seconds["pipeline"] = time.perf_counter() - self._pipeline_start
        log_metrics({"time.pipeline": self.seconds["pipeline"]})


def _end_open_run_on_exit() -> None:
    """Ctrl-C and SIGTERM bypass Kedro's error hooks: still close the MLflow run, as KILLED."""
    atexit.register(_end_open_run)
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def _end_open_run() -> None:
    if mlflow.active_run() is not None:
        mlflow.end_run("KILLED")


def _log_artifact(dataset_name: str, data: Any) -> None:
    """Log a saved output as an MLflow artifact, in a format a person can open."""
    name = dataset_name.replace(".", "/")
    if isinstance(data, Figure):
        mlflow.log_figure(data, f"{name}.png")
    elif isinstance(data, dict):
        mlflow.log_dict(data, f"{name}.json")
    elif isinstance(data, pd.DataFrame):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{Path(name).name}.csv"
            data.to_csv(path, index=False)
            mlflow.log_artifact(str(path), artifact_path=str(Path(name).parent))
    elif isinstance(data, str):
        mlflow.log_text(data, f"{name}.txt")


def _git_commit(path: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
