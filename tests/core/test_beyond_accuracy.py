"""Beyond-accuracy metrics: hand cases, PyG's link-prediction metrics, and the evaluator's tables."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch_geometric.metrics import LinkPredAveragePopularity, LinkPredCoverage, LinkPredDiversity

from glta_pipelines.core.evaluation.beyond_accuracy import Catalogue, gini_index, list_metrics
from glta_pipelines.core.evaluation.ranking import evaluate_splits, per_user_metrics


def _pairs(pairs):
    return pd.DataFrame(sorted(pairs), columns=["user_idx", "item_idx"])


def test_hand_case():
    # 4 items; training popularity 3, 1, 0, 0 over 3 users; two users' top 2 lists
    train = _pairs({(0, 0), (1, 0), (2, 0), (2, 1)})
    content = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    catalogue = Catalogue.from_train(train, 4, content)
    top = torch.tensor([[0, 1], [0, 2]])
    out = list_metrics(top, [1, 2], catalogue)
    assert float(out["coverage_at_1"]) == 0.25 and float(out["coverage_at_2"]) == 0.75
    # exposure at 2: item 0 twice, items 1 and 2 once, item 3 never -> sorted 0, 1, 1, 2
    assert float(out["gini_at_2"]) == pytest.approx(((-3) * 0 + (-1) * 1 + 1 * 1 + 3 * 2) / (4 * 4))
    assert out["average_popularity_at_2"].tolist() == [2.0, 1.5]
    info = -np.log2((np.array([3, 1, 0, 0]) + 1) / 4)
    assert out["novelty_at_2"].numpy() == pytest.approx([(info[0] + info[1]) / 2, (info[0] + info[2]) / 2])
    # items 0 and 1 share their content (distance 0); 0 and 2 do not (distance 1)
    assert out["diversity_at_2"].tolist() == pytest.approx([0.0, 1.0])
    assert out["diversity_at_1"].isnan().all()  # one item: no pair
    # an item without content (3) is left out of the pairs: a list with one item with content has no value
    three = list_metrics(torch.tensor([[0, 2, 3], [0, 3, 1]]), [3], catalogue)["diversity_at_3"]
    assert three[0] == pytest.approx(1.0) and three[1] == pytest.approx(0.0)
    assert list_metrics(torch.tensor([[0, 3]]), [2], catalogue)["diversity_at_2"].isnan().all()


def test_gini_bounds():
    assert float(gini_index(torch.ones(10))) == pytest.approx(0.0)
    assert float(gini_index(torch.tensor([0.0] * 9 + [5.0]))) == pytest.approx(0.9)
    assert float(gini_index(torch.zeros(3))) == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_torch_geometric(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items, k = 60, 40, 10
    top = torch.from_numpy(np.stack([rng.choice(n_items, k, replace=False) for _ in range(n_users)])).long()
    train = _pairs({(int(u), int(i)) for u, i in zip(rng.integers(0, n_users, 400), rng.integers(0, n_items, 400))})
    category = torch.from_numpy(rng.integers(0, 5, n_items)).long()
    catalogue = Catalogue.from_train(train, n_items, torch.nn.functional.one_hot(category, 5).float())
    ours = list_metrics(top, [k], catalogue)
    label_index = torch.zeros(2, 1, dtype=torch.long)
    for name, metric in [("coverage", LinkPredCoverage(k, n_items)),
                         ("average_popularity", LinkPredAveragePopularity(k, catalogue.popularity.float())),
                         ("diversity", LinkPredDiversity(k, category))]:
        metric.update(top, label_index)
        assert float(ours[f"{name}_at_{k}"].mean()) == pytest.approx(float(metric.compute()), abs=1e-5), name


def test_diversity_is_chunked_without_changing_values(monkeypatch):
    from glta_pipelines.core.evaluation import beyond_accuracy

    rng = np.random.default_rng(4)
    top = torch.from_numpy(rng.integers(0, 30, (50, 6))).long()
    content = torch.from_numpy(rng.random((30, 7)))
    catalogue = Catalogue.from_train(_pairs({(0, 1)}), 30, content)
    whole = list_metrics(top, [6], catalogue)["diversity_at_6"]
    monkeypatch.setattr(beyond_accuracy, "_BLOCK_ROWS", 7)
    assert list_metrics(top, [6], catalogue)["diversity_at_6"].numpy() == pytest.approx(whole.numpy())


def test_evaluator_reports_them_for_every_split():
    rng = np.random.default_rng(5)
    n_users, n_items = 30, 25
    scores = torch.from_numpy(rng.normal(size=(n_users, n_items)).astype(np.float32))
    pairs = {(int(u), int(i)) for u, i in zip(rng.integers(0, n_users, 300), rng.integers(0, n_items, 300))}
    pairs = sorted(pairs)
    train, valid, test = _pairs(pairs[::3]), _pairs(pairs[1::3]), _pairs(pairs[2::3])
    content = torch.eye(n_items)[:, :5]
    table, per_user = evaluate_splits("m", lambda u: scores[u].clone(), train, valid, test, n_users, n_items, [5],
                                      content=content)
    for split in ("valid", "test"):
        names = set(table[table["split"] == split]["metric"])
        assert {"map", "coverage", "gini", "average_popularity", "novelty", "diversity"} <= names, split
    assert {"average_popularity_at_5", "novelty_at_5", "diversity_at_5", "map_at_5"} <= set(per_user.columns)
    assert "coverage_at_5" not in per_user.columns  # one value per list set, not per user
    # the table's per-user means are those of the per-user frame
    test_rows = table[table["split"] == "test"].set_index("metric")["value"]
    assert test_rows["novelty"] == pytest.approx(per_user["novelty_at_5"].mean())
    users, direct = per_user_metrics(lambda u: scores[u].clone(), pd.concat([train, valid]), test, n_users, n_items,
                                     [5], catalogue=Catalogue.from_train(train, n_items, content))
    assert test_rows["coverage"] == pytest.approx(float(direct["coverage_at_5"]))
