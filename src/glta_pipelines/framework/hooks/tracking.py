"""MLflow tracking: every ``kedro run`` is one MLflow run, opened, filled and closed through its run id."""

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
from pathlib import Path
from typing import Any

import pandas as pd
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.llm.backbone import llm_precision
from glta_pipelines.framework.reports import describe_run, method_table
from glta_pipelines.framework.tracking import (
    COMPARISON,
    METRICS_TABLE,
    PARENT_ENV,
    PROCESS_TAG,
    SEED_ENV,
    TRIAL_ENV,
    TRIAL_TAG,
    chart_filter,
    client,
    current_run,
    experiment,
    flatten,
    machine_identity,
    process_owner,
    git_commit,
    log_input,
    log_metrics,
    publish_run,
    resolve_tracking_uri,
    unpublish_run,
)
from kedro.framework.hooks import hook_impl
from matplotlib.figure import Figure
from mlflow.entities import Param

JOIN_ENV = "MLFLOW_RUN_ID"  # set by an orchestrator: every task of one DAG logs into this run

log = logging.getLogger(__name__)


class MlflowTrackingHook:
    """Opens, fills and closes one MLflow run per pipeline run, through its run id (``framework/tracking.py``).

    Registered before :class:`ParameterCheckHook` and :class:`LineageHook`, so a run they refuse
    leaves no MLflow run behind.
    """

    def __init__(self) -> None:
        self._config: dict[str, Any] = {}
        self._params: dict[str, Any] = {}
        self._project_path = Path.cwd()
        self.run_id: str | None = None
        self._monitor = None
        self._logged_inputs: set[str] = set()
        self._sources: dict[str, str] = {}
        self._evaluation: dict[str, Any] = {}

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
        joined = os.environ.get(JOIN_ENV)  # a task of an orchestrated DAG: log into the DAG's run
        if joined:
            self.run_id = _join_run(mlflow_client, joined, pipelines)
            self._start_run(uri, catalog, joined=True)
            return
        parent = os.environ.get(PARENT_ENV)  # one seed of `kedro seeds`: a nested run under its parent
        nesting = {"mlflow.parentRunId": parent} if parent else {}  # a seed of `kedro seeds`, a trial of `kedro tune`
        nesting.update({tag: os.environ[env] for tag, env in (("seed", SEED_ENV), (TRIAL_TAG, TRIAL_ENV))
                        if parent and os.environ.get(env)})
        if parent:
            experiment_id = mlflow_client.get_run(parent).info.experiment_id
        run = mlflow_client.create_run(experiment_id, run_name=f"{'+'.join(pipelines)}:{dataset}", tags={
            **nesting,
            "git_commit": git_commit(self._project_path),
            "pipeline_names": ",".join(pipelines),
            "dataset": dataset,
            "kedro_env": run_params.get("env") or "",
            "kedro_run_id": run_params.get("run_id") or "",
            # what llm.dtype: auto and llm.quantize resolve to on this machine
            "llm_precision": llm_precision(self._params.get("llm")),
            # Kedro passes the runner's repr: "<kedro.runner.thread_runner.ThreadRunner object at 0x...>"
            "runner": str(run_params.get("runner") or "").split(" object at ")[0].rsplit(".", 1)[-1].strip("<>"),
            # what this run changed from conf (ablations, sweeps): `kedro run --params ...`
            "runtime_params": json.dumps(run_params.get("runtime_params") or {}, sort_keys=True, default=str)[:5000],
            # lets the next run close this one as KILLED if the process dies without a word (SIGKILL)
            PROCESS_TAG: process_owner(),
        })
        self.run_id = run.info.run_id
        self._start_run(uri, catalog, joined=False)

    def _start_run(self, uri: str, catalog, joined: bool) -> None:
        """Publish the run, start its system metrics, log the parameters (those a joined run lacks)."""
        mlflow_client = client(uri)
        self._logged_inputs, self._evaluation = set(), {}
        self._sources = {name: _filepath(catalog, name) for name in (self._config.get("inputs") or {})}
        publish_run(uri, self.run_id, joined=joined, **{k: self._config.get(k) for k in (
            "metric_tables", "metric_dicts", "artifacts", "chart_metrics", "inputs")})
        self._start_monitor(uri)
        _end_open_run_on_exit()
        logged = mlflow_client.get_run(self.run_id).data.params if joined else {}
        flat = [Param(k, str(v)[:6000]) for k, v in flatten(self._params).items()]
        conflicting = [p.key for p in flat if p.key in logged and logged[p.key] != p.value]
        if conflicting:  # MLflow parameters are write-once: the DAG's first task set them
            log.warning("MLflow run %s already has other values of %s: this task's values are not logged",
                        self.run_id, conflicting[:5])
        flat = [p for p in flat if p.key not in logged]
        for start in range(0, len(flat), 100):
            mlflow_client.log_batch(self.run_id, params=flat[start:start + 100])
        log.info("MLflow run %s in %s%s", self.run_id, uri, " (joined: MLFLOW_RUN_ID)" if joined else "")

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        run = current_run()  # from the environment: this may be a worker thread or process
        if run is None:
            return
        charted = chart_filter(run.get("chart_metrics"))
        if dataset_name in (run.get("metric_tables") or []) and isinstance(data, pd.DataFrame):
            log_metrics(charted({f"{r.split}.{r.method}.{r.metric}_at_{r.k}": r.value for r in data.itertuples()}))
        metric_dicts = run.get("metric_dicts") or {}
        if dataset_name in metric_dicts and isinstance(data, dict):
            prefix = metric_dicts[dataset_name]
            log_metrics(charted({f"{prefix}.{k}": v for k, v in flatten(data).items()}))
        if dataset_name in (run.get("artifacts") or []):
            _log_artifact(client(run["tracking_uri"]), run["run_id"], dataset_name, data)
        self._record(run, dataset_name, data)

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str, data: Any, node) -> None:
        run = current_run()
        if run is not None:
            self._record(run, dataset_name, data)

    def _record(self, run: dict[str, Any], dataset_name: str, data: Any) -> None:
        """Inputs named in ``inputs`` become the run's datasets (digest, schema, rows) once each;
        the evaluation's outputs are kept for the method table and the run's description."""
        contexts = run.get("inputs") or {}
        if dataset_name in contexts and isinstance(data, pd.DataFrame) and dataset_name not in self._logged_inputs:
            self._logged_inputs.add(dataset_name)
            log_input(data, dataset_name, contexts[dataset_name], self._sources.get(dataset_name, dataset_name))
        if dataset_name in (METRICS_TABLE, COMPARISON):
            self._evaluation[dataset_name] = data

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        run = current_run()
        if run is not None:
            self._finish_monitor()
            mlflow_client = client(run["tracking_uri"])
            for name in (METRICS_TABLE, COMPARISON):  # saved in worker processes under ParallelRunner
                if name not in self._evaluation and name in pipeline.all_outputs():
                    self._evaluation[name] = catalog[name].load()
            if METRICS_TABLE in self._evaluation:
                table = method_table(self._evaluation[METRICS_TABLE], self._evaluation.get(COMPARISON))
                mlflow_client.log_table(run["run_id"], table, "evaluate/methods.json")
            mlflow_client.set_tag(run["run_id"], "mlflow.note.content",
                                  describe_run(mlflow_client.get_run(run["run_id"]), self._evaluation.get(METRICS_TABLE)))
        _end_run("FINISHED")

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params, pipeline, catalog) -> None:
        self._finish_monitor()
        run = current_run()
        if run is not None:
            client(run["tracking_uri"]).set_tag(run["run_id"], "error", f"{type(error).__name__}: {error}"[:5000])
        _end_run("FAILED")

    def _start_monitor(self, uri: str) -> None:
        """CPU, memory, disk, network (and GPU, where present) every ``sampling_interval`` seconds, as
        MLflow's ``system/*`` metrics of the run."""
        settings = self._config.get("system_metrics") or {}
        if not settings.get("enabled", True):
            return
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # its start/stop lines, every run
        self._monitor = SystemMetricsMonitor(self.run_id, sampling_interval=float(settings.get("sampling_interval", 10)),
                                             samples_before_logging=1, tracking_uri=uri,
                                             resume_logging=bool(current_run() and current_run().get("joined")))
        self._monitor.start()

    def _finish_monitor(self) -> None:
        if self._monitor is not None:
            monitor, self._monitor = self._monitor, None
            monitor.finish()

    def _tracking_uri(self) -> str:
        return resolve_tracking_uri(self._config.get("tracking_uri", "sqlite:///mlflow.db"), self._project_path)


