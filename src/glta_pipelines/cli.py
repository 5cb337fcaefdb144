"""Project CLI: ``kedro run`` is Kedro's own, with two differences.

- A known error (bad parameters or data, inputs of mixed generations, a corrupted artifact: any
  :class:`~glta_pipelines.core.errors.InputError`, also when Kedro wrapped it) ends with its one-line
  message and exit status 1, without a traceback. ``GLTA_TRACEBACK=1`` shows the traceback;
  unexpected errors always keep theirs.
- ``--params`` splits on commas outside brackets, so lists work:
  ``--params graph.split.ratios=[0.8,0.1,0.1]`` (Kedro's own splits the list apart).

Kedro loads this module's ``cli`` group and lets its commands override the built-in ones.
"""

from __future__ import annotations

import copy
import os
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
    try:
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
