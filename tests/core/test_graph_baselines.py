"""The paper's graph baselines (HCCF, LightGCN+, HCCF+, RLMRec-Con/Gen): losses fall on a toy
graph, the hypergraph propagation matches a hand computation, edge dropout keeps the adjacency
symmetric, and training is reproducible and learns the toy graph's two communities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from glta_pipelines.core.training.bpr import train_bpr_model
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.models.graph_encoder import EdgeDropout, node_text, user_profiles
from glta_pipelines.core.models.hccf import HCCF, HCCFConfig, contrast_loss, hypergraph_propagate
from glta_pipelines.core.data.interactions import SplitConfig, build_id_map, encode_ids, split_per_user
from glta_pipelines.core.models.lightgcn import LightGCNConfig
from glta_pipelines.core.models.lightgcn_plus import LightGCNPlus
from glta_pipelines.core.models.rlmrec_con import RLMRecCon, RLMRecConConfig, grouped_infonce, infonce
from glta_pipelines.core.models.rlmrec_gen import RLMRecGen, RLMRecGenConfig

DIM, TEXT_DIM = 16, 8


@pytest.fixture
def split(interactions):
    user_map, item_map = build_id_map(interactions["user_id"], "user_idx"), build_id_map(interactions["item_id"], "item_idx")
    parts = split_per_user(encode_ids(interactions, user_map, item_map), SplitConfig())
    return parts, len(user_map), len(item_map)


def item_text(n_items: int) -> torch.Tensor:
    """Text embeddings that tell the toy catalogue's two halves apart (as real genres would)."""
    torch.manual_seed(3)
    half = torch.arange(n_items) < n_items // 2
    return torch.randn(n_items, TEXT_DIM) * 0.1 + torch.where(half, 1.0, -1.0).unsqueeze(1)


def builders(train: pd.DataFrame, n_users: int, n_items: int) -> dict:
    text = node_text(train, item_text(n_items), n_users)
    return {
        "hccf": lambda a: HCCF(a, n_users, n_items, DIM, HCCFConfig(hyperedges=8, ssl_weight=0.1), seed=1),
        "hccf_plus": lambda a: HCCF(a, n_users, n_items, DIM, HCCFConfig(hyperedges=8, ssl_weight=0.1), text, seed=1),
        "lightgcn_plus": lambda a: LightGCNPlus(a, n_users, n_items, DIM, 2, text),
        "rlmrec_con": lambda a: RLMRecCon(a, n_users, n_items, DIM, 2, text, RLMRecConConfig(), seed=1),
        "rlmrec_gen": lambda a: RLMRecGen(a, n_users, n_items, DIM, 2, text, RLMRecGenConfig(), seed=1),
    }


@pytest.mark.parametrize("method", ["hccf", "hccf_plus", "lightgcn_plus", "rlmrec_con", "rlmrec_gen"])
def test_every_loss_term_falls_on_a_toy_graph(split, method):
    parts, n_users, n_items = split
    train = parts["train"]
    adjacency = EdgeDropout(train["user_idx"].to_numpy(), train["item_idx"].to_numpy(), n_users, n_items)
    torch.manual_seed(0)
    model = builders(train, n_users, n_items)[method](adjacency)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    rng = np.random.default_rng(0)
    users = torch.tensor(train["user_idx"].to_numpy())
    pos = torch.tensor(train["item_idx"].to_numpy())
    history = []
    for _ in range(60):
        neg = torch.from_numpy(rng.integers(0, n_items, len(users)))
        terms = model.loss(users, pos, neg)
        optimizer.zero_grad()
        sum(terms.values()).backward()
        optimizer.step()
        history.append({k: v.item() for k, v in terms.items()})
    first, last = pd.DataFrame(history[:5]).mean(), pd.DataFrame(history[-5:]).mean()
    assert last["bpr"] < 0.8 * first["bpr"], (first, last)
    for term in set(first.index) - {"bpr"}:  # the method's own objective (ssl, kd, recon) falls as well
        assert last[term] < first[term], (term, first, last)


def test_hypergraph_propagation_matches_a_hand_computed_case():
    # 3 nodes, 2 hyperedges: H·(Hᵀ·x)
    incidence = torch.tensor([[1.0, 0.0], [1.0, 2.0], [0.0, 1.0]])
    x = torch.tensor([[1.0], [2.0], [3.0]])
    # Hᵀx = [1*1 + 1*2, 2*2 + 1*3] = [3, 7]; H·[3, 7] = [3, 3 + 14, 7] = [3, 17, 7]
    assert hypergraph_propagate(incidence, x).tolist() == [[3.0], [17.0], [7.0]]


