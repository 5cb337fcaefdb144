"""Nodes of the ``baselines`` stage."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from glta_pipelines.core.artifacts import TensorArtifact
from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.ease import EASEConfig, fit_ease
from glta_pipelines.core.recbole_export import recbole_files
from glta_pipelines.parameters import dataset_source


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


def export_recbole(train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame, user_map: pd.DataFrame,
                   item_map: pd.DataFrame, items: pd.DataFrame, dataset: dict[str, Any]) -> dict[str, str]:
    """The split as RecBole atomic files named after the dataset, in the folder RecBole reads
    (``<name>/<name>.train.inter``, ...: RecBole's data path is ``<data_path>/<dataset>``)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", dataset_source(dataset))
    files = recbole_files(name, {"train": train, "valid": valid, "test": test}, user_map, item_map, items)
    return {f"{name}/{filename}": text for filename, text in files.items()}
