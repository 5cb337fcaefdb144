"""``kedro seeds``: one pipeline for several training seeds, one MLflow parent run, one verdict.

Each seed is an ordinary ``kedro run`` in its own process (the same hooks, checks and lineage,
a failure stays that seed's), nested in MLflow under the parent run this command opens
(tags ``mlflow.parentRunId`` and ``seed``). The training seeds (every ``*.seed`` key outside
``graph`` and ``evaluate``, from the parameter contract) take each seed in turn; the split stays
fixed unless ``--vary-split``. When every seed has finished, the parent run gets the summary
(``core/seed_summary.py``): ``seeds/summary.md`` (the paper's layout), ``seeds/summary.csv``
(every method and metric: mean, sd, 95% interval, paired difference from the reference),
``seeds/per_seed.csv``, each seed's log, and the summary as metrics
(``<method>.<metric>.mean`` / ``.sd`` / ``.diff_mean``). The Markdown table is printed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from glta_pipelines.core.errors import InputError
from glta_pipelines.core.seed_summary import markdown_table, metrics_long, summarize
from glta_pipelines.parameters import seed_parameters
from glta_pipelines.tracking import (
    PARENT_ENV,
    PROCESS_TAG,
    SEED_ENV,
    client,
    experiment,
    flatten,
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
    except ValueError:
        raise InputError("option --seeds", repr(value), "a count (3) or a comma-separated list of integers (2025,2026,2027)") from None
    if len(set(seeds)) != len(seeds) or not seeds:
        raise InputError("option --seeds", repr(value), "distinct integers")
    return seeds


def seed_overrides(seed: int, vary_split: bool) -> dict[str, int]:
    return {key: seed for key in seed_parameters(vary_split)}


def _dotlist(params: dict[str, Any]) -> str:
    def text(value: Any) -> str:
        return "[" + ",".join(map(str, value)) + "]" if isinstance(value, (list, tuple)) else str(value)

    return ",".join(f"{key}={text(value)}" for key, value in flatten(params).items())


def _kedro() -> list[str]:
    script = Path(sys.executable).with_name("kedro")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kedro"]


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
    mlflow_client = client(uri)
    experiment_id = experiment(uri, config.get("experiment_name", "glta-pipelines"))
    parent = mlflow_client.create_run(experiment_id, run_name=f"seeds:{pipeline}x{len(seeds)}", tags={
        "git_commit": git_commit(project_path), "pipeline_names": pipeline, "kedro_env": env or "",
        "runtime_params": json.dumps(params, sort_keys=True, default=str)[:5000],
        PROCESS_TAG: f"{socket.gethostname()}:{os.getpid()}",
    }).info.run_id
    for key, value in {"seeds": ",".join(map(str, seeds)), "vary_split": vary_split, "reference": reference,
                       "seed_keys": ",".join(seed_parameters(vary_split))}.items():
        mlflow_client.log_param(parent, key, str(value))
    logs = Path(tempfile.mkdtemp(prefix="glta-seeds-"))
    status = "FAILED"
    try:
        metrics = {}
        bar = tqdm(seeds, desc=f"seeds ({pipeline})", unit="run", disable=None if show_progress is None else not show_progress)
        for seed in bar:
            bar.set_postfix(seed=seed)
            metrics[seed] = _run_one(project_path, pipeline, seed, vary_split, params, env, parent, uri, experiment_id,
                                     logs / f"seed_{seed}.log")
            mlflow_client.log_artifact(parent, str(logs / f"seed_{seed}.log"), artifact_path="seeds/logs")
        long = metrics_long(metrics)
        summary = summarize(long, reference)
        table = markdown_table(summary, reference=reference)
        _log_summary(mlflow_client, parent, long, summary, table)
        status = "FINISHED"
        return parent, table
    finally:
        mlflow_client.set_terminated(parent, status)
        shutil.rmtree(logs, ignore_errors=True)


def _run_one(project_path: Path, pipeline: str, seed: int, vary_split: bool, params: dict[str, Any], env: str | None,
             parent: str, uri: str, experiment_id: str, log_path: Path) -> dict[str, float]:
    command = [*_kedro(), "run", f"--pipelines={pipeline}",
               f"--params={_dotlist({**params, **seed_overrides(seed, vary_split)})}"]
    if env:
        command.append(f"--env={env}")
    child_env = {**os.environ, PARENT_ENV: parent, SEED_ENV: str(seed), "KEDRO_DISABLE_TELEMETRY": "true"}
    with log_path.open("w") as log:
        code = subprocess.run(command, cwd=project_path, env=child_env, stdout=log, stderr=subprocess.STDOUT).returncode
    if code != 0:
        tail = [line for line in log_path.read_text().splitlines() if line.strip()][-3:]
        raise SeedRunError(f"seed {seed} (kedro run --pipelines={pipeline})", f"exit status {code}, ending: "
                           + " / ".join(tail), "a finished run; its whole log is the parent run's artifact seeds/logs")
    runs = client(uri).search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent}' and tags.seed = '{seed}'",
                                   order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise SeedRunError(f"seed {seed}", "no MLflow run nested under the parent", "the run's tracking hook to log it")
    return dict(runs[0].data.metrics)


def _log_summary(mlflow_client, parent: str, long: pd.DataFrame, summary: pd.DataFrame, table: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        summary.to_csv(Path(tmp) / "summary.csv", index=False)
        long.pivot_table(index=["method", "metric"], columns="seed", values="value").to_csv(Path(tmp) / "per_seed.csv")
        (Path(tmp) / "summary.md").write_text(table + "\n")
        for name in ("summary.csv", "per_seed.csv", "summary.md"):
            mlflow_client.log_artifact(parent, str(Path(tmp) / name), artifact_path="seeds")
    for row in summary.itertuples():
        for stat in ("mean", "sd", "diff_mean"):
            value = getattr(row, stat, float("nan"))
            if pd.notna(value):
                mlflow_client.log_metric(parent, f"{row.method}.{row.metric}.{stat}", float(value))
