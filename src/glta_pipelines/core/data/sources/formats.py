"""Row parsers and file discovery shared by the adapters (JSON lines, Python literals, delimited
text with or without a header, Parquet)."""

from __future__ import annotations

import ast
import csv
import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from glta_pipelines.core.data.sources.reader import TableSource
from glta_pipelines.core.data.sources.streams import BadRow, Chunk, Parser, Quarantine
from glta_pipelines.core.errors import InputError

log = logging.getLogger(__name__)
_YEAR_IN_TITLE = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*$")


# --------------------------------------------------------------------------- one row
def json_object(line: str) -> dict[str, Any]:
    """A JSON object, or :class:`BadRow` (``invalid_json``: e.g. a truncated line)."""
    try:
        value = json.loads(line)
    except ValueError:
        raise BadRow("invalid_json") from None
    if not isinstance(value, dict):
        raise BadRow("not_an_object")
    return value


def literal_object(line: str) -> dict[str, Any]:
    """A Python dict literal (single-quoted, as in McAuley's 2014 metadata), read safely."""
    try:
        value = ast.literal_eval(line)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise BadRow("invalid_literal") from None
    if not isinstance(value, dict):
        raise BadRow("not_an_object")
    return value


def need(record: dict[str, Any], *keys: str) -> Any:
    """The first of ``keys`` present in ``record`` (later keys are fallbacks), else ``missing_<key>``."""
    for key in keys:
        value = record.get(key)
        if value is not None:
            return value
    raise BadRow(f"missing_{keys[0]}")


def split_title_year(title: str) -> tuple[str, str]:
    """``"Toy Story (1995)"`` -> ``("Toy Story", "1995")``; no year -> ``(title, "")``."""
    match = _YEAR_IN_TITLE.match(title.strip())
    return (match["title"], match["year"]) if match else (title.strip(), "")


def id_finder(key: str, quote: str = '"') -> Callable[[str], str | None]:
    """Cheap id lookup in a raw line (``"key": "value"``) so unwanted metadata is never parsed."""
    pattern = re.compile(re.escape(f"{quote}{key}{quote}") + r"\s*:\s*" + quote + r"([^" + quote + r"]*)" + quote)

    def find(line: str) -> str | None:
        match = pattern.search(line)
        return match.group(1) if match else None
    return find


def delimited(path: Path, delimiter: str, columns: Sequence[str | None], expected: str, *, quoted: bool = False,
              strip_types: bool = False, defaults: Sequence[str] | None = None) -> Callable[[str], Parser]:
    """A header-driven parser factory: the header must hold ``columns`` (None: absent, the default
    value is returned); every row must have the header's number of fields."""
    def split(line: str) -> list[str]:
        return next(csv.reader([line], delimiter=delimiter)) if quoted else line.split(delimiter)

    def make(header_line: str) -> Parser:
        names = [n.strip().lstrip("\ufeff") for n in split(header_line)]
        if strip_types:  # RecBole atomic files: "name:type"
            names = [n.split(":", 1)[0] for n in names]
        missing = [c for c in columns if c is not None and c not in names]
        if missing:
            raise InputError(f"file {path}", f"header columns {names} (delimiter {delimiter!r})",
                             f"columns {[c for c in columns if c]} (missing {missing}); {expected}")
        index = [names.index(c) if c is not None else None for c in columns]
        fill = list(defaults or [""] * len(columns))
        width = len(names)

        def parse(line: str) -> tuple:
            try:
                fields = split(line)
            except csv.Error:
                raise BadRow("malformed_csv") from None
            if len(fields) != width:
                raise BadRow("wrong_field_count")
            return tuple(fields[i] if i is not None else fill[n] for n, i in enumerate(index))
        return parse
    return make


def fixed_fields(delimiter: str, width: int) -> Callable[[str], list[str]]:
    """Split a header-less line that must have exactly ``width`` fields."""
    def split(line: str) -> list[str]:
        fields = line.split(delimiter)
        if len(fields) != width:
            raise BadRow("wrong_field_count")
        return fields
    return split


# --------------------------------------------------------------------------- Parquet
class _RowText(Sequence):
    """Raw text of a Parquet row, built only for the rows that end up in the quarantine."""

    def __init__(self, names: list[str], records: list[tuple]) -> None:
        self.names, self.records = names, records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i):  # type: ignore[override]
        return json.dumps(dict(zip(self.names, self.records[i])), default=str)


