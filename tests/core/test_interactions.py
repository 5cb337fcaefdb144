import pandas as pd
import pytest

from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.data.interactions import (
    SplitConfig,
    build_id_map,
    cold_items,
    decode_ids,
    encode_ids,
    k_core_filter,
    split_per_user,
    to_implicit,
)


def _encoded(interactions):
    user_map, item_map = build_id_map(interactions["user_id"], "user_idx"), build_id_map(interactions["item_id"], "item_idx")
    return encode_ids(interactions, user_map, item_map), user_map, item_map


def test_id_maps_are_contiguous_and_round_trip(interactions):
    encoded, user_map, item_map = _encoded(interactions)
    assert user_map["user_idx"].tolist() == list(range(interactions["user_id"].nunique()))
    assert item_map["item_idx"].tolist() == list(range(interactions["item_id"].nunique()))
    decoded = decode_ids(encoded, user_map, item_map)
    original = set(zip(interactions["user_id"], interactions["item_id"]))
    assert set(zip(decoded["user_id"], decoded["item_id"])) == original


@pytest.mark.parametrize("strategy", ["random", "leave-last-out"])
def test_split_is_disjoint_complete_and_deterministic(interactions, strategy):
    encoded, user_map, _ = _encoded(interactions)
    config = SplitConfig(strategy=strategy, seed=7)
    first, second = split_per_user(encoded, config), split_per_user(encoded, config)
    pairs = {name: set(zip(df["user_idx"], df["item_idx"])) for name, df in first.items()}
    assert not pairs["train"] & pairs["valid"] and not pairs["train"] & pairs["test"] and not pairs["valid"] & pairs["test"]
    assert sum(len(p) for p in pairs.values()) == len(encoded)
    for name in first:
        assert set(first[name]["user_idx"]) == set(user_map["user_idx"]), f"{name} misses users"
        pd.testing.assert_frame_equal(first[name], second[name])
    other_seed = split_per_user(encoded, SplitConfig(strategy=strategy, seed=8))
    if strategy == "random":
        assert not first["test"].equals(other_seed["test"])


def test_random_split_follows_ratios(interactions):
    encoded, _, _ = _encoded(interactions)  # 12 interactions per user
    splits = split_per_user(encoded, SplitConfig(ratios=(0.5, 0.25, 0.25)))
    assert splits["train"].groupby("user_idx").size().eq(6).all()
    assert splits["test"].groupby("user_idx").size().eq(3).all()


def test_leave_last_out_holds_out_latest(interactions):
    encoded, _, _ = _encoded(interactions)
    splits = split_per_user(encoded, SplitConfig(strategy="leave-last-out"))
    latest = encoded.groupby("user_idx")["timestamp"].max()
    assert (splits["test"].set_index("user_idx")["timestamp"] == latest).all()
    assert splits["valid"].groupby("user_idx").size().eq(1).all()
    assert (splits["train"].groupby("user_idx")["timestamp"].max() <= splits["valid"].set_index("user_idx")["timestamp"]).all()


def test_users_with_few_interactions_go_wholly_to_train():
    encoded = pd.DataFrame({"user_idx": [0, 0, 1, 1, 1, 1], "item_idx": [0, 1, 0, 1, 2, 3], "timestamp": range(6)})
    splits = split_per_user(encoded, SplitConfig(min_interactions=3))
    assert set(splits["train"].loc[splits["train"]["user_idx"] == 0, "item_idx"]) == {0, 1}
    assert 0 not in set(splits["valid"]["user_idx"]) | set(splits["test"]["user_idx"])


def test_split_ratios_must_sum_to_one():
    with pytest.raises(InputError, match=r"graph\.split\.ratios.*\[0\.8, 0\.1, 0\.2\].*sum to 1"):
        config_from_params(SplitConfig, {"ratios": [0.8, 0.1, 0.2]}, "graph.split")


def test_unknown_split_parameter_is_named():
    with pytest.raises(InputError, match=r"graph\.split\.ratio: found an unknown key.*did you mean graph\.split\.ratios\?"):
        config_from_params(SplitConfig, {"ratio": [0.8, 0.1, 0.1]}, "graph.split")


