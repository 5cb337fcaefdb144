"""One training step of each GLTA stage on the real bundled SmolLM2 (loaded through the cache)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from glta_pipelines.core.glta import (
    AlignConfig,
    GLLMConfig,
    GLLMData,
    build_gllm,
    item_texts,
    train_gllm,
    train_item_alignment,
    user_histories,
)
from glta_pipelines.core.data.interactions import SplitConfig, build_id_map, encode_ids, split_per_user
from glta_pipelines.core.llm.backbone import LLMConfig, load_llm
from tests.core.gllm import END_TO_END

pytestmark = pytest.mark.slow


def test_one_step_of_each_stage_on_the_bundled_llm(bundled_model_dir, interactions, items):
    llm, tokenizer = load_llm(LLMConfig(cache_dir=str(Path(bundled_model_dir).parent)))
    few = interactions[interactions["user_id"].isin([f"u{i}" for i in range(6)])]
    user_map, item_map = build_id_map(few["user_id"], "user_idx"), build_id_map(few["item_id"], "item_idx")
    splits = split_per_user(encode_ids(few, user_map, item_map), SplitConfig(seed=1))
    torch.manual_seed(0)
    users, item_emb = torch.randn(len(user_map), 16), torch.randn(len(item_map), 16)

    texts = item_texts(items, item_map, " {title}")
    aligned = train_item_alignment(llm, tokenizer, item_emb[:8], texts[:8],
                                   AlignConfig(epochs=1, batch_size=8, n_examples=1), show_progress=False)
    assert len(aligned.history) == 1 and np.isfinite(aligned.history["loss"]).all()
    assert aligned.projector(item_emb).shape == (len(item_map), 576)

    config = GLLMConfig(**{**END_TO_END, "epochs": 1, "batch_size": 8, "target_scheme": "mask"})
    model = build_gllm(llm, tokenizer, aligned.projector, users, item_emb, config)
    data = GLLMData(user_histories(splits["train"], len(user_map)), [], splits["train"], splits["valid"], len(item_map))
    result = train_gllm(model, data, config, show_progress=False)
    assert len(result.history) == 1 and result.history["head_norm"].iloc[0] > 0
    assert not any(p.requires_grad for p in llm.parameters())
