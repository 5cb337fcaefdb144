"""Weights and their artifacts: what is saved, how a GLTA model is assembled, and rebuilt from a file alone.

Both stages write a :class:`~glta_pipelines.core.artifacts.TensorArtifact` whose ``config``
says how to rebuild what the tensors belong to:

- ``item_projector`` (stage ``align_tokens``): the projector's state; config ``kind``,
  ``projector`` (:class:`ProjectorSpec`), ``alignment`` (:class:`AlignConfig`), ``llm``.
- ``glta`` (stage ``gllm_finetune``): the GLLM's state (``item_projector.*`` included) plus
  LoRA weights under ``lora::``; config ``kind``, ``gllm`` (:class:`GLLMConfig`), ``llm``,
  ``item_projector`` (spec) and ``graph`` (``n_users``, ``n_items``, ``embedding_dim``).

So evaluation needs no parameters: :func:`restore_gllm` reads everything from the weights.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from glta_pipelines.core.artifacts import TensorArtifact, artifact_config
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.glta.configuration import AlignConfig, GLLMConfig, LoraSettings, from_dict, to_dict
from glta_pipelines.core.glta.model import GLLM, describe_graph, graph_shape
from glta_pipelines.core.glta.projector import Projector, ProjectorSpec
from glta_pipelines.core.llm.backbone import LLMConfig, load_llm, loading_config

LORA_PREFIX = "lora::"  # LoRA weights in a flat GLTA state, keyed as peft's get_peft_model_state_dict names them
PROJECTOR_KIND, GLTA_KIND = "item_projector", "glta"
PROJECTOR_WHERE = "item projector (align_tokens.item_projector)"
WEIGHTS_WHERE = "GLTA weights (gllm_finetune.weights)"
BACKBONE_WHERE = "backbone embeddings (pretrain_gnn.backbone_embeddings)"
RERUN = "re-run `kedro run --pipelines=glta`"


# --------------------------------------------------------------------------- LoRA and trainable state
def attach_lora(llm: nn.Module, settings: LoraSettings) -> nn.Module:
    """A LoRA-adapted copy of ``llm`` (the shared frozen LLM stays untouched)."""
    from peft import LoraConfig, get_peft_model

    adapted = get_peft_model(copy.deepcopy(llm), LoraConfig(
        r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules), bias="none"))
    return adapted.base_model.model  # peft injects adapters in place; keep the plain model interface


def lora_state(llm: nn.Module | None) -> dict[str, torch.Tensor]:
    """The LoRA weights of an adapted LLM, as peft saves them (adapter name dropped); empty without LoRA."""
    if llm is None or not hasattr(llm, "peft_config"):
        return {}
    from peft import get_peft_model_state_dict

    # save_embedding_layers=False: adapters never target embeddings, and "auto" would read the base config
    return get_peft_model_state_dict(llm, save_embedding_layers=False)


def trainable_state(model: GLLM) -> dict[str, torch.Tensor]:
    """What a trained GLLM adds to the frozen LLM: its own parameters and buffers, plus LoRA weights."""
    # clone: on CPU, .cpu() returns the live tensor, and a snapshot must not follow training
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    state.update({f"{LORA_PREFIX}{k}": v.detach().cpu().clone() for k, v in lora_state(model.llm).items()})
    return state


def load_trainable_state(model: GLLM, state: Mapping[str, torch.Tensor], where: str = WEIGHTS_WHERE) -> None:
    """Load :func:`trainable_state` output into ``model``; tensors that do not fit fail naming both sides."""
    own = {k: v for k, v in state.items() if not k.startswith(LORA_PREFIX)}
    check_state(model.state_dict(), own, where, "the tensors of a GLLM built with the same settings")
    model.load_state_dict(own)
    lora = {k[len(LORA_PREFIX):]: v for k, v in state.items() if k.startswith(LORA_PREFIX)}
    check_state(lora_state(model.llm), lora, f"{where}, LoRA part",
                "the LoRA weights of an LLM adapted with the same LoRA settings (gllm.lora)")
    if lora:
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(model.llm, lora)
        if result.unexpected_keys:
            raise InputError(f"{where}, LoRA part", f"weights peft could not place: {_few(result.unexpected_keys)}",
                             "LoRA weights of the adapted LLM")


def check_state(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor], where: str, what: str) -> None:
    """Raise :class:`InputError` unless ``found`` has exactly the keys and shapes of ``expected``."""
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    resized = sorted(k for k in set(expected) & set(found) if tuple(expected[k].shape) != tuple(found[k].shape))
    problems = ([f"missing {_few(missing)}"] if missing else []) + ([f"unexpected {_few(unexpected)}"] if unexpected else [])
    problems += [f"{k} of shape {tuple(found[k].shape)} instead of {tuple(expected[k].shape)}" for k in resized[:3]]
    if problems:
        raise InputError(where, "tensors that do not fit: " + "; ".join(problems), what)


def _few(keys: list[str], n: int = 4) -> str:
    return str(keys[:n])[:-1] + (f", ... ({len(keys)} in all)]" if len(keys) > n else "]")


# --------------------------------------------------------------------------- artifact configs
def require_config(artifact: Mapping[str, torch.Tensor], kind: str, where: str) -> dict[str, Any]:
    """The artifact's config, checked to be of ``kind``; a file without one (older runs) says how to fix it."""
    config = artifact_config(artifact)
    if config.get("kind") == kind:
        return config
    found = (f"an artifact of kind {config.get('kind')!r}" if config else
             "no GLTA config (a file written before weights described themselves)")
    raise InputError(where, found, f"a {kind!r} artifact with its config ({RERUN} to write one)")


