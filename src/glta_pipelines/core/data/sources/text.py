"""The item text every adapter builds: title, year, genres/categories and a truncated description,
assembled from template parts that are left out when a field they use is empty."""

from __future__ import annotations

import html
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd

from glta_pipelines.core.errors import InputError

TEXT_FIELDS = ("item_id", "title", "year", "genres", "description")
_TAGS = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class ItemTextConfig:
    """``dataset.item_text``: how an item's text is built from its fields."""

    # A part is kept only when every field it names is non-empty (no "()" for a missing year).
    parts: tuple[str, ...] = ("{title}", "({year})", "Genres: {genres}.", "{description}")
    # joins the parts
    separator: str = " "
    max_description_chars: int = 300
    max_genres: int = 10  # most genres/categories kept per item (Goodreads shelves run into hundreds)

    def validate(self) -> None:
        if not self.parts:
            raise InputError("parameter dataset.item_text.parts", "an empty list", "at least one part such as '{title}'")
        for part in self.parts:
            unknown = sorted(set(fields_of(part)) - set(TEXT_FIELDS))
            if unknown:
                raise InputError("parameter dataset.item_text.parts", repr(part), f"fields among {list(TEXT_FIELDS)} (unknown {unknown})")
        for name in ("max_description_chars", "max_genres"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise InputError(f"parameter dataset.item_text.{name}", repr(getattr(self, name)), "a non-negative integer")


@lru_cache(maxsize=256)  # called for every part of every item's text
def fields_of(part: str) -> tuple[str, ...]:
    try:
        return tuple(name for _, name, _, _ in string.Formatter().parse(part) if name)
    except ValueError as error:
        raise InputError("parameter dataset.item_text.parts", repr(part), f"a format string ({error})") from None


def clean_text(value: object) -> str:
    """Plain text: lists joined, HTML tags and entities removed, whitespace collapsed."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, (list, tuple)):
        value = " ".join(clean_text(v) for v in value)
    return _SPACES.sub(" ", html.unescape(_TAGS.sub(" ", str(value)))).strip()


def truncate(text: str, max_chars: int) -> str:
    """Cut at a word boundary within ``max_chars``, marking the cut with an ellipsis."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars].rsplit(" ", 1)[0] if " " in text[:max_chars] else text[:max_chars]
    return cut.rstrip(" ,;:.") + "…"


def genre_list(values: Iterable[object], max_genres: int) -> str:
    """Distinct, non-empty names in order, ``|``-joined (``|`` inside a name becomes ``/``)."""
    seen: dict[str, None] = {}
    for value in values:
        name = clean_text(value).replace("|", "/")
        if name and name not in seen:
            seen[name] = None
    return "|".join(list(seen)[:max_genres])


def render_text(fields: dict[str, str], config: ItemTextConfig) -> str:
    """The item's text from ``config.parts``; parts with an empty field are left out."""
    values = {**fields, "genres": fields.get("genres", "").replace("|", ", ")}
    kept = [part.format(**values) for part in config.parts if all(values.get(f) for f in fields_of(part))]
    return config.separator.join(kept)
