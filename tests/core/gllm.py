"""The GLLM the library tests train: the tiny LLM, the small graph's random embeddings, a projector at
the LLM's token scale, and a short ``mask`` schedule that ``overrides`` changes."""

import torch

from glta_pipelines.core.glta import GLLM, GLLMConfig, Projector, build_gllm, token_norm


# The paper's end-to-end form, which the library tests train (the default instead caches the LLM's
# states and trains the head alone, blended with the graph; docs/glta.md): every epoch goes through
# the LLM, the head is residual on LightGCN's score, the prompt reads the last 10 items.
END_TO_END = {"residual": True, "blend_grid": (), "epochs": 3, "head_epochs": 0, "history_length": 10,
              "history_tokens": "items", "history_chunks": 4, "learning_rate": 1e-3, "eval_every": 1,
              "head_patience": 5}


def tiny_gllm(tiny, graph, **overrides) -> GLLM:
    """``tiny`` and ``graph`` are the fixtures of ``tests/core/conftest.py``; seeded, so two calls with the
    same overrides build the same model."""
    llm, tokenizer = tiny
    _, users, items, _ = graph
    torch.manual_seed(0)
    projector = Projector(8, llm.config.hidden_size).fit_scales(items, token_norm(llm))
    config = GLLMConfig(**{**END_TO_END, "batch_size": 16, "epochs": 2, "target_scheme": "mask", **overrides})
    return build_gllm(llm, tokenizer, projector, users, items, config)
