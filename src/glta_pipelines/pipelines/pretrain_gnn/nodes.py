"""Nodes of the ``pretrain_gnn`` stage."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import torch

from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.models.lightgcn import LightGCNConfig, train_lightgcn
from glta_pipelines.framework.tracking import epoch_logger

log = logging.getLogger(__name__)


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


def pretrain_backbone(
    backbone_train: pd.DataFrame, train: pd.DataFrame, valid: pd.DataFrame, user_map: pd.DataFrame,
    item_map: pd.DataFrame, lightgcn: dict[str, Any], lightgcn_weights: dict[str, torch.Tensor],
    lightgcn_embeddings: dict[str, torch.Tensor], lightgcn_history: pd.DataFrame,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], pd.DataFrame]:
    """GLTA's graph backbone: LightGCN on train minus the alignment holdout (``backbone.*`` in MLflow).

    Without a holdout (``graph.alignment_holdout.fraction: 0``) its data, order, seed and settings
    are the baseline's, and training is bit-reproducible, so the baseline's outputs are returned
    as they are instead of training the same model a second time.
    """
    columns = ["user_idx", "item_idx"]
    if backbone_train[columns].reset_index(drop=True).equals(train[columns].reset_index(drop=True)):
        log.info("No alignment holdout: the backbone is the baseline LightGCN (not trained twice)")
        return lightgcn_weights, lightgcn_embeddings, lightgcn_history
    return pretrain_lightgcn(backbone_train, valid, user_map, item_map, lightgcn, tracking_prefix="backbone")