def test_implicit_threshold_and_duplicates_keep_latest():
    raw = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["x", "x", "y"], "rating": [5.0, 2.0, 4.0],
                        "timestamp": [2, 1, 3]})
    kept = to_implicit(raw, None)
    assert len(kept) == 2 and kept.loc[kept["user_id"] == "a", "rating"].item() == 5.0
    assert to_implicit(raw, 4.5)["user_id"].tolist() == ["a"]


def test_threshold_that_removes_everything_is_an_error():
    raw = pd.DataFrame({"user_id": ["a"], "item_id": ["x"], "rating": [3.0], "timestamp": [1]})
    with pytest.raises(InputError, match=r"graph\.min_rating.*leaves 0 of 1"):
        to_implicit(raw, 4.0)


def test_k_core_filters_until_stable(interactions):
    sparse_user = pd.DataFrame({"user_id": ["lonely"], "item_id": ["i0"], "rating": [1.0], "timestamp": [1]})
    kept = k_core_filter(pd.concat([interactions, sparse_user], ignore_index=True), 5)
    assert "lonely" not in set(kept["user_id"])
    assert kept.groupby("user_id").size().min() >= 5 and kept.groupby("item_id").size().min() >= 5


def test_k_core_that_removes_everything_is_an_error(interactions):
    with pytest.raises(InputError, match=r"graph\.k_core.*removes all"):
        k_core_filter(interactions, 1000)


def test_cold_items_split_keeps_every_interaction_of_a_cold_item_out_of_training(interactions):
    encoded, user_map, _ = _encoded(interactions)  # 40 items, 20 % cold: 8, 4 per held-out split
    config = SplitConfig(strategy="cold-items", seed=7, cold_fraction=0.2)
    splits = split_per_user(encoded, config)
    pairs = {name: set(zip(df["user_idx"], df["item_idx"])) for name, df in splits.items()}
    assert sum(len(p) for p in pairs.values()) == len(encoded) and not pairs["train"] & (pairs["valid"] | pairs["test"])
    cold_valid, cold_test = cold_items(splits["train"], splits["valid"]), cold_items(splits["train"], splits["test"])
    assert len(cold_valid) == len(cold_test) == 4 and not set(cold_valid) & set(cold_test)
    for items, name in ((cold_valid, "valid"), (cold_test, "test")):  # all of a cold item's interactions, one split
        assert (encoded["item_idx"].isin(items).sum()
                == splits[name]["item_idx"].isin(items).sum() > 0)
    # the warm interactions are split as `random` splits them
    warm = encoded[~encoded["item_idx"].isin([*cold_valid, *cold_test])]
    as_random = split_per_user(warm, SplitConfig(seed=7))
    pd.testing.assert_frame_equal(splits["train"], as_random["train"])
    pd.testing.assert_frame_equal(splits["valid"][~splits["valid"]["item_idx"].isin(cold_valid)].reset_index(drop=True),
                                  as_random["valid"])
    for name in splits:
        pd.testing.assert_frame_equal(splits[name], split_per_user(encoded, config)[name])
    other = split_per_user(encoded, SplitConfig(strategy="cold-items", seed=8))
    assert set(cold_items(other["train"], other["test"])) != set(cold_test)
    assert set(splits["train"]["user_idx"]) == set(user_map["user_idx"])


def test_cold_users_split_holds_out_whole_users_and_shows_their_first_interactions_as_history(interactions):
    from glta_pipelines.core.data.interactions import HISTORY

    encoded, user_map, _ = _encoded(interactions)  # 60 users, 20 % cold: 12, 6 per held-out split
    config = SplitConfig(strategy="cold-users", seed=7, cold_fraction=0.2, cold_history=3)
    splits = split_per_user(encoded, config)
    history = splits[HISTORY]
    cold = set(history["user_idx"])
    assert len(cold) == 12 and not cold & set(splits["train"]["user_idx"])
    assert sum(len(df) for df in splits.values()) == len(encoded)
    assert (history.groupby("user_idx").size() == 3).all()
    for user in cold:  # the history is the user's earliest interactions, the rest its targets in one split
        own = encoded[encoded["user_idx"] == user].sort_values("timestamp", kind="stable")
        assert history[history["user_idx"] == user]["timestamp"].max() <= own["timestamp"].iloc[3:].min()
        in_valid = (splits["valid"]["user_idx"] == user).sum()
        in_test = (splits["test"]["user_idx"] == user).sum()
        assert sorted([in_valid, in_test]) == [0, len(own) - 3]
    cold_valid = cold & set(splits["valid"]["user_idx"])
    assert len(cold_valid) == 6 and len(cold & set(splits["test"]["user_idx"])) == 6
    # the warm users are split as `random` splits them
    as_random = split_per_user(encoded[~encoded["user_idx"].isin(cold)], SplitConfig(seed=7))
    pd.testing.assert_frame_equal(splits["train"], as_random["train"])
    pd.testing.assert_frame_equal(splits["test"][~splits["test"]["user_idx"].isin(cold)].reset_index(drop=True),
                                  as_random["test"])
    for name in splits:
        pd.testing.assert_frame_equal(splits[name], split_per_user(encoded, config)[name])
    assert HISTORY not in split_per_user(encoded, SplitConfig(seed=7))
    with pytest.raises(InputError, match=r"graph\.split\.cold_history: found 0; expected a positive number"):
        split_per_user(encoded, SplitConfig(strategy="cold-users", cold_history=0))
    with pytest.raises(InputError, match=r"graph\.split\.cold_fraction: found 0\.999, which makes 60 of 60 users cold \(60 have"):
        split_per_user(encoded, SplitConfig(strategy="cold-users", cold_fraction=0.999))


