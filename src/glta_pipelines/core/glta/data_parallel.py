"""The GLTA stages on several processes: the jobs a node hands to torchrun.

:class:`AlignJob` (``align_tokens``) and :class:`GLLMJob` (``gllm_finetune``) hold everything a
stage trains from. One process runs a job in place (``run``); with ``data_parallel.processes > 1``
the node hands it to :func:`~glta_pipelines.core.training.distributed.run_data_parallel`, which launches
torchrun: each rank rebuilds the same model (the LLM loaded by its spec, on the rank's own GPU
where there are GPUs), trains on its share of every batch while DDP averages the gradients, and
rank 0 writes the checkpoints (``resume`` works across process counts: the global batch is the
same) and returns the trained weights, which the node turns into its artifact.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from glta_pipelines.core.artifacts import TensorArtifact
from glta_pipelines.core.training.distributed import SINGLE, DataParallelConfig, Group, run_data_parallel
from glta_pipelines.core.glta.alignment import AlignResult, train_item_alignment
from glta_pipelines.core.glta.configuration import AlignConfig, GLLMConfig
from glta_pipelines.core.glta.examples import GLLMData, user_histories
from glta_pipelines.core.glta.model import GLLM
from glta_pipelines.core.glta.training import GLLMResult, train_gllm
from glta_pipelines.core.glta.weights import build_gllm, load_projector, trainable_state
from glta_pipelines.core.llm.backbone import LLMConfig, load_llm
from glta_pipelines.core.training.trainer import EpochCallback


def _rank_llm(config: LLMConfig, group: Group) -> LLMConfig:
    """The LLM settings of a rank: on the rank's device (its own GPU in a CUDA group)."""
    return config if group.device is None else dataclasses.replace(config, device=str(group.device))


def _progress(group: Group, show_progress: bool | None) -> bool | None:
    return show_progress if group.is_main else False  # one progress bar, rank 0's


@dataclass
class AlignJob:
    """What the item-text alignment trains from; picklable, so every rank can rebuild it."""

    llm: LLMConfig
    item_embedding: torch.Tensor
    texts: list[str]
    config: AlignConfig

    def run(self, group: Group = SINGLE, on_step: EpochCallback | None = None,
            show_progress: bool | None = None) -> AlignResult:
        llm, tokenizer = load_llm(_rank_llm(self.llm.for_training(), group))  # it trains through the LLM
        return train_item_alignment(llm, tokenizer, self.item_embedding, self.texts, self.config, on_step,
                                    _progress(group, show_progress), group)

    def run_rank(self, group: Group, on_epoch_end: EpochCallback | None) -> dict | None:
        result = self.run(group, on_epoch_end)
        if not group.is_main:
            return None
        return {"projector": result.projector.cpu(), "history": result.history.to_dict("records"),
                "examples": result.examples, "title_hit_rate": result.title_hit_rate}


def align_data_parallel(job: AlignJob, parallel: DataParallelConfig,
                        on_step: EpochCallback | None = None) -> AlignResult:
    """:meth:`AlignJob.run` on ``parallel.processes`` torchrun ranks; rank 0's result."""
    result = run_data_parallel(job, parallel, job.llm.device, on_step)
    return AlignResult(result["projector"], pd.DataFrame(result["history"]), result["examples"],
                       result["title_hit_rate"])


@dataclass
class GLLMJob:
    """What the user-item alignment trains from; picklable, so every rank can rebuild the model."""

    llm: LLMConfig
    item_projector: TensorArtifact
    backbone: dict[str, torch.Tensor]  # the backbone LightGCN's embeddings: the prompt's graph tokens
    eval_base: dict[str, torch.Tensor]  # LightGCN on all of train: the validation residual base
    visible: pd.DataFrame  # interactions the prompts may show
    alignment_targets: pd.DataFrame  # the holdout scheme's targets
    train: pd.DataFrame
    valid: pd.DataFrame
    n_items: int
    config: GLLMConfig
    checkpoint: Path | None = None

    def build(self, group: Group = SINGLE) -> tuple[GLLM, GLLMData]:
        """The untrained GLLM (on the rank's device in a GPU group) and its training data."""
        llm, tokenizer = load_llm(_rank_llm(self.llm, group))
        model = build_gllm(llm, tokenizer, load_projector(self.item_projector), self.backbone["user"],
                           self.backbone["item"], self.config)
        if group.device is not None:  # the mean encoder has no LLM to follow
            model.to(group.device)
        n_users = len(self.backbone["user"])
        data = GLLMData(user_histories(self.visible, n_users), user_histories(self.alignment_targets, n_users),
                        self.train, self.valid, self.n_items,
                        eval_base=(self.eval_base["user"], self.eval_base["item"]))
        return model, data

    def run(self, group: Group = SINGLE, on_epoch_end: EpochCallback | None = None,
            show_progress: bool | None = None) -> GLLMResult:
        model, data = self.build(group)
        return train_gllm(model, data, self.config, self.checkpoint, on_epoch_end, _progress(group, show_progress),
                          group)

    def run_rank(self, group: Group, on_epoch_end: EpochCallback | None) -> dict | None:
        result = self.run(group, on_epoch_end)
        if not group.is_main:
            return None
        return {"state": trainable_state(result.model), "history": result.history.to_dict("records")}


def train_data_parallel(job: GLLMJob, parallel: DataParallelConfig,
                        on_epoch_end: EpochCallback | None = None) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:
    """:meth:`GLLMJob.run` on ``parallel.processes`` torchrun ranks; rank 0's trained state and the history."""
    result = run_data_parallel(job, parallel, job.llm.device, on_epoch_end)
    return result["state"], pd.DataFrame(result["history"])
