"""``kedro seeds``: one pipeline for several training seeds, one MLflow parent run, one verdict.

Each seed is an ordinary ``kedro run`` in its own process (the same hooks, checks and lineage),
nested in MLflow under the parent run this command opens
(tags ``mlflow.parentRunId`` and ``seed``). The training seeds (every ``*.seed`` key outside
``graph`` and ``evaluate``, from the parameter contract) take each seed in turn; the split stays
fixed unless ``--vary-split``. When every seed has finished, the parent run gets the summary
(``core/evaluation/seed_summary.py``): ``seeds/summary.md`` (the paper's layout), ``seeds/summary.csv``
(every method and metric: mean, sd, 95% interval, paired difference from the reference; on the
cold-items split also for the cold and warm tasks, with their own tables in ``summary.md``),
``seeds/per_seed.csv``, each seed's log, and the summary as metrics
(``<method>.<metric>.mean`` / ``.sd`` / ``.diff_mean``). The Markdown table is printed.

A seed whose run fails stops the command: its log and the finished seeds' metrics
(``seeds/per_seed.csv``) are still logged, and the parent is FAILED. Ctrl-C or SIGTERM stops the
running seed (SIGINT, so it closes its own run as KILLED), and the parent is KILLED.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from glta_pipelines.core.errors import InputError
from glta_pipelines.core.evaluation.seed_summary import markdown_table, metrics_long, summarize, twin_table
from glta_pipelines.framework.child_runs import dotlist, kedro_command, log_tail, stop, terminate_on_sigterm
from glta_pipelines.framework.parameters import seed_parameters
from glta_pipelines.framework.tracking import (
    PARENT_ENV,
    PROCESS_TAG,
    SEED_ENV,
    client,
    experiment,
    flatten,
    process_owner,
    git_commit,
    resolve_tracking_uri,
)


class SeedRunError(InputError):
    """A seed's ``kedro run`` failed: the message names the seed, its exit status and its log."""


def parse_seeds(value: str) -> list[int]:
    """``"2025,2026,2027"`` or ``"3"`` (three seeds from 2025) -> the list of seeds."""
    text = value.strip()
    try:
        if "," not in text:
            count = int(text)
            if count < 1:
                raise ValueError
            return [2025 + i for i in range(count)]
        seeds = [int(part) for part in text.split(",") if part.strip()]
        if any(seed < 0 for seed in seeds):
            raise ValueError
    except ValueError:
        raise InputError("option --seeds", repr(value), "a count (3) or a comma-separated list of integers >= 0 (2025,2026,2027)") from None
    if len(set(seeds)) != len(seeds) or not seeds:
        raise InputError("option --seeds", repr(value), "distinct integers")
    return seeds


def seed_overrides(seed: int, vary_split: bool) -> dict[str, int]:
    return {key: seed for key in seed_parameters(vary_split)}


def run_seeds(project_path: Path, pipeline: str, seeds: Sequence[int], *, vary_split: bool = False,
              params: dict[str, Any] | None = None, env: str | None = None, reference: str = "lightgcn",
              mlflow_config: dict[str, Any] | None = None, show_progress: bool | None = None) -> tuple[str, str]:
    """Run ``pipeline`` once per seed as nested MLflow runs; return (parent run id, Markdown summary)."""
    params = params or {}
    clashes = sorted(set(flatten(params)) & set(seed_parameters(True)))
    if clashes:
        raise InputError("option --params", f"seed keys {clashes}", "no seed keys: the command sets them per seed")
    config = mlflow_config or {}
    uri = resolve_tracking_uri(config.get("tracking_uri", "sqlite:///mlflow.db"), project_path)
    experiment_id = experiment(uri, config.get("experiment_name", "glta-pipelines"))  # first: under the store lock
    mlflow_client = client(uri)
    parent = mlflow_client.create_run(experiment_id, run_name=f"seeds:{pipeline}x{len(seeds)}", tags={
        "git_commit": git_commit(project_path), "pipeline_names": pipeline, "kedro_env": env or "",
        "runtime_params": json.dumps(params, sort_keys=True, default=str)[:5000],
        PROCESS_TAG: process_owner(),
    }).info.run_id
    for key, value in {"seeds": ",".join(map(str, seeds)), "vary_split": vary_split, "reference": reference,
                       "seed_keys": ",".join(seed_parameters(vary_split))}.items():
        mlflow_client.log_param(parent, key, str(value))
    logs = Path(tempfile.mkdtemp(prefix="glta-seeds-"))
    status, metrics = "FAILED", {}
    terminate_on_sigterm()
    try:
        bar = tqdm(seeds, desc=f"seeds ({pipeline})", unit="run", disable=None if show_progress is None else not show_progress)
        for seed in bar:
            bar.set_postfix(seed=seed)
            log_path = logs / f"seed_{seed}.log"
            try:
                metrics[seed] = _run_one(project_path, pipeline, seed, vary_split, params, env, parent, uri,
                                         experiment_id, log_path)
            finally:
                if log_path.exists():
                    mlflow_client.log_artifact(parent, str(log_path), artifact_path="seeds/logs")
        table = _summarize(mlflow_client, parent, metrics, reference)
        status = "FINISHED"
        return parent, table
    except (KeyboardInterrupt, SystemExit):
        status = "KILLED"
        raise
    finally:
        if status != "FINISHED" and metrics:  # what the finished seeds measured is kept
            _log_per_seed(mlflow_client, parent, metrics_long(metrics))
        if status == "KILLED":
            for run in mlflow_client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent}' "
                                                 "and attributes.status = 'RUNNING'"):
                mlflow_client.set_terminated(run.info.run_id, "KILLED")
        mlflow_client.set_terminated(parent, status)
        shutil.rmtree(logs, ignore_errors=True)


