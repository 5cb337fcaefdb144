"""Typed ``dataset`` parameters (``conf/base/parameters_ingest.yml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.data.sources.streams import check_timestamp_unit
from glta_pipelines.core.data.sources.text import ItemTextConfig
from glta_pipelines.core.errors import InputError


@dataclass(frozen=True)
class GoodreadsSettings:
    include_unread: bool = False  # shelved but not read
    include_zero_ratings: bool = True  # read but not rated (rating 0)
    # shelves that record an intention, not a reading
    excluded_shelves: tuple[str, ...] = ("to-read", "currently-reading", "favorites", "owned", "books-i-own")


@dataclass(frozen=True)
class GenericSettings:
    """A user's own tables: CSV/TSV (plain or .gz) or Parquet, with a column mapping."""

    interactions_file: str = "interactions.csv"
    items_file: str | None = "items.csv"  # read when present; without it items are titled by id
    # column separator of CSV files (.tsv files are read as tab-separated)
    delimiter: str = ","
    # user id column of the interactions file
    user_column: str = "user_id"
    # item id column of the interactions file
    item_column: str = "item_id"
    rating_column: str | None = "rating"  # null: every row counts as rating 1
    timestamp_column: str | None = "timestamp"  # null: all rows at time 0 (no time order)
    timestamp_unit: str = "s"  # s, ms, iso, or a strftime format such as "%Y-%m-%d"
    # item id column of the items file
    item_id_column: str = "item_id"
    # title column of the items file (null: titled by id)
    title_column: str | None = "title"
    # year column of the items file, if any
    year_column: str | None = None
    # genres column of the items file, if any
    genres_column: str | None = None
    # separator between genres in that column
    genres_separator: str = "|"
    # description column of the items file, if any
    description_column: str | None = None

    def validate(self) -> None:
        check_timestamp_unit(self.timestamp_unit, "parameter dataset.generic.timestamp_unit")
        if not self.delimiter:
            raise InputError("parameter dataset.generic.delimiter", repr(self.delimiter), "a non-empty delimiter")


@dataclass(frozen=True)
class DatasetConfig:
    name: str = "movielens-100k"
    path: str | None = None
    category: str | None = None  # Amazon category / Goodreads genre in the file names; null: the only one
    # the words GLTA's prompts use for an item and for what a user did with it; null: the adapter's
    # (movie/watched, book/read, product/bought, item/interacted with)
    item_noun: str | None = None
    interaction_verb: str | None = None
    max_bad_fraction: float = 0.01
    chunk_lines: int = 100_000
    item_text: ItemTextConfig = field(default_factory=ItemTextConfig)
    goodreads: GoodreadsSettings = field(default_factory=GoodreadsSettings)
    generic: GenericSettings = field(default_factory=GenericSettings)

    def validate(self) -> None:
        if not isinstance(self.max_bad_fraction, (int, float)) or not 0 <= self.max_bad_fraction < 1:
            raise InputError("parameter dataset.max_bad_fraction", repr(self.max_bad_fraction), "a fraction in [0, 1)")
        if not isinstance(self.chunk_lines, int) or self.chunk_lines < 1:
            raise InputError("parameter dataset.chunk_lines", repr(self.chunk_lines), "a positive integer")


def dataset_config_from_params(params: dict[str, Any] | None) -> DatasetConfig:
    """DatasetConfig from the ``dataset`` parameters; unknown keys and bad values name the parameter."""
    return config_from_params(DatasetConfig, params, "dataset")
