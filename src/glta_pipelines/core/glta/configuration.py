"""Typed settings of both GLTA stages, and their JSON form stored inside the weights artifacts."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from glta_pipelines.core.artifacts import json_ready
from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.llm.prompts import fill_words

T = TypeVar("T")


@dataclass(frozen=True)
class AlignConfig:
    """Item-text alignment (stage ``align_tokens``)."""

    prompt_template: str = "<item> is the {item_noun} titled"
    # what the LLM should say after the item token ({title} and the item's other fields)
    target_template: str = " {title}"
    # target tokens kept per title (longer titles are cut), which bounds a step's cost
    max_target_tokens: int = 16
    projector_kind: str = "linear"
    # Adam's rate for the projector in the generate epochs
    learning_rate: float = 3e-3
    # items per step, grouped by title length to spare padding
    batch_size: int = 32
    # generate: next-token loss on the title; regress (MSE) / contrast (InfoNCE over the catalogue)
    # against the mean of the title's own input-token embeddings, cached, for fit_epochs full-batch
    # steps; then `epochs` of generate
    objective: str = "generate"
    # full-batch steps of regress/contrast before the generate epochs
    fit_epochs: int = 300
    # Adam's rate of those full-batch steps
    fit_learning_rate: float = 1e-2
    # InfoNCE temperature of the contrast objective
    contrast_temperature: float = 0.05
    epochs: int = 1  # generate epochs (after the fit epochs of regress/contrast)
    n_examples: int = 10  # items whose greedy decoding is logged and checked against the title
    # projector initialisation and batch order
    seed: int = 2025

    def validate(self) -> None:
        for name in ("max_target_tokens", "batch_size", "learning_rate", "fit_learning_rate", "contrast_temperature"):
            if not getattr(self, name) > 0:
                raise InputError(f"parameter align_tokens.alignment.{name}", getattr(self, name), "a positive number")
        if self.epochs < 0 or self.fit_epochs < 0:
            raise InputError("parameter align_tokens.alignment.epochs/fit_epochs", (self.epochs, self.fit_epochs),
                             "0 (none) or more")
        if self.projector_kind not in ("linear", "mlp"):
            raise InputError("parameter align_tokens.alignment.projector_kind", repr(self.projector_kind), "linear or mlp")
        if self.objective not in ("generate", "regress", "contrast"):
            raise InputError("parameter align_tokens.alignment.objective", repr(self.objective),
                             "generate, regress or contrast")


@dataclass(frozen=True)
class LoraSettings:
    """Optional LoRA adapters on the LLM (peft)."""

    # LoRA adapters on a copy of the LLM, trained in the end-to-end epochs
    enabled: bool = False
    # rank of each adapter
    rank: int = 8
    # LoRA scaling: updates are scaled by alpha / rank
    alpha: int = 16
    # dropout on the adapters' input
    dropout: float = 0.05
    # the LLM's layers that get adapters
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")


@dataclass(frozen=True)
class GLLMConfig:
    """User-item alignment with the GLLM layer (stage ``gllm_finetune``)."""

    prompt_template: str = ("User <user> has {interaction_verb} <history>. Profile: <profile>. "
                            "The next {item_noun} is <prediction>")
    history_length: int = 1000  # most recent items the prompt reads (a cap: large values read the whole history)
    # items: one token per history item; mean: one token, the mean of all of them; chunks: the
    # means of history_chunks consecutive slices (time order)
    history_tokens: str = "chunks"
    # time: the history in time order (latest last, next to the prediction token); shuffled: the
    # same items in a fixed random order of the catalogue (seed), the control for what order adds
    history_order: str = "time"
    # chunk tokens per prompt with history_tokens: chunks
    history_chunks: int = 8
    # mask: each step hides a fraction of the user's training items and predicts them;
    # holdout: targets are interactions held out of the backbone LightGCN's pretraining;
    # multinomial (CLLM4Rec): the prompt drops mask_fraction of the items, the targets are all of them
    target_scheme: str = "mask"
    # share of training items hidden as targets each step (mask), or dropped from the prompt (multinomial)
    mask_fraction: float = 0.2
    encoder: str = "llm"  # llm, or mean (ablation: mean of the prompt's graph tokens, no LLM)
    # graph: head(h) against the item embeddings; token: against the projected item tokens (both tie
    # the head's item side); free: a linear layer with its own weights per item (E4SRec's head)
    scoring_space: str = "graph"
    logits: str = "dot"  # dot, or cosine: cos(head(h), item) / temperature
    temperature: float = 0.1  # cosine logits' initial temperature
    # the cosine logits' temperature is trained
    learn_temperature: bool = True
    residual: bool = False  # logits = scale * LightGCN score + correction (initialised at zero)
    # Non-residual models only: after training alone, the GLLM's scores are blended with the
    # graph's, z-scored per user, at the weight of this grid that validates best (0: the graph alone)
    blend_grid: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0)
    # linear or mlp: graph user embedding to the user token
    user_projector_kind: str = "linear"
    learning_rate: float = 3e-4
    # AdamW weight decay of the end-to-end epochs
    weight_decay: float = 0.0
    # users per end-to-end step
    batch_size: int = 32
    epochs: int = 0  # end-to-end epochs (LLM inputs and head); 0 with head_epochs > 0: head only
    # validation every N end-to-end epochs
    eval_every: int = 2
    # validations without improvement before the end-to-end epochs stop
    patience: int = 2
    # Cache-then-train: after the end-to-end epochs, the LLM's state at the prediction token is
    # cached for cache_draws input draws per user, and the head alone trains head_epochs on it.
    head_epochs: int = 300
    # input draws (masks) per user whose LLM states are cached for the head
    cache_draws: int = 4
    # Adam's rate of the head on cached states
    head_learning_rate: float = 1e-3
    # cached states per head step
    head_batch_size: int = 128
    # validation every N head epochs
    head_eval_every: int = 10
    # validations without improvement before the head stops
    head_patience: int = 4
    # users per LLM pass when scoring
    scoring_batch_size: int = 64
    # continue from the checkpoint of the same configuration and inputs, if one exists
    resume: bool = False
    # initialisation, masks and batch order
    seed: int = 2025
    lora: LoraSettings = field(default_factory=LoraSettings)

    def validate(self) -> None:
        choices = {"target_scheme": ("holdout", "mask", "multinomial"), "encoder": ("llm", "mean"),
                   "scoring_space": ("graph", "token", "free"), "user_projector_kind": ("linear", "mlp"),
                   "history_tokens": ("items", "mean", "chunks"),
                   "history_order": ("time", "shuffled"), "logits": ("dot", "cosine")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(f"parameter gllm_finetune.gllm.{name}", repr(getattr(self, name)), f"one of {allowed}")
        for name in ("history_length", "history_chunks", "learning_rate", "batch_size", "eval_every", "patience",
                     "scoring_batch_size", "cache_draws", "head_learning_rate", "head_batch_size", "head_eval_every",
                     "head_patience", "temperature"):
            if not getattr(self, name) > 0:
                raise InputError(f"parameter gllm_finetune.gllm.{name}", getattr(self, name), "a positive number")
        if self.blend_grid and (self.residual or any(w < 0 for w in self.blend_grid)):
            raise InputError("parameter gllm_finetune.gllm.blend_grid", list(self.blend_grid),
                             "non-negative weights, with gllm_finetune.gllm.residual: false")
        if self.logits == "cosine" and self.scoring_space == "free":
            raise InputError("parameter gllm_finetune.gllm.logits", repr(self.logits),
                             "dot with scoring_space free (cosine needs the graph or token item side)")
        if self.epochs < 0 or self.head_epochs < 0 or self.epochs + self.head_epochs == 0:
            raise InputError("parameter gllm_finetune.gllm.epochs/head_epochs", (self.epochs, self.head_epochs),
                             "non-negative numbers of epochs, not both 0")
        if not 0 < self.mask_fraction < 1:
            raise InputError("parameter gllm_finetune.gllm.mask_fraction", self.mask_fraction, "a fraction in (0, 1)")

    def trains_through_llm(self) -> bool:
        """Whether gradients pass through the LLM (end-to-end epochs or LoRA): then an int8 LLM
        (``llm.quantize``) cannot be used, as int8 kernels have no backward."""
        return self.encoder != "mean" and (self.epochs > 0 or self.lora.enabled)


def with_words(config: T, words: Mapping[str, str]) -> T:
    """``config`` with its prompt template's ``{item_noun}``/``{interaction_verb}`` filled with the
    dataset's words, so the trained artifact stores the prompt its LLM really read."""
    return dataclasses.replace(config, prompt_template=fill_words(config.prompt_template, dict(words)))


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
