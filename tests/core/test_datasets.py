from pathlib import Path

import pandas as pd
import pytest

from glta_pipelines.core.datasets import bundled_movielens_100k_dir, load_dataset, read_movielens_100k
from glta_pipelines.core.errors import InputError

INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
ITEM_HEADER = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"


def _write(folder: Path, inter_rows: str, item_rows: str = "1\tToy Story\t1995\tAnimation Comedy\n",
           inter_header: str = INTER_HEADER) -> Path:
    (folder / "ml-100k.inter").write_text(inter_header + inter_rows)
    (folder / "ml-100k.item").write_text(ITEM_HEADER + item_rows)
    return folder


def test_reads_the_bundled_movielens_100k():
    interactions, items = load_dataset("movielens-100k", None)
    assert len(interactions) == 100_000 and interactions["user_id"].nunique() == 943
    assert len(items) == 1682
    assert str(interactions["rating"].dtype) == "float64" and str(interactions["timestamp"].dtype) == "int64"
    toy = items[items["item_id"] == "1"].iloc[0]
    assert (toy["title"], int(toy["year"]), toy["genres"]) == ("Toy Story", 1995, "Animation|Children's|Comedy")
    assert bundled_movielens_100k_dir().name == "ml-100k"


def test_reads_a_folder_field_by_field(tmp_path):
    _write(tmp_path, "7\t1\t4\t881250949\n8\t1\t3.5\t881250950\n",
           "1\tToy Story\t1995\tAnimation Comedy\n2\tUnknown\t\t\n")
    interactions, items = read_movielens_100k(tmp_path)
    assert interactions.to_dict("list") == {"user_id": ["7", "8"], "item_id": ["1", "1"], "rating": [4.0, 3.5],
                                            "timestamp": [881250949, 881250950]}
    assert items["year"].isna().tolist() == [False, True]
    assert items["genres"].tolist() == ["Animation|Comedy", ""]


def test_unknown_dataset_name_lists_the_choices():
    with pytest.raises(InputError, match=r"dataset\.name: found 'movielens-1b'; expected one of \['movielens-100k'"):
        load_dataset("movielens-1b", None)


def test_missing_column_names_file_and_column(tmp_path):
    _write(tmp_path, "7\t1\t881250949\n", inter_header="user_id:token\titem_id:token\ttimestamp:float\n")
    with pytest.raises(InputError, match=r"ml-100k\.inter.*missing \['rating'\]"):
        read_movielens_100k(tmp_path)


def test_non_numeric_rating_names_file_column_and_value(tmp_path):
    _write(tmp_path, "7\t1\t4\t881250949\n8\t1\tfive\t881250950\n")
    with pytest.raises(InputError, match=r"ml-100k\.inter, column 'rating'.*1 non-numeric values \(first: 'five'\)"):
        read_movielens_100k(tmp_path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputError, match=r"ml-100k\.inter: found no such file"):
        read_movielens_100k(tmp_path)


def test_empty_ids_are_rejected(tmp_path):
    _write(tmp_path, "\t1\t4\t881250949\n")
    with pytest.raises(InputError, match=r"column 'user_id'.*empty ids"):
        read_movielens_100k(tmp_path)
