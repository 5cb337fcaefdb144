"""Project CLI: ``kedro seeds`` (``framework/seeds.py``), ``kedro tune`` (``framework/tune.py``),
``kedro serve`` (``serving/server.py``), and ``kedro run``: Kedro's own, with three differences.

- A known error (bad parameters or data, inputs of mixed generations, a corrupted artifact: any
  :class:`~glta_pipelines.core.errors.InputError`, also when Kedro wrapped it) ends with its one-line
  message and exit status 1, without a traceback. ``GLTA_TRACEBACK=1`` shows the traceback;
  unexpected errors always keep theirs.
- ``--params`` splits on commas outside brackets, so lists work:
  ``--params graph.split.ratios=[0.8,0.1,0.1]`` (Kedro's own splits the list apart).
- Two runs started in the same millisecond get distinct save versions
  (:func:`~glta_pipelines.framework.save_versions.distinct_save_versions`); Kedro's would collide.

Kedro loads this module's ``cli`` group and lets its commands override the built-in ones.
"""

from __future__ import annotations

import copy
import os
from contextlib import contextmanager
import sys
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run
from kedro.framework.cli.utils import split_node_names
from omegaconf import OmegaConf

from glta_pipelines.core.errors import InputError

TRACEBACK_ENV = "GLTA_TRACEBACK"


@click.group(name="glta-pipelines")
def cli() -> None:
    """Project commands."""


