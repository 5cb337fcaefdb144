"""Breakdowns: activity quartiles and the long tail's share of hits, checked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from glta_pipelines.core.evaluation.breakdowns import activity_buckets, breakdown_table
from glta_pipelines.core.evaluation.ranking import long_tail_items, per_user_metrics


def pairs(rows):
    return pd.DataFrame(rows, columns=["user_idx", "item_idx"])


def test_the_most_popular_fifth_of_items_is_the_head():
    train = pairs([(u, 0) for u in range(5)] + [(u, 1) for u in range(3)] + [(0, 2)])
    tail = long_tail_items(train, 10)  # top ceil(0.2 * 10) = 2 items: 0 and 1
    assert tail.tolist() == [False, False] + [True] * 8


def test_users_fall_into_quartiles_of_their_training_interactions():
    train = pairs([(u, i) for u in range(8) for i in range(u + 1)])  # user u has u + 1 items
    buckets = activity_buckets(train, np.arange(8))
    assert buckets.tolist() == ["Q1 (1-2)"] * 2 + ["Q2 (3-4)"] * 2 + ["Q3 (5-6)"] * 2 + ["Q4 (7-8)"] * 2


def test_tail_hit_share_counts_hits_on_tail_items():
    # items 0, 1 are the head; user 0's test items: 0 (head) and 5 (tail); user 1's: 6 (tail)
    train = pairs([(u, 0) for u in range(2, 6)] + [(u, 1) for u in range(2, 5)] + [(0, 9), (1, 8)])
    test = pairs([(0, 0), (0, 5), (1, 6)])
    scores = torch.zeros(10, 10)
    scores[0, [0, 5]] = 1.0  # user 0 finds both
    scores[1, 7] = 1.0  # user 1 misses at k=1
    users, values = per_user_metrics(lambda u: scores[u], train, test, 10, 10, ks=[1, 2],
                                     tail_items=long_tail_items(train, 10))
    assert users.tolist() == [0, 1]
    assert values["hits_at_2"].tolist() == [2.0, 0.0] and values["tail_hits_at_2"].tolist() == [1.0, 0.0]
    per_user = pd.DataFrame({"user_idx": users, **{k: v.numpy() for k, v in values.items()}})
    table = breakdown_table({"m": per_user}, train)
    share = table[(table["breakdown"] == "long_tail") & (table["k"] == 2)]["value"].item()
    assert share == 0.5
    recall = table[(table["breakdown"] == "activity") & (table["metric"] == "recall") & (table["k"] == 2)]
    assert recall["n_users"].sum() == 2
