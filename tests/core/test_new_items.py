"""New items by their text: the table a user hands in, every bad row named, and the item tensors
grown without touching the catalogue's."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from glta_pipelines.core.cold_start.mapper import MapperConfig
from glta_pipelines.core.cold_start.new_items import (
    AddItemsConfig,
    check_new_items,
    extend_items,
    nearest_items,
    read_item_table,
)
from glta_pipelines.core.data.sources.text import ItemTextConfig
from glta_pipelines.core.errors import InputError

CATALOGUE = {"1", "2", "3"}


def _check(rows: list[dict]) -> pd.DataFrame:
    return check_new_items(pd.DataFrame(rows), CATALOGUE, ItemTextConfig(), "new.csv")


def test_new_items_get_the_ingest_contract_and_its_text():
    table = _check([{"item_id": " 10 ", "title": "Toy Story 2", "genres": "Animation|Comedy", "year": "1999.0"},
                    {"item_id": "11", "title": "Quiet <b>film</b>", "description": "A long day."}])
    assert list(table["item_id"]) == ["10", "11"]
    assert table.loc[0, "text"] == "Toy Story 2 (1999) Genres: Animation, Comedy."
    assert table.loc[1, "text"] == "Quiet film A long day." and pd.isna(table.loc[1, "year"])
    assert list(table.columns) == ["item_id", "title", "year", "genres", "description", "text"]


@pytest.mark.parametrize("rows, match", [
    ([{"item_id": "10", "title": ""}], r"new\.csv, row 1, field 'title': found an empty title"),
    ([{"item_id": "10", "title": "A"}, {"item_id": "2", "title": "B"}],
     r"row 2, field 'item_id': found '2', already in the model's catalogue"),
    ([{"item_id": "10", "title": "A"}, {"item_id": "10", "title": "B"}], r"row 2, field 'item_id': found '10', also in row 1"),
    ([{"item_id": "", "title": "A"}], r"row 1, field 'item_id': found an empty id"),
    ([{"item_id": "10", "title": "A", "year": "soon"}], r"row 1, field 'year': found 'soon'"),
    ([{"item_id": "10", "name": "A"}], r"new\.csv columns: .*missing \['title'\].*unknown \['name'\]"),
])
def test_each_bad_row_is_named_with_its_field(rows, match):
    with pytest.raises(InputError, match=match):
        _check(rows)


def test_an_empty_table_or_file_is_refused(tmp_path):
    with pytest.raises(InputError, match="found no rows"):
        check_new_items(pd.DataFrame(columns=["item_id", "title"]), CATALOGUE, ItemTextConfig(), "new.csv")
    empty = tmp_path / "new.csv"
    empty.write_text("")
    with pytest.raises(InputError, match=r"parameter add_items.path \(.*new\.csv\): found an empty file"):
        read_item_table(empty, "parameter add_items.path")
    header_only = tmp_path / "header.csv"
    header_only.write_text("item_id,title\n")
    with pytest.raises(InputError, match="found no rows"):
        check_new_items(read_item_table(header_only, "x"), CATALOGUE, ItemTextConfig(), "header.csv")
    with pytest.raises(InputError, match="which does not exist"):
        read_item_table(tmp_path / "missing.parquet", "parameter add_items.path")
    with pytest.raises(InputError, match=r"a \.csv or \.parquet file"):
        read_item_table(tmp_path / "new.json", "parameter add_items.path")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(InputError, match="found an unreadable file"):
        read_item_table(broken, "parameter add_items.path")


def test_csv_and_parquet_read_alike(tmp_path):
    frame = pd.DataFrame({"item_id": ["10", "11"], "title": ["A", "B"], "year": ["1999", ""]})
    frame.to_csv(tmp_path / "new.csv", index=False)
    frame.to_parquet(tmp_path / "new.parquet", index=False)
    a = _check(read_item_table(tmp_path / "new.csv", "x").to_dict("records"))
    b = _check(read_item_table(tmp_path / "new.parquet", "x").to_dict("records"))
    pd.testing.assert_frame_equal(a, b)


def test_config_is_checked():
    with pytest.raises(InputError, match="parameter add_items.encoder"):
        AddItemsConfig(encoder="genres").validate()
    with pytest.raises(InputError, match="parameter add_items.alias"):
        AddItemsConfig(alias=" ").validate()


def test_old_items_keep_their_rows_and_a_text_twin_lands_near_its_original():
    """Content that determines the embedding: a new item with an old item's content is placed at
    (about) that item's embedding, nearer it than any other; old rows and biases are untouched."""
    generator = torch.Generator().manual_seed(0)
    n_old, dim = 120, 8
    content_old = torch.randn(n_old, 16, generator=generator)
    embeddings = content_old @ torch.randn(16, dim, generator=generator) / 4
    trained = torch.ones(n_old, dtype=torch.bool)
    trained[-5:] = False  # e.g. items added earlier: never a mapper's target
    twins = torch.tensor([3, 40, 77])
    content = torch.cat([content_old, content_old[twins]])
    bias = torch.randn(n_old, generator=generator)
    config = MapperConfig(hidden_dim=64, max_epochs=300, patience=300, contrastive_weight=0.0, learning_rate=0.01)
    grown, grown_bias, losses = extend_items(content, {"a": embeddings, "b": embeddings.clone()}, trained, bias, config)
    assert torch.equal(grown["a"][:n_old], embeddings) and grown["a"].shape == (n_old + 3, dim)
    assert grown["b"] is grown["a"] and losses["b"] is losses["a"]  # equal tables share one mapper
    assert torch.equal(grown_bias[:n_old], bias)
    assert torch.allclose(grown_bias[n_old:], bias[trained].mean().expand(3))
    nearest = nearest_items(grown["a"][n_old:], embeddings, 1).flatten()
    assert torch.equal(nearest, twins)
    assert losses["a"][-1]["train_loss"] < losses["a"][0]["train_loss"]
    with pytest.raises(InputError, match="at least one new item"):
        extend_items(content_old, {"a": embeddings}, trained, None, config)
