"""One set of defaults: the library's typed configs hold the values of ``conf/base``, and the
parameter reference page is generated from both."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import yaml

from glta_pipelines.framework.parameter_reference import reference_entries, reference_markdown
from glta_pipelines.framework.parameters import SCHEMA

ROOT = Path(__file__).parents[2]
CONF = ROOT / "conf" / "base"


def _conf() -> dict:
    tree: dict = {}
    for path in sorted(CONF.glob("parameters*.yml")):
        tree.update(yaml.safe_load(path.read_text()) or {})
    return tree


def _differences(schema, value, where: str) -> list[str]:
    found = []
    if isinstance(schema, dict):
        for key, sub in schema.items():
            if key not in value:
                found.append(f"{where}{key}: in the schema, not in conf/base")
            else:
                found += _differences(sub, value[key], f"{where}{key}.")
    elif dataclasses.is_dataclass(schema):
        hints = typing.get_type_hints(schema)
        for field in dataclasses.fields(schema):
            key = f"{where}{field.name}"
            default = (field.default if field.default is not dataclasses.MISSING else field.default_factory())
            if field.name not in value:
                found.append(f"{key}: library default {default!r}, not in conf/base")
            elif dataclasses.is_dataclass(hints[field.name]) and isinstance(value[field.name], dict):
                found += _differences(hints[field.name], value[field.name], f"{key}.")
            elif (list(default) if isinstance(default, tuple) else default) != value[field.name]:
                found.append(f"{key}: library default {default!r}, conf/base {value[field.name]!r}")
    return found


def test_library_defaults_are_the_values_of_conf_base():
    """Whoever builds a config from Python (``GLLMConfig()``) trains what ``kedro run`` trains."""
    assert _differences(SCHEMA, _conf(), "") == []


def test_the_comparison_finds_a_differing_default():
    conf = _conf()
    conf["pretrain_gnn"]["lightgcn"]["learning_rate"] = 0.5
    assert _differences(SCHEMA, conf, "") == [
        "pretrain_gnn.lightgcn.learning_rate: library default 0.01, conf/base 0.5"]


def test_every_conf_key_is_explained_in_the_parameter_reference():
    entries = reference_entries(CONF)
    assert len(entries) > 100
    assert [e["key"] for e in entries if not e["explanation"]] == []


def test_the_parameter_reference_page_is_current():
    page = ROOT / "docs" / "parameters.md"
    assert page.read_text() == reference_markdown(CONF), "docs/parameters.md is stale: run `make docs`"
