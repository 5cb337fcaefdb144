"""Nodes of the ``baselines`` stage."""

from __future__ import annotations

from typing import Any

import pandas as pd

from glta_pipelines.core.artifacts import TensorArtifact
from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.ease import EASEConfig, fit_ease


def train_ease(train: pd.DataFrame, valid: pd.DataFrame, user_map: pd.DataFrame, item_map: pd.DataFrame,
               ease: dict[str, Any]) -> tuple[TensorArtifact, pd.DataFrame]:
    """EASE's item-item weights for the λ best on validation (with λ in the artifact's config),
    and the validation metrics of every λ of the grid."""
    config = config_from_params(EASEConfig, ease, "baselines.ease")
    result = fit_ease(train, valid, len(user_map), len(item_map), config)
    artifact = TensorArtifact({"item_item": result.weights},
                              {"kind": "ease", "lambda": result.lam, "lambdas": list(config.lambdas),
                               "selection_metric": config.selection_metric})
    return artifact, result.selection