def _run_one(project_path: Path, pipeline: str, seed: int, vary_split: bool, params: dict[str, Any], env: str | None,
             parent: str, uri: str, experiment_id: str, log_path: Path) -> dict[str, float]:
    command = [*kedro_command(), "run", f"--pipelines={pipeline}",
               f"--params={dotlist({**params, **seed_overrides(seed, vary_split)})}"]
    if env:
        command.append(f"--env={env}")
    child_env = {**os.environ, PARENT_ENV: parent, SEED_ENV: str(seed), "KEDRO_DISABLE_TELEMETRY": "true"}
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=project_path, env=child_env, stdout=log, stderr=subprocess.STDOUT)
        try:
            code = process.wait()
        except BaseException:  # Ctrl-C, SIGTERM: the seed's run closes itself as KILLED on SIGINT
            stop(process)
            raise
    if code != 0:
        raise SeedRunError(f"seed {seed} (kedro run --pipelines={pipeline})", f"exit status {code}, ending: "
                           + log_tail(log_path), "a finished run; its whole log is the parent run's artifact seeds/logs")
    runs = client(uri).search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent}' and tags.seed = '{seed}'",
                                   order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise SeedRunError(f"seed {seed}", "no MLflow run nested under the parent", "the run's tracking hook to log it")
    return dict(runs[0].data.metrics)


# The cold-start protocols' tasks, each summarised after the all-items table, with the paired
# difference in the metric the cold-start comparison is decided on: the new-item split's, and the
# new-user split's (told apart by the graph statistics its runs log, ``graph.n_cold_history``).
TASKS = {"test_cold": "Cold items (only the items training never saw are ranked)",
         "test_warm": "Warm items (only the items training saw are ranked)"}
USER_TASKS = {"test_cold": "New users (users training never saw, scored from their first interactions; every "
                           "item is ranked)",
              "test_warm": "Known users (the users training saw; every item is ranked)"}
TASK_DIFFERENCE_METRIC = "ndcg_at_20"


def _summarize(mlflow_client, parent: str, metrics: dict[int, dict[str, float]], reference: str) -> str:
    """The summary of the seeds' metrics, logged to the parent; returns its Markdown."""
    long = metrics_long(metrics)
    summary = summarize(long, reference)
    table = markdown_table(summary, reference=reference)
    twins = twin_table(long)
    if twins:
        table += "\n\nThe value of the item text, paired per seed:\n\n" + twins
    summaries, longs = [summary.assign(split="test")], [long.assign(split="test")]
    new_users = any("graph.n_cold_history" in seed_metrics for seed_metrics in metrics.values())
    for split, title in (USER_TASKS if new_users else TASKS).items():
        task = metrics_long(metrics, split)
        if task.empty or reference not in set(task["method"]):
            continue
        task_summary = summarize(task, reference)
        table += f"\n\n{title}:\n\n" + markdown_table(task_summary, reference=reference,
                                                        difference_metric=TASK_DIFFERENCE_METRIC)
        summaries.append(task_summary.assign(split=split))
        longs.append(task.assign(split=split))
    _log_summary(mlflow_client, parent, pd.concat(longs, ignore_index=True), pd.concat(summaries, ignore_index=True),
                 table)
    return table


def resummarize(tracking_uri: str, parent: str, reference: str = "lightgcn") -> str:
    """Summarise an earlier ``kedro seeds`` run again from its nested runs (e.g. with another
    reference); the parent's summary artifacts and metrics are replaced."""
    mlflow_client = client(tracking_uri)
    try:
        experiment_id = mlflow_client.get_run(parent).info.experiment_id
    except Exception:
        raise InputError("option --from-run", repr(parent), f"the id of a kedro seeds parent run in {tracking_uri}") from None
    children = mlflow_client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent}' "
                                         "and attributes.status = 'FINISHED'")
    metrics = {int(run.data.tags["seed"]): dict(run.data.metrics) for run in children if run.data.tags.get("seed")}
    if not metrics:
        raise InputError("option --from-run", repr(parent), "a parent run with finished seed runs nested under it")
    return _summarize(mlflow_client, parent, metrics, reference)


def _log_per_seed(mlflow_client, parent: str, long: pd.DataFrame) -> None:
    if long.empty:
        return
    with tempfile.TemporaryDirectory() as tmp:
        index = ["split", "method", "metric"] if "split" in long.columns else ["method", "metric"]
        long.pivot_table(index=index, columns="seed", values="value").to_csv(Path(tmp) / "per_seed.csv")
        mlflow_client.log_artifact(parent, str(Path(tmp) / "per_seed.csv"), artifact_path="seeds")


def _log_summary(mlflow_client, parent: str, long: pd.DataFrame, summary: pd.DataFrame, table: str) -> None:
    _log_per_seed(mlflow_client, parent, long)
    with tempfile.TemporaryDirectory() as tmp:
        summary.to_csv(Path(tmp) / "summary.csv", index=False)
        (Path(tmp) / "summary.md").write_text(table + "\n")
        for name in ("summary.csv", "summary.md"):
            mlflow_client.log_artifact(parent, str(Path(tmp) / name), artifact_path="seeds")
    for row in summary.itertuples():
        prefix = "" if getattr(row, "split", "test") == "test" else f"{row.split}."  # all items: as before
        for stat in ("mean", "sd", "diff_mean"):
            value = getattr(row, stat, float("nan"))
            if pd.notna(value):
                mlflow_client.log_metric(parent, f"{prefix}{row.method}.{row.metric}.{stat}", float(value))