def test_hccf_layer_is_graph_plus_hypergraph_views_summed_over_layers():
    users, items = np.array([0, 0, 1]), np.array([0, 1, 1])
    adjacency = EdgeDropout(users, items, 2, 2)
    torch.manual_seed(0)
    model = HCCF(adjacency, 2, 2, 4, HCCFConfig(num_layers=2, hyperedges=3))
    final, gcn, hyper = model.views(1.0)
    x0 = model.encoder.layer0()
    dense = adjacency.full.to_dense()
    hu, hi = x0[:2] @ model.user_hyper, x0[2:] @ model.item_hyper
    x, expected = x0, x0
    for layer in range(2):
        local = dense @ x
        global_ = torch.cat([hu @ (hu.T @ x[:2]), hi @ (hi.T @ x[2:])])
        torch.testing.assert_close(gcn[layer], local)
        torch.testing.assert_close(hyper[layer], global_)
        x = local + global_
        expected = expected + x
    torch.testing.assert_close(final, expected)


def test_contrast_loss_is_infonce_over_the_chosen_nodes():
    a, b = torch.eye(3), torch.eye(3)
    loss = contrast_loss(a, b, torch.tensor([0, 2]), temperature=1.0)
    # two nodes; each positive has cos 1, the other cos 0: -log(e / (e + 1))
    assert loss.item() == pytest.approx(-np.log(np.e / (np.e + 1)), rel=1e-5)
    assert infonce(a, b, b, 1.0).item() == pytest.approx(3 * -np.log(np.e / (np.e + 2)), rel=1e-5)


@pytest.mark.parametrize("in_batch", [True, False])
def test_infonce_on_unique_nodes_equals_the_row_by_row_reference(in_batch):
    """RLMRec's loss over a batch with repeated nodes, computed on its unique nodes with counts."""
    generator = torch.Generator().manual_seed(0)
    table = torch.randn(7, 4, generator=generator, requires_grad=True)
    profiles = torch.randn(7, 4, generator=generator, requires_grad=True)
    nodes = torch.tensor([3, 1, 3, 3, 6, 1, 0, 3])
    candidates = profiles[nodes] if in_batch else profiles
    reference = infonce(table[nodes], profiles[nodes], candidates, 0.2)
    grouped = grouped_infonce(table, profiles, nodes, 0.2, candidates=None if in_batch else profiles)
    torch.testing.assert_close(grouped, reference)
    expected = torch.autograd.grad(reference, (table, profiles))
    torch.testing.assert_close(torch.autograd.grad(grouped, (table, profiles)), expected)


def test_edge_dropout_drops_both_directions_and_rescales_only_when_asked():
    users, items = np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2])
    adjacency = EdgeDropout(users, items, 3, 3)
    dropped = adjacency(0.5, rescale=True, generator=torch.Generator().manual_seed(0)).to_dense()
    full = adjacency.full.to_dense()
    torch.testing.assert_close(dropped, dropped.T)
    kept = dropped != 0
    assert 0 < kept.sum() < (full != 0).sum()
    torch.testing.assert_close(dropped[kept], full[kept] * 2)
    plain = adjacency(0.5, rescale=False, generator=torch.Generator().manual_seed(0)).to_dense()
    torch.testing.assert_close(plain[kept], full[kept])
    assert adjacency(1.0, rescale=True, generator=torch.Generator()) is adjacency.full


def test_user_profile_is_the_mean_of_the_training_items_texts():
    train = pd.DataFrame({"user_idx": [0, 0, 1], "item_idx": [0, 2, 1]})
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 2.0]])
    assert user_profiles(train, text, 3).tolist() == [[2.0, 1.0], [0.0, 1.0], [0.0, 0.0]]


def test_training_is_reproducible_and_separates_the_communities(split):
    parts, n_users, n_items = split
    train, valid = parts["train"], parts["valid"]
    adjacency = EdgeDropout(train["user_idx"].to_numpy(), train["item_idx"].to_numpy(), n_users, n_items)
    config = LightGCNConfig(embedding_dim=DIM, num_layers=2, learning_rate=0.02, batch_size=256, max_epochs=30,
                            eval_every=5, patience=10, seed=4)
    build = builders(train, n_users, n_items)["hccf"]
    one = train_bpr_model("hccf", lambda: build(adjacency), train, valid, n_users, n_items, config, show_progress=False)
    two = train_bpr_model("hccf", lambda: build(adjacency), train, valid, n_users, n_items, config, show_progress=False)
    assert torch.equal(one.user, two.user) and torch.equal(one.item, two.item)
    assert {"loss", "ssl_loss", "l2_loss", "valid_recall_at_20"} <= set(one.history.columns)
    assert one.history["valid_recall_at_20"].dropna().max() > 0.5, one.history


@pytest.mark.parametrize("config, parameter", [
    (lambda: HCCFConfig(keep_rate=0.0), "baselines.hccf.keep_rate"),
    (lambda: HCCFConfig(hyperedges=0), "baselines.hccf.hyperedges"),
    (lambda: RLMRecConConfig(kd_temperature=0.0), "baselines.rlmrec_con"),
    (lambda: RLMRecGenConfig(mask_ratio=1.0), "baselines.rlmrec_gen.mask_ratio"),
])
def test_out_of_range_settings_name_the_parameter(config, parameter):
    with pytest.raises(InputError, match=parameter.replace(".", r"\.")):
        config().validate()
