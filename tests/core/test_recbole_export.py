"""The RecBole export: header rules of atomic files, and a round trip back to our split."""

from __future__ import annotations

import pytest

from glta_pipelines.core.data.interactions import SplitConfig, build_id_map, encode_ids, split_per_user
from glta_pipelines.core.data.recbole_export import FIELD, read_atomic, recbole_files


def test_the_split_round_trips_through_the_atomic_files(interactions, items):
    user_map, item_map = build_id_map(interactions["user_id"], "user_idx"), build_id_map(interactions["item_id"], "item_idx")
    splits = split_per_user(encode_ids(interactions, user_map, item_map), SplitConfig())
    items = items.copy()
    items.loc[0, "title"] = "A\ttitle with a tab"  # would break a row
    files = recbole_files("toy", splits, user_map, item_map, items)
    assert sorted(files) == ["toy.item", "toy.test.inter", "toy.train.inter", "toy.valid.inter"]
    for text in files.values():
        header = text.split("\n", 1)[0].split("\t")
        assert all(FIELD.match(field) for field in header)
    for split, frame in splits.items():
        back = read_atomic(files[f"toy.{split}.inter"])
        expected = frame.merge(user_map, on="user_idx").merge(item_map, on="item_idx")
        assert back[["user_id", "item_id"]].astype(str).values.tolist() == \
            expected[["user_id", "item_id"]].astype(str).values.tolist()
        assert back["timestamp"].tolist() == expected["timestamp"].astype(float).tolist()
    catalogue = read_atomic(files["toy.item"])
    assert len(catalogue) == len(item_map) and "A title with a tab" in set(catalogue["title"])
    assert set(catalogue["genres"]) >= {"Drama Comedy", "Action"}  # token_seq: space-separated


@pytest.mark.parametrize("text", ["user_id\titem_id:token\n1\t2\n", "user_id:token\titem_id:token\n1\n",
                                  "user_id:id\titem_id:token\n1\t2\n"])
def test_files_breaking_the_header_rules_are_refused(text):
    with pytest.raises(ValueError):
        read_atomic(text)
