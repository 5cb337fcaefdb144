"""The GLLM the library tests train: the tiny LLM, the small graph's random embeddings, a projector at
the LLM's token scale, and a short ``mask`` schedule that ``overrides`` changes."""

import torch

from glta_pipelines.core.glta import GLLM, GLLMConfig, Projector, build_gllm, token_norm


def tiny_gllm(tiny, graph, **overrides) -> GLLM:
    """``tiny`` and ``graph`` are the fixtures of ``tests/core/conftest.py``; seeded, so two calls with the
    same overrides build the same model."""
    llm, tokenizer = tiny
    _, users, items, _ = graph
    torch.manual_seed(0)
    projector = Projector(8, llm.config.hidden_size).fit_scales(items, token_norm(llm))
    config = GLLMConfig(**{"batch_size": 16, "epochs": 2, "target_scheme": "mask", **overrides})
    return build_gllm(llm, tokenizer, projector, users, items, config)
