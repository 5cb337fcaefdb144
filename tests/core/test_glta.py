"""GLTA library on a tiny randomly initialised Llama (speed); the real model is in test_glta_real.py."""

import numpy as np
import pytest
import torch

from glta_pipelines.core.artifacts import TensorArtifact
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.glta import (
    GLLM,
    AlignConfig,
    GLLMConfig,
    GLLMData,
    LoraSettings,
    Projector,
    check_same_llm,
    from_dict,
    gllm_config_from_params,
    gllm_loss,
    glta_artifact,
    item_texts,
    load_projector,
    load_trainable_state,
    make_scorer,
    projector_artifact,
    residual_base,
    restore_gllm,
    to_dict,
    token_norm,
    train_gllm,
    train_item_alignment,
    trainable_state,
    user_histories,
)
from tests.core.gllm import tiny_gllm
from glta_pipelines.core.llm.backbone import LLMConfig
from glta_pipelines.datasets import SafetensorsDataset
from glta_pipelines.core.evaluation.ranking import rank_top_k


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
        tiny_gllm(tiny, graph, prompt_template="User <user> watched <history> <profile>")


def test_residual_head_starts_exactly_at_the_graph_ranking(tiny, graph):
    model = tiny_gllm(tiny, graph)
    _, users, items, _ = graph
    batch = torch.arange(5)
    logits = model.logits(batch, model.hidden(batch, [np.array([0, 1, 2])] * 5), model.graph_base)
    assert logits.shape == (5, items.shape[0])  # every item scored
    assert torch.allclose(logits, users[batch] @ items.T)


@pytest.mark.parametrize("overrides", [{}, {"scoring_space": "token"}, {"encoder": "mean"}, {"residual": False}])
def test_gllm_logits_cover_all_items_and_masked_items_are_never_recommended(tiny, graph, overrides):
    splits, users, items, _ = graph
    model = tiny_gllm(tiny, graph, **overrides)
    histories = user_histories(splits["train"], users.shape[0])
    scorer = make_scorer(model, histories, 10, 7, model.graph_base)
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
    model = tiny_gllm(tiny, graph, learning_rate=0.01)
    data = GLLMData(user_histories(splits["train"], users.shape[0]), [], splits["train"], splits["valid"], items.shape[0])
    result = train_gllm(model, data, model.config, show_progress=False)
    assert list(result.history["epoch"]) == [1, 2]
    assert result.history["head_norm"].iloc[-1] > 0
    assert {"users_per_second", "scoring_users_per_second", "peak_memory_mb", "valid_recall_at_20"} <= set(result.history)


def test_best_validation_epoch_is_the_model_returned(tiny, graph):
    splits, users, items, _ = graph
    model = tiny_gllm(tiny, graph, epochs=4, patience=10, learning_rate=0.05)
    data = GLLMData(user_histories(splits["train"], users.shape[0]), [], splits["train"], splits["valid"], items.shape[0])
    snapshot = trainable_state(model)
    result = train_gllm(model, data, model.config, show_progress=False)
    assert not torch.equal(snapshot["head.weight"], trainable_state(result.model)["head.weight"])
    assert torch.equal(snapshot["head.weight"], torch.zeros_like(snapshot["head.weight"])), "snapshot followed training"
    best = result.history.loc[result.history["valid_recall_at_20"].idxmax(), "epoch"]
    assert result.best_epoch == best
    from glta_pipelines.core.evaluation.ranking import ranking_metrics

    scorer = make_scorer(result.model, user_histories(splits["train"], users.shape[0]), 10, 64, result.model.graph_base)
    recall = ranking_metrics(scorer, splits["train"], splits["valid"], users.shape[0], items.shape[0], [20])["recall_at_20"]
    assert recall == pytest.approx(result.history["valid_recall_at_20"].max())


def test_resume_continues_from_the_last_checkpoint(tiny, graph, tmp_path):
    splits, users, items, _ = graph
    data = GLLMData(user_histories(splits["train"], users.shape[0]), [], splits["train"], splits["valid"], items.shape[0])
    straight = train_gllm(tiny_gllm(tiny, graph, epochs=3, patience=10), data,
                          tiny_gllm(tiny, graph, epochs=3, patience=10).config, show_progress=False)

    path = tmp_path / "ckpt.pt"
    interrupted = tiny_gllm(tiny, graph, epochs=1, patience=10)
    first = train_gllm(interrupted, data, interrupted.config, checkpoint_path=path, show_progress=False)
    resumed = tiny_gllm(tiny, graph, epochs=3, patience=10, resume=True)
    result = train_gllm(resumed, data, resumed.config, checkpoint_path=path, show_progress=False)

    assert list(result.history["epoch"]) == [1, 2, 3]
    assert result.history.iloc[0].equals(first.history.iloc[0])  # epoch 1 came from the checkpoint
    assert result.history["loss"].tolist() == pytest.approx(straight.history["loss"].tolist(), rel=1e-5)
    for key, value in trainable_state(straight.model).items():
        assert torch.allclose(value, trainable_state(result.model)[key], atol=1e-6), key


