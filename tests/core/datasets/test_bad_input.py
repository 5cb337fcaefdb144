"""Malformed inputs: bad rows are quarantined and counted under the threshold, a clear one-line
cause above it; a file that is not what its name says fails at once."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from glta_pipelines.core.data.sources import load_dataset
from glta_pipelines.core.errors import InputError

FIXTURES = Path(__file__).parents[2] / "fixtures" / "datasets"


def copy_fixture(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


def rewrite_gz(path: Path, edit) -> None:
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    path.write_bytes(gzip.compress(("\n".join(edit(lines)) + "\n").encode()))


def test_truncated_json_line_is_quarantined_under_the_threshold(tmp_path):
    folder = copy_fixture("amazon-2018", tmp_path)
    reviews = folder / "Video_Games_5.json.gz"
    rewrite_gz(reviews, lambda lines: [*lines[:5], lines[5][:40], *lines[6:]])
    data = load_dataset({"name": "amazon-2018", "path": str(folder), "max_bad_fraction": 0.05})
    assert data.report["interactions"]["quarantined_by_reason"] == {"invalid_json": 1}
    assert data.report["interactions"]["rows_read"] == 41 and data.report["interactions"]["kept"] == 39
    row = data.quarantine.iloc[0]
    assert (row["file"], row["line"], row["reason"]) == (str(reviews), 6, "invalid_json")
    assert row["raw"].startswith('{"overall"')


def test_bad_share_above_the_threshold_fails_with_counts_and_the_fix(tmp_path):
    folder = copy_fixture("amazon-2018", tmp_path)
    rewrite_gz(folder / "Video_Games_5.json.gz", lambda lines: [*lines[:5], lines[5][:40], *lines[6:]])
    with pytest.raises(InputError) as error:
        load_dataset({"name": "amazon-2018", "path": str(folder)})
    message = str(error.value)
    assert "Video_Games_5.json.gz" in message and "1 of 41 rows unreadable (2.44%; invalid_json: 1" in message
    assert "first at line 6" in message and "dataset.max_bad_fraction" in message


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda line: line.replace("::5::", "::five::", 1), "non_numeric_rating"),
    (lambda line: "::" + line.split("::", 1)[1], "empty_user_id"),
    (lambda line: line.rsplit("::", 1)[0] + "::yesterday", "bad_timestamp"),
    (lambda line: line + "::extra", "wrong_field_count"),
])
def test_each_bad_row_reason_is_counted(tmp_path, edit, reason):
    folder = copy_fixture("movielens-1m", tmp_path)
    ratings = folder / "ratings.dat"
    lines = ratings.read_text(encoding="latin-1").splitlines()
    lines[0] = edit(lines[0])
    ratings.write_text("\n".join(lines) + "\n", encoding="latin-1")
    data = load_dataset({"name": "movielens-1m", "path": str(folder), "max_bad_fraction": 0.05})
    assert data.report["interactions"]["quarantined_by_reason"] == {reason: 1}
    assert data.quarantine["line"].tolist() == [1]


def test_python_literal_metadata_is_never_evaluated(tmp_path):
    folder = copy_fixture("amazon-2014", tmp_path)
    marker = tmp_path / "pwned"
    rewrite_gz(folder / "meta_Video_Games.json.gz",
               lambda lines: [f"__import__('pathlib').Path({str(marker)!r}).touch()", *lines])
    data = load_dataset({"name": "amazon-2014", "path": str(folder), "max_bad_fraction": 0.2})
    assert not marker.exists()
    assert data.report["items"]["quarantined_by_reason"] == {"invalid_literal": 1}


def test_a_file_named_gz_that_is_not_gzip_fails_at_once(tmp_path):
    folder = copy_fixture("amazon-2018", tmp_path)
    reviews = folder / "Video_Games_5.json.gz"
    reviews.write_bytes(gzip.decompress(reviews.read_bytes()))
    with pytest.raises(InputError, match=r"Video_Games_5\.json\.gz: found data that is not gzip \(it starts with b'\{\"'\); "
                                         r"expected a gzip-compressed file"):
        load_dataset({"name": "amazon-2018", "path": str(folder)})


def test_a_truncated_gzip_download_fails_clearly(tmp_path):
    folder = copy_fixture("goodreads", tmp_path)
    shelf = folder / "goodreads_interactions_young_adult.json.gz"
    shelf.write_bytes(shelf.read_bytes()[:-200])
    with pytest.raises(InputError, match=r"a gzip stream that breaks off after line \d+.*download it again"):
        load_dataset({"name": "goodreads", "path": str(folder)})


def test_wrong_delimiter_fails_at_once_naming_what_was_expected(tmp_path):
    folder = copy_fixture("movielens-1m", tmp_path)
    ratings = folder / "ratings.dat"
    ratings.write_text(ratings.read_text(encoding="latin-1").replace("::", ","), encoding="latin-1")
    with pytest.raises(InputError, match=r"ratings\.dat: found no readable line among the first 41 \(wrong_field_count: 41; "
                                         r"line 1: '1,1,5,1306316960'\); expected '::'-separated lines"):
        load_dataset({"name": "movielens-1m", "path": str(folder)})


def test_missing_required_column_fails_at_once(tmp_path):
    folder = copy_fixture("movielens-20m", tmp_path)
    ratings = folder / "ratings.csv"
    lines = ratings.read_text().splitlines()
    ratings.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    with pytest.raises(InputError, match=r"ratings\.csv: found header columns \['userId', 'movieId', 'rating'\].*missing \['timestamp'\]"):
        load_dataset({"name": "movielens-20m", "path": str(folder)})


def test_json_lines_without_a_required_key_fail_at_once(tmp_path):
    folder = copy_fixture("amazon-2023", tmp_path)
    reviews = folder / "Video_Games.jsonl"
    reviews.write_text(reviews.read_text().replace('"user_id"', '"reviewer"'))
    with pytest.raises(InputError, match=r"Video_Games\.jsonl: found no readable line among the first 41 \(missing_user_id: 41"):
        load_dataset({"name": "amazon-2023", "path": str(folder)})


def test_empty_file_fails_at_once(tmp_path):
    folder = copy_fixture("amazon-2023", tmp_path)
    (folder / "Video_Games.jsonl").write_text("")
    with pytest.raises(InputError, match=r"Video_Games\.jsonl: found an empty file \(0 bytes\)"):
        load_dataset({"name": "amazon-2023", "path": str(folder)})


def test_missing_files_and_folders_are_named(tmp_path):
    with pytest.raises(InputError, match=r"dataset\.path: found '.*nowhere', which is not a folder"):
        load_dataset({"name": "goodreads", "path": str(tmp_path / "nowhere")})
    with pytest.raises(InputError, match=r"no file named like goodreads_interactions_<category>\.json\.gz"):
        load_dataset({"name": "goodreads", "path": str(tmp_path)})
    with pytest.raises(InputError, match=r"ratings\.dat.*files there"):
        load_dataset({"name": "movielens-1m", "path": str(tmp_path)})


def test_bad_metadata_share_also_fails(tmp_path):
    folder = copy_fixture("amazon-2014", tmp_path)
    rewrite_gz(folder / "meta_Video_Games.json.gz", lambda lines: [line[:30] if n % 2 else line for n, line in enumerate(lines)])
    with pytest.raises(InputError, match=r"meta_Video_Games\.json\.gz: found 5 of 10 rows unreadable"):
        load_dataset({"name": "amazon-2014", "path": str(folder)})


@pytest.mark.parametrize(("params", "match"), [
    ({"max_bad_fraction": 2}, r"dataset\.max_bad_fraction: found 2"),
    ({"item_text": {"parts": ["{name}"]}}, r"dataset\.item_text\.parts: found '\{name\}'.*unknown \['name'\]"),
    ({"generic": {"timestamp_unit": "weeks"}}, r"dataset\.generic\.timestamp_unit: found 'weeks'"),
    ({"goodreads": {"include_unrated": True}}, r"dataset\.goodreads\.include_unrated: found an unknown key.*did you mean dataset\.goodreads\.include_unread\?"),
    ({"name": "movielens-1b"}, r"dataset\.name: found 'movielens-1b'; expected one of \['amazon-2014'"),
])
def test_bad_dataset_parameters_are_named(params, match):
    with pytest.raises(InputError, match=match):
        load_dataset({"name": "movielens-1m", "path": str(FIXTURES / "movielens-1m"), **params})