@functools.cache  # once per process: every run of a session closes whichever run is published at exit
def _end_open_run_on_exit() -> None:
    """Ctrl-C and SIGTERM bypass Kedro's error hooks: still close the MLflow run, as KILLED."""
    atexit.register(_end_run, "KILLED")
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def _end_run(status: str) -> None:
    """Close the published run; a joined run (``MLFLOW_RUN_ID``) belongs to its orchestrator and stays
    open (a failed task has tagged it with its error), so the orchestrator can retry the task."""
    run = current_run()
    if run is not None:
        unpublish_run()
        if not run.get("joined"):
            client(run["tracking_uri"]).set_terminated(run["run_id"], status)


def _join_run(mlflow_client, run_id: str, pipelines: list[str]) -> str:
    """The orchestrator's run ``run_id``, checked to exist and be open; records this task in tag ``kedro_tasks``."""
    from mlflow.exceptions import MlflowException

    try:
        run = mlflow_client.get_run(run_id)
    except MlflowException:
        raise InputError(f"environment variable {JOIN_ENV}", repr(run_id),
                         "the id of an existing MLflow run in this project's tracking store (conf/<env>/mlflow.yml)"
                         ) from None
    if run.info.status != "RUNNING":
        raise InputError(f"environment variable {JOIN_ENV}", f"run {run_id}, which is {run.info.status}",
                         "an open (RUNNING) run: the orchestrator's run of this DAG")
    tasks = [t for t in run.data.tags.get("kedro_tasks", "").split(",") if t] + ["+".join(pipelines)]
    mlflow_client.set_tag(run_id, "kedro_tasks", ",".join(tasks)[:5000])
    return run_id


def _close_stale_runs(mlflow_client, experiment_id: str) -> None:
    """Mark RUNNING runs of this machine (host, boot, PID namespace: :func:`process_owner`) whose
    process is gone (killed with SIGKILL, a crashed run) KILLED. Runs tagged ``host:pid`` by older
    versions are judged by the host name alone, as they were."""
    here, host = machine_identity(), socket.gethostname()
    for run in mlflow_client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=1000):
        owner = run.data.tags.get(PROCESS_TAG, "")
        machine, _, pid = owner.rpartition(":")
        if machine in (here, host) and pid.isdigit() and not _alive(int(pid)):
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


def _filepath(catalog, name: str) -> str:
    """Where a catalog entry's data lives (its filepath), or its name when it has none."""
    try:
        return str(catalog[name]._describe().get("filepath") or name)
    except Exception:  # an entry missing from this environment's catalog: its name still identifies it
        return name


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