@pytest.mark.parametrize("fraction, message", [
    (0, r"graph\.split\.cold_fraction: found 0\.0; expected a fraction of the items \(cold-items\) or users"),
    (1.5, r"graph\.split\.cold_fraction: found 1\.5"),
    (0.01, r"graph\.split\.cold_fraction: found 0\.01, which makes 0 of 40 items cold"),
])
def test_cold_fractions_that_cannot_make_the_split_are_named(interactions, fraction, message):
    encoded, _, _ = _encoded(interactions)
    with pytest.raises(InputError, match=message):
        split_per_user(encoded, config_from_params(SplitConfig, {"strategy": "cold-items", "cold_fraction": fraction},
                                                   "graph.split"))
    with pytest.raises(InputError, match=r"graph\.split\.strategy: found 'cold'; expected one of 'random', "):
        split_per_user(encoded, SplitConfig(strategy="cold"))


def test_temporal_split_cuts_everyone_at_the_same_times_and_drops_what_training_never_saw():
    # two users over ten days; item 9 appears only after the cut, user "late" only in the test period
    rows = [("a", i % 4, day) for i, day in enumerate(range(0, 10))] + [("b", i % 3, day) for i, day in enumerate(range(0, 8))]
    rows += [("a", 9, 9), ("late", 1, 9)]
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).assign(rating=1.0)
    encoded, user_map, item_map = _encoded(interactions)
    splits = split_per_user(encoded, SplitConfig(strategy="temporal", temporal_quantiles=(0.6, 0.8)))
    times = sorted(interactions["timestamp"])
    cut_valid, cut_test = times[int(0.6 * len(times))], times[int(0.8 * len(times))]
    assert splits["train"]["timestamp"].max() < cut_valid <= splits["valid"]["timestamp"].min()
    assert splits["valid"]["timestamp"].max() < cut_test <= splits["test"]["timestamp"].min()
    dropped = splits["dropped"]
    late = int(user_map.set_index("user_id").loc["late", "user_idx"])
    nine = int(item_map.set_index("item_id").loc[9, "item_idx"])
    assert set(zip(dropped["user_idx"], dropped["reason"])) >= {(late, "new_user")}
    assert nine in set(dropped.loc[dropped["reason"] == "new_item", "item_idx"])
    kept = pd.concat([splits["valid"], splits["test"]])
    assert set(kept["user_idx"]) <= set(splits["train"]["user_idx"]) and set(kept["item_idx"]) <= set(splits["train"]["item_idx"])
    assert sum(len(splits[n]) for n in ("train", "valid", "test", "dropped")) == len(encoded)
    again = split_per_user(encoded, SplitConfig(strategy="temporal", temporal_quantiles=(0.6, 0.8)))
    pd.testing.assert_frame_equal(again["test"], splits["test"])


@pytest.mark.parametrize("quantiles", [(0.9, 0.8), (0.0, 0.5), (0.5, 1.0), (0.5,)])
def test_temporal_quantiles_that_cannot_make_the_split_are_named(quantiles):
    with pytest.raises(InputError, match="graph.split.temporal_quantiles"):
        SplitConfig(strategy="temporal", temporal_quantiles=quantiles).validate()
