"""Streaming readers shared by every adapter: files are read in chunks of lines, so memory holds
one chunk of raw text at a time plus the compact result (integer id codes, numbers).

- A file that is not what its name says (not gzip, empty, wrong delimiter, missing column) fails
  at once: :class:`InputError` naming the file, what was found and what was expected.
- A row that cannot be parsed is counted per reason and kept in a :class:`Quarantine`; the
  caller fails only when a file's bad share exceeds a threshold (:func:`check_bad_share`).
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from glta_pipelines.core.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
# A file whose first lines are all unreadable is the wrong file, not a file with bad rows.
SNIFF_LINES = 1000
RAW_CHARS_KEPT = 500


class BadRow(Exception):
    """A row that cannot be parsed; ``reason`` is a short, countable code such as ``invalid_json``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


Parser = Callable[[str], tuple]


@dataclass
class Quarantine:
    """Rows that could not be parsed: exact counts per (file, reason), and the rows themselves
    (the first ``max_rows`` of them, raw text truncated) for a person to inspect."""

    max_rows: int = 100_000
    counts: Counter = field(default_factory=Counter)
    rows: list[tuple[str, int, str, str]] = field(default_factory=list)

    def add(self, file: str, line: int, reason: str, raw: str) -> None:
        self.counts[(file, reason)] += 1
        if len(self.rows) < self.max_rows:
            self.rows.append((file, int(line), reason, raw[:RAW_CHARS_KEPT]))

    def total(self, file: str | None = None) -> int:
        return sum(n for (f, _), n in self.counts.items() if file is None or f == file)

    def by_reason(self, file: str | None = None) -> dict[str, int]:
        out: Counter = Counter()
        for (f, reason), n in self.counts.items():
            if file is None or f == file:
                out[reason] += n
        return dict(sorted(out.items()))

    def reasons_text(self, file: str) -> str:
        """``"invalid_json: 3, empty_user_id: 1"`` for ``file``."""
        return ", ".join(f"{r}: {n}" for r, n in self.by_reason(file).items())

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.rows, columns=["file", "line", "reason", "raw"])
        return frame.astype({"file": "string", "line": "int64", "reason": "string", "raw": "string"})


def open_text(path: Path, encoding: str = "utf-8") -> TextIO:
    """Open a plain or gzip-compressed text file, checking that it is what its name says."""
    if not path.is_file():
        raise InputError(f"file {path}", "no such file", "an existing file")
    with open(path, "rb") as handle:
        head = handle.read(2)
    if not head:
        raise InputError(f"file {path}", "an empty file (0 bytes)", "a data file with at least one row")
    compressed = head == GZIP_MAGIC
    if path.suffix == ".gz" and not compressed:
        raise InputError(f"file {path}", f"data that is not gzip (it starts with {head!r})",
                         "a gzip-compressed file, as its .gz name says")
    raw = gzip.open(path, "rb") if compressed else open(path, "rb")  # noqa: SIM115 (closed by the wrapper)
    return io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline=None)


