"""One adapter per public format: where its files are and how one row parses.

Each returns a :class:`Source`; :func:`~glta_pipelines.core.data.sources.reader.read_source` does the
rest the same way for all. Parsers return ``(user, item, rating, timestamp, *extras)`` for an
interaction and ``(item_id, title, year, genres: list, description)`` for an item.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from glta_pipelines.core.data.sources.formats import (
    delimited,
    find_file,
    find_optional,
    category_of,
    fixed_fields,
    id_finder,
    json_object,
    literal_object,
    need,
    parquet_table,
    split_title_year,
)
from glta_pipelines.core.data.sources.reader import Source, TableSource, text_table
from glta_pipelines.core.data.sources.settings import DatasetConfig
from glta_pipelines.core.errors import InputError

Adapter = Callable[[Path | None, DatasetConfig], Source]
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- MovieLens
def bundled_movielens_100k_dir() -> Path:
    """Folder of MovieLens-100K inside the installed ``recbole`` wheel (recbole is never imported)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("package recbole", "not installed", "recbole==1.2.1 installed with --no-deps (run `make install`)")
    return Path(next(iter(spec.submodule_search_locations))) / "dataset_example" / "ml-100k"


def movielens_100k(folder: Path | None, config: DatasetConfig) -> Source:
    """RecBole's atomic files ``ml-100k.inter`` and ``ml-100k.item`` (tab-separated, typed header)."""
    folder = folder or bundled_movielens_100k_dir()
    inter, item = folder / "ml-100k.inter", folder / "ml-100k.item"
    expected = "a RecBole atomic file (tab-separated, header name:type), MovieLens-100K as shipped by recbole"
    interactions = text_table(inter, delimited(inter, "\t", ("user_id", "item_id", "rating", "timestamp"), expected,
                                               strip_types=True), expected, header=True)
    columns = ("item_id", "movie_title", "release_year", "class")
    parse_item = delimited(item, "\t", columns, expected, strip_types=True)

    def items(header: str):
        parse = parse_item(header)

        def row(line: str) -> tuple:
            item_id, title, year, genres = parse(line)
            return item_id, title, year, genres.split(), ""
        return row
    return Source(interactions, text_table(item, items, expected, header=True))


def _movie_row(item_id: str, title: str, genres: str) -> tuple:
    title, year = split_title_year(title)
    names = [] if genres.strip() in ("", "(no genres listed)") else genres.split("|")
    return item_id, title, year, names, ""


def movielens_dat(folder: Path | None, config: DatasetConfig) -> Source:
    """MovieLens 1M / 10M: ``ratings.dat`` and ``movies.dat``, ``::``-separated, latin-1."""
    folder = _folder(folder, "MovieLens ratings.dat and movies.dat")
    ratings, movies = _must_exist(folder / "ratings.dat"), find_optional(folder, ("movies.dat",))
    split_rating, split_movie = fixed_fields("::", 4), fixed_fields("::", 3)
    expected = "'::'-separated lines UserID::MovieID::Rating::Timestamp (MovieLens 1M/10M ratings.dat)"
    interactions = text_table(ratings, lambda line: tuple(split_rating(line)), expected, encoding="latin-1")
    items = text_table(movies, lambda line: _movie_row(*split_movie(line)),
                       "'::'-separated lines MovieID::Title (Year)::Genre|Genre", encoding="latin-1",
                       id_of=lambda line: line.split("::", 1)[0]) if movies else None
    return Source(interactions, items)