def _section(config: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    if not isinstance(config.get(name), Mapping):
        raise InputError(f"{where} config", f"no {name!r} section (keys {sorted(config)})", f"a {name!r} section ({RERUN})")
    return config[name]


# --------------------------------------------------------------------------- item projector artifact
def projector_artifact(projector: Projector, alignment: AlignConfig, llm: LLMConfig) -> TensorArtifact:
    """The aligned item projector's weights, with what they were built and aligned with."""
    state = {k: v.detach().cpu().clone() for k, v in projector.state_dict().items()}
    return TensorArtifact(state, {"kind": PROJECTOR_KIND, "projector": projector.spec.to_dict(),
                                  "alignment": to_dict(alignment), "llm": to_dict(llm)})


def projector_spec(artifact: Mapping[str, torch.Tensor], where: str = PROJECTOR_WHERE) -> ProjectorSpec:
    """The spec an item projector artifact was built with (kind and sizes come from the file, not parameters)."""
    config = require_config(artifact, PROJECTOR_KIND, where)
    return ProjectorSpec.from_dict(_section(config, "projector", where), f"{where} config projector")


def load_projector(artifact: Mapping[str, torch.Tensor], where: str = PROJECTOR_WHERE) -> Projector:
    """The item projector of an ``item_projector`` artifact, built from its own spec and loaded."""
    spec = projector_spec(artifact, where)
    projector = spec.build()
    check_state(projector.state_dict(), artifact, where,
                f"the tensors of a {spec.kind} projector {spec.d_in} -> {spec.d_out}, as its config says")
    projector.load_state_dict(dict(artifact))
    return projector


def check_same_llm(artifact: Mapping[str, torch.Tensor], llm: LLMConfig, where: str = PROJECTOR_WHERE) -> None:
    """Fail unless ``llm`` is the model the projector was aligned with (its tokens live in that LLM's space)."""
    section = _section(require_config(artifact, PROJECTOR_KIND, where), "llm", where)
    aligned = section.get("model")
    if aligned != llm.model:
        raise InputError("parameter llm.model", repr(llm.model),
                         f"the LLM the {where} was aligned with, {aligned!r} (set llm.model to it, or {RERUN} "
                         f"to align a projector for {llm.model!r})")
    if section.get("num_layers") != llm.num_layers:
        raise InputError("parameter llm.num_layers", llm.num_layers,
                         f"the layers of the LLM the {where} was aligned with, {section.get('num_layers')} "
                         f"(set llm.num_layers to it, or {RERUN})")


# --------------------------------------------------------------------------- GLTA model and weights artifact
def build_gllm(llm: nn.Module | None, tokenizer, item_projector: Projector, graph_user: torch.Tensor,
               graph_item: torch.Tensor, config: GLLMConfig) -> GLLM:
    """A GLLM around ``llm`` (a LoRA-adapted copy when enabled; none for the mean encoder) and the item projector."""
    _check_projector_fits(item_projector, graph_item, None if config.encoder == "mean" else llm)
    if config.encoder == "mean":
        llm = None
    elif config.lora.enabled:
        llm = attach_lora(llm, config.lora)
    model = GLLM(llm, tokenizer, item_projector, graph_user, graph_item, config)
    # on the LLM's device (a GPU): the projectors, tokens, head and graph inputs in float32 beside it
    return model if llm is None else model.to(next(llm.parameters()).device)


def _check_projector_fits(projector: Projector, graph_item: torch.Tensor, llm: nn.Module | None) -> None:
    if projector.d_in != graph_item.shape[1]:
        raise InputError(PROJECTOR_WHERE, f"a projector of {projector.d_in}-d graph embeddings",
                         f"{graph_item.shape[1]}-d, the size of the backbone embeddings ({RERUN})")
    if llm is not None and projector.d_out != llm.config.hidden_size:
        raise InputError(PROJECTOR_WHERE, f"{projector.d_out}-d output tokens",
                         f"{llm.config.hidden_size}-d, the LLM's token size ({RERUN} with this LLM)")


def glta_artifact(model: GLLM, llm: LLMConfig) -> TensorArtifact:
    """A trained GLLM's weights with everything :func:`restore_gllm` needs to rebuild it."""
    return glta_state_artifact(trainable_state(model), model.config, llm, model.item_projector.spec,
                               {"user": model.graph_user, "item": model.graph_item})


def glta_state_artifact(state: dict[str, torch.Tensor], config: GLLMConfig, llm: LLMConfig, projector: ProjectorSpec,
                        backbone: Mapping[str, torch.Tensor]) -> TensorArtifact:
    """:func:`glta_artifact` of a trained state (:func:`trainable_state`) that came without its model
    (from a data-parallel run's rank 0); ``backbone``: the graph embeddings it was trained on. The LLM
    is recorded with its dtype resolved and without the training machine's cache folder
    (:meth:`LLMConfig.recorded`)."""
    return TensorArtifact(state, {
        "kind": GLTA_KIND, "gllm": to_dict(config), "llm": llm.recorded(), "item_projector": projector.to_dict(),
        "graph": graph_shape(backbone, "GLLM graph embeddings")})


# Weights config key: how many of the first items the model was trained with, when items were added
# after training (``serving/catalogue.py``); absent: all of them.
TRAINED_ITEMS = "trained_items"


def restore_gllm(weights: Mapping[str, torch.Tensor], backbone_embeddings: Mapping[str, torch.Tensor],
                 where: str = WEIGHTS_WHERE) -> GLLM:
    """A trained GLTA model, ready to score, from its weights artifact and the backbone graph embeddings.

    Settings, projector kind and LLM come from the artifact's config, so the run's current
    parameters cannot rebuild a model other than the one trained. The LLM is loaded (once per
    process) by ``load_llm`` in the precision recorded at training (``auto`` resolved there), unless
    ``GLTA_LLM_DTYPE`` / ``GLTA_LLM_QUANTIZE`` say otherwise, from this machine's cache folder
    (:func:`~glta_pipelines.core.llm.backbone.loading_config`). Pass the residual base to ``logits``/``make_scorer`` (evaluation
    uses LightGCN on all of train, see :func:`~glta_pipelines.core.glta.model.residual_base`).
    """
    config = require_config(weights, GLTA_KIND, where)
    gllm = from_dict(GLLMConfig, _section(config, "gllm", where), f"{where} config gllm")
    _check_graph(_section(config, "graph", where), backbone_embeddings, where)
    spec = ProjectorSpec.from_dict(_section(config, "item_projector", where), f"{where} config item_projector")
    with torch.random.fork_rng(devices=[]):  # fresh modules are overwritten by the weights: leave the caller's RNG
        llm, tokenizer = (None, None) if gllm.encoder == "mean" else load_llm(loading_config(
            from_dict(LLMConfig, _section(config, "llm", where), f"{where} config llm")))
        model = build_gllm(llm, tokenizer, spec.build(), backbone_embeddings["user"], backbone_embeddings["item"], gllm)
    load_trainable_state(model, weights, where)
    model.standardise_over = config.get(TRAINED_ITEMS)  # set when items were added by text after training
    return model.eval()


def _check_graph(expected: Mapping[str, int], embeddings: Mapping[str, torch.Tensor], where: str) -> None:
    if set(expected) != {"n_users", "n_items", "embedding_dim"}:
        raise InputError(f"{where} config graph", f"keys {sorted(expected)}", f"n_users, n_items, embedding_dim ({RERUN})")
    found = graph_shape(embeddings, BACKBONE_WHERE)
    if found != dict(expected):
        raise InputError(BACKBONE_WHERE, describe_graph(found),
                         f"{describe_graph(expected)}, the graph the {where} were trained with (use that run's "
                         f"embeddings, or {RERUN} on these)")
