"""``kedro tune``: a hyper-parameter search as one MLflow parent run with a nested run per trial.

Built like ``kedro seeds``: each trial is an ordinary ``kedro run`` of the study's pipeline in its
own process (the same hooks, parameter checks and lineage), nested under the parent run (tags
``mlflow.parentRunId`` and ``trial``). A study is a section of ``studies`` in ``conf/base/tune.yml``
(:class:`TuneParameters`), checked against the parameter contract when the command starts, so a
typo in a study or in the name of a searched parameter fails before any trial runs:

- ``pipeline``: what a trial runs; ``objective``: the MLflow metric of the trial's run to optimise.
  It must be a validation metric (test selection is refused). When the run logs it once per epoch
  the best epoch counts (the early-stopped model), and the same curve drives pruning.
- ``space``: dotted parameter keys, each ``{low, high}`` (``log: true`` for a log scale, ``step``
  for a grid) or ``{choices: [...]}``; an integer parameter is searched over integers.
- ``fixed``: dotted parameter keys set for every trial: a control study is the same space and
  budget with, e.g., ``gllm_finetune.gllm.encoder: mean``.

Optuna (pinned) samples with TPE from ``sampler_seed``, after ``startup_trials`` random trials.
Its median pruner reads the objective's curve from the trial's MLflow run while it trains and
stops a trial below the median of earlier trials at the same epoch (after ``warmup_epochs``):
the trial's run gets SIGINT (it closes as KILLED) and the trial is PRUNED. The study lives in
SQLite (``tune.storage_dir/<study>.db``): after Ctrl-C the same command resumes it, keeping the
finished trials and the parent MLflow run (its id is stored in the study), and runs the trials
still missing. The parent gets ``tune/summary.json``, ``tune/summary.md`` (best value, its
parameters, and the ``kedro run`` command that reproduces them) and ``tune/trials.csv``, and the
metrics ``tune.best_value`` and ``tune.value`` per trial.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import tempfile
import time
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from glta_pipelines.core.config import check_known_keys, coerce_value, config_from_params, join
from glta_pipelines.core.errors import InputError

log = logging.getLogger(__name__)

SPEC_KEYS = ("low", "high", "log", "step", "choices")


class TrialError(InputError):
    """A trial's ``kedro run`` failed: the message names the trial, its exit status and its log."""


@dataclass(frozen=True)
class StudyConfig:
    """``tune.studies.<name>``: what a trial runs, what it optimises, and where it searches."""

    # the registered pipeline each trial runs
    pipeline: str = "pretrain_gnn"
    # only these nodes of it (kedro run --nodes), e.g. one baseline of the paper pipeline; empty: all
    nodes: tuple[str, ...] = ()
    # the MLflow metric of a trial's run to optimise (a validation metric); per-epoch curves: the best epoch
    objective: str = "lightgcn.valid_recall_at_20"
    direction: str = "maximize"
    # dotted parameter key -> {low, high[, log][, step]} or {choices: [...]}
    space: dict = field(default_factory=dict)
    # dotted parameter key -> value, fixed for every trial (a control: the same space and budget)
    fixed: dict = field(default_factory=dict)
    # Optuna's TPE sampler (not a training seed: trials keep the project's seeds)
    sampler_seed: int = 2025
    # random trials before TPE models the space; also the trials the pruner waits for
    startup_trials: int = 5
    # epochs of a trial's curve before it can be pruned
    warmup_epochs: int = 10
    # seconds between two reads of a running trial's curve
    poll_seconds: float = 5.0
    # the first trial runs the configured values of the searched keys: the study starts from the default
    start_from_defaults: bool = True

    def validate(self) -> None:
        if self.direction not in ("maximize", "minimize"):
            raise InputError("parameter tune.studies.*.direction", repr(self.direction), "maximize or minimize")
        if not self.objective.startswith("valid") and ".valid" not in self.objective:
            raise InputError("parameter tune.studies.*.objective", repr(self.objective),
                             "a validation metric (its name has 'valid'): test metrics never select")
        if self.startup_trials < 1 or self.warmup_epochs < 0 or self.poll_seconds <= 0:
            raise InputError("parameter tune.studies.*", f"startup_trials {self.startup_trials}, warmup_epochs "
                             f"{self.warmup_epochs}, poll_seconds {self.poll_seconds}",
                             "startup_trials >= 1, warmup_epochs >= 0, poll_seconds > 0")