def movielens_csv(folder: Path | None, config: DatasetConfig) -> Source:
    """MovieLens 20M / 25M / latest: ``ratings.csv`` and ``movies.csv`` (with headers)."""
    folder = _folder(folder, "MovieLens ratings.csv and movies.csv")
    ratings, movies = _must_exist(folder / "ratings.csv"), find_optional(folder, ("movies.csv",))
    expected = "comma-separated ratings with header userId,movieId,rating,timestamp"
    interactions = text_table(ratings, delimited(ratings, ",", ("userId", "movieId", "rating", "timestamp"), expected),
                              expected, header=True)
    movie_expected = "comma-separated movies with header movieId,title,genres (titles quoted where they hold commas)"
    parse_movie = delimited(movies, ",", ("movieId", "title", "genres"), movie_expected, quoted=True)
    items = text_table(movies, lambda header: (lambda line, parse=parse_movie(header): _movie_row(*parse(line))),
                       movie_expected, header=True, id_of=lambda line: line.split(",", 1)[0]) if movies else None
    return Source(interactions, items)


# --------------------------------------------------------------------------- Amazon
def _flatten(value) -> list:
    if isinstance(value, (list, tuple)):
        return [leaf for v in value for leaf in _flatten(v)]
    return [] if value is None else [value]


def _category_files(folder: Path | None, config: DatasetConfig, patterns: tuple[str, ...],
                    meta_patterns: tuple[str, ...], what: str) -> tuple[Path, Path | None]:
    """(interactions file, metadata file or None) of ``dataset.category`` (or the only category)."""
    folder = _folder(folder, what)
    main = find_file(folder, patterns, config.category, what, exclude_prefix="meta_")
    return main, find_optional(folder, meta_patterns, category_of(main, patterns))


def _reviews(path: Path, user: str, item: tuple[str, ...], rating: str, time: str, what: str) -> TableSource:
    """JSON-lines reviews; ``item`` lists the item key and its fallbacks."""
    def parse(line: str) -> tuple:
        record = json_object(line)
        return need(record, user), need(record, *item), need(record, rating), need(record, time)
    return text_table(path, parse, f"JSON lines with {user}, {'/'.join(item)}, {rating}, {time} ({what})")


def _json_metadata(path: Path | None, id_key: str, genre_keys: tuple[str, ...], text_keys: tuple[str, ...],
                   what: str) -> TableSource | None:
    """JSON-lines item metadata: genres from the first non-empty of ``genre_keys``, the description
    from all of ``text_keys`` in order. None when there is no metadata file."""
    if path is None:
        return None

    def item(line: str) -> tuple:
        record = json_object(line)
        genres = next((names for names in (_flatten(record.get(k)) for k in genre_keys) if names), [])
        description = [text for key in text_keys for text in _flatten(record.get(key))]
        return need(record, id_key), record.get("title"), None, genres, description
    return text_table(path, item, f"JSON lines with {id_key}, title, {'/'.join(genre_keys)}, {', '.join(text_keys)} ({what})",
                      id_of=id_finder(id_key))


def amazon_2014(folder: Path | None, config: DatasetConfig) -> Source:
    """McAuley's 2014 dumps: ``reviews_<Category>_5.json.gz`` (JSON lines) and
    ``meta_<Category>.json.gz`` (one Python dict literal a line, read with ``ast.literal_eval``)."""
    reviews, meta = _category_files(
        folder, config, ("reviews_{category}_5.json.gz", "reviews_{category}_5.json", "reviews_{category}.json.gz"),
        ("meta_{category}.json.gz", "meta_{category}.json"), "Amazon 2014 reviews (reviews_<Category>_5.json.gz)")

    def item(line: str) -> tuple:
        record = literal_object(line)
        return (need(record, "asin"), record.get("title"), None, _flatten(record.get("categories")),
                record.get("description"))
    items = text_table(meta, item, "one Python dict literal a line with asin, title, categories (Amazon 2014 metadata)",
                       id_of=id_finder("asin", "'")) if meta else None
    return Source(_reviews(reviews, "reviewerID", ("asin",), "overall", "unixReviewTime", "Amazon 2014 reviews"), items)


