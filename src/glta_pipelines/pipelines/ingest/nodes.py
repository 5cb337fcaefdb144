"""Nodes of the ``ingest`` stage."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from glta_pipelines.core.datasets import load_dataset

log = logging.getLogger(__name__)


def read_dataset(dataset: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read ``dataset.name`` from ``dataset.path`` into (interactions, items), validated."""
    interactions, items = load_dataset(dataset["name"], dataset.get("path"))
    log.info("Ingested %s: %d interactions, %d items", dataset["name"], len(interactions), len(items))
    return interactions, items
