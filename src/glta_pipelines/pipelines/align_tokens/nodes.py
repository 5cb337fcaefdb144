"""Nodes of the ``align_tokens`` stage."""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from glta_pipelines.core.artifacts import TensorArtifact
from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.training.distributed import DataParallelConfig
from glta_pipelines.core.data.sources import item_words
from glta_pipelines.core.glta import AlignConfig, item_texts, projector_artifact, with_words
from glta_pipelines.core.glta.data_parallel import AlignJob, align_data_parallel
from glta_pipelines.core.llm.backbone import LLMConfig
from glta_pipelines.framework.tracking import epoch_logger, log_metrics


def align_item_tokens(
    embeddings: dict[str, torch.Tensor], items: pd.DataFrame, item_map: pd.DataFrame,
    llm: dict[str, Any], alignment: dict[str, Any], data_parallel: dict[str, Any], dataset: dict[str, Any],
) -> tuple[TensorArtifact, pd.DataFrame, str]:
    """Train the item projector so the frozen LLM reads each item token as its title.

    Returns (projector weights with their config: spec, alignment settings and LLM, so later
    stages rebuild it without parameters; per-step loss history; greedy-decoding check as text). The share of checked items whose
    decoding starts with the true title is logged as ``align.title_hit_rate``.
    The LLM is loaded once per process by ``load_llm`` (never passed between nodes). With
    ``data_parallel.processes`` > 1 the training runs on that many torchrun processes (DDP).
    The prompt names items as the dataset does (``{item_noun}``: movie, book, product...).
    """
    config = with_words(config_from_params(AlignConfig, alignment, "align_tokens.alignment"), item_words(dataset))
    llm_config = config_from_params(LLMConfig, llm, "llm")
    parallel = config_from_params(DataParallelConfig, data_parallel, "data_parallel")
    job = AlignJob(llm_config, embeddings["item"], item_texts(items, item_map, config.target_template), config)
    if parallel.processes > 1:
        result = align_data_parallel(job, parallel, on_step=epoch_logger("align"))
    else:
        result = job.run(on_step=epoch_logger("align"))
    log_metrics({"title_hit_rate": result.title_hit_rate}, prefix="align.")
    return projector_artifact(result.projector, config, llm_config), result.history, result.examples
