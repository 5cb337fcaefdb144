"""GLTA library on a tiny randomly initialised Llama (speed); the real model is in test_glta_real.py."""

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from glta_pipelines.core.errors import InputError
from glta_pipelines.core.glta import (
    GLLM,
    AlignConfig,
    GLLMConfig,
    GLLMData,
    LoraSettings,
    Projector,
    build_gllm,
    gllm_loss,
    item_texts,
    load_trainable_state,
    make_scorer,
    token_norm,
    train_gllm,
    train_item_alignment,
    trainable_state,
    user_histories,
)
from glta_pipelines.core.interactions import SplitConfig, build_id_map, encode_ids, split_per_user
from glta_pipelines.core.ranking import rank_top_k


@pytest.fixture(scope="module")
def tiny(tiny_llm_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    return AutoModelForCausalLM.from_pretrained(tiny_llm_dir).eval().requires_grad_(False), tokenizer


@pytest.fixture
def graph(interactions):
    user_map, item_map = build_id_map(interactions["user_id"], "user_idx"), build_id_map(interactions["item_id"], "item_idx")
    splits = split_per_user(encode_ids(interactions, user_map, item_map), SplitConfig(seed=1))
    torch.manual_seed(0)
    return splits, torch.randn(len(user_map), 8), torch.randn(len(item_map), 8), item_map


def _model(tiny, graph, **overrides) -> GLLM:
    llm, tokenizer = tiny
    _, users, items, _ = graph
    torch.manual_seed(0)
    projector = Projector(8, llm.config.hidden_size).fit_scales(items, token_norm(llm))
    config = GLLMConfig(**{"batch_size": 16, "epochs": 2, "target_scheme": "mask", **overrides})
    return build_gllm(llm, tokenizer, projector.state_dict(), "linear", users, items, config)


def test_projector_starts_at_the_llms_token_scale(tiny, graph):
    llm, _ = tiny
    items = graph[2]
    for kind in ("linear", "mlp"):
        tokens = Projector(8, llm.config.hidden_size, kind).fit_scales(items, token_norm(llm))(items)
        assert tokens.norm(dim=1).mean().item() == pytest.approx(token_norm(llm), rel=1e-4)


def test_item_alignment_learns_titles_with_frozen_llm(tiny, graph, items):
    llm, tokenizer = tiny
    texts = item_texts(items, graph[3], " {title}")
    assert texts[0] == " Item 0"
    before = [p.clone() for p in llm.parameters()]
    result = train_item_alignment(llm, tokenizer, graph[2], texts,
                                  AlignConfig(epochs=8, batch_size=8, learning_rate=0.05, n_examples=3), show_progress=False)
    per_epoch = result.history.groupby("epoch")["loss"].mean()
    assert per_epoch.iloc[-1] < per_epoch.iloc[0]
    assert all(torch.equal(a, b) for a, b in zip(before, llm.parameters())), "the LLM must stay frozen"
    assert result.examples.count("true:") == 3


def test_target_template_errors_name_the_fields(graph, items):
    with pytest.raises(InputError, match=r"target_template.*unknown 'plot'"):
        item_texts(items, graph[3], " {plot}")


def test_template_must_hold_every_slot(tiny, graph):
    with pytest.raises(InputError, match=r"prompt_template.*<prediction>"):
        _model(tiny, graph, prompt_template="User <user> watched <history> <profile>")


def test_residual_head_starts_exactly_at_the_graph_ranking(tiny, graph):
    model = _model(tiny, graph)
    _, users, items, _ = graph
    batch = torch.arange(5)
    logits = model.logits(batch, model.hidden(batch, [np.array([0, 1, 2])] * 5))
    assert logits.shape == (5, items.shape[0])  # every item scored
    assert torch.allclose(logits, users[batch] @ items.T)


@pytest.mark.parametrize("overrides", [{}, {"scoring_space": "token"}, {"encoder": "mean"}, {"residual": False}])
def test_gllm_logits_cover_all_items_and_masked_items_are_never_recommended(tiny, graph, overrides):
    splits, users, items, _ = graph
    model = _model(tiny, graph, **overrides)
    histories = user_histories(splits["train"], users.shape[0])
    scorer = make_scorer(model, histories, 10, 7)
    all_users = torch.arange(users.shape[0])
    assert scorer(all_users).shape == (users.shape[0], items.shape[0])
    top, _ = rank_top_k(scorer, splits["train"], users.shape[0], items.shape[0], k=5)
    seen = set(zip(splits["train"]["user_idx"], splits["train"]["item_idx"]))
    assert not seen & {(u, int(i)) for u in range(users.shape[0]) for i in top[u]}


def test_gllm_loss_ignores_masked_items():
    logits = torch.tensor([[2.0, 1.0, 0.0, 5.0]])
    loss = gllm_loss(logits, [np.array([1])], [np.array([3])])
    expected = -torch.log_softmax(torch.tensor([2.0, 1.0, 0.0]), 0)[1]
    assert loss.item() == pytest.approx(expected.item())


def test_gllm_training_moves_the_correction_and_reports_progress(tiny, graph):
    splits, users, items, _ = graph
    model = _model(tiny, graph, learning_rate=0.01)
    data = GLLMData(user_histories(splits["train"], users.shape[0]), [], splits["train"], splits["valid"], items.shape[0])
    result = train_gllm(model, data, model.config, show_progress=False)
    assert list(result.history["epoch"]) == [1, 2]
    assert result.history["head_norm"].iloc[-1] > 0
    assert {"users_per_second", "scoring_users_per_second", "peak_memory_mb", "valid_recall_at_20"} <= set(result.history)


def test_best_validation_epoch_is_the_model_returned(tiny, graph):
    splits, users, items, _ = graph
    model = _model(tiny, graph, epochs=4, patience=10, learning_rate=0.05)
    data = GLLMData(user_histories(splits["train"], users.shape[0]), [], splits["train"], splits["valid"], items.shape[0])
    snapshot = trainable_state(model)
    result = train_gllm(model, data, model.config, show_progress=False)
    assert not torch.equal(snapshot["head.weight"], trainable_state(result.model)["head.weight"])
    assert torch.equal(snapshot["head.weight"], torch.zeros_like(snapshot["head.weight"])), "snapshot followed training"
    best = result.history.loc[result.history["valid_recall_at_20"].idxmax(), "epoch"]
    assert result.best_epoch == best
    from glta_pipelines.core.ranking import ranking_metrics

    scorer = make_scorer(result.model, user_histories(splits["train"], users.shape[0]), 10, 64)
    recall = ranking_metrics(scorer, splits["train"], splits["valid"], users.shape[0], items.shape[0], [20])["recall_at_20"]
    assert recall == pytest.approx(result.history["valid_recall_at_20"].max())


def test_resume_continues_from_the_last_checkpoint(tiny, graph, tmp_path):
    splits, users, items, _ = graph
    data = GLLMData(user_histories(splits["train"], users.shape[0]), [], splits["train"], splits["valid"], items.shape[0])
    straight = train_gllm(_model(tiny, graph, epochs=3, patience=10), data,
                          _model(tiny, graph, epochs=3, patience=10).config, show_progress=False)

    path = tmp_path / "ckpt.pt"
    interrupted = _model(tiny, graph, epochs=1, patience=10)
    first = train_gllm(interrupted, data, interrupted.config, checkpoint_path=path, show_progress=False)
    resumed = _model(tiny, graph, epochs=3, patience=10, resume=True)
    result = train_gllm(resumed, data, resumed.config, checkpoint_path=path, show_progress=False)

    assert list(result.history["epoch"]) == [1, 2, 3]
    assert result.history.iloc[0].equals(first.history.iloc[0])  # epoch 1 came from the checkpoint
    assert result.history["loss"].tolist() == pytest.approx(straight.history["loss"].tolist(), rel=1e-5)
    for key, value in trainable_state(straight.model).items():
        assert torch.allclose(value, trainable_state(result.model)[key], atol=1e-6), key


def test_lora_weights_are_saved_and_restored_without_touching_the_shared_llm(tiny, graph):
    llm, tokenizer = tiny
    model = _model(tiny, graph, lora=LoraSettings(enabled=True, rank=2, alpha=4, dropout=0.0))
    state = trainable_state(model)
    lora_keys = [k for k in state if k.startswith("lora::")]
    assert lora_keys and not any("lora_" in n for n, _ in llm.named_parameters())
    state = {k: v + 1.0 if k.startswith("lora::") else v for k, v in state.items()}
    load_trainable_state(model, state)
    assert torch.equal(trainable_state(model)[lora_keys[0]], state[lora_keys[0]])


def test_holdout_scheme_trains_on_held_out_targets_only(tiny, graph):
    splits, users, items, _ = graph
    train = splits["train"]
    targets = train.groupby("user_idx").head(1)
    visible = train.drop(targets.index)
    model = _model(tiny, graph, target_scheme="holdout", epochs=1)
    data = GLLMData(user_histories(visible, users.shape[0]), user_histories(targets, users.shape[0]), train,
                    splits["valid"], items.shape[0])
    result = train_gllm(model, data, model.config, show_progress=False)
    assert result.history["users_per_second"].iloc[0] > 0
