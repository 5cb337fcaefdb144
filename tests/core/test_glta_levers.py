"""Issue 13's levers on a tiny random Llama: whole-history prompts, the multinomial target,
cache-then-train of the GLLM layer, cosine logits, fast item-text alignment, fewer LLM layers."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from glta_pipelines.core.errors import InputError
from glta_pipelines.core.glta import (
    AlignConfig,
    GLLMConfig,
    GLLMData,
    epoch_examples,
    item_texts,
    train_gllm,
    train_item_alignment,
    user_histories,
)
from glta_pipelines.core.glta.alignment import starts_with_title
from glta_pipelines.core.glta.training import cache_hidden_states, head_parameters
from tests.core.gllm import tiny_gllm
from glta_pipelines.core.llm.backbone import keep_first_layers


def _data(graph):
    splits, users, items, _ = graph
    return GLLMData(user_histories(splits["train"], users.shape[0]), [], splits["train"], splits["valid"],
                    items.shape[0])


def test_multinomial_prompt_drops_items_and_targets_them_all(graph):
    data = _data(graph)
    config = GLLMConfig(target_scheme="multinomial", mask_fraction=0.3, history_length=1000)
    for user, shown, targets, masked in epoch_examples(data, config, np.random.default_rng(0)):
        items = data.visible[user]
        assert sorted(targets) == sorted(items)  # every training item is a target
        assert len(masked) == 0  # so nothing is masked out of the softmax
        assert 0 < len(shown) < len(items) and set(shown) <= set(items)


@pytest.mark.parametrize("kind, expected", [("items", 7), ("mean", 1), ("chunks", 3)])
def test_history_slot_holds_item_tokens_their_mean_or_chunk_means(tiny, graph, kind, expected):
    model = tiny_gllm(tiny, graph, epochs=1, history_tokens=kind, history_chunks=3)
    tokens = torch.randn(7, 4)
    out = model.history_tokens(tokens)
    assert out.shape == (expected, 4)
    if kind == "mean":
        torch.testing.assert_close(out[0], tokens.mean(0))
    if kind == "chunks":  # time order kept: first chunk is the oldest items
        torch.testing.assert_close(out[0], tokens[:3].mean(0))
    # the prompt length follows: one token per history token
    hidden = model.hidden(torch.tensor([0]), [np.arange(7)])
    assert hidden.shape == (1, tiny[0].config.hidden_size)


def test_shuffled_history_order_keeps_the_items_and_drops_their_time_order(tiny, graph):
    timed = tiny_gllm(tiny, graph, epochs=1)
    shuffled = tiny_gllm(tiny, graph, epochs=1, history_order="shuffled")
    histories = [np.array([3, 1, 4, 0, 5]), np.array([5, 0, 4, 1, 3]), np.array([2])]
    assert timed.ordered(histories) is histories
    orders = shuffled.ordered(histories)
    assert [sorted(o) for o in orders] == [sorted(h) for h in histories]
    # one fixed order of the catalogue: the same set reads the same whatever its time order
    assert orders[0].tolist() == orders[1].tolist()
    assert [o.tolist() for o in orders] == [o.tolist() for o in shuffled.ordered(histories)]
    with torch.no_grad():
        same = shuffled.hidden(torch.tensor([0, 0]), histories[:2])
        t = timed.hidden(torch.tensor([0, 0]), histories[:2])
    torch.testing.assert_close(same[0], same[1])  # order gone: two time orders of one set, one prompt
    assert not torch.allclose(t[0], t[1])  # in time order they differ


def test_cache_then_train_moves_only_the_gllm_layer(tiny, graph):
    model = tiny_gllm(tiny, graph, epochs=0, head_epochs=6, cache_draws=2, head_eval_every=2, head_patience=10,
                   head_learning_rate=0.05, history_length=1000)
    feeding = {k: v.clone() for k, v in model.state_dict().items() if k.split(".")[0] not in
               ("norm", "head", "item_bias", "graph_scale")}
    head_before = model.head.weight.clone()
    result = train_gllm(model, _data(graph), model.config, show_progress=False)
    assert list(result.history["phase"]) == ["head"] * 6
    assert result.history["loss"].iloc[-1] < result.history["loss"].iloc[0]
    assert result.history["valid_recall_at_20"].notna().sum() == 3
    assert all(torch.equal(model.state_dict()[k], v) for k, v in feeding.items()), "what feeds the LLM stays frozen"
    if result.best_epoch:
        assert not torch.equal(model.head.weight, head_before)
    assert {n for n, _ in model.named_parameters() if any(p is _ for p in head_parameters(model))} <= {
        "norm.weight", "norm.bias", "head.weight", "head.bias", "item_bias", "graph_scale"}


def test_head_phase_follows_the_end_to_end_epochs(tiny, graph):
    model = tiny_gllm(tiny, graph, epochs=1, head_epochs=2, cache_draws=1, head_eval_every=1, learning_rate=0.01)
    result = train_gllm(model, _data(graph), model.config, show_progress=False)
    assert list(result.history["epoch"]) == [1, 2, 3]
    assert list(result.history["phase"]) == ["end_to_end", "head", "head"]


def test_cached_states_are_the_llms_for_each_draw(tiny, graph):
    model = tiny_gllm(tiny, graph, epochs=1, cache_draws=2, history_length=1000)
    data = _data(graph)
    users, hidden, examples = cache_hidden_states(model, data, model.config, np.random.default_rng(0), False)
    assert len(users) == len(examples) == hidden.shape[0] == 2 * sum(len(h) >= 2 for h in data.visible)
    with torch.no_grad():
        again = model.hidden(users[:3], [e[1] for e in examples[:3]])
    torch.testing.assert_close(hidden[:3], again)


def test_cosine_logits_start_at_the_graph_ranking_and_learn_a_temperature(tiny, graph):
    _, users, items, _ = graph
    model = tiny_gllm(tiny, graph, epochs=1, logits="cosine", temperature=0.2)
    batch = torch.arange(3)
    logits = model.logits(batch, model.hidden(batch, [np.array([0, 1])] * 3), model.graph_base)
    torch.testing.assert_close(logits, users[batch] @ items.T)
    assert model.log_temperature.requires_grad and model.log_temperature.item() == pytest.approx(np.log(0.2))
    assert "log_temperature" not in dict(tiny_gllm(tiny, graph).named_parameters())  # dot models keep their keys


@pytest.mark.parametrize("objective", ["regress", "contrast"])
def test_fast_alignment_objectives_fit_the_title_vectors(tiny, graph, items, objective):
    llm, tokenizer = tiny
    texts = item_texts(items, graph[3], " {title}")
    config = AlignConfig(objective=objective, fit_epochs=40, epochs=0, n_examples=2, projector_kind="mlp")
    result = train_item_alignment(llm, tokenizer, graph[2], texts, config, show_progress=False)
    fit = result.history[result.history["phase"] == objective]
    assert len(fit) == 40 and fit["loss"].iloc[-1] < 0.5 * fit["loss"].iloc[0]
    assert 0.0 <= result.title_hit_rate <= 1.0 and result.examples.count("true:") == 2


def test_title_check_ignores_case_and_spacing():
    assert starts_with_title("toy  story (1995) is a film", " Toy Story (1995)")
    assert not starts_with_title("Toy", " Toy Story (1995)")
    assert not starts_with_title("anything", "  ")


def test_llm_keeps_its_first_layers_only(tiny_llm_dir):
    llm = AutoModelForCausalLM.from_pretrained(tiny_llm_dir)
    keep_first_layers(llm, 1)
    assert len(llm.get_decoder().layers) == 1 and llm.config.num_hidden_layers == 1
    out = llm(input_ids=torch.tensor([[1, 2, 3]]))
    assert out.logits.shape[:2] == (1, 3)
    with pytest.raises(InputError, match=r"llm.num_layers.*at most the model's 1 layers"):
        keep_first_layers(llm, 5)


@pytest.mark.parametrize("overrides, parameter", [
    ({"history_tokens": "all"}, "history_tokens"), ({"target_scheme": "bag"}, "target_scheme"),
    ({"epochs": 0, "head_epochs": 0}, "epochs/head_epochs"), ({"logits": "l2"}, "logits"),
    ({"cache_draws": 0}, "cache_draws"),
])
def test_lever_settings_out_of_range_name_the_parameter(overrides, parameter):
    with pytest.raises(InputError, match=rf"gllm_finetune\.gllm\.{parameter}"):
        GLLMConfig(**overrides).validate()
    with pytest.raises(InputError, match=r"align_tokens\.alignment\.objective"):
        AlignConfig(objective="distil").validate()