def amazon_2018(folder: Path | None, config: DatasetConfig) -> Source:
    """Ni et al.'s 2018 dumps: ``<Category>_5.json.gz`` and ``meta_<Category>.json.gz`` (JSON lines)."""
    reviews, meta = _category_files(folder, config, ("{category}_5.json.gz", "{category}_5.json"),
                                    ("meta_{category}.json.gz", "meta_{category}.json"),
                                    "Amazon 2018 reviews (<Category>_5.json.gz)")

    items = _json_metadata(meta, "asin", ("category", "main_cat"), ("description",), "Amazon 2018 metadata")
    return Source(_reviews(reviews, "reviewerID", ("asin",), "overall", "unixReviewTime", "Amazon 2018 reviews"), items)


def amazon_2023(folder: Path | None, config: DatasetConfig) -> Source:
    """Hou et al.'s 2023 dumps: ``<Category>.jsonl`` and ``meta_<Category>.jsonl``, plain or gzipped;
    timestamps in milliseconds. An item is a product family (``parent_asin``, the key of the metadata;
    a review without one falls back to its ``asin``), as the dataset's authors recommend."""
    reviews, meta = _category_files(folder, config, ("{category}.jsonl", "{category}.jsonl.gz"),
                                    ("meta_{category}.jsonl", "meta_{category}.jsonl.gz"),
                                    "Amazon 2023 reviews (<Category>.jsonl)")

    items = _json_metadata(meta, "parent_asin", ("categories", "main_category"), ("description", "features"),
                           "Amazon 2023 metadata")
    interactions = _reviews(reviews, "user_id", ("parent_asin", "asin"), "rating", "timestamp", "Amazon 2023 reviews, ms")
    return Source(interactions, items, timestamp_unit="ms")


# --------------------------------------------------------------------------- Goodreads
GOODREADS_DATE = "%a %b %d %H:%M:%S %z %Y"  # "Fri Aug 25 13:55:02 -0700 2017"


def goodreads(folder: Path | None, config: DatasetConfig) -> Source:
    """UCSD Book Graph: ``goodreads_interactions_<genre>.json.gz`` and ``goodreads_books_<genre>.json.gz``.

    ``dataset.goodreads`` decides whether unread shelvings and 0 ratings (read, not rated) count.
    """
    shelf, books = _category_files(
        folder, config, ("goodreads_interactions_{category}.json.gz", "goodreads_interactions_{category}.json"),
        ("goodreads_books_{category}.json.gz", "goodreads_books_{category}.json"),
        "Goodreads interactions (goodreads_interactions_<genre>.json.gz)")
    settings = config.goodreads
    expected = "JSON lines with user_id, book_id, is_read, rating, date_added (Goodreads interactions)"
    interactions = text_table(shelf, lambda line: _shelving(json_object(line)), expected)
    excluded = set(settings.excluded_shelves)

    def book(line: str) -> tuple:
        record = json_object(line)
        shelves = [s for s in record.get("popular_shelves") or [] if isinstance(s, dict)]
        shelves.sort(key=lambda s: -_int(s.get("count")))
        genres = [s.get("name") for s in shelves if s.get("name") not in excluded]
        return (need(record, "book_id"), record.get("title") or record.get("title_without_series"),
                record.get("publication_year"), genres, record.get("description"))

    def drop(frame: pd.DataFrame) -> dict[str, pd.Series]:
        rules = {}
        if not settings.include_unread:
            rules["unread"] = ~frame["is_read"].astype(bool)
        if not settings.include_zero_ratings:
            rules["zero_rating"] = frame["rating"] == 0
        return rules
    items = text_table(books, book, "JSON lines with book_id, title, popular_shelves, description (Goodreads books)",
                       id_of=id_finder("book_id")) if books else None
    return Source(interactions, items, timestamp_unit=GOODREADS_DATE, extras=("is_read",), drop=drop)


def _shelving(record: dict) -> tuple:
    is_read = record.get("is_read")
    return (need(record, "user_id"), need(record, "book_id"), need(record, "rating"), need(record, "date_added"),
            bool(is_read) if isinstance(is_read, bool) else str(is_read).lower() in ("true", "1"))


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


