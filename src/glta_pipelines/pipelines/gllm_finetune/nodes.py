"""Nodes of the ``gllm_finetune`` stage (model assembly lives in ``core.glta.weights``)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from glta_pipelines.core.artifacts import TensorArtifact, artifact_config
from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.training.distributed import DataParallelConfig
from glta_pipelines.core.data.sources import item_words
from glta_pipelines.core.glta import (
    check_same_llm,
    gllm_config_from_params,
    glta_artifact,
    glta_state_artifact,
    projector_spec,
    with_words,
)
from glta_pipelines.core.glta.data_parallel import GLLMJob, train_data_parallel
from glta_pipelines.core.llm.backbone import LLMConfig
from glta_pipelines.framework.tracking import epoch_logger

log = logging.getLogger(__name__)


def finetune_gllm(
    backbone_embeddings: dict[str, torch.Tensor], lightgcn_embeddings: dict[str, torch.Tensor],
    item_projector: TensorArtifact, backbone_train: pd.DataFrame, alignment_targets: pd.DataFrame,
    train: pd.DataFrame, valid: pd.DataFrame, item_map: pd.DataFrame,
    llm: dict[str, Any], gllm: dict[str, Any], checkpoint_dir: str, data_parallel: dict[str, Any],
    dataset: dict[str, Any],
) -> tuple[TensorArtifact, pd.DataFrame]:
    """Train projectors, soft tokens and the GLLM head (and LoRA when enabled).

    The item projector's kind and sizes come from its artifact, so a projector aligned under
    other parameters still loads as what it is. Holdout scheme: prompts show the backbone's
    training items, targets are the held-out ones. Mask scheme: each step hides a fraction of
    the training items as targets. Validation (and model selection) scores with LightGCN trained
    on all of train as the residual base. With ``data_parallel.processes`` > 1 the training runs
    on that many torchrun processes (DDP) while this node, the catalog and the MLflow run stay
    here. Returns the weights with everything needed to rebuild the model
    (``core.glta.restore_gllm``), and the per-epoch history.
    """
    config = with_words(gllm_config_from_params(gllm), item_words(dataset))  # movie, book, product...
    llm_config = config_from_params(LLMConfig, llm, "llm")
    if llm_config.quantize != "none" and config.trains_through_llm():
        log.info("llm.quantize %s is for forward passes only: the end-to-end epochs (and evaluation of "
                 "this model) use the unquantised LLM", llm_config.quantize)
        llm_config = llm_config.for_training()
    parallel = config_from_params(DataParallelConfig, data_parallel, "data_parallel")
    check_same_llm(item_projector, llm_config)  # also fails for a projector file without a config, before loading
    inputs = input_fingerprint([item_projector, backbone_embeddings, lightgcn_embeddings],
                               [backbone_train, alignment_targets, train, valid])
    job = GLLMJob(llm_config, item_projector, backbone_embeddings, lightgcn_embeddings,
                  backbone_train if config.target_scheme == "holdout" else train, alignment_targets, train, valid,
                  len(item_map), config,
                  _checkpoint_path(checkpoint_dir, llm, artifact_config(item_projector), gllm, inputs))
    if parallel.processes > 1:
        state, history = train_data_parallel(job, parallel, on_epoch_end=epoch_logger("gllm"))
        return glta_state_artifact(state, config, llm_config, projector_spec(item_projector), backbone_embeddings), history
    result = job.run(on_epoch_end=epoch_logger("gllm"))
    return glta_artifact(result.model, llm_config), result.history


def _checkpoint_path(folder: str, llm: dict, projector: dict, gllm: dict, inputs: str) -> Path:
    """One checkpoint file per configuration and inputs, so ``resume`` never continues a different run.

    ``projector`` is the item projector artifact's config (spec, alignment settings, LLM): the
    projector actually loaded, whatever today's ``align_tokens`` parameters say. ``inputs`` is the
    fingerprint of the weights and tables trained on: re-running ``align_tokens`` or ``graph``
    starts a new checkpoint instead of resuming one built on the old projector or split.
    """
    settings = [llm, projector, {k: v for k, v in gllm.items() if k != "resume"}, inputs]
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(folder) / f"gllm-{digest}.pt"


def input_fingerprint(tensors: list[dict[str, torch.Tensor]], tables: list[pd.DataFrame]) -> str:
    """SHA-256 of the tensors' values and the tables' rows (a few MB on MovieLens: milliseconds)."""
    digest = hashlib.sha256()
    for group in tensors:
        for key in sorted(group):
            digest.update(key.encode())
            digest.update(group[key].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    for table in tables:
        digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    return digest.hexdigest()
