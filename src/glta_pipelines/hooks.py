"""Project hooks, one per concern (registered in ``settings.py``).

- :class:`ParameterCheckHook`: the whole parameter tree is checked before anything runs.
- :class:`LineageHook`: inputs of one generation, or a refusal naming the mismatch; every output
  records what it was built from.
- :class:`MlflowTrackingHook`: every ``kedro run`` is one MLflow run (``conf/<env>/mlflow.yml``),
  logged through its run id so any runner's threads and processes log into it; outputs named in
  the config become metrics or artifacts as soon as they are saved; a failing run is FAILED, an
  interrupted one KILLED.
- :class:`NodeTimingHook`: every node's wall time.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.framework.hooks import hook_impl
from matplotlib.figure import Figure
from mlflow.entities import Param

from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.text_encoder import TextEncoderConfig, check_available
from glta_pipelines.lineage import LineagePlan
from glta_pipelines.parameters import dataset_source, validate_parameters
from glta_pipelines.tracking import (
    PARENT_ENV,
    PROCESS_TAG,
    SEED_ENV,
    client,
    current_run,
    experiment,
    flatten,
    git_commit,
    log_dict,
    log_metrics,
    publish_run,
    resolve_tracking_uri,
    unpublish_run,
)

log = logging.getLogger(__name__)


class ParameterCheckHook:
    """Validates the whole parameter tree before anything runs or is written (``parameters.py``)."""

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}

    @hook_impl
    def after_context_created(self, context) -> None:
        self._params = context.params

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        validate_parameters(self._params)
        if "params:baselines.text_encoder" in pipeline.inputs():  # a text encoder that is not installed
            check_available(config_from_params(TextEncoderConfig, self._params["baselines"]["text_encoder"],
                                               "baselines.text_encoder"))
        read = [name[len("params:"):] for name in pipeline.inputs() if name.startswith("params:")]
        for key in flatten(run_params.get("runtime_params") or {}):
            if not any(key == r or key.startswith(f"{r}.") or r.startswith(f"{key}.") for r in read):
                log.warning("--params %s has no effect: no node of this run reads it (it belongs to a stage "
                            "that does not run; its inputs were built with the value of their own run)", key)


class LineageHook:
    """Refuses runs whose inputs mix generations; records each output's lineage beside it (``lineage.py``)."""

    def __init__(self) -> None:
        self._source: str | None = None
        self.plan: LineagePlan | None = None

    @hook_impl
    def after_context_created(self, context) -> None:
        self._source = dataset_source(context.params.get("dataset", {}))

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        from kedro.framework.project import pipelines

        self.plan = LineagePlan(pipeline, catalog, pipelines["paper"], self._source)  # paper: full and more
        self.plan.check_source(self._source)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        if self.plan is not None:
            self.plan.record(dataset_name)

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        if self.plan is not None:
            self.plan.record_all()
            # which saved versions this run read, in the MLflow run (runs before the tracking hook closes it)
            log_dict({"inputs": self.plan.inputs}, "lineage/inputs.json")

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params, pipeline, catalog) -> None:
        if self.plan is not None:
            self.plan.record_all()


class ProjectPathsHook:
    """Relative folder parameters resolve against the project root, as the catalog's paths and mlflow.db do.

    Otherwise ``kedro run`` from a subfolder (or a session created from elsewhere) would convert the
    LLM again and keep GLLM checkpoints in another ``data/``.
    """

    PATHS = ("llm.cache_dir", "gllm_finetune.checkpoint_dir")

    def __init__(self) -> None:
        self._project_path = Path.cwd()

    @hook_impl
    def after_context_created(self, context) -> None:
        self._project_path = Path(context.project_path)

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        for name in pipeline.inputs():
            if name.startswith("params:"):
                key = name[len("params:"):]
                dataset = catalog[name]  # the dataset itself: the catalog would log each parameter's load
                value = dataset.load()
                resolved = self._resolved(key, value)
                if resolved != value:
                    dataset.save(resolved)

    def _resolved(self, key: str, value: Any) -> Any:
        """``value`` of parameter ``key`` with the path parameters at or under it made absolute."""
        for path in self.PATHS:
            if path == key:
                value = self._absolute(value)
            elif path.startswith(f"{key}.") and isinstance(value, dict):
                field = path[len(key) + 1:]
                if "." not in field and field in value:
                    value = {**value, field: self._absolute(value[field])}
        return value

    def _absolute(self, value: Any) -> Any:
        return str(self._project_path / value) if isinstance(value, str) and not Path(value).is_absolute() else value


