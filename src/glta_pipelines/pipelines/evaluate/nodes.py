"""Nodes of the ``evaluate`` stage."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure

from glta_pipelines.core.baselines import popularity_scorer
from glta_pipelines.core.lightgcn import dot_product_scorer
from glta_pipelines.core.plots import metrics_bar_chart
from glta_pipelines.core.ranking import evaluate_splits

log = logging.getLogger(__name__)


def evaluate_popularity(
    train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame,
    user_map: pd.DataFrame, item_map: pd.DataFrame, evaluation: dict[str, Any],
) -> pd.DataFrame:
    """Metrics of the most-popular-items baseline."""
    scorer = popularity_scorer(train, len(item_map))
    return _evaluate("popularity", scorer, train, valid, test, user_map, item_map, evaluation)


def evaluate_lightgcn(
    embeddings: dict[str, torch.Tensor], train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame,
    user_map: pd.DataFrame, item_map: pd.DataFrame, evaluation: dict[str, Any],
) -> pd.DataFrame:
    """Metrics of LightGCN's dot-product scores."""
    scorer = dot_product_scorer(embeddings["user"], embeddings["item"])
    return _evaluate("lightgcn", scorer, train, valid, test, user_map, item_map, evaluation)


def _evaluate(method, scorer, train, valid, test, user_map, item_map, evaluation) -> pd.DataFrame:
    table = evaluate_splits(method, scorer, train, valid, test, len(user_map), len(item_map),
                            evaluation["ks"], evaluation["chunk_size"])
    log.info("%s test: %s", method, ", ".join(
        f"{r.metric}@{r.k}={r.value:.4f}" for r in table[table["split"] == "test"].itertuples()))
    return table


def combine_metrics(*tables: pd.DataFrame) -> pd.DataFrame:
    """One long table (split, method, metric, k, value) of all methods."""
    return pd.concat(tables, ignore_index=True)


def plot_metrics(metrics: pd.DataFrame, evaluation: dict[str, Any]) -> Figure:
    """Bar chart of every method's metrics at ``evaluation.plot_k``."""
    return metrics_bar_chart(metrics, int(evaluation["plot_k"]))
