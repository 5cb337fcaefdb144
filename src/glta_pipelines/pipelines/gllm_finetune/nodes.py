"""Nodes of the ``gllm_finetune`` stage, and the model assembly the ``evaluate`` stage reuses."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.glta import (
    GLLM,
    GLLMData,
    build_gllm,
    gllm_config_from_params,
    load_trainable_state,
    train_gllm,
    trainable_state,
    user_histories,
)
from glta_pipelines.core.llm import LLMConfig, load_llm
from glta_pipelines.tracking import epoch_logger


def assemble_gllm(
    llm: dict[str, Any], alignment: dict[str, Any], gllm: dict[str, Any],
    projector_state: dict[str, torch.Tensor], backbone_embeddings: dict[str, torch.Tensor],
) -> GLLM:
    """The GLTA model from parameters, the aligned projector and the backbone graph embeddings."""
    config = gllm_config_from_params(gllm)
    model, tokenizer = load_llm(config_from_params(LLMConfig, llm, "llm"))
    return build_gllm(model, tokenizer, projector_state, alignment.get("projector_kind", "linear"),
                      backbone_embeddings["user"], backbone_embeddings["item"], config)


def finetune_gllm(
    backbone_embeddings: dict[str, torch.Tensor], lightgcn_embeddings: dict[str, torch.Tensor],
    projector_state: dict[str, torch.Tensor], backbone_train: pd.DataFrame, alignment_targets: pd.DataFrame,
    train: pd.DataFrame, valid: pd.DataFrame, item_map: pd.DataFrame,
    llm: dict[str, Any], alignment: dict[str, Any], gllm: dict[str, Any], checkpoint_dir: str,
) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:
    """Train projectors, soft tokens and the GLLM head (and LoRA when enabled).

    Holdout scheme: prompts show the backbone's training items, targets are the held-out ones.
    Mask scheme: each step hides a fraction of the training items as targets. Validation (and
    model selection) scores with LightGCN trained on all of train as the residual base.
    """
    model = assemble_gllm(llm, alignment, gllm, projector_state, backbone_embeddings)
    config = model.config
    n_users = len(backbone_embeddings["user"])
    visible = backbone_train if config.target_scheme == "holdout" else train
    data = GLLMData(user_histories(visible, n_users), user_histories(alignment_targets, n_users), train, valid,
                    len(item_map), eval_base=(lightgcn_embeddings["user"], lightgcn_embeddings["item"]))
    checkpoint = _checkpoint_path(checkpoint_dir, llm, alignment, gllm, len(train))
    result = train_gllm(model, data, config, checkpoint,
                        on_epoch_end=epoch_logger("gllm"))
    return trainable_state(result.model), result.history


def restore_gllm(
    weights: dict[str, torch.Tensor], llm: dict[str, Any], alignment: dict[str, Any], gllm: dict[str, Any],
    projector_state: dict[str, torch.Tensor], backbone_embeddings: dict[str, torch.Tensor],
    lightgcn_embeddings: dict[str, torch.Tensor],
) -> GLLM:
    """A trained GLTA model ready to score, with LightGCN (all of train) as its residual base."""
    model = assemble_gllm(llm, alignment, gllm, projector_state, backbone_embeddings)
    load_trainable_state(model, weights)
    model.use_base(lightgcn_embeddings["user"], lightgcn_embeddings["item"])
    return model.eval()


def _checkpoint_path(folder: str, llm: dict, alignment: dict, gllm: dict, n_train: int) -> Path:
    """One checkpoint file per configuration, so ``resume`` never continues a different run."""
    settings = [llm, alignment, {k: v for k, v in gllm.items() if k != "resume"}, n_train]
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(folder) / f"gllm-{digest}.pt"
