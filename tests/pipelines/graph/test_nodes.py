import pytest

from glta_pipelines.core.errors import InputError
from glta_pipelines.pipelines.graph.nodes import build_id_maps, compute_statistics, filter_interactions, split_interactions


def test_graph_nodes_produce_a_consistent_graph(interactions):
    implicit, _ = filter_interactions(interactions, None, 0)
    user_map, item_map = build_id_maps(implicit)
    train, valid, test, _ = split_interactions(implicit, user_map, item_map, {"ratios": [0.8, 0.1, 0.1], "seed": 3})
    stats = compute_statistics(train, valid, test, user_map, item_map)
    assert stats["n_interactions"] == len(implicit) == len(train) + len(valid) + len(test)
    assert stats["density"] == pytest.approx(len(implicit) / (stats["n_users"] * stats["n_items"]))
    assert set(train.columns) == {"user_idx", "item_idx", "timestamp"}


def test_rating_threshold_filters(interactions):
    implicit, _ = filter_interactions(interactions, 4, 0)
    assert implicit["rating"].min() >= 4


def test_bad_split_parameters_fail_in_the_node(interactions):
    implicit, _ = filter_interactions(interactions, None, 0)
    user_map, item_map = build_id_maps(implicit)
    with pytest.raises(InputError, match="graph.split.strategy"):
        split_interactions(implicit, user_map, item_map, {"strategy": "chronological"})