def test_lora_weights_are_saved_and_restored_without_touching_the_shared_llm(tiny, graph):
    llm, tokenizer = tiny
    model = tiny_gllm(tiny, graph, lora=LoraSettings(enabled=True, rank=2, alpha=4, dropout=0.0))
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
    model = tiny_gllm(tiny, graph, target_scheme="holdout", epochs=1)
    data = GLLMData(user_histories(visible, users.shape[0]), user_histories(targets, users.shape[0]), train,
                    splits["valid"], items.shape[0])
    result = train_gllm(model, data, model.config, show_progress=False)
    assert result.history["users_per_second"].iloc[0] > 0


# --------------------------------------------------------------------------- self-describing artifacts
def _through_catalog(artifact, tmp_path, name: str):
    """Save and load as the catalog does, so only what the file holds comes back."""
    dataset = SafetensorsDataset(filepath=str(tmp_path / f"{name}.safetensors"))
    dataset.save(artifact)
    return dataset.load()


def _perturbed(model: GLLM) -> GLLM:
    """Move every trainable part (LoRA included) off its initial value, so a restore that missed one shows."""
    generator = torch.Generator().manual_seed(1)
    lora = [p for n, p in model.llm.named_parameters() if "lora_" in n] if model.llm is not None else []
    with torch.no_grad():
        for p in [*model.parameters(), *lora]:
            p.add_(0.1 * torch.randn(p.shape, generator=generator))
    return model


@pytest.mark.parametrize("overrides", [{}, {"lora": LoraSettings(enabled=True, rank=2, alpha=4, dropout=0.0)},
                                       {"encoder": "mean", "user_projector_kind": "mlp"}])
def test_weights_artifact_alone_rebuilds_the_trainedtiny_gllm(tiny, graph, tiny_llm_config, tmp_path, overrides):
    splits, users, items, _ = graph
    model = _perturbed(tiny_gllm(tiny, graph, **overrides))
    weights = _through_catalog(glta_artifact(model, tiny_llm_config), tmp_path, "gllm")
    assert weights.config["kind"] == "glta" and weights.config["llm"]["model"] == tiny_llm_config.model
    assert weights.config["llm"]["dtype"] == "float32"  # resolved: evaluation and serving load what trained
    assert "cache_dir" not in weights.config["llm"]  # a folder of the training machine: not the model's
    assert weights.config["graph"] == {"n_users": users.shape[0], "n_items": items.shape[0], "embedding_dim": 8}
    assert weights.config["item_projector"] == {"kind": "linear", "d_in": 8, "d_out": 32, "hidden": 1024}
    restored = restore_gllm(weights, {"user": users, "item": items})
    assert restored.config == model.config
    histories, everyone = user_histories(splits["train"], users.shape[0]), torch.arange(users.shape[0])
    lightgcn = (torch.randn_like(users), torch.randn_like(items))  # evaluation's residual base is an argument
    expected = make_scorer(model, histories, 10, 16, lightgcn)(everyone)
    assert torch.allclose(make_scorer(restored, histories, 10, 16, lightgcn)(everyone), expected, atol=1e-5)


def test_projector_artifact_rebuilds_its_own_kind(tiny, graph, tiny_llm_config, tmp_path):
    llm, _ = tiny
    items = graph[2]
    projector = Projector(8, llm.config.hidden_size, "mlp", hidden=16).fit_scales(items, token_norm(llm))
    artifact = _through_catalog(projector_artifact(projector, AlignConfig(projector_kind="mlp"), tiny_llm_config),
                                tmp_path, "projector")
    assert artifact.config["projector"] == {"kind": "mlp", "d_in": 8, "d_out": llm.config.hidden_size, "hidden": 16}
    assert artifact.config["alignment"]["projector_kind"] == "mlp"
    assert artifact.config["llm"] == to_dict(tiny_llm_config)
    with torch.no_grad():
        assert torch.equal(load_projector(artifact)(items), projector(items))


def test_projector_whose_config_and_tensors_disagree_fails_naming_both(tiny, tiny_llm_config):
    llm, _ = tiny
    artifact = projector_artifact(Projector(8, llm.config.hidden_size, "linear"), AlignConfig(), tiny_llm_config)
    artifact.config["projector"]["kind"] = "mlp"
    with pytest.raises(InputError, match=r"item projector.*unexpected \['net.bias', 'net.weight'\].*"
                                         r"expected the tensors of a mlp projector 8 -> 32"):
        load_projector(artifact)


