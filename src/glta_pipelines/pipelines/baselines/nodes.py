"""Nodes of the ``baselines`` stage."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pandas as pd
import torch

from glta_pipelines.core.artifacts import TensorArtifact
from glta_pipelines.core.bpr_trainer import TrainedEmbeddings, train_bpr_model
from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.ease import EASEConfig, fit_ease
from glta_pipelines.core.graph_encoder import EdgeDropout, node_text
from glta_pipelines.core.hccf import HCCF, HCCFConfig
from glta_pipelines.core.lightgcn import LightGCNConfig
from glta_pipelines.core.lightgcn_plus import LightGCNPlus
from glta_pipelines.core.llm import LLMConfig
from glta_pipelines.core.recbole_export import recbole_files
from glta_pipelines.core.rlmrec_con import RLMRecCon, RLMRecConConfig
from glta_pipelines.core.rlmrec_gen import RLMRecGen, RLMRecGenConfig
from glta_pipelines.core.text_encoder import TextEncoderConfig, encode_texts, item_texts
from glta_pipelines.parameters import dataset_source
from glta_pipelines.tracking import epoch_logger

Embeddings = dict[str, torch.Tensor]


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


def embed_item_texts(items: pd.DataFrame, item_map: pd.DataFrame, text_encoder: dict[str, Any],
                     llm: dict[str, Any]) -> TensorArtifact:
    """Every item's text embedding (``item_idx`` order), with the encoder named in the artifact."""
    config = config_from_params(TextEncoderConfig, text_encoder, "baselines.text_encoder")
    texts = item_texts(items, item_map)
    llm_config = config_from_params(LLMConfig, llm, "llm") if config.name == "llm" else None
    embeddings = encode_texts(texts, config, llm_config)
    return TensorArtifact({"item": embeddings}, {"encoder": config.name, "max_tokens": config.max_tokens,
                                                 "llm": llm.get("model") if config.name == "llm" else None,
                                                 "dim": int(embeddings.shape[1])})


def _train(method: str, build, train: pd.DataFrame, valid: pd.DataFrame, user_map: pd.DataFrame,
           item_map: pd.DataFrame, lightgcn: dict[str, Any], learning_rate: float | None = None,
           batch_size: int | None = None) -> tuple[Embeddings, pd.DataFrame]:
    schedule = config_from_params(LightGCNConfig, lightgcn, "pretrain_gnn.lightgcn")
    if learning_rate is not None:
        schedule = dataclasses.replace(schedule, learning_rate=learning_rate)
    if batch_size is not None:
        schedule = dataclasses.replace(schedule, batch_size=batch_size)
    n_users, n_items = len(user_map), len(item_map)
    adjacency = EdgeDropout(train["user_idx"].to_numpy(), train["item_idx"].to_numpy(), n_users, n_items)
    result: TrainedEmbeddings = train_bpr_model(method, lambda: build(adjacency, n_users, n_items, schedule), train,
                                                valid, n_users, n_items, schedule, on_epoch_end=epoch_logger(method))
    return {"user": result.user, "item": result.item}, result.history


def _text(train: pd.DataFrame, user_map: pd.DataFrame, text_embeddings: TensorArtifact) -> torch.Tensor:
    return node_text(train, text_embeddings["item"], len(user_map))


def train_lightgcn_plus(train: pd.DataFrame, valid: pd.DataFrame, user_map: pd.DataFrame, item_map: pd.DataFrame,
                        text_embeddings: TensorArtifact, lightgcn: dict[str, Any]) -> tuple[Embeddings, pd.DataFrame]:
    """LightGCN+ (``E0 = ID + MLP(text)``) with LightGCN's settings: (embeddings, history)."""
    text = _text(train, user_map, text_embeddings)
    return _train("lightgcn_plus", lambda adj, nu, ni, s: LightGCNPlus(adj, nu, ni, s.embedding_dim, s.num_layers, text),
                  train, valid, user_map, item_map, lightgcn)


def train_hccf(train: pd.DataFrame, valid: pd.DataFrame, user_map: pd.DataFrame, item_map: pd.DataFrame,
               lightgcn: dict[str, Any], hccf: dict[str, Any]) -> tuple[Embeddings, pd.DataFrame]:
    """HCCF with its reference settings on LightGCN's schedule (its own learning rate): (embeddings, history)."""
    return _hccf("hccf", train, valid, user_map, item_map, lightgcn, hccf, text=None)


def train_hccf_plus(train: pd.DataFrame, valid: pd.DataFrame, user_map: pd.DataFrame, item_map: pd.DataFrame,
                    text_embeddings: TensorArtifact, lightgcn: dict[str, Any], hccf: dict[str, Any],
                    ) -> tuple[Embeddings, pd.DataFrame]:
    """HCCF+ (HCCF on ``E0 = ID + MLP(text)``), HCCF's settings: (embeddings, history)."""
    return _hccf("hccf_plus", train, valid, user_map, item_map, lightgcn, hccf, _text(train, user_map, text_embeddings))


def _hccf(method, train, valid, user_map, item_map, lightgcn, hccf, text) -> tuple[Embeddings, pd.DataFrame]:
    config = config_from_params(HCCFConfig, hccf, "baselines.hccf")
    return _train(method, lambda adj, nu, ni, s: HCCF(adj, nu, ni, s.embedding_dim, config, text, seed=s.seed),
                  train, valid, user_map, item_map, lightgcn, config.learning_rate, config.batch_size)


def train_rlmrec_con(train: pd.DataFrame, valid: pd.DataFrame, user_map: pd.DataFrame, item_map: pd.DataFrame,
                     text_embeddings: TensorArtifact, lightgcn: dict[str, Any], rlmrec_con: dict[str, Any],
                     ) -> tuple[Embeddings, pd.DataFrame]:
    """RLMRec-Con on LightGCN with item-text profiles: (embeddings, history)."""
    config = config_from_params(RLMRecConConfig, rlmrec_con, "baselines.rlmrec_con")
    return _rlmrec("rlmrec_con", RLMRecCon, config, train, valid, user_map, item_map, text_embeddings, lightgcn)


def train_rlmrec_gen(train: pd.DataFrame, valid: pd.DataFrame, user_map: pd.DataFrame, item_map: pd.DataFrame,
                     text_embeddings: TensorArtifact, lightgcn: dict[str, Any], rlmrec_gen: dict[str, Any],
                     ) -> tuple[Embeddings, pd.DataFrame]:
    """RLMRec-Gen on LightGCN with item-text profiles: (embeddings, history)."""
    config = config_from_params(RLMRecGenConfig, rlmrec_gen, "baselines.rlmrec_gen")
    return _rlmrec("rlmrec_gen", RLMRecGen, config, train, valid, user_map, item_map, text_embeddings, lightgcn)


def _rlmrec(method, model, config, train, valid, user_map, item_map, text_embeddings, lightgcn,
            ) -> tuple[Embeddings, pd.DataFrame]:
    profiles = _text(train, user_map, text_embeddings)
    return _train(method, lambda adj, nu, ni, s: model(adj, nu, ni, s.embedding_dim, s.num_layers, profiles, config,
                                                       seed=s.seed),
                  train, valid, user_map, item_map, lightgcn)