def known_error(error: BaseException | None) -> InputError | None:
    """The :class:`InputError` behind ``error`` (Kedro wraps dataset errors), or None."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, InputError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


@contextmanager
def one_line_errors():
    """A known error (:class:`InputError`) of a project command ends it with its one-line message and
    exit status 1, without a traceback (``GLTA_TRACEBACK=1`` shows it)."""
    try:
        yield
    except InputError as error:
        if os.environ.get(TRACEBACK_ENV):
            raise
        click.secho(f"Error: {error}", fg="red", err=True)
        sys.exit(1)


def split_params(ctx: click.Context, param: Any, value: Any) -> Any:
    """``a.b=1,c=[1,2]`` -> ``{"a": {"b": 1}, "c": [1, 2]}``: commas inside brackets stay in the value."""
    if isinstance(value, dict) or not value:
        return value or {}
    items = split_node_names(ctx, param, value)
    for item in items:
        if "=" not in item or not item.partition("=")[0].strip():
            raise click.BadParameter(f"found {item!r}; expected key=value (lists: key=[a,b], no spaces)",
                                     param_hint="--params")
    return OmegaConf.to_container(OmegaConf.from_dotlist([f"{k.strip()}={v}" for k, _, v in
                                                          (item.partition("=") for item in items)]))


def _run(**kwargs: Any) -> Any:
    from glta_pipelines.framework.save_versions import distinct_save_versions

    try:
        with distinct_save_versions():  # two runs started at once never share a version folder
            return kedro_run.callback(**kwargs)
    except Exception as error:
        known = known_error(error)
        if known is None or os.environ.get(TRACEBACK_ENV):
            raise
        click.secho(f"Error: {known}", fg="red", err=True)
        click.echo(f"(Set {TRACEBACK_ENV}=1 to see the traceback.)", err=True)
        sys.exit(1)


def _options() -> list[click.Parameter]:
    options = []
    for option in kedro_run.params:
        if option.name == "params":
            option = copy.copy(option)
            option.callback = split_params
        options.append(option)
    return options


run = click.Command(name="run", params=_options(), callback=_run, help=kedro_run.help,
                    short_help=kedro_run.short_help)
cli.add_command(run)


@cli.command(name="seeds")
@click.option("--pipeline", "pipeline", default="paper", show_default=True, help="Registered pipeline to run per seed.")
@click.option("--seeds", "seeds", default="3", show_default=True,
              help="A count (3: seeds 2025, 2026, 2027) or a list (2025,2026,2027).")
@click.option("--vary-split", is_flag=True, help="Also set the split's seeds (graph.*.seed) to each seed.")
@click.option("--reference", default="lightgcn", show_default=True, help="Method the paired differences are taken from.")
@click.option("--env", "-e", "env", default=None, help="Kedro configuration environment.")
@click.option("--params", "params", default="", callback=split_params,
              help="Parameters for every seed's run, as for kedro run (key=value,...; lists key=[a,b]).")
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="Also write the Markdown table here.")
@click.option("--from-run", "from_run", default=None,
              help="Summarise an earlier kedro seeds parent run again (e.g. with another --reference); runs nothing.")
def seeds_command(pipeline: str, seeds: str, vary_split: bool, reference: str, env: str | None, params: dict,
                  output: str | None, from_run: str | None) -> None:
    """Run PIPELINE once per training seed (nested MLflow runs under one parent) and print the
    summary: mean ± sd, 95% interval and paired difference from the reference, per method and metric."""
    from glta_pipelines.framework.save_versions import distinct_save_versions

    with one_line_errors(), distinct_save_versions():
        table = _seeds(pipeline, seeds, vary_split, reference, env, params, from_run)
    click.echo(table)
    if output:
        from pathlib import Path

        Path(output).write_text(table + "\n")


def _seeds(pipeline: str, seeds: str, vary_split: bool, reference: str, env: str | None, params: dict,
           from_run: str | None = None) -> str:
    from pathlib import Path

    from kedro.framework.project import pipelines
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from glta_pipelines.framework.parameters import validate_parameters
    from glta_pipelines.framework.seeds import parse_seeds, resummarize, run_seeds
    from glta_pipelines.framework.tracking import resolve_tracking_uri

    seed_list = parse_seeds(seeds)
    project_path = Path.cwd()
    bootstrap_project(project_path)
    if pipeline not in pipelines:
        raise InputError("option --pipeline", repr(pipeline), f"a registered pipeline ({', '.join(sorted(pipelines))})")
    evaluated = [n.name.rpartition(".evaluate_")[2] for n in pipelines[pipeline].nodes if ".evaluate_" in n.name]
    if not evaluated:
        raise InputError("option --pipeline", repr(pipeline), "a pipeline that includes the evaluate stage (full, paper, ...)")
    if reference not in evaluated and not from_run:  # a summary again: its runs say which methods there are
        raise InputError("option --reference", repr(reference), f"one of the methods {pipeline} evaluates {evaluated}")
    with KedroSession.create(project_path=project_path, env=env, runtime_params=params) as session:
        context = session.load_context()
        validate_parameters(context.params)  # a typo fails here, not in every seed's run
        mlflow_config = dict(context.config_loader["mlflow"])
    if from_run:
        uri = resolve_tracking_uri(mlflow_config.get("tracking_uri", "sqlite:///mlflow.db"), project_path)
        return resummarize(uri, from_run, reference)
    parent, table = run_seeds(project_path, pipeline, seed_list, vary_split=vary_split, params=params, env=env,
                              reference=reference, mlflow_config=mlflow_config)
    click.echo(f"MLflow parent run {parent}: summary in its artifacts seeds/summary.md, seeds/summary.csv", err=True)
    return table


@cli.command(name="tune")
@click.option("--study", "study", default="lightgcn", show_default=True,
              help="A study of conf/base/tune.yml: its pipeline, objective and space.")
@click.option("--trials", default=20, show_default=True, type=click.IntRange(min=1),
              help="Finished or pruned trials the study should have; a resumed study runs only the missing ones.")
@click.option("--env", "-e", "env", default=None, help="Kedro configuration environment.")
@click.option("--params", "params", default="", callback=split_params,
              help="Parameters for every trial's run, as for kedro run (key=value,...; not the searched keys).")
def tune_command(study: str, trials: int, env: str | None, params: dict) -> None:
    """Search a study's parameters with Optuna: one MLflow parent run, a nested run per trial,
    pruning on the training curve, resumable after Ctrl-C; prints the best parameters and the
    command that reproduces them (docs/tuning.md)."""
    from glta_pipelines.framework.save_versions import distinct_save_versions

    with one_line_errors(), distinct_save_versions():
        report = _tune(study, trials, env, params)
    click.echo(report)


def _tune(study: str, trials: int, env: str | None, params: dict) -> str:
    from pathlib import Path

    from kedro.framework.project import pipelines
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from glta_pipelines.core.config import config_from_params
    from glta_pipelines.framework.parameters import validate_parameters
    from glta_pipelines.framework.tune import TuneParameters, markdown, run_study, study_config

    project_path = Path.cwd()
    bootstrap_project(project_path)
    with KedroSession.create(project_path=project_path, env=env, runtime_params=params) as session:
        context = session.load_context()
        validate_parameters(context.params)  # --params too: a typo fails here, not in every trial
        mlflow_config = dict(context.config_loader["mlflow"])
        try:
            tune = dict(context.config_loader["tune"])
        except KeyError:
            tune = {}
    tune = config_from_params(TuneParameters, tune, "tune")  # every study and space: a typo fails here
    if study not in tune.studies:
        raise InputError("option --study", repr(study), f"one of the studies of conf/base/tune.yml "
                         f"({', '.join(sorted(tune.studies)) or 'none'})")
    config = study_config(study, tune.studies[study])
    if config.pipeline not in pipelines:
        raise InputError(f"parameter tune.studies.{study}.pipeline", repr(config.pipeline),
                         f"a registered pipeline ({', '.join(sorted(pipelines))})")
    parent, summary = run_study(project_path, study, config, trials, storage_dir=tune.storage_dir, params=params,
                                env=env, mlflow_config=mlflow_config, defaults=context.params)
    click.echo(f"MLflow parent run {parent}: tune/summary.md, tune/summary.json and tune/trials.csv in its artifacts",
               err=True)
    return markdown(summary)


@cli.command(name="serve")
@click.option("--model", "model_uri", default=None,
              help="Model to serve: models:/<name>@<alias>, runs:/..., or a downloaded model folder "
                   "[default: models:/glta-<dataset>@champion].")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5001, show_default=True, type=int)
@click.option("--max-body-bytes", default=None, type=int, help="Largest request body accepted [default: 1,000,000].")
@click.option("--env", "-e", "env", default=None, help="Kedro configuration environment (its tracking store).")
def serve_command(model_uri: str | None, host: str, port: int, max_body_bytes: int | None, env: str | None) -> None:
    """Serve a registered GLTA recommender over HTTP (MLflow's scoring protocol) with request limits
    and clean errors: docs/serving.md."""
    from glta_pipelines.serving.server import MAX_BODY_BYTES, serve

    with one_line_errors():
        recommender, uri = _load_served(model_uri, env)
    click.echo(f"Serving {uri} on http://{host}:{port}/invocations", err=True)
    serve(recommender, host, port, max_body_bytes or MAX_BODY_BYTES, version=uri)


def _load_served(model_uri: str | None, env: str | None):
    """(the recommender of ``model_uri``, the URI), the tracking store from MLFLOW_TRACKING_URI or the project's conf."""
    from pathlib import Path

    import mlflow
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from glta_pipelines.core.llm.backbone import CACHE_DIR_ENV, use_run_cache_dir
    from glta_pipelines.framework.tracking import resolve_tracking_uri

    project_path = Path.cwd()
    bootstrap_project(project_path)
    with KedroSession.create(project_path=project_path, env=env) as session:
        context = session.load_context()
        mlflow_config = dict(context.config_loader["mlflow"])
        dataset = context.params.get("dataset", {}).get("name", "unknown")
        cache_dir = (context.params.get("llm") or {}).get("cache_dir")
    if isinstance(cache_dir, str) and not os.environ.get(CACHE_DIR_ENV):  # the project's converted LLM
        use_run_cache_dir(str(project_path / cache_dir))
    uri = os.environ.get("MLFLOW_TRACKING_URI") or resolve_tracking_uri(
        mlflow_config.get("tracking_uri", "sqlite:///mlflow.db"), project_path)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model_uri = model_uri or f"models:/glta-{dataset}@champion"
    if not (model_uri.startswith(("models:/", "runs:/")) or Path(model_uri).is_dir()):
        raise InputError("option --model", repr(model_uri), "models:/<name>@<alias>, runs:/<run id>/<path>, or a model folder")
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except mlflow.exceptions.MlflowException as error:
        raise InputError("option --model", repr(model_uri), f"a model in {uri} ({str(error).splitlines()[0][:200]})") from None
    return model.unwrap_python_model().recommender, model_uri
