import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch_geometric.metrics import (
    LinkPredHitRatio,
    LinkPredMAP,
    LinkPredMRR,
    LinkPredNDCG,
    LinkPredPrecision,
    LinkPredRecall,
)

from glta_pipelines.core.errors import InputError
from glta_pipelines.core.evaluation.ranking import (
    METRIC_NAMES,
    evaluate_splits,
    paired_bootstrap,
    per_user_metrics,
    rank_top_k,
    ranking_metrics,
)


def _pairs(pairs):
    return pd.DataFrame(pairs, columns=["user_idx", "item_idx"])


def _fixed(scores):
    scores = torch.tensor(scores, dtype=torch.float32)
    return lambda users: scores[users]


def test_hand_computed_case():
    # One user, 5 items. Item 0 is seen (masked). Ranking of the rest: 1, 2, 3, 4. Truth {2, 4}.
    score_fn = _fixed([[9.0, 5.0, 4.0, 3.0, 2.0]])
    m = ranking_metrics(score_fn, _pairs([(0, 0)]), _pairs([(0, 2), (0, 4)]), 1, 5, ks=[2, 4])
    assert m["recall_at_2"] == pytest.approx(0.5)
    assert m["precision_at_2"] == pytest.approx(0.5)
    assert m["hit_rate_at_2"] == 1.0
    assert m["mrr_at_2"] == pytest.approx(0.5)
    ideal = 1 + 1 / math.log2(3)
    assert m["ndcg_at_2"] == pytest.approx((1 / math.log2(3)) / ideal)
    assert m["ndcg_at_4"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / ideal)
    assert m["recall_at_4"] == 1.0


