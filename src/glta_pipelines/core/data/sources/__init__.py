"""Dataset adapters: each reads one public format into the two tables every later stage uses.

Map of the package:

- ``contract.py``: the two output tables (interactions, items) and their checks.
- ``adapters.py``: one function per public format, registered in ``ADAPTERS``, and each format's
  prompt words (``ITEM_WORDS``: movie/watched, book/read...).
- ``formats.py``: row parsers (JSON, Python literals, delimited, Parquet) and file discovery.
- ``streams.py``: gzip/plain line streams, bad rows and their quarantine, wrong-file sniffing, id coding.
- ``reader.py``: what happens to bad rows, duplicates and items without metadata (the same for
  every adapter), the metadata join, the item text and the report.
- ``text.py``: the item's text from its fields (``dataset.item_text``).
- ``settings.py``: the typed ``dataset`` parameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glta_pipelines.core.data.sources.adapters import ADAPTERS, ITEM_WORDS, Adapter, bundled_movielens_100k_dir
from glta_pipelines.core.data.sources.contract import (
    INTERACTION_COLUMNS,
    ITEM_COLUMNS,
    validate_interactions,
    validate_items,
)
from glta_pipelines.core.data.sources.reader import Dataset, ReadSettings, read_source
from glta_pipelines.core.data.sources.settings import DatasetConfig, dataset_config_from_params
from glta_pipelines.core.errors import InputError

__all__ = [
    "ADAPTERS", "INTERACTION_COLUMNS", "adapter", "ITEM_COLUMNS", "Dataset", "DatasetConfig", "bundled_movielens_100k_dir",
    "dataset_config_from_params", "item_words", "load_dataset", "validate_interactions", "validate_items",
]


def adapter(name: object) -> Adapter:
    """The adapter registered as ``name`` (parameter ``dataset.name``)."""
    if name not in ADAPTERS:
        raise InputError("parameter dataset.name", repr(name), f"one of {sorted(ADAPTERS)}")
    return ADAPTERS[name]


def item_words(config: DatasetConfig | dict[str, Any]) -> dict[str, str]:
    """The prompt words of a dataset: ``{"item_noun": ..., "interaction_verb": ...}`` (its parameters,
    or its adapter's)."""
    if not isinstance(config, DatasetConfig):
        config = dataset_config_from_params(config)
    noun, verb = ITEM_WORDS.get(adapter(config.name) and config.name, ("item", "interacted with"))
    return {"item_noun": config.item_noun or noun, "interaction_verb": config.interaction_verb or verb}


def load_dataset(config: DatasetConfig | dict[str, Any]) -> Dataset:
    """Read ``config.name`` from ``config.path`` (None: the bundled copy, MovieLens-100K only)."""
    if not isinstance(config, DatasetConfig):
        config = dataset_config_from_params(config)
    source = adapter(config.name)(Path(config.path) if config.path else None, config)
    settings = ReadSettings(config.max_bad_fraction, config.chunk_lines, config.item_text)
    return read_source(config.name, source, settings)
