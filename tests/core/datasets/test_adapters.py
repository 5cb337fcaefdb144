"""Every adapter on its committed fixture (tests/fixtures/datasets/<name>/, the real on-disk
format in miniature), checked field by field."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from glta_pipelines.core.data.sources import ADAPTERS, INTERACTION_COLUMNS, ITEM_COLUMNS, bundled_movielens_100k_dir, load_dataset

FIXTURES = Path(__file__).parents[2] / "fixtures" / "datasets"
DESCRIPTION_START = "Explore incredible places far from the Mushroom Kingdom"


def read(name: str, **params):
    return load_dataset({"name": name, "path": str(FIXTURES / name), **params})


# The first fixture user rated the first item twice (5 at 1306316960, then 4 a day later).
# adapter: (user, item, latest rating, latest timestamp, item without metadata, kept rows)
FIRST = {
    "movielens-1m": ("1", "1", 4.0, 1306403360, "39", 40),
    "movielens-10m": ("1", "1", 4.0, 1306403360, "39", 40),
    "movielens-20m": ("1", "1", 4.0, 1306403360, "39", 40),
    "movielens-25m": ("1", "1", 4.0, 1306403360, "39", 40),
    "movielens-latest": ("1", "1", 4.0, 1306403360, "39", 40),
    "amazon-2014": ("A2SUAM1J3GNN3B", "B01MY7GHKJ", 4.0, 1306403360, "B0000NOMTA", 40),
    "amazon-2018": ("A2SUAM1J3GNN3B", "B01MY7GHKJ", 4.0, 1306403360, "B0000NOMTA", 40),
    "amazon-2023": ("AGBFYI2DDIKXC5Y4FARTYDTQBMFQ", "B01MY7GHKJ", 4.0, 1306403360, "B0000NOMTA", 39),
    "goodreads": ("8842281e1d1347389f2ab93d60773d4d", "2767052", 0.0, 1306403360, "2777052", 34),
    "generic": ("c000", "sku-00", 4.0, 1306403360, "sku-10", 40),
}


def test_every_adapter_has_a_fixture():
    assert set(FIRST) | {"movielens-100k"} == set(ADAPTERS)


@pytest.mark.parametrize("name", sorted(FIRST))
def test_adapter_reads_its_fixture_field_by_field(name):
    user, item, rating, timestamp, no_meta, kept = FIRST[name]
    data = read(name)
    inter, items = data.interactions, data.items
    assert {c: str(t) for c, t in inter.dtypes.items()} == {c: t.replace("string", "string") for c, t in INTERACTION_COLUMNS.items()}
    assert list(items.columns) == list(ITEM_COLUMNS)
    assert len(inter) == kept == data.report["interactions"]["kept"]
    assert not inter.duplicated(["user_id", "item_id"]).any()
    row = inter[(inter["user_id"] == user) & (inter["item_id"] == item)]
    assert row[["rating", "timestamp"]].values.tolist() == [[rating, timestamp]]  # keep-latest
    assert data.report["interactions"]["duplicates_removed"] >= 1
    # every interacted item has a row; one has no metadata and falls back to its id
    assert set(items["item_id"]) == set(inter["item_id"])
    fallback = items.set_index("item_id").loc[no_meta]
    assert (fallback["title"], fallback["text"], fallback["genres"]) == (no_meta, no_meta, "")
    assert data.report["items"]["without_metadata"] == 1
    assert data.quarantine.empty and data.report["interactions"]["quarantined"] == 0


@pytest.mark.parametrize("name", ["movielens-1m", "movielens-10m", "movielens-20m", "movielens-25m", "movielens-latest"])
def test_movielens_titles_lose_their_year_to_the_year_column(name):
    items = read(name).items.set_index("item_id")
    toy = items.loc["1"]
    genres = "Animation|Children's|Comedy" if name.endswith(("1m", "10m")) else "Animation|Children|Comedy"
    assert (toy["title"], toy["year"], toy["genres"], toy["description"]) == ("Toy Story", 1995, genres, "")
    assert toy["text"] == f"Toy Story (1995) Genres: {genres.replace('|', ', ')}."
    # latin-1 accents and a quoted title holding commas
    assert items.loc["29", "title"] == "City of Lost Children, The (Cité des enfants perdus, La)"


def test_amazon_2014_reads_python_literal_metadata():
    items = read("amazon-2014").items.set_index("item_id")
    mario = items.loc["B01MY7GHKJ"]
    assert mario["title"] == "Super Mario Odyssey - Nintendo Switch"
    assert mario["genres"] == "Video Games|Nintendo Switch|Games|Kids & Family"  # list of lists, flattened
    assert mario["description"].startswith(DESCRIPTION_START) and "<b>" not in mario["description"]
    assert len(mario["description"]) <= 301 and mario["description"].endswith("…")
    assert pd.isna(mario["year"])
    assert items.loc["B073JYC4XM", "title"] == "B073JYC4XM"  # metadata without a title


def test_amazon_2018_first_metadata_row_wins_and_descriptions_are_joined():
    data = read("amazon-2018")
    mario = data.items.set_index("item_id").loc["B01MY7GHKJ"]
    assert mario["genres"] == "Video Games|Nintendo Switch|Games"
    assert mario["description"].startswith(DESCRIPTION_START)
    assert data.report["items"]["metadata_rows_read"] == 11  # 10 products + 1 repeated


def test_amazon_2023_items_are_product_families_and_timestamps_milliseconds():
    data = read("amazon-2023")
    assert "B00KVP76G0" not in set(data.interactions["item_id"])  # a variant of B01GW3H3U8
    zelda = data.items.set_index("item_id").loc["B01MS6MO77"]
    assert zelda["description"] == "Play at home or on the go"  # features join the description
    assert data.interactions["timestamp"].max() < 2_000_000_000  # seconds, not milliseconds


def test_goodreads_shelvings_rules_and_shelves_as_genres():
    data = read("goodreads")
    assert data.report["interactions"]["filtered"] == {"unread": 6}
    hunger = data.items.set_index("item_id").loc["2767052"]
    assert (hunger["title"], hunger["year"]) == ("The Hunger Games (The Hunger Games, #1)", 2008)
    assert hunger["genres"] == "young-adult|fiction|dystopian"  # to-read and favorites are not genres
    assert hunger["description"] == "Winning will make you famous. Losing means certain death."
    with_unread = read("goodreads", goodreads={"include_unread": True, "include_zero_ratings": False})
    assert "unread" not in with_unread.report["interactions"]["filtered"]
    assert (with_unread.interactions["rating"] > 0).all()


def test_generic_maps_columns_and_parses_iso_dates():
    data = read("generic", generic={
        "interactions_file": "events.csv", "items_file": "products.csv", "user_column": "customer",
        "item_column": "sku", "rating_column": "stars", "timestamp_column": "event_time", "timestamp_unit": "iso",
        "item_id_column": "sku", "title_column": "name", "genres_column": "tags", "genres_separator": ";",
        "description_column": "blurb"})
    expected = read("generic").interactions
    pd.testing.assert_frame_equal(data.interactions, expected)
    sku1 = data.items.set_index("item_id").loc["sku-01"]
    assert (sku1["title"], sku1["genres"]) == ("Product 1, size L", "home|kitchen")
    assert data.items.set_index("item_id").loc["sku-00", "description"] == "A sturdy, well-made thing."


def test_generic_reads_parquet_and_defaults_missing_rating_and_time(tmp_path):
    frame = pd.read_csv(FIXTURES / "generic" / "interactions.csv", dtype={"user_id": str, "item_id": str})
    frame[["user_id", "item_id"]].to_parquet(tmp_path / "clicks.parquet")
    data = load_dataset({"name": "generic", "path": str(tmp_path), "generic": {
        "interactions_file": "clicks.parquet", "rating_column": None, "timestamp_column": None}})
    assert (data.interactions["rating"] == 1.0).all() and (data.interactions["timestamp"] == 0).all()
    assert len(data.interactions) == 40 and (data.items["title"] == data.items["item_id"]).all()


def test_reads_the_bundled_movielens_100k():
    data = load_dataset({"name": "movielens-100k"})
    interactions, items = data.interactions, data.items
    assert len(interactions) == 100_000 and interactions["user_id"].nunique() == 943
    assert len(items) == 1682
    toy = items[items["item_id"] == "1"].iloc[0]
    assert (toy["title"], int(toy["year"]), toy["genres"]) == ("Toy Story", 1995, "Animation|Children's|Comedy")
    assert bundled_movielens_100k_dir().name == "ml-100k"


def test_item_text_template_is_a_parameter():
    data = read("movielens-1m", item_text={"parts": ["{title}", "[{year}]"], "separator": " "})
    assert data.items.set_index("item_id").loc["1", "text"] == "Toy Story [1995]"
    no_year = read("goodreads", item_text={"parts": ["{title}", "({year})"]}).items.set_index("item_id")
    assert no_year.loc["2775052", "text"] == "Eleanor & Park"  # no "()" for a missing year


def test_category_is_found_or_named(tmp_path):
    import shutil

    for category in ("Video_Games", "Toys_and_Games"):
        shutil.copy(FIXTURES / "amazon-2018" / "Video_Games_5.json.gz", tmp_path / f"{category}_5.json.gz")
    from glta_pipelines.core.errors import InputError

    with pytest.raises(InputError, match=r"dataset\.category: found null.*expected one of \['Toys_and_Games', 'Video_Games'\]"):
        load_dataset({"name": "amazon-2018", "path": str(tmp_path)})
    data = load_dataset({"name": "amazon-2018", "path": str(tmp_path), "category": "Toys_and_Games"})
    assert data.report["items"]["without_metadata"] == len(data.items)  # no meta file: ids as titles
    with pytest.raises(InputError, match=r"no Books_5\.json\.gz or Books_5\.json"):
        load_dataset({"name": "amazon-2018", "path": str(tmp_path), "category": "Books"})
