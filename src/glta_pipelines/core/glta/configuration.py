"""Typed settings of both GLTA stages, and their JSON form stored inside the weights artifacts."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from glta_pipelines.core.artifacts import json_ready
from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.errors import InputError

T = TypeVar("T")


@dataclass(frozen=True)
class AlignConfig:
    """Item-text alignment (stage ``align_tokens``)."""

    prompt_template: str = "<item> is the movie titled"
    target_template: str = " {title}"
    max_target_tokens: int = 16
    projector_kind: str = "linear"
    learning_rate: float = 1e-3
    batch_size: int = 32
    epochs: int = 3
    n_examples: int = 10  # items whose greedy decoding is logged for a human check
    seed: int = 2025

    def validate(self) -> None:
        for name in ("max_target_tokens", "batch_size", "learning_rate"):
            if not getattr(self, name) > 0:
                raise InputError(f"parameter align_tokens.alignment.{name}", getattr(self, name), "a positive number")
        if self.epochs < 0:
            raise InputError("parameter align_tokens.alignment.epochs", self.epochs, "0 (projector left untrained) or more")
        if self.projector_kind not in ("linear", "mlp"):
            raise InputError("parameter align_tokens.alignment.projector_kind", repr(self.projector_kind), "linear or mlp")


@dataclass(frozen=True)
class LoraSettings:
    """Optional LoRA adapters on the LLM (peft)."""

    enabled: bool = False
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")


@dataclass(frozen=True)
class GLLMConfig:
    """User-item alignment with the GLLM layer (stage ``gllm_finetune``)."""

    prompt_template: str = "User <user> has watched <history>. Profile: <profile>. The next movie is <prediction>"
    history_length: int = 10
    # mask: each step hides a fraction of the user's training items and predicts them;
    # holdout: targets are interactions held out of the backbone LightGCN's pretraining
    target_scheme: str = "mask"
    mask_fraction: float = 0.2
    encoder: str = "llm"  # llm, or mean (ablation: mean of the prompt's graph tokens, no LLM)
    scoring_space: str = "graph"  # graph: against item embeddings; token: against projected item tokens
    residual: bool = True  # logits = scale * LightGCN score + correction (initialised at zero)
    user_projector_kind: str = "linear"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 32
    epochs: int = 3
    eval_every: int = 1
    patience: int = 2
    scoring_batch_size: int = 64
    resume: bool = False
    seed: int = 2025
    lora: LoraSettings = field(default_factory=LoraSettings)

    def validate(self) -> None:
        choices = {"target_scheme": ("holdout", "mask"), "encoder": ("llm", "mean"), "scoring_space": ("graph", "token"),
                   "user_projector_kind": ("linear", "mlp")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(f"parameter gllm_finetune.gllm.{name}", repr(getattr(self, name)), f"one of {allowed}")
        for name in ("history_length", "learning_rate", "batch_size", "eval_every", "patience", "scoring_batch_size"):
            if not getattr(self, name) > 0:
                raise InputError(f"parameter gllm_finetune.gllm.{name}", getattr(self, name), "a positive number")
        if not 0 < self.mask_fraction < 1:
            raise InputError("parameter gllm_finetune.gllm.mask_fraction", self.mask_fraction, "a fraction in (0, 1)")


def to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass (nested ones included) as a JSON-ready dict, for an artifact's config."""
    return json_ready(dataclasses.asdict(config))


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str) -> T:
    """The config dataclass ``cls`` from its dict form (parameters or :func:`to_dict` output), validated.

    Nested config fields (``GLLMConfig.lora``) are built with their own ``where``; unknown keys and
    wrong types are rejected by name (see :func:`~glta_pipelines.core.config.config_from_params`).
    """
    return config_from_params(cls, data, where)


def gllm_config_from_params(params: Mapping[str, Any] | None) -> GLLMConfig:
    """GLLMConfig from ``gllm_finetune.gllm`` parameters (with its nested ``lora`` block)."""
    return from_dict(GLLMConfig, params, "gllm_finetune.gllm")
