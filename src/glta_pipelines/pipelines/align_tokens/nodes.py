"""Nodes of the ``align_tokens`` stage."""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from glta_pipelines.core.artifacts import TensorArtifact
from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.glta import AlignConfig, item_texts, projector_artifact, train_item_alignment
from glta_pipelines.core.llm import LLMConfig, load_llm
from glta_pipelines.tracking import epoch_logger, log_metrics


def align_item_tokens(
    embeddings: dict[str, torch.Tensor], items: pd.DataFrame, item_map: pd.DataFrame,
    llm: dict[str, Any], alignment: dict[str, Any],
) -> tuple[TensorArtifact, pd.DataFrame, str]:
    """Train the item projector so the frozen LLM reads each item token as its title.

    Returns (projector weights with their config: spec, alignment settings and LLM, so later
    stages rebuild it without parameters; per-step loss history; greedy-decoding check as text). The share of checked items whose
    decoding starts with the true title is logged as ``align.title_hit_rate``.
    The LLM is loaded once per process by ``load_llm`` (never passed between nodes).
    """
    config = config_from_params(AlignConfig, alignment, "align_tokens.alignment")
    llm_config = config_from_params(LLMConfig, llm, "llm")
    model, tokenizer = load_llm(llm_config)
    texts = item_texts(items, item_map, config.target_template)
    result = train_item_alignment(model, tokenizer, embeddings["item"], texts, config, on_step=epoch_logger("align"))
    log_metrics({"title_hit_rate": result.title_hit_rate}, prefix="align.")
    return projector_artifact(result.projector, config, llm_config), result.history, result.examples