def test_weights_for_another_graph_fail_naming_both_shapes(tiny, graph, tiny_llm_config):
    _, users, items, _ = graph
    weights = glta_artifact(tiny_gllm(tiny, graph), tiny_llm_config)
    other = {"user": torch.randn(1000, 4), "item": torch.randn(1000, 4)}
    expected = f"8-d embeddings of {users.shape[0]} users and {items.shape[0]} items"
    with pytest.raises(InputError, match=rf"backbone embeddings.*found 4-d embeddings of 1,000 users and 1,000 items.*"
                                         rf"expected {expected}, the graph the GLTA weights"):
        restore_gllm(weights, other)


def test_residual_base_of_another_graph_fails(tiny, graph):
    model = tiny_gllm(tiny, graph)
    with pytest.raises(InputError, match=r"LightGCN.*found 8-d embeddings of 5 users.*embeddings of the 60 users"):
        residual_base(model, {"user": torch.randn(5, 8), "item": torch.randn(40, 8)}, "LightGCN embeddings")


@pytest.mark.parametrize("config", [None, {}, {"kind": "item_projector"}])
def test_weights_without_a_glta_config_say_to_rerun_glta(graph, config):
    _, users, items, _ = graph
    weights = {"head.weight": torch.zeros(1)} if config is None else TensorArtifact({"head.weight": torch.zeros(1)}, config)
    with pytest.raises(InputError, match=r"GLTA weights.*found (no GLTA config|an artifact of kind 'item_projector').*"
                                         r"re-run `kedro run --pipelines=glta`"):
        restore_gllm(weights, {"user": users, "item": items})


def test_finetuning_on_another_llm_than_the_projectors_fails_naming_both(tiny_llm_config):
    artifact = projector_artifact(Projector(8, 32), AlignConfig(), tiny_llm_config)
    with pytest.raises(InputError, match=r"llm.model: found 'bundled:smollm2-135m-instruct'.*aligned with, '.*tiny_llama"):
        check_same_llm(artifact, LLMConfig(model="bundled:smollm2-135m-instruct"))
    with pytest.raises(InputError, match=r"item projector.*no GLTA config.*kedro run --pipelines=glta"):
        check_same_llm({"net.weight": torch.zeros(1)}, tiny_llm_config)


def test_gllm_config_round_trips_through_its_dict_form():
    config = GLLMConfig(scoring_space="token", lora=LoraSettings(enabled=True, target_modules=("q_proj",)))
    assert from_dict(GLLMConfig, to_dict(config), "test") == config
    assert gllm_config_from_params(to_dict(config)) == config
    with pytest.raises(InputError, match=r"gllm_finetune\.gllm\.lora\.ranks: found an unknown key.*did you mean gllm_finetune\.gllm\.lora\.rank\?"):
        gllm_config_from_params({"lora": {"ranks": 4}})


def test_scorers_sharing_a_cache_run_each_prompt_through_the_llm_once(tiny, graph):
    splits, users, _, _ = graph
    model = tiny_gllm(tiny, graph)
    with torch.no_grad():  # a trained-looking correction, so the hidden state matters
        model.head.weight.normal_()
    histories = user_histories(splits["train"], users.shape[0])
    all_users = torch.arange(users.shape[0])
    expected = make_scorer(model, histories, 10, 7, model.graph_base)(all_users)
    calls = []
    hidden = model.hidden
    model.hidden = lambda u, h: calls.append(len(u)) or hidden(u, h)
    cache: dict = {}
    first = make_scorer(model, histories, 10, 7, model.graph_base, cache)(all_users)
    again = make_scorer(model, histories, 10, 7, model.graph_base, cache)(all_users)
    assert torch.allclose(first, expected, atol=1e-6) and torch.equal(first, again)
    assert sum(calls) == users.shape[0]  # the second scorer found every prompt in the cache


def test_length_bucketed_batches_cover_every_item_once_with_little_padding():
    from glta_pipelines.core.glta import length_bucketed_batches

    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 17, size=1000)
    batches = length_bucketed_batches(lengths, 32, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    random_padded = sum(len(b) * lengths[b].max() for b in np.array_split(rng.permutation(1000), len(batches)))
    assert padded < 0.75 * random_padded
    again = length_bucketed_batches(lengths, 32, np.random.default_rng(2))
    assert [b.tolist() for b in again] != [b.tolist() for b in batches]  # new groupings every epoch
