"""Nodes of the ``ingest`` stage."""

from __future__ import annotations

from typing import Any

import pandas as pd

from glta_pipelines.core.data.sources import load_dataset


def read_dataset(dataset: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Read ``dataset.name`` from ``dataset.path``: (interactions, items, quarantined rows, report).

    Unparseable rows are quarantined and counted; the node fails when a file's bad share exceeds
    ``dataset.max_bad_fraction`` or a file is not what its name says.
    """
    data = load_dataset(dataset)
    return data.interactions, data.items, data.quarantine, data.report
