"""Nodes of the ``pretrain_gnn`` stage."""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.lightgcn import LightGCNConfig, train_lightgcn
from glta_pipelines.tracking import epoch_logger


def pretrain_lightgcn(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    user_map: pd.DataFrame,
    item_map: pd.DataFrame,
    lightgcn: dict[str, Any],
    tracking_prefix: str = "lightgcn",
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], pd.DataFrame]:
    """Train LightGCN; return (state_dict, {"user", "item"} embeddings, per-epoch history).

    Per-epoch loss and validation metrics go to the active MLflow run as ``<tracking_prefix>.*``.
    """
    config = config_from_params(LightGCNConfig, lightgcn, "pretrain_gnn.lightgcn")
    result = train_lightgcn(train, valid, len(user_map), len(item_map), config, on_epoch_end=epoch_logger(tracking_prefix))
    embeddings = {"user": result.user_embedding, "item": result.item_embedding}
    return result.model.state_dict(), embeddings, result.history