# --------------------------------------------------------------------------- generic
def generic(folder: Path | None, config: DatasetConfig) -> Source:
    """A user's own interactions table (CSV/TSV, plain or .gz, or Parquet) and optional items
    table, mapped by ``dataset.generic``."""
    folder = _folder(folder, "your interactions table")
    settings = config.generic
    inter = _must_exist(folder / settings.interactions_file, "parameter dataset.generic.interactions_file")
    columns = (settings.user_column, settings.item_column, settings.rating_column, settings.timestamp_column)
    expected = f"a table with columns {[c for c in columns if c]} (parameters dataset.generic.*_column)"
    interactions = _table(inter, columns, ("", "", "1", "0"), expected, settings.delimiter)
    items = None
    path = folder / settings.items_file if settings.items_file else None
    if path is not None and not path.is_file():
        log.warning("No items file %s (parameter dataset.generic.items_file): items get their ids as titles", path)
    elif path is not None:
        item_columns = (settings.item_id_column, settings.title_column, settings.year_column, settings.genres_column,
                        settings.description_column)
        table = _table(path, item_columns, ("", "", "", "", ""),
                       f"an items table with columns {[c for c in item_columns if c]}", settings.delimiter)
        items = _map_rows(table, lambda r: (r[0], r[1], r[2], [g for g in str(r[3] or "").split(settings.genres_separator)
                                                               if g.strip()], r[4]))
    unit = settings.timestamp_unit if settings.timestamp_column else "s"
    return Source(interactions, items, timestamp_unit=unit)


def _table(path: Path, columns, defaults, expected: str, delimiter: str) -> TableSource:
    if path.suffix == ".parquet":
        return parquet_table(path, columns, defaults, expected)
    sep = "\t" if path.name.endswith((".tsv", ".tsv.gz")) else delimiter
    return text_table(path, delimited(path, sep, columns, expected, quoted=True, defaults=defaults), expected, header=True)


def _map_rows(table: TableSource, convert: Callable[[tuple], tuple]) -> TableSource:
    def chunks(quarantine, chunk_lines, keep_id):
        for chunk in table.chunks(quarantine, chunk_lines, keep_id):
            chunk.records = [convert(r) for r in chunk.records]
            yield chunk
    return TableSource(table.path, chunks)


# --------------------------------------------------------------------------- helpers
def _folder(folder: Path | None, what: str) -> Path:
    if folder is None:
        raise InputError("parameter dataset.path", "null", f"the folder holding {what}")
    if not folder.is_dir():
        raise InputError("parameter dataset.path", f"{str(folder)!r}, which is not a folder", f"the folder holding {what}")
    return folder


def _must_exist(path: Path, where: str | None = None) -> Path:
    if not path.is_file():
        listing = sorted(p.name for p in path.parent.iterdir())[:10] if path.parent.is_dir() else []
        raise InputError(where or f"file {path}", f"no file {path} (files there: {listing})", f"the file {path.name}")
    return path


ADAPTERS: dict[str, Adapter] = {
    "movielens-100k": movielens_100k,
    "movielens-1m": movielens_dat,
    "movielens-10m": movielens_dat,
    "movielens-20m": movielens_csv,
    "movielens-25m": movielens_csv,
    "movielens-latest": movielens_csv,
    "amazon-2014": amazon_2014,
    "amazon-2018": amazon_2018,
    "amazon-2023": amazon_2023,
    "goodreads": goodreads,
    "generic": generic,
}

# What the items of each format are, and what a user did with them: the words GLTA's prompts use
# (``{item_noun}``, ``{interaction_verb}``), so the LLM is never told a book is a movie.
# ``dataset.item_noun`` / ``dataset.interaction_verb`` override them (a generic dataset of recipes).
ITEM_WORDS: dict[str, tuple[str, str]] = {
    **{name: ("movie", "watched") for name in ADAPTERS if name.startswith("movielens")},
    **{name: ("product", "bought") for name in ADAPTERS if name.startswith("amazon")},
    "goodreads": ("book", "read"),
    "generic": ("item", "interacted with"),
}
