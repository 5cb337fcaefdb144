import numpy as np
import pandas as pd
import pytest
import torch

from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.data.interactions import SplitConfig, build_id_map, encode_ids, split_per_user
from glta_pipelines.core.models.lightgcn import LightGCNConfig, NegativeSampler, normalized_adjacency, train_lightgcn


@pytest.fixture
def toy_split(interactions):
    user_map, item_map = build_id_map(interactions["user_id"], "user_idx"), build_id_map(interactions["item_id"], "item_idx")
    splits = split_per_user(encode_ids(interactions, user_map, item_map), SplitConfig(seed=1))
    return splits, len(user_map), len(item_map)


def test_loss_decreases_and_beats_random_on_toy_graph(toy_split):
    splits, n_users, n_items = toy_split
    config = LightGCNConfig(embedding_dim=16, num_layers=2, learning_rate=0.02, batch_size=128, max_epochs=30,
                            eval_every=10, patience=5, seed=0)
    seen = []
    result = train_lightgcn(splits["train"], splits["valid"], n_users, n_items, config,
                            on_epoch_end=lambda epoch, m: seen.append(epoch), show_progress=False)
    losses = result.history["loss"].to_numpy()
    assert losses[-5:].mean() < 0.7 * losses[:3].mean()
    assert seen == list(range(1, len(result.history) + 1))
    # Two communities: a learned model finds held-out items far better than chance (~0.5 at k=20 of 40).
    assert result.history["valid_recall_at_20"].max() > 0.8
    assert result.user_embedding.shape == (n_users, 16) and result.item_embedding.shape == (n_items, 16)


def test_training_is_reproducible_for_a_seed(toy_split):
    splits, n_users, n_items = toy_split
    config = LightGCNConfig(embedding_dim=8, num_layers=1, batch_size=256, max_epochs=3, eval_every=3, seed=5)
    a = train_lightgcn(splits["train"], splits["valid"], n_users, n_items, config, show_progress=False)
    b = train_lightgcn(splits["train"], splits["valid"], n_users, n_items, config, show_progress=False)
    assert torch.equal(a.item_embedding, b.item_embedding)


def test_early_stopping_keeps_best_epoch(toy_split):
    splits, n_users, n_items = toy_split
    config = LightGCNConfig(embedding_dim=8, num_layers=1, learning_rate=0.5, batch_size=64, max_epochs=40,
                            eval_every=1, patience=2, seed=0)
    result = train_lightgcn(splits["train"], splits["valid"], n_users, n_items, config, show_progress=False)
    evaluated = result.history.dropna(subset=["valid_recall_at_20"])
    assert result.best_epoch == int(evaluated.loc[evaluated["valid_recall_at_20"].idxmax(), "epoch"])
    if len(result.history) < 40:  # stopped early: exactly `patience` evaluations after the best
        assert len(result.history) == result.best_epoch + 2


def test_negative_sampler_never_returns_positives():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(20), 8)
    items = np.concatenate([rng.choice(10, 8, replace=False) for _ in range(20)])
    sampler = NegativeSampler(users, items, 10, rng)
    negatives = sampler.sample(np.tile(users, 20))
    positives = set(zip(users.tolist(), items.tolist()))
    assert not positives & set(zip(np.tile(users, 20).tolist(), negatives.tolist()))


def test_adjacency_is_symmetric_normalised():
    adj = normalized_adjacency(np.array([0, 0, 1]), np.array([0, 1, 1]), 2, 2).to_dense()
    assert torch.allclose(adj, adj.T)
    # user 0 (degree 2) - item 1 (degree 2): 1/sqrt(2*2)
    assert adj[0, 3].item() == pytest.approx(0.5)


def test_bad_hyper_parameters_are_named():
    with pytest.raises(InputError, match=r"pretrain_gnn\.lightgcn\.learning_rate.*-1"):
        config_from_params(LightGCNConfig, {"learning_rate": -1}, "pretrain_gnn.lightgcn")
    with pytest.raises(InputError, match=r"lightgcn\.epochs: found an unknown key.*did you mean pretrain_gnn\.lightgcn\.max_epochs\?"):
        config_from_params(LightGCNConfig, {"epochs": 3}, "pretrain_gnn.lightgcn")


def test_empty_training_split_is_an_error():
    empty = pd.DataFrame({"user_idx": pd.Series([], dtype="int64"), "item_idx": pd.Series([], dtype="int64")})
    with pytest.raises(InputError, match="train split"):
        train_lightgcn(empty, empty, 1, 1, LightGCNConfig(), show_progress=False)


def test_new_users_are_folded_in_from_their_history_and_known_users_keep_their_vectors():
    from glta_pipelines.core.models.lightgcn import fold_in_map, fold_in_users, user_item_lists

    generator = torch.Generator().manual_seed(0)
    items = torch.randn(12, 4, generator=generator)
    users = torch.randn(6, 4, generator=generator)
    train = pd.DataFrame({"user_idx": [0, 0, 1, 1, 2, 3], "item_idx": [0, 1, 2, 3, 4, 5]})
    history = pd.DataFrame({"user_idx": [4, 4, 5], "item_idx": [6, 7, 8]})
    folded = fold_in_users(users, items, train, history)
    assert torch.equal(folded[:4], users[:4])
    mapping = fold_in_map(items, users, user_item_lists(train, 6))
    torch.testing.assert_close(folded[4], (items[[6, 7]].double().mean(0) @ mapping).float())
    torch.testing.assert_close(folded[5], (items[8].double() @ mapping).float())
    assert fold_in_users(users, items, train, history.iloc[:0]) is users
