"""From an adapter's file descriptions to the two contract tables and a data-quality report.

An adapter only says where its files are and how one row parses (:class:`Source`); reading in
chunks, quarantining bad rows, the bad-share threshold, keep-latest deduplication, items without
metadata and the report are done here, the same way for every dataset.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glta_pipelines.core.data.sources.contract import validate_interactions, validate_items
from glta_pipelines.core.data.sources.streams import (
    Chunk,
    IdCodes,
    Parser,
    Quarantine,
    check_bad_share,
    check_timestamp_unit,
    parsed_chunks,
    to_unix_seconds,
)
from glta_pipelines.core.data.sources.text import ItemTextConfig, clean_text, genre_list, render_text, truncate
from glta_pipelines.core.errors import InputError

log = logging.getLogger(__name__)

INTERACTION_FIELDS = ("user_id", "item_id", "rating", "timestamp")
ITEM_FIELDS = ("item_id", "title", "year", "genres", "description")  # genres: a list of names


@dataclass(frozen=True)
class TableSource:
    """One input file and how to read it in chunks: ``chunks(quarantine, chunk_lines, keep_id)``
    yields :class:`Chunk` objects; ``keep_id`` (items only) skips rows of unwanted ids early."""

    path: Path
    chunks: Callable[[Quarantine, int, Callable[[str], bool] | None], Iterator[Chunk]]


def text_table(path: Path, parse: Parser | Callable[[str], Parser], expected: str, *, header: bool = False,
               encoding: str = "utf-8", id_of: Callable[[str], str | None] | None = None) -> TableSource:
    """A line-oriented text file (plain or gzip). ``id_of`` cheaply finds a line's id (or None)."""
    def chunks(quarantine: Quarantine, chunk_lines: int, keep_id: Callable[[str], bool] | None) -> Iterator[Chunk]:
        def kept(line: str) -> bool:
            found = id_of(line)
            return found is None or keep_id(found)
        prefilter = kept if keep_id is not None and id_of is not None else None
        return parsed_chunks(path, parse, expected, quarantine, chunk_lines=chunk_lines, encoding=encoding,
                             header=header, prefilter=prefilter)
    return TableSource(path, chunks)


@dataclass(frozen=True)
class Source:
    """What an adapter hands over: the interactions and (optional) item metadata files."""

    interactions: TableSource
    items: TableSource | None
    timestamp_unit: str = "s"  # s, ms, iso, or a strftime format
    extras: tuple[str, ...] = ()  # further values a parser returns after the four interaction fields
    # Rules that drop valid rows on purpose (e.g. unread shelvings): reason -> rows to drop.
    drop: Callable[[pd.DataFrame], dict[str, pd.Series]] | None = None


@dataclass(frozen=True)
class ReadSettings:
    max_bad_fraction: float = 0.01
    chunk_lines: int = 100_000
    item_text: ItemTextConfig = field(default_factory=ItemTextConfig)


@dataclass
class Dataset:
    interactions: pd.DataFrame
    items: pd.DataFrame
    quarantine: pd.DataFrame
    report: dict[str, Any]


def read_source(name: str, source: Source, settings: ReadSettings) -> Dataset:
    """Read, clean and report: the contract tables, the quarantined rows and a data-quality report."""
    check_timestamp_unit(source.timestamp_unit, f"timestamp unit of adapter {name}")
    quarantine = Quarantine()
    interactions, inter_report = _read_interactions(source, quarantine, settings)
    wanted = set(interactions["item_id"].unique())
    metadata, item_report = _read_metadata(source.items, wanted, quarantine, settings)
    items = build_items(pd.Series(sorted(wanted), dtype="string"), metadata, settings.item_text)
    item_report["with_metadata"] = int(items["item_id"].isin(metadata["item_id"]).sum())
    item_report["without_metadata"] = len(items) - item_report["with_metadata"]
    source_name = str(source.interactions.path)
    report = {
        "dataset": name,
        "files": {"interactions": source_name, "items": str(source.items.path) if source.items else None},
        "interactions": inter_report,
        "items": item_report,
    }
    log.info("Read %s: %d interactions kept of %d rows (%d quarantined, %d duplicates removed); %d items, %d without metadata",
             name, inter_report["kept"], inter_report["rows_read"], inter_report["quarantined"],
             inter_report["duplicates_removed"], len(items), item_report["without_metadata"])
    return Dataset(validate_interactions(interactions, source_name), validate_items(items, f"items of {name}"),
                   quarantine.frame(), report)


