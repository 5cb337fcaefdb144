"""Fixtures of the GLTA library tests: the tiny random Llama, loaded, and a small graph."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from glta_pipelines.core.llm.backbone import LLMConfig
from glta_pipelines.core.data.interactions import SplitConfig, build_id_map, encode_ids, split_per_user


@pytest.fixture(scope="module")
def tiny(tiny_llm_dir):
    """The tiny test LLM, frozen, with its tokenizer (one load per module)."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    return AutoModelForCausalLM.from_pretrained(tiny_llm_dir).eval().requires_grad_(False), tokenizer


@pytest.fixture
def graph(interactions):
    """(splits, random 8-d user and item embeddings, item map) of the synthetic interactions."""
    user_map, item_map = build_id_map(interactions["user_id"], "user_idx"), build_id_map(interactions["item_id"], "item_idx")
    splits = split_per_user(encode_ids(interactions, user_map, item_map), SplitConfig(seed=1))
    torch.manual_seed(0)
    return splits, torch.randn(len(user_map), 8), torch.randn(len(item_map), 8), item_map


@pytest.fixture
def tiny_llm_config(tiny_llm_dir) -> LLMConfig:
    """The tiny test LLM as the ``llm`` parameters name it: loaded from its folder, on the CPU."""
    return LLMConfig(model=str(tiny_llm_dir), dtype="float32", device="cpu")
