"""Nodes of the ``baselines`` stage."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pandas as pd
import torch

from glta_pipelines.core.artifacts import TensorArtifact
from glta_pipelines.core.training.bpr import TrainedEmbeddings, train_bpr_model
from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.models.ease import EASEConfig, fit_ease
from glta_pipelines.core.models.graph_encoder import EdgeDropout, node_text
from glta_pipelines.core.models.lightgcn import LightGCNConfig
from glta_pipelines.core.models.registry import METHODS
from glta_pipelines.core.models.sasrec import SASRecConfig, to_artifact, train_sasrec
from glta_pipelines.core.llm.backbone import LLMConfig
from glta_pipelines.core.data.recbole_export import recbole_files
from glta_pipelines.core.llm.text_encoder import TextEncoderConfig, encode_texts, item_texts
from glta_pipelines.framework.parameters import dataset_source
from glta_pipelines.framework.tracking import epoch_logger, log_metrics

Embeddings = dict[str, torch.Tensor]


def train_ease(train: pd.DataFrame, valid: pd.DataFrame, user_map: pd.DataFrame, item_map: pd.DataFrame,
               ease: dict[str, Any]) -> tuple[TensorArtifact, pd.DataFrame]:
    """EASE's item-item weights for the λ best on validation (with λ in the artifact's config),
    and the validation metrics of every λ of the grid."""
    config = config_from_params(EASEConfig, ease, "baselines.ease")
    result = fit_ease(train, valid, len(user_map), len(item_map), config)
    chosen = result.selection[result.selection["lambda"] == result.lam].iloc[0]
    log_metrics({f"ease.{k}": float(v) for k, v in chosen.items()})  # the chosen λ and its validation metrics
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


def embed_item_texts(items: pd.DataFrame, item_map: pd.DataFrame, text_encoder: dict[str, Any],
                     llm: dict[str, Any]) -> TensorArtifact:
    """Every item's text embedding (``item_idx`` order), with the encoder named in the artifact."""
    config = config_from_params(TextEncoderConfig, text_encoder, "baselines.text_encoder")
    texts = item_texts(items, item_map)
    llm_config = config_from_params(LLMConfig, llm, "llm") if config.name != "minilm" else None
    embeddings = encode_texts(texts, config, llm_config)
    return TensorArtifact({"item": embeddings}, {"encoder": config.name, "max_tokens": config.max_tokens,
                                                 "llm": llm.get("model") if config.name != "minilm" else None,
                                                 "dim": int(embeddings.shape[1])})


def train_sequential(train: pd.DataFrame, valid: pd.DataFrame, user_map: pd.DataFrame, item_map: pd.DataFrame,
                     params: dict[str, Any]) -> tuple[TensorArtifact, pd.DataFrame]:
    """SASRec on each user's training sequence: (self-describing weights, per-epoch history)."""
    config = config_from_params(SASRecConfig, params, "baselines.sasrec")
    trained = train_sasrec(train, valid, len(user_map), len(item_map), config, on_epoch_end=epoch_logger("sasrec"))
    return to_artifact(trained, len(item_map)), trained.history


def train_graph_baseline(method: str, train: pd.DataFrame, valid: pd.DataFrame, user_map: pd.DataFrame,
                         item_map: pd.DataFrame, lightgcn: dict[str, Any], text_embeddings: TensorArtifact | None = None,
                         params: dict[str, Any] | None = None) -> tuple[Embeddings, pd.DataFrame]:
    """A BPR graph baseline of the method registry (``core/models/registry.py``) on LightGCN's
    schedule: (embeddings, history). Bound to a method with ``functools.partial`` in the wiring.

    A text-aware method reads the item text embeddings (summed into each node's text); a method
    whose config names its own ``learning_rate`` or ``batch_size`` (HCCF's) trains with those.
    """
    spec = METHODS[method]
    config = config_from_params(spec.config, params or {}, f"baselines.{spec.parameter_key}") if spec.config else None
    schedule = config_from_params(LightGCNConfig, lightgcn, "pretrain_gnn.lightgcn")
    for name in ("learning_rate", "batch_size"):
        if getattr(config, name, None) is not None:
            schedule = dataclasses.replace(schedule, **{name: getattr(config, name)})
    n_users, n_items = len(user_map), len(item_map)
    text = node_text(train, text_embeddings["item"], n_users) if spec.text_aware else None
    adjacency = EdgeDropout(train["user_idx"].to_numpy(), train["item_idx"].to_numpy(), n_users, n_items)
    result: TrainedEmbeddings = train_bpr_model(
        method, lambda: spec.build(adjacency, n_users, n_items, schedule, config, text), train, valid, n_users, n_items,
        schedule, on_epoch_end=epoch_logger(method))
    return {"user": result.user, "item": result.item}, result.history