def _read_interactions(source: Source, quarantine: Quarantine, settings: ReadSettings) -> tuple[pd.DataFrame, dict]:
    file = source.interactions.path
    users, items = IdCodes(), IdCodes()
    parts: dict[str, list[np.ndarray]] = {"user": [], "item": [], "rating": [], "timestamp": []}
    rows_read, filtered = 0, Counter()
    for chunk in source.interactions.chunks(quarantine, settings.chunk_lines, None):
        rows_read += len(chunk.records)
        frame = _clean_interaction_chunk(chunk, file, source, quarantine)
        if source.drop is not None:
            for reason, drop in source.drop(frame).items():
                drop = drop.fillna(False).astype(bool)
                filtered[reason] += int(drop.sum())
                frame = frame[~drop]
        parts["user"].append(users.encode(frame["user_id"]))
        parts["item"].append(items.encode(frame["item_id"]))
        parts["rating"].append(frame["rating"].to_numpy(np.float64))
        parts["timestamp"].append(frame["timestamp"].to_numpy(np.int64))
        del chunk, frame  # free this chunk's raw text before the next one is read
    bad = quarantine.total(str(file))
    rows_read += bad
    check_bad_share(quarantine, file, rows_read, settings.max_bad_fraction)
    codes = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    if len(codes["user"]) == 0:
        raise InputError(f"file {file}", f"no usable interaction among {rows_read} rows (filtered: {dict(filtered)})",
                         "at least one interaction (check dataset parameters such as include_unread)")
    # keep-latest: a repeated (user, item) keeps its most recent row (the last one on ties)
    order = np.argsort(codes["timestamp"], kind="stable")
    pair = codes["user"].astype(np.int64)[order] * len(items.index) + codes["item"][order]  # one int per (user, item)
    keep = np.sort(order[~pd.Series(pair).duplicated(keep="last").to_numpy()])
    del order, pair
    interactions = pd.DataFrame({
        "user_id": users.decode(codes["user"][keep]),
        "item_id": items.decode(codes["item"][keep]),
        "rating": codes["rating"][keep],
        "timestamp": codes["timestamp"][keep],
    })
    report = {"rows_read": rows_read, "quarantined": bad, "quarantined_by_reason": quarantine.by_reason(str(file)),
              "filtered": dict(filtered), "duplicates_removed": int(len(codes["user"]) - len(keep)), "kept": len(interactions)}
    return interactions, report


def _clean_interaction_chunk(chunk: Chunk, file: Path, source: Source, quarantine: Quarantine) -> pd.DataFrame:
    """Vectorised checks of one chunk; rows failing one go to the quarantine with its reason."""
    frame = pd.DataFrame.from_records(chunk.records, columns=[*INTERACTION_FIELDS, *source.extras])
    frame["user_id"], frame["item_id"] = _id_text(frame["user_id"]), _id_text(frame["item_id"])
    frame["rating"] = pd.to_numeric(frame["rating"], errors="coerce")
    frame["timestamp"] = to_unix_seconds(frame["timestamp"], source.timestamp_unit)
    checks = {
        "empty_user_id": frame["user_id"] == "",
        "empty_item_id": frame["item_id"] == "",
        "non_numeric_rating": frame["rating"].isna(),
        "bad_timestamp": frame["timestamp"].isna(),
    }
    bad = pd.Series(False, index=frame.index)
    for reason, rows in checks.items():
        rows = rows & ~bad
        for position in np.flatnonzero(rows.to_numpy()):
            quarantine.add(str(file), chunk.lines[position], reason, chunk.raws[position])
        bad |= rows
    return frame[~bad]


def _id_text(values: pd.Series) -> pd.Series:
    text = values.where(values.notna(), "").astype(str).str.strip()
    return text.where(text != "None", "")


def _read_metadata(items: TableSource | None, wanted: set[str], quarantine: Quarantine,
                   settings: ReadSettings) -> tuple[pd.DataFrame, dict]:
    """Metadata rows of the wanted items (first row of an id wins); other items are skipped."""
    empty = pd.DataFrame({c: pd.Series(dtype="string") for c in ITEM_FIELDS})
    if items is None:
        return empty, {"metadata_rows_read": 0, "quarantined": 0, "quarantined_by_reason": {}}
    frames, rows_read = [], 0
    for chunk in items.chunks(quarantine, settings.chunk_lines, wanted.__contains__):
        rows_read += len(chunk.records)
        frame = pd.DataFrame.from_records(chunk.records, columns=list(ITEM_FIELDS))
        frame["item_id"] = _id_text(frame["item_id"])
        empty_id = frame["item_id"] == ""
        for position in np.flatnonzero(empty_id.to_numpy()):
            quarantine.add(str(items.path), chunk.lines[position], "empty_item_id", chunk.raws[position])
        frames.append(frame[~empty_id & frame["item_id"].isin(wanted)])
        del chunk, frame
    bad = quarantine.total(str(items.path))
    check_bad_share(quarantine, items.path, rows_read + bad, settings.max_bad_fraction)
    metadata = pd.concat(frames, ignore_index=True) if frames else empty
    metadata = metadata.drop_duplicates("item_id", keep="first")
    return metadata, {"metadata_rows_read": rows_read + bad, "quarantined": bad,
                      "quarantined_by_reason": quarantine.by_reason(str(items.path))}


def build_items(item_ids: pd.Series, metadata: pd.DataFrame, config: ItemTextConfig) -> pd.DataFrame:
    """One row per interacted item: its metadata, or the id as title when it has none, and its text."""
    table = pd.DataFrame({"item_id": item_ids}).merge(metadata, on="item_id", how="left")
    rows = []
    for row in table.itertuples(index=False):
        title = clean_text(row.title) or str(row.item_id)
        year = _year(row.year)
        genres = genre_list(row.genres if isinstance(row.genres, (list, tuple)) else [], config.max_genres)
        description = truncate(clean_text(row.description), config.max_description_chars)
        text = render_text({"item_id": str(row.item_id), "title": title, "year": "" if year is None else str(year),
                            "genres": genres, "description": description}, config)
        rows.append((row.item_id, title, year, genres, description, text))
    return pd.DataFrame(rows, columns=["item_id", "title", "year", "genres", "description", "text"]).astype(
        {"year": "Int64"})


def _year(value: object) -> int | None:
    try:
        year = int(float(str(value).strip()))
    except ValueError:
        return None
    return year if 0 < year < 10_000 else None