def numbered_lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its newline) for every non-blank line."""
    with open_text(path, encoding) as handle:
        number = 0
        try:
            for number, line in enumerate(handle, start=1):  # noqa: B007 (number is read after the loop)
                line = line.rstrip("\r\n")
                if line.strip():
                    yield number, line
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            raise InputError(f"file {path}", f"a gzip stream that breaks off after line {number} ({error})",
                             "a complete gzip file (download it again)") from None


@dataclass
class Chunk:
    """Parsed rows of one chunk: their line numbers, raw text (for the quarantine) and values."""

    lines: list[int]
    raws: list[str]
    records: list[tuple]


def parsed_chunks(
    path: Path, parse: Parser | Callable[[str], Parser], expected: str, quarantine: Quarantine, *,
    chunk_lines: int, encoding: str = "utf-8", header: bool = False,
    prefilter: Callable[[str], bool] | None = None,
) -> Iterator[Chunk]:
    """Parse ``path`` line by line into chunks; bad lines go to ``quarantine``.

    With ``header``, ``parse`` is called with the first line and returns the line parser (so a
    missing column fails at once). ``prefilter`` skips lines cheaply before parsing (e.g.
    metadata of items nobody interacted with). If none of the first :data:`SNIFF_LINES` lines
    parses, the file is the wrong one and fails at once.
    """
    name, lines = str(path), numbered_lines(path, encoding)
    if header:
        first = next(lines, None)
        if first is None:
            raise InputError(f"file {path}", "no lines", f"a header line, then {expected}")
        parse = parse(first[1])
    chunk, read, good, first_bad = Chunk([], [], []), 0, 0, None
    for number, line in lines:
        if prefilter is not None and not prefilter(line):
            continue
        read += 1
        try:
            chunk.records.append(parse(line))
            chunk.lines.append(number)
            chunk.raws.append(line)
            good += 1
        except BadRow as bad:
            quarantine.add(name, number, bad.reason, line)
            first_bad = first_bad or (number, bad.reason, line)
        if read == SNIFF_LINES and good == 0:
            _wrong_file(path, quarantine, read, first_bad, expected)
        if len(chunk.records) >= chunk_lines:
            yield chunk
            chunk = Chunk([], [], [])
    if read == 0 and prefilter is None:
        raise InputError(f"file {path}", "no data lines", expected)
    if 0 < read < SNIFF_LINES and good == 0:
        _wrong_file(path, quarantine, read, first_bad, expected)
    if chunk.records:
        yield chunk


def _wrong_file(path: Path, quarantine: Quarantine, read: int, first_bad: tuple, expected: str) -> None:
    number, reason, line = first_bad
    reasons = quarantine.reasons_text(str(path))
    raise InputError(f"file {path}", f"no readable line among the first {read} ({reasons}; line {number}: {line[:120]!r})",
                     expected)


def check_bad_share(quarantine: Quarantine, file: Path, rows_read: int, max_fraction: float) -> None:
    """Fail when more than ``max_fraction`` of ``file``'s rows were quarantined."""
    bad = quarantine.total(str(file))
    if rows_read and bad / rows_read > max_fraction:
        reasons = quarantine.reasons_text(str(file))
        first = next((r for r in quarantine.rows if r[0] == str(file)), None)
        example = f"; first at line {first[1]} ({first[2]}): {first[3][:120]!r}" if first else ""
        raise InputError(f"file {file}", f"{bad} of {rows_read} rows unreadable ({bad / rows_read:.2%}; {reasons}{example})",
                         f"at most {max_fraction:.2%} (parameter dataset.max_bad_fraction): repair the file or raise the threshold")


class IdCodes:
    """Incremental dictionary encoding of string ids: memory grows with distinct ids, not rows."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def encode(self, values: pd.Series) -> np.ndarray:
        codes, uniques = pd.factorize(values, sort=False)
        lookup = np.fromiter((self.index.setdefault(u, len(self.index)) for u in uniques), dtype=np.int64,
                             count=len(uniques))
        return lookup[codes].astype(np.int32)

    def decode(self, codes: np.ndarray) -> pd.Series:
        categories = pd.array(list(self.index), dtype="string")
        return pd.Series(categories.take(codes), dtype="string")


TIMESTAMP_UNITS = ("s", "ms", "iso")


def check_timestamp_unit(unit: str, where: str) -> None:
    """``unit`` must be one of :data:`TIMESTAMP_UNITS` or a strftime format (containing ``%``)."""
    if unit not in TIMESTAMP_UNITS and "%" not in unit:
        raise InputError(where, repr(unit), f"one of {list(TIMESTAMP_UNITS)} or a strftime format such as '%Y-%m-%d'")


def to_unix_seconds(values: pd.Series, unit: str) -> pd.Series:
    """Unix seconds (float, NaN where unreadable) from seconds, milliseconds, an ISO date or a
    ``strftime`` format (a string containing ``%``)."""
    if unit in ("s", "ms"):
        numbers = pd.to_numeric(values, errors="coerce")
        return numbers // 1000 if unit == "ms" else numbers.floordiv(1)
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601" if unit == "iso" else unit)
    seconds = pd.Series(np.nan, index=values.index)
    ok = parsed.notna()
    seconds[ok] = (parsed[ok] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return seconds