def parquet_table(path: Path, columns: Sequence[str | None], defaults: Sequence[Any], expected: str) -> TableSource:
    """A Parquet file read in record batches; ``None`` columns take their default value."""
    def chunks(quarantine: Quarantine, chunk_lines: int, keep_id) -> Iterator[Chunk]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not path.is_file():
            raise InputError(f"file {path}", "no such file", "an existing file")
        try:
            table = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as error:
            raise InputError(f"file {path}", f"a file that is not Parquet ({error})", expected) from None
        names = table.schema_arrow.names
        missing = [c for c in columns if c is not None and c not in names]
        if missing:
            raise InputError(f"file {path}", f"columns {names}", f"columns {[c for c in columns if c]} (missing {missing})")
        if table.metadata.num_rows == 0:
            raise InputError(f"file {path}", "0 rows", expected)
        present = [c for c in columns if c is not None]
        start = 0
        for batch in table.iter_batches(batch_size=chunk_lines, columns=present):
            data = batch.to_pydict()
            n = batch.num_rows
            values = [data[c] if c is not None else [defaults[k]] * n for k, c in enumerate(columns)]
            records = list(zip(*values))
            yield Chunk(list(range(start + 1, start + n + 1)), _RowText(present, [tuple(data[c][r] for c in present)
                                                                             for r in range(n)]), records)
            start += n
    return TableSource(path, chunks)


# --------------------------------------------------------------------------- files
def find_file(folder: Path, patterns: Sequence[str], category: str | None, what: str, *,
              parameter: str = "dataset.category", exclude_prefix: str | None = None) -> Path:
    """The file for ``category`` among ``patterns`` (``{category}`` in a pattern). With no category,
    the folder must hold files of exactly one."""
    if not folder.is_dir():
        raise InputError("parameter dataset.path", f"{str(folder)!r}, which is not a folder", f"the folder holding the {what}")
    if category is not None:
        for pattern in patterns:
            candidate = folder / pattern.format(category=category)
            if candidate.is_file():
                return candidate
        names = [pattern.format(category=category) for pattern in patterns]
        raise InputError(f"folder {folder}", f"no {' or '.join(names)} (files there: {_listing(folder)})", f"the {what}")
    found: dict[str, Path] = {}
    for pattern in patterns:  # a file claimed by an earlier (more specific) pattern is not re-read
        regex = _name_regex(pattern)
        for candidate in sorted(folder.iterdir()):
            match = regex.match(candidate.name)
            if (match and candidate not in found.values()
                    and not (exclude_prefix and candidate.name.startswith(exclude_prefix))):
                found.setdefault(match["category"], candidate)
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        names = [pattern.replace("{category}", "<category>") for pattern in patterns]
        raise InputError(f"folder {folder}", f"no file named like {' or '.join(names)} (files there: {_listing(folder)})",
                         f"the {what}")
    raise InputError(f"parameter {parameter}", "null, but the folder holds several", f"one of {sorted(found)}")


def find_optional(folder: Path, patterns: Sequence[str], category: str = "") -> Path | None:
    """The first existing metadata file among ``patterns`` for ``category``, or None (with a warning:
    the run goes on and items are titled by their ids)."""
    names = [pattern.format(category=category) for pattern in patterns]
    for name in names:
        if (folder / name).is_file():
            return folder / name
    log.warning("No item metadata in %s (looked for %s): items get their ids as titles", folder, " or ".join(names))
    return None


def category_of(path: Path, patterns: Sequence[str]) -> str:
    """The ``{category}`` part of a file name matched by one of ``patterns``."""
    for pattern in patterns:
        match = _name_regex(pattern).match(path.name)
        if match:
            return match["category"]
    raise ValueError(path)


def _name_regex(pattern: str) -> re.Pattern:
    """A file-name pattern such as ``meta_{category}.json.gz`` as a regex capturing the category."""
    return re.compile("^" + re.escape(pattern).replace(re.escape("{category}"), "(?P<category>.+)") + "$")


def _listing(folder: Path, limit: int = 10) -> list[str]:
    names = sorted(p.name for p in folder.iterdir())
    return names[:limit] + ([f"... {len(names) - limit} more"] if len(names) > limit else [])