@dataclass(frozen=True)
class TuneParameters:
    """``conf/<env>/tune.yml``: the studies ``kedro tune`` can run, and where their Optuna storage lives."""

    # folder of each study's SQLite file (<study>.db), relative to the project
    storage_dir: str = "data/09_tuning"
    studies: dict = field(default_factory=dict)

    def validate(self) -> None:
        for name, study in self.studies.items():
            where = f"tune.studies.{name}"
            config = study_config(name, study)
            check_space(config.space, f"{where}.space")
            for key in config.fixed:
                try:
                    parameter_hint(key, f"{where}.fixed")
                except InputError as error:
                    raise InputError(f"parameter {where}.fixed", f"{key!r}, which is not a parameter",
                                     error.expected) from None
            if set(config.fixed) & set(config.space):
                raise InputError(f"parameter {where}.fixed", sorted(set(config.fixed) & set(config.space)),
                                 "keys the study does not search")


def study_config(name: str, raw: Mapping[str, Any]) -> StudyConfig:
    """Study ``name``'s typed config; an error names the study (``tune.studies.<name>.<key>``)."""
    try:
        return config_from_params(StudyConfig, raw, f"tune.studies.{name}")
    except InputError as error:
        raise InputError(error.where.replace("tune.studies.*", f"tune.studies.{name}"), error.found,
                         error.expected) from None


def parameter_hint(key: str, where: str) -> Any:
    """The type of the parameter ``key`` (dotted) in the parameter contract; an unknown key fails
    naming the nearest known one at the level where it went wrong."""
    from glta_pipelines.framework.parameters import SCHEMA

    schema: Any = SCHEMA
    path = ""
    for part in key.split("."):
        if isinstance(schema, Mapping):
            check_known_keys({part: None}, schema, path)
            schema = schema[part]
        elif isinstance(schema, type) and hasattr(schema, "__dataclass_fields__"):
            check_known_keys({part: None}, list(schema.__dataclass_fields__), path)
            schema = typing.get_type_hints(schema)[part]
        else:
            raise InputError(f"parameter {where}", repr(key), f"a parameter key ({path} is a value, not a section)")
        path = join(path, part)
    if isinstance(schema, Mapping) or hasattr(schema, "__dataclass_fields__"):
        raise InputError(f"parameter {where}", repr(key), f"a single parameter ({key} is a section)")
    return schema


