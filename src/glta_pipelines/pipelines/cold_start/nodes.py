"""Nodes of the ``cold_start`` stage."""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from glta_pipelines.core.artifacts import TensorArtifact
from glta_pipelines.core.cold_start import (
    KNNConfig,
    KnowledgeGraphConfig,
    MapperConfig,
    RandomLLMConfig,
    fit_mapper,
    genre_features,
    knn_embeddings,
    knowledge_graph_features,
    knowledge_graph_folder,
    read_knowledge_graph,
)
from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.data.interactions import trained_items
from glta_pipelines.core.llm.backbone import LLMConfig
from glta_pipelines.core.llm.text_encoder import TextEncoderConfig, encode_texts, item_texts
from glta_pipelines.core.models.registry import METHODS
from glta_pipelines.framework.tracking import log_history

Embeddings = dict[str, torch.Tensor]


def genre_content(items: pd.DataFrame, item_map: pd.DataFrame) -> TensorArtifact:
    """Every item's genres (multi-hot) and release decade (one-hot), ``item_idx`` order."""
    features = genre_features(items, item_map)
    return TensorArtifact({"item": features}, {"encoder": "genres", "dim": int(features.shape[1])})


def knowledge_graph_content(item_map: pd.DataFrame, knowledge_graph: dict[str, Any],
                            dataset: dict[str, Any]) -> TensorArtifact:
    """Every item's knowledge-graph entities (multi-hot over those shared by ``min_items`` items)."""
    config = config_from_params(KnowledgeGraphConfig, knowledge_graph, "cold_start.knowledge_graph")
    folder = knowledge_graph_folder(config, dataset.get("name"), dataset.get("path"))
    triples, links = read_knowledge_graph(folder, config.name)
    features = knowledge_graph_features(triples, links, item_map, config.min_items)
    linked = int((features.sum(1) > 0).sum())
    return TensorArtifact({"item": features}, {"encoder": "knowledge_graph", "dim": int(features.shape[1]),
                                               "items_with_entities": linked})


def text_content(encoder: str, items: pd.DataFrame, item_map: pd.DataFrame, text_encoder: dict[str, Any],
                 llm: dict[str, Any], random_llm: dict[str, Any]) -> TensorArtifact:
    """Every item's text through ``encoder`` (minilm, llm or random_llm) with the text-aware baselines'
    settings (``baselines.text_encoder``, its name replaced); bound to an encoder in the wiring."""
    settings = config_from_params(TextEncoderConfig, {**text_encoder, "name": encoder}, "baselines.text_encoder")
    llm_config = config_from_params(LLMConfig, llm, "llm") if encoder != "minilm" else None
    seed = config_from_params(RandomLLMConfig, random_llm, "cold_start.random_llm").seed
    features = encode_texts(item_texts(items, item_map), settings, llm_config, seed=seed)
    return TensorArtifact({"item": features}, {"encoder": encoder, "dim": int(features.shape[1]),
                                               "llm": llm.get("model") if encoder != "minilm" else None,
                                               "seed": seed if encoder == "random_llm" else None})


def place_cold_items(method: str, content: TensorArtifact, lightgcn_embeddings: Embeddings, train: pd.DataFrame,
                     item_map: pd.DataFrame, mapper: dict[str, Any], knn: dict[str, Any],
                     ) -> tuple[Embeddings, pd.DataFrame]:
    """LightGCN's embeddings with every item that training never saw placed from its content by the
    method's mapper: (embeddings, the mapper's per-epoch losses). Bound to a method in the wiring."""
    warm = torch.from_numpy(trained_items(train, len(item_map)))
    item = lightgcn_embeddings["item"]
    if METHODS[method].mapper == "knn":
        placed = knn_embeddings(content["item"], item, warm, config_from_params(KNNConfig, knn, "cold_start.knn"))
        history = pd.DataFrame(columns=["epoch", "train_loss", "held_out_loss"])
    else:
        config = config_from_params(MapperConfig, mapper, "cold_start.mapper")
        placed, epochs = fit_mapper(content["item"], item, warm, config)
        log_history(method, epochs)
        history = pd.DataFrame(epochs, columns=["epoch", "train_loss", "held_out_loss"])
    return {"user": lightgcn_embeddings["user"].clone(), "item": placed}, history
