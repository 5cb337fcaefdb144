"""The two tables every adapter produces and every later stage reads.

- ``interactions``: user_id (str), item_id (str), rating (float64), timestamp (int64, Unix seconds)
- ``items``: item_id (str), title (str), year (Int64, nullable), genres (str, ``|``-separated),
  description (str, truncated), text (str: the item's text, built from a template)
"""

from __future__ import annotations

import pandas as pd

from glta_pipelines.core.errors import InputError

INTERACTION_COLUMNS = {"user_id": "string", "item_id": "string", "rating": "float64", "timestamp": "int64"}
ITEM_COLUMNS = {"item_id": "string", "title": "string", "year": "Int64", "genres": "string",
                "description": "string", "text": "string"}


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
        "description": frame["description"].fillna("").astype("string"),
        "text": frame["text"].fillna("").astype("string"),
    })
    return out.reset_index(drop=True)


def _numeric(frame: pd.DataFrame, column: str, source: str, integer: bool) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna()
    if bad.any():
        first = frame.loc[bad, column].iloc[0]
        raise InputError(f"{source}, column '{column}'", f"{int(bad.sum())} non-numeric values (first: {first!r})",
                         "a number in every row")
    return values.astype("int64" if integer else "float64")


def _require_columns(frame: pd.DataFrame, columns: dict[str, str], source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(source, f"columns {list(frame.columns)}", f"columns {list(columns)} (missing {missing})")


def _ids(frame: pd.DataFrame, column: str, source: str) -> pd.Series:
    """Stripped string ids; the work is done once per distinct id, and rows share the id objects
    (a per-row ``str.strip`` would allocate a new string for each of millions of rows)."""
    codes, uniques = pd.factorize(frame[column].astype("string"))
    uniques = pd.Series(uniques, dtype="string").str.strip()
    empty = (codes == -1) | (uniques == "").to_numpy()[codes]
    if empty.any():
        raise InputError(f"{source}, column '{column}'", f"{int(empty.sum())} empty ids", "a non-empty id in every row")
    return pd.Series(uniques.array.take(codes), index=frame.index, dtype="string")