def check_space(space: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Each searched key's type (int or float for ranges), after checking its key and its range."""
    if not space:
        raise InputError(f"parameter {where}", "an empty search space", "at least one parameter to search")
    kinds = {}
    for key, spec in space.items():
        at = f"{where}.{key}"
        try:
            hint = parameter_hint(key, at)
        except InputError as error:
            raise InputError(f"parameter {where}", f"{key!r}, which is not a parameter", error.expected) from None
        if not isinstance(spec, Mapping):
            raise InputError(f"parameter {at}", repr(spec), "{low, high} or {choices: [...]}")
        check_known_keys(spec, SPEC_KEYS, at)
        if "choices" in spec:
            if set(spec) != {"choices"} or not isinstance(spec["choices"], (list, tuple)) or not spec["choices"]:
                raise InputError(f"parameter {at}", repr(dict(spec)), "{choices: [a non-empty list]} alone")
            for i, choice in enumerate(spec["choices"]):  # a bad choice fails now, not when a trial draws it
                coerce_value(choice, hint, f"{at}.choices[{i}]")
            kinds[key] = "choices"
            continue
        args = typing.get_args(hint)
        if typing.get_origin(hint) is tuple:  # a grid (EASE's lambdas): the trial's grid is its one value
            hint, kinds[f"{key}:grid"] = args[0], True
            args = typing.get_args(hint)
        numeric = int if hint is int or (args and int in args and float not in args) else float
        low, high = spec.get("low"), spec.get("high")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or not low < high:
            raise InputError(f"parameter {at}", repr(dict(spec)), "numbers low < high")
        if spec.get("log") and low <= 0:
            raise InputError(f"parameter {at}.low", low, "a positive low bound on a log scale")
        step = spec.get("step")
        if step is not None and (not isinstance(step, (int, float)) or isinstance(step, bool) or step <= 0
                                 or spec.get("log")):
            raise InputError(f"parameter {at}.step", repr(step), "a positive number, and no step on a log scale")
        if numeric is int and not (float(low).is_integer() and float(high).is_integer()):
            raise InputError(f"parameter {at}", repr(dict(spec)), f"integer bounds ({key} is an integer)")
        kinds[key] = numeric
    return kinds


def suggest(trial, space: Mapping[str, Any], kinds: Mapping[str, Any]) -> dict[str, Any]:
    """One value per searched key from the Optuna ``trial``."""
    values = {}
    for key, spec in space.items():
        if kinds[key] == "choices":
            values[key] = trial.suggest_categorical(key, list(spec["choices"]))
        elif kinds[key] is int:
            values[key] = trial.suggest_int(key, int(spec["low"]), int(spec["high"]), step=int(spec.get("step") or 1),
                                            log=bool(spec.get("log")))
        else:
            values[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]), step=spec.get("step"),
                                              log=bool(spec.get("log")))
        if kinds.get(f"{key}:grid"):
            values[key] = [values[key]]
    return values