def test_users_without_truth_are_not_averaged_and_misses_score_zero():
    score_fn = _fixed([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    # user 0 finds its item at rank 1, user 1 misses at k=1, user 2 has no truth
    m = ranking_metrics(score_fn, _pairs([]), _pairs([(0, 0), (1, 2)]), 3, 3, ks=[1])
    assert m["recall_at_1"] == pytest.approx(0.5)
    assert m["mrr_at_1"] == pytest.approx(0.5)


def test_seen_items_are_never_recommended():
    rng = np.random.default_rng(0)
    n_users, n_items = 30, 25
    seen = _pairs({(int(u), int(i)) for u, i in zip(rng.integers(0, n_users, 200), rng.integers(0, n_items, 200))})
    top, _ = rank_top_k(lambda u: torch.randn(len(u), n_items), seen, n_users, n_items, k=10, chunk_size=7)
    assert top.shape == (n_users, 10)
    assert seen.groupby("user_idx").size().max() <= n_items - 10  # enough unseen items to fill the list
    recommended = {(u, int(i)) for u in range(n_users) for i in top[u]}
    assert not recommended & set(map(tuple, seen.to_numpy().tolist()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_torch_geometric_link_pred_metrics(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items, k = 50, 80, 10
    scores = torch.from_numpy(rng.normal(size=(n_users, n_items)).astype(np.float32))
    truth = _pairs({(u, int(i)) for u in range(n_users) for i in rng.choice(n_items, rng.integers(1, 12), replace=False)})
    ours = ranking_metrics(_fixed(scores.numpy()), _pairs([]), truth, n_users, n_items, ks=[k], chunk_size=16)
    top = torch.topk(scores, k, dim=1).indices
    label_index = torch.from_numpy(truth.to_numpy().T.copy()).long()
    for name, metric in [("recall", LinkPredRecall(k)), ("precision", LinkPredPrecision(k)),
                         ("ndcg", LinkPredNDCG(k)), ("mrr", LinkPredMRR(k)), ("hit_rate", LinkPredHitRatio(k)),
                         ("map", LinkPredMAP(k))]:
        metric.update(top, label_index)
        assert ours[f"{name}_at_{k}"] == pytest.approx(float(metric.compute()), abs=1e-5), name


def test_chunking_does_not_change_results():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(40, 30)).astype(np.float32)
    seen = _pairs({(int(u), int(i)) for u, i in zip(rng.integers(0, 40, 150), rng.integers(0, 30, 150))})
    truth = _pairs({(int(u), int(i)) for u, i in zip(rng.integers(0, 40, 100), rng.integers(0, 30, 100))} - set(
        map(tuple, seen.to_numpy().tolist())))
    a = ranking_metrics(_fixed(scores), seen, truth, 40, 30, ks=[5, 10], chunk_size=3)
    b = ranking_metrics(_fixed(scores), seen, truth, 40, 30, ks=[5, 10], chunk_size=1000)
    assert a == pytest.approx(b)


def test_test_split_masks_train_and_valid():
    # Item 0 is the best-scored item but was in valid: for test it must be masked.
    score_fn = _fixed([[3.0, 2.0, 1.0]])
    table, per_user = evaluate_splits("m", score_fn, _pairs([(0, 2)]), _pairs([(0, 0)]), _pairs([(0, 1)]), 1, 3, ks=[1])
    test = table[(table["split"] == "test") & (table["metric"] == "recall")]["value"].item()
    valid = table[(table["split"] == "valid") & (table["metric"] == "recall")]["value"].item()
    assert test == 1.0 and valid == 1.0
    assert per_user["user_idx"].tolist() == [0] and per_user["recall_at_1"].tolist() == [1.0]


def test_score_function_must_score_every_item():
    with pytest.raises(InputError, match=r"score function output.*every item scored"):
        ranking_metrics(lambda u: torch.zeros(len(u), 2), _pairs([]), _pairs([(0, 0)]), 1, 3, ks=[1])


def test_bad_ks_are_named():
    with pytest.raises(InputError, match="evaluate.ks"):
        ranking_metrics(_fixed([[1.0]]), _pairs([]), _pairs([(0, 0)]), 1, 1, ks=[0])


def test_per_user_metrics_average_to_ranking_metrics():
    rng = np.random.default_rng(0)
    scores = torch.from_numpy(rng.random((6, 9))).float()
    truth = _pairs([(0, 1), (0, 3), (2, 5), (4, 0), (5, 8)])
    exclude = _pairs([(0, 2), (4, 1)])
    users, values = per_user_metrics(_fixed(scores.numpy()), exclude, truth, 6, 9, ks=[3], chunk_size=2)
    assert users.tolist() == [0, 2, 4, 5]
    assert values["recall_at_3"].shape == (4,)
    averaged = ranking_metrics(_fixed(scores.numpy()), exclude, truth, 6, 9, ks=[3], chunk_size=2)
    assert {k: pytest.approx(float(v.mean())) for k, v in values.items()} == averaged


def test_paired_bootstrap_interval_brackets_the_difference_and_detects_a_real_gain():
    rng = np.random.default_rng(1)
    reference = torch.from_numpy(rng.random(500))
    better = paired_bootstrap(reference + 0.05, reference)
    assert better["relative_difference"] == pytest.approx(0.05 / float(reference.mean()))
    assert 0 < better["ci95_low"] <= better["relative_difference"] <= better["ci95_high"]
    assert better["share_of_resamples_above_zero"] == 1.0
    noisy = paired_bootstrap(reference + torch.from_numpy(rng.normal(0, 0.3, 500)), reference)
    assert noisy["ci95_low"] < 0 < noisy["ci95_high"]


def test_paired_bootstrap_rejects_unpaired_inputs():
    from glta_pipelines.core.errors import InputError
    with pytest.raises(InputError, match="equal-length"):
        paired_bootstrap(torch.ones(3), torch.ones(4))


def test_paired_bootstrap_relative_values_are_nan_when_the_reference_is_zero():
    out = paired_bootstrap(torch.ones(10), torch.zeros(10))
    assert out["absolute_difference"] == 1.0 and out["share_of_resamples_above_zero"] == 1.0
    assert math.isnan(out["relative_difference"]) and math.isnan(out["ci95_low"])


def test_paired_bootstrap_in_blocks_equals_one_draw(monkeypatch):
    import glta_pipelines.core.evaluation.ranking as ranking

    rng = np.random.default_rng(2)
    ours, reference = torch.from_numpy(rng.random(97)), torch.from_numpy(rng.random(97))
    whole = paired_bootstrap(ours, reference, n_resamples=300, seed=5)
    monkeypatch.setattr(ranking, "_BOOTSTRAP_BLOCK_ELEMENTS", 97 * 7)  # 43 blocks, the last one short
    assert paired_bootstrap(ours, reference, n_resamples=300, seed=5) == whole


def test_cold_and_warm_tasks_rank_only_their_items_from_the_same_scores():
    rng = np.random.default_rng(1)
    n_users, n_items = 8, 12
    scores = rng.random((n_users, n_items)).astype(np.float32)
    train = _pairs([(u, i) for u in range(n_users) for i in rng.choice(8, 3, replace=False)])  # items 8-11: never trained
    valid = _pairs([(u, int(i)) for u in range(n_users) for i in rng.choice(12, 2, replace=False)])
    valid = valid.merge(train, how="left", indicator=True).query("_merge == 'left_only'").drop(columns="_merge")
    test = _pairs([(0, 9), (1, 10), (2, 3), (3, 11)])
    calls = []

    def scorer(users):
        calls.append(len(users))
        return torch.from_numpy(scores)[users]

    plain, plain_users = evaluate_splits("m", scorer, train, valid, test, n_users, n_items, ks=[2, 5])
    n_plain = len(calls)
    table, per_user = evaluate_splits("m", scorer, train, valid, test, n_users, n_items, ks=[2, 5], cold_and_warm=True)
    # the all-items task is unchanged; valid's three tasks come from one scoring of each user
    pd.testing.assert_frame_equal(table[table["split"].isin(["valid", "test"])].reset_index(drop=True), plain)
    pd.testing.assert_frame_equal(per_user, plain_users)
    assert n_plain == 2 and len(calls) - n_plain == 3  # valid's three tasks in one pass; test's cold and warm in one
    seen = pd.concat([train, valid])
    for split, truth, exclude in (("valid", valid, train), ("test", test, seen)):
        trained = torch.zeros(n_items, dtype=torch.bool)
        trained[torch.from_numpy(train["item_idx"].to_numpy())] = True
        cold = ~trained & torch.isin(torch.arange(n_items), torch.from_numpy(truth["item_idx"].to_numpy()))
        for task, candidates in (("cold", cold), ("warm", trained)):
            # a second implementation: the plain evaluator on scores with every other item at -inf
            own = truth[candidates[torch.from_numpy(truth["item_idx"].to_numpy())].numpy()]
            masked = scores.copy()
            masked[:, ~candidates.numpy()] = -np.inf
            expected = ranking_metrics(_fixed(masked), exclude, own, n_users, n_items, ks=[2, 5])
            rows = table[table["split"] == f"{split}_{task}"]
            accuracy = {f"{r.metric}_at_{r.k}": r.value for r in rows.itertuples() if r.metric in METRIC_NAMES}
            assert accuracy == pytest.approx(expected), (split, task)
            assert {"coverage", "gini", "novelty"} <= set(rows["metric"])  # and the lists' beyond-accuracy metrics
    assert set(table["split"]) == {"valid", "test", "valid_cold", "valid_warm", "test_cold", "test_warm"}


def test_ties_rank_in_the_seeded_random_order_on_the_cold_items_split_and_in_topk_order_otherwise():
    from glta_pipelines.core.evaluation.ranking import random_tie_order

    n_items = 50
    scores = torch.zeros(1, n_items)
    scores[0, 7] = 1.0  # one clear winner; every other item ties
    exclude = _pairs([(0, 3)])
    plain, _ = rank_top_k(_fixed(scores.numpy()), exclude, 1, n_items, 5)
    assert plain[0, 0] == 7 and 3 not in plain[0].tolist()  # ties in torch.topk's own (fixed) order
    order = random_tie_order(n_items, seed=2025)
    shuffled, values = rank_top_k(_fixed(scores.numpy()), exclude, 1, n_items, 5, tie_order=order)
    expected = [7] + [i for i in order.tolist() if i not in (7, 3)][:4]
    assert shuffled[0].tolist() == expected and values[0].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert not torch.equal(random_tie_order(n_items, 1), random_tie_order(n_items, 2))
    assert torch.equal(random_tie_order(n_items, 2025), order)
    # the evaluator: a constant scorer's cold-task hits follow the seed's order, not the item index
    train = _pairs([(u, i) for u in (0, 1) for i in range(10, 20)])
    truth = _pairs([(0, i) for i in range(0, 5)] + [(1, i) for i in range(20, 50)])  # never trained: all cold
    flat = _fixed(np.zeros((2, n_items), dtype=np.float32))
    table, _ = evaluate_splits("flat", flat, train, truth, truth, 2, n_items, ks=[5], cold_and_warm=True,
                               tie_break_seed=2025)
    cold_order = [i for i in order.tolist() if i < 5 or i >= 20]  # the held-out items training never saw
    expected = (len({0, 1, 2, 3, 4} & set(cold_order[:5])) / 5 + len(set(range(20, 50)) & set(cold_order[:5])) / 30) / 2
    recall = table[(table["split"] == "valid_cold") & (table["metric"] == "recall")]["value"].item()
    assert recall == pytest.approx(expected)
    other, _ = evaluate_splits("flat", flat, train, truth, truth, 2, n_items, ks=[5], cold_and_warm=True,
                               tie_break_seed=7)
    cold_order = [i for i in random_tie_order(n_items, 7).tolist() if i < 5 or i >= 20]
    expected = (len({0, 1, 2, 3, 4} & set(cold_order[:5])) / 5 + len(set(range(20, 50)) & set(cold_order[:5])) / 30) / 2
    assert other[(other["split"] == "valid_cold") & (other["metric"] == "recall")]["value"].item() == pytest.approx(expected)


def test_new_users_history_is_masked_and_their_tasks_split_by_user():
    rng = np.random.default_rng(3)
    n_users, n_items = 6, 15
    scores = rng.random((n_users, n_items)).astype(np.float32)
    train = _pairs([(u, i) for u in range(4) for i in rng.choice(15, 4, replace=False)])  # users 4, 5: new
    history = _pairs([(4, 0), (4, 1), (5, 2)])
    valid = _pairs([(0, 14), (1, 13), (4, 3), (4, 0)])  # (4, 0) is in the history: masked, never a hit
    valid = valid.merge(train, how="left", indicator=True).query("_merge == 'left_only'").drop(columns="_merge")
    test = _pairs([(2, 12), (5, 4), (5, 5)])
    test = test.merge(pd.concat([train, valid]), how="left", indicator=True).query("_merge == 'left_only'").drop(
        columns="_merge")
    table, _ = evaluate_splits("m", _fixed(scores), train, valid, test, n_users, n_items, ks=[3], history=history)
    assert set(table["split"]) == {"valid", "test", "valid_cold", "valid_warm", "test_cold", "test_warm"}
    seen_valid, seen_test = pd.concat([train, history]), pd.concat([train, valid, history])
    for split, truth, seen in (("valid", valid, seen_valid), ("test", test, seen_test)):
        for task, own in (("cold", truth[truth["user_idx"] >= 4]), ("warm", truth[truth["user_idx"] < 4])):
            expected = ranking_metrics(_fixed(scores), seen, own, n_users, n_items, ks=[3])
            rows = table[table["split"] == f"{split}_{task}"]
            accuracy = {f"{r.metric}_at_{r.k}": r.value for r in rows.itertuples() if r.metric in METRIC_NAMES}
            assert accuracy == pytest.approx(expected), (split, task)
            assert {"coverage", "gini", "novelty"} <= set(rows["metric"])  # and the lists' beyond-accuracy metrics
        rows = table[(table["split"] == split) & table["metric"].isin(METRIC_NAMES)]
        expected = ranking_metrics(_fixed(scores), seen, truth, n_users, n_items, ks=[3])
        assert {f"{r.metric}_at_{r.k}": r.value for r in rows.itertuples()} == pytest.approx(expected), split