class MlflowTrackingHook:
    """Opens, fills and closes one MLflow run per pipeline run, through its run id (``tracking.py``).

    Registered before :class:`ParameterCheckHook` and :class:`LineageHook`, so a run they refuse
    leaves no MLflow run behind.
    """

    def __init__(self) -> None:
        self._config: dict[str, Any] = {}
        self._params: dict[str, Any] = {}
        self._project_path = Path.cwd()
        self.run_id: str | None = None

    @hook_impl
    def after_context_created(self, context) -> None:
        self._config = dict(context.config_loader["mlflow"])
        self._params = context.params
        self._project_path = Path(context.project_path)

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        uri = self._tracking_uri()
        pipelines = run_params.get("pipeline_names") or ["__default__"]
        dataset = self._params.get("dataset", {}).get("name", "unknown")
        experiment_id = experiment(uri, self._config.get("experiment_name", "glta-pipelines"))  # first: under the lock
        mlflow_client = client(uri)
        _close_stale_runs(mlflow_client, experiment_id)
        parent = os.environ.get(PARENT_ENV)  # one seed of `kedro seeds`: a nested run under its parent
        nesting = {"mlflow.parentRunId": parent, "seed": os.environ.get(SEED_ENV, "")} if parent else {}
        if parent:
            experiment_id = mlflow_client.get_run(parent).info.experiment_id
        run = mlflow_client.create_run(experiment_id, run_name=f"{'+'.join(pipelines)}:{dataset}", tags={
            **nesting,
            "git_commit": git_commit(self._project_path),
            "pipeline_names": ",".join(pipelines),
            "dataset": dataset,
            "kedro_env": run_params.get("env") or "",
            "kedro_run_id": run_params.get("run_id") or "",
            # Kedro passes the runner's repr: "<kedro.runner.thread_runner.ThreadRunner object at 0x...>"
            "runner": str(run_params.get("runner") or "").split(" object at ")[0].rsplit(".", 1)[-1].strip("<>"),
            # what this run changed from conf (ablations, sweeps): `kedro run --params ...`
            "runtime_params": json.dumps(run_params.get("runtime_params") or {}, sort_keys=True, default=str)[:5000],
            # lets the next run close this one as KILLED if the process dies without a word (SIGKILL)
            PROCESS_TAG: f"{socket.gethostname()}:{os.getpid()}",
        })
        self.run_id = run.info.run_id
        publish_run(uri, self.run_id, **{k: self._config.get(k) for k in ("metric_tables", "metric_dicts", "artifacts")})
        _end_open_run_on_exit()
        flat = [Param(k, str(v)[:6000]) for k, v in flatten(self._params).items()]
        for start in range(0, len(flat), 100):
            mlflow_client.log_batch(self.run_id, params=flat[start:start + 100])
        log.info("MLflow run %s in %s", self.run_id, uri)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        run = current_run()  # from the environment: this may be a worker thread or process
        if run is None:
            return
        if dataset_name in (run.get("metric_tables") or []) and isinstance(data, pd.DataFrame):
            log_metrics({f"{r.split}.{r.method}.{r.metric}_at_{r.k}": r.value for r in data.itertuples()})
        metric_dicts = run.get("metric_dicts") or {}
        if dataset_name in metric_dicts and isinstance(data, dict):
            log_metrics(flatten(data), prefix=f"{metric_dicts[dataset_name]}.")
        if dataset_name in (run.get("artifacts") or []):
            _log_artifact(client(run["tracking_uri"]), run["run_id"], dataset_name, data)

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        _end_run("FINISHED")

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params, pipeline, catalog) -> None:
        run = current_run()
        if run is not None:
            client(run["tracking_uri"]).set_tag(run["run_id"], "error", f"{type(error).__name__}: {error}"[:5000])
        _end_run("FAILED")

    def _tracking_uri(self) -> str:
        return resolve_tracking_uri(self._config.get("tracking_uri", "sqlite:///mlflow.db"), self._project_path)


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


@functools.cache  # once per process: every run of a session closes whichever run is published at exit
def _end_open_run_on_exit() -> None:
    """Ctrl-C and SIGTERM bypass Kedro's error hooks: still close the MLflow run, as KILLED."""
    atexit.register(_end_run, "KILLED")
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def _end_run(status: str) -> None:
    run = current_run()
    if run is not None:
        unpublish_run()
        client(run["tracking_uri"]).set_terminated(run["run_id"], status)


def _close_stale_runs(mlflow_client, experiment_id: str) -> None:
    """Mark RUNNING runs of this host whose process is gone (killed with SIGKILL, a crashed machine) KILLED."""
    host = socket.gethostname()
    for run in mlflow_client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=1000):
        owner = run.data.tags.get(PROCESS_TAG, "")
        name, _, pid = owner.rpartition(":")
        if name == host and pid.isdigit() and not _alive(int(pid)):
            mlflow_client.set_terminated(run.info.run_id, "KILLED")
            log.warning("MLflow run %s was left RUNNING by process %s, which is gone: marked KILLED",
                        run.info.run_id, pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid != os.getpid()


def _log_artifact(mlflow_client, run_id: str, dataset_name: str, data: Any) -> None:
    """Log a saved output as an MLflow artifact, in a format a person can open."""
    name = dataset_name.replace(".", "/")
    if isinstance(data, Figure):
        mlflow_client.log_figure(run_id, data, f"{name}.png")
    elif isinstance(data, dict):
        mlflow_client.log_dict(run_id, data, f"{name}.json")
    elif isinstance(data, pd.DataFrame):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{Path(name).name}.csv"
            data.to_csv(path, index=False)
            mlflow_client.log_artifact(run_id, str(path), artifact_path=str(Path(name).parent))
    elif isinstance(data, str):
        mlflow_client.log_text(run_id, data, f"{name}.txt")