def nested(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        level = out
        *parents, last = key.split(".")
        for part in parents:
            level = level.setdefault(part, {})
        level[last] = value
    return out


def run_study(project_path: Path, name: str, study: StudyConfig, trials: int, *, storage_dir: str,
              params: dict[str, Any] | None = None, env: str | None = None, mlflow_config: dict[str, Any] | None = None,
              show_progress: bool | None = None, defaults: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """Run (or resume) study ``name`` until it has ``trials`` finished or pruned trials; return
    (the parent MLflow run id, the summary). ``defaults``: the project's parameters, whose values of
    the searched keys are the first trial (``start_from_defaults``)."""
    import optuna

    from glta_pipelines.framework.child_runs import dotlist, kedro_command, terminate_on_sigterm
    from glta_pipelines.framework.tracking import (
        PARENT_ENV,
        PROCESS_TAG,
        client,
        experiment,
        flatten,
        git_commit,
        process_owner,
        resolve_tracking_uri,
    )

    params = _merge(params or {}, nested(study.fixed))
    kinds = check_space(study.space, f"tune.studies.{name}.space")
    clashes = sorted(set(study.space) & set(flatten(params)))
    if clashes:
        raise InputError("option --params", f"searched keys {clashes}", "keys the study does not search")
    config = mlflow_config or {}
    uri = resolve_tracking_uri(config.get("tracking_uri", "sqlite:///mlflow.db"), project_path)
    experiment_id = experiment(uri, config.get("experiment_name", "glta-pipelines"))
    mlflow_client = client(uri)
    folder = (project_path / storage_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{folder / f'{name}.db'}"
    sampler = optuna.samplers.TPESampler(seed=study.sampler_seed, n_startup_trials=study.startup_trials)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=study.startup_trials, n_warmup_steps=study.warmup_epochs)
    optuna_study = optuna.create_study(study_name=name, storage=storage, direction=study.direction, sampler=sampler,
                                       pruner=pruner, load_if_exists=True)
    parent = optuna_study.user_attrs.get("mlflow_parent_run")
    fingerprint = json.dumps({"pipeline": study.pipeline, "nodes": list(study.nodes), "objective": study.objective,
                              "direction": study.direction, "space": study.space, "params": params},
                             sort_keys=True, default=str)
    if parent:
        _check_resumable(mlflow_client, name, parent, optuna_study.user_attrs.get("fingerprint"), fingerprint, storage)
    else:
        optuna_study.set_user_attr("fingerprint", fingerprint)
    for stale in optuna_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        # a trial interrupted by Ctrl-C (its process is gone: checked above): failed, so the study can go on
        optuna_study.tell(stale.number, state=optuna.trial.TrialState.FAIL)
    if study.start_from_defaults and defaults is not None and not optuna_study.get_trials(deepcopy=False):
        first = {key: _lookup(defaults, key) for key in study.space if not kinds.get(f"{key}:grid")}
        inside = {k: v for k, v in first.items() if _within(study.space[k], v)}
        for key in sorted(set(first) - set(inside)):  # the first trial samples it instead
            log.warning("tune: the configured %s=%r is outside the study's space; the first trial samples it",
                        key, first[key])
        optuna_study.enqueue_trial(inside)
    if parent:  # resumed: the same parent, now owned by this process (else the stale-run reaper closes it)
        mlflow_client.set_tag(parent, PROCESS_TAG, process_owner())
        mlflow_client.update_run(parent, status="RUNNING")
    else:
        parent = mlflow_client.create_run(experiment_id, run_name=f"tune:{name}", tags={
            "git_commit": git_commit(project_path), "pipeline_names": study.pipeline, "kedro_env": env or "",
            "runtime_params": json.dumps(params, sort_keys=True, default=str)[:5000], "study": name,
            PROCESS_TAG: process_owner()}).info.run_id
        optuna_study.set_user_attr("mlflow_parent_run", parent)
        for key, value in {"study": name, "pipeline": study.pipeline, "objective": study.objective,
                           "direction": study.direction, "storage": storage,
                           "space": json.dumps(study.space, sort_keys=True)}.items():
            mlflow_client.log_param(parent, key, str(value)[:6000])
    done = lambda: [t for t in optuna_study.get_trials(deepcopy=False) if t.state in  # noqa: E731
                    (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    status = "FAILED"
    terminate_on_sigterm()
    logs = Path(tempfile.mkdtemp(prefix="glta-tune-"))
    try:
        missing = max(0, trials - len(done()))
        bar = tqdm(total=trials, initial=trials - missing, desc=f"tune ({name})", unit="trial",
                   disable=None if show_progress is None else not show_progress)
        while len(done()) < trials:
            trial = optuna_study.ask()
            values = suggest(trial, study.space, kinds)
            trial.set_user_attr("values", values)  # as the run gets them (a grid's one value is a list)
            log_path = logs / f"trial_{trial.number}.log"
            command = [*kedro_command(), "run", f"--pipelines={study.pipeline}", *_nodes_option(study),
                       f"--params={dotlist(_merge(params, nested(values)))}"]
            if env:
                command.append(f"--env={env}")
            try:
                value, state = _run_trial(command, project_path, trial, study, uri, experiment_id, parent, log_path,
                                          PARENT_ENV)
            except TrialError:
                optuna_study.tell(trial, state=optuna.trial.TrialState.FAIL)
                raise
            finally:
                if log_path.exists():
                    mlflow_client.log_artifact(parent, str(log_path), artifact_path="tune/logs")
            if state == "pruned":
                optuna_study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            elif state == "failed" or value is None:
                optuna_study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                optuna_study.tell(trial, value)
                mlflow_client.log_metric(parent, "tune.value", value, step=trial.number)
            summary = _summary(optuna_study, name, study, params, env)
            if summary.get("best_value") is not None:
                mlflow_client.log_metric(parent, "tune.best_value", summary["best_value"], step=trial.number)
            _log_summary(mlflow_client, parent, optuna_study, summary)
            bar.update(1 if state in ("complete", "pruned") else 0)
            bar.set_postfix(best=summary.get("best_value"), last=state)
        status = "FINISHED"
        return parent, _summary(optuna_study, name, study, params, env)
    except (KeyboardInterrupt, SystemExit):
        status = "KILLED"
        raise
    finally:
        mlflow_client.set_terminated(parent, status)
        shutil.rmtree(logs, ignore_errors=True)


def _run_trial(command, project_path, trial, study: StudyConfig, uri, experiment_id, parent, log_path, parent_env):
    """Run one trial's ``kedro run``; report its curve to the pruner while it trains. Returns
    (objective value or None, "complete" | "pruned" | "failed")."""
    from mlflow.exceptions import MlflowException

    from glta_pipelines.framework.child_runs import log_tail, stop
    from glta_pipelines.framework.tracking import TRIAL_ENV, client

    child_env = {**os.environ, parent_env: parent, TRIAL_ENV: str(trial.number), "KEDRO_DISABLE_TELEMETRY": "true"}
    mlflow_client = client(uri)
    reported: set[int] = set()
    run_id = None
    with log_path.open("w") as out:
        process = subprocess.Popen(command, cwd=project_path, env=child_env, stdout=out, stderr=subprocess.STDOUT)
        try:
            while process.poll() is None:
                time.sleep(study.poll_seconds)
                try:  # the child writes to the same store: a busy store is read again at the next poll
                    run_id = run_id or _trial_run(mlflow_client, experiment_id, parent, trial.number)
                    history = mlflow_client.get_metric_history(run_id, study.objective) if run_id else []
                except MlflowException as error:
                    log.debug("tune: reading trial %d's curve: %s", trial.number, error)
                    continue
                for point in history:
                    if point.step not in reported:
                        reported.add(point.step)
                        trial.report(point.value, point.step)
                if reported and trial.should_prune():
                    stop(process, timeout=120)
                    mlflow_client.set_tag(run_id, "pruned", "true")
                    return None, "pruned"
        except BaseException:  # Ctrl-C, SIGTERM: the trial's run closes itself as KILLED on SIGINT
            stop(process)
            raise
    if process.returncode != 0:  # a broken trial stops the study: the next one would fail alike
        raise TrialError(f"trial {trial.number} (kedro run --pipelines={study.pipeline})",
                         f"exit status {process.returncode}, ending: "
                         + log_tail(log_path), "a finished run; its whole log is the parent run's artifact tune/logs "
                         "(a study's pipeline reads earlier stages' outputs: `make run` or `kedro run` them first)")
    run_id = run_id or _trial_run(mlflow_client, experiment_id, parent, trial.number)
    history = mlflow_client.get_metric_history(run_id, study.objective) if run_id else []
    values = [point.value for point in history if not math.isnan(point.value)]
    if not values:
        raise TrialError(f"objective {study.objective!r} of trial {trial.number}",
                         f"no value in the trial's run (kedro run --pipelines={study.pipeline})",
                         "a metric the pipeline logs (see a run of it in the MLflow UI)")
    return (max(values) if study.direction == "maximize" else min(values)), "complete"


def _trial_run(mlflow_client, experiment_id: str, parent: str, number: int) -> str | None:
    from glta_pipelines.framework.tracking import TRIAL_TAG

    runs = mlflow_client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent}' "
                                     f"and tags.{TRIAL_TAG} = '{number}'", max_results=1)
    return runs[0].info.run_id if runs else None


def _nodes_option(study: StudyConfig) -> list[str]:
    return [f"--nodes={','.join(study.nodes)}"] if study.nodes else []


def _within(spec: Mapping[str, Any], value: Any) -> bool:
    """Whether ``value`` is a point of the search ``spec`` (a choice, or inside the bounds)."""
    if value is None or isinstance(value, (list, tuple, Mapping)):
        return False
    if "choices" in spec:
        return value in list(spec["choices"])
    return isinstance(value, (int, float)) and not isinstance(value, bool) and spec["low"] <= value <= spec["high"]


def _check_resumable(mlflow_client, name: str, parent: str, stored: str | None, fingerprint: str, storage: str) -> None:
    """Refuse to resume study ``name`` while its own process still runs it, when its MLflow parent
    run is gone, or when what it searches has changed since it started."""
    from mlflow.exceptions import MlflowException

    from glta_pipelines.framework.hooks.tracking import _alive
    from glta_pipelines.framework.tracking import PROCESS_TAG, machine_identity

    try:
        run = mlflow_client.get_run(parent)
    except MlflowException:
        raise InputError(f"study {name} ({storage})", f"its MLflow parent run {parent}, which this tracking store "
                         "does not have", "the tracking store the study started in, or a new study "
                         "(delete its .db file)") from None
    machine, _, pid = run.data.tags.get(PROCESS_TAG, "").rpartition(":")
    if run.info.status == "RUNNING" and machine == machine_identity() and pid.isdigit() and _alive(int(pid)):
        raise InputError(f"study {name}", f"process {pid} still running it (MLflow run {parent})",
                         "one process per study: wait for it, or stop it first")
    if stored is not None and stored != fingerprint:
        raise InputError(f"study {name} ({storage})", "a study started with another pipeline, objective, space or "
                         "--params", "the same settings to resume it, or a new study (another name, or delete its .db file)")


def _lookup(params: Mapping[str, Any], key: str) -> Any:
    for part in key.split("."):
        if not isinstance(params, Mapping) or part not in params:
            return None
        params = params[part]
    return params


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else value
    return out


def _summary(optuna_study, name: str, study: StudyConfig, params: dict[str, Any], env: str | None) -> dict[str, Any]:
    """Best value, its parameters and the command that reproduces them, and the trials' states."""
    import optuna

    from glta_pipelines.framework.child_runs import dotlist

    trials = optuna_study.get_trials(deepcopy=False)
    states = pd.Series([t.state.name.lower() for t in trials]).value_counts().to_dict()
    summary: dict[str, Any] = {"study": name, "pipeline": study.pipeline, "objective": study.objective,
                               "direction": study.direction, "trials": states}
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        best = optuna_study.best_trial
        chosen = _merge(params, nested(best.user_attrs.get("values", best.params)))
        summary.update(best_value=best.value, best_trial=best.number, best_params=best.params,
                       command=" ".join(["kedro run", f"--pipelines={study.pipeline}", *_nodes_option(study),
                                         f"--params={dotlist(chosen)}"])
                               + (f" --env={env}" if env else ""))
    return summary


def _log_summary(mlflow_client, parent: str, optuna_study, summary: dict[str, Any]) -> None:
    rows = [{"trial": t.number, "state": t.state.name.lower(), "value": t.value, **t.params}
            for t in optuna_study.get_trials(deepcopy=False)]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        (Path(tmp) / "summary.md").write_text(markdown(summary) + "\n")
        pd.DataFrame(rows).to_csv(Path(tmp) / "trials.csv", index=False)
        for file in ("summary.json", "summary.md", "trials.csv"):
            mlflow_client.log_artifact(parent, str(Path(tmp) / file), artifact_path="tune")


def markdown(summary: dict[str, Any]) -> str:
    """The summary as a short Markdown report."""
    states = ", ".join(f"{n} {s}" for s, n in summary["trials"].items())
    lines = [f"Study `{summary['study']}`: `{summary['pipeline']}` trials, {summary['direction']} "
             f"`{summary['objective']}` ({states})."]
    if "best_value" in summary:
        lines += [f"\nBest: {summary['best_value']:.4f} (trial {summary['best_trial']}) with",
                  *(f"- `{k}` = {v:.6g}" if isinstance(v, float) else f"- `{k}` = {v}"
                    for k, v in summary["best_params"].items()),
                  f"\nReproduce: `{summary['command']}`"]
    return "\n".join(lines)
