"""Our split as RecBole atomic files, so RecBole's models run on exactly the same train/valid/test.

Format (RecBole docs, "Atomic Files"): one header line of ``name:type`` fields separated by tabs,
types ``token``, ``token_seq``, ``float``, ``float_seq``; one row per line. With
``benchmark_filename: [train, valid, test]`` RecBole reads ``<name>.train.inter``,
``<name>.valid.inter`` and ``<name>.test.inter`` as the split instead of splitting itself; the
``.item`` file gives item features. Ids are the source data's own ids (RecBole remaps tokens).
Written as text only; RecBole is never imported.
"""

from __future__ import annotations

import re

import pandas as pd

FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*:(token|token_seq|float|float_seq)$")
INTER_HEADER = ("user_id:token", "item_id:token", "timestamp:float")
ITEM_HEADER = ("item_id:token", "title:token_seq", "year:token", "genres:token_seq")


def _column(values: pd.Series) -> pd.Series:
    """A column's fields on one line without tabs (RecBole splits rows on tabs and lines on newlines);
    missing values are empty fields."""
    text = values.map(str, na_action="ignore").astype(object)
    return text.where(values.notna(), "").str.replace(r"[\t\r\n]+", " ", regex=True).str.strip()


def _atomic(header: tuple[str, ...], rows: pd.DataFrame) -> str:
    if rows.empty:
        return "\t".join(header) + "\n"
    lines = _column(rows.iloc[:, 0]).str.cat([_column(rows[c]) for c in rows.columns[1:]], sep="\t")
    return "\n".join(["\t".join(header), *lines]) + "\n"


def recbole_files(name: str, splits: dict[str, pd.DataFrame], user_map: pd.DataFrame, item_map: pd.DataFrame,
                  items: pd.DataFrame) -> dict[str, str]:
    """``{"<name>.train.inter": text, ..., "<name>.item": text}`` for the encoded ``splits``."""
    files = {}
    for split, frame in splits.items():
        rows = frame.merge(user_map, on="user_idx").merge(item_map, on="item_idx")
        files[f"{name}.{split}.inter"] = _atomic(INTER_HEADER, rows[["user_id", "item_id", "timestamp"]])
    catalogue = item_map.merge(items, on="item_id", how="left").sort_values("item_idx")
    genres = catalogue["genres"].fillna("").astype(str).str.replace("|", " ", regex=False)
    files[f"{name}.item"] = _atomic(ITEM_HEADER, catalogue.assign(genres=genres)[["item_id", "title", "year", "genres"]])
    return files


def read_atomic(text: str) -> pd.DataFrame:
    """Parse an atomic file by RecBole's rules (for tests and checks): header fields ``name:type``."""
    lines = text.rstrip("\n").split("\n")
    header = lines[0].split("\t")
    bad = [field for field in header if not FIELD.match(field)]
    if bad:
        raise ValueError(f"header fields {bad}: expected name:type with type token, token_seq, float or float_seq")
    rows = [line.split("\t") for line in lines[1:]]
    if any(len(row) != len(header) for row in rows):
        raise ValueError(f"a row without {len(header)} tab-separated fields")
    frame = pd.DataFrame(rows, columns=[field.split(":")[0] for field in header])
    for field in header:
        column, kind = field.split(":")
        if kind == "float":
            frame[column] = pd.to_numeric(frame[column])
    return frame
