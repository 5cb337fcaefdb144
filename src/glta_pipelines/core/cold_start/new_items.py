"""Items added to a trained model by their text alone: the table a user hands in, checked, and the
model's item-sized tensors grown by one row per new item, with no graph retraining.

- :func:`read_item_table`: a CSV or Parquet file of new items (``item_id``, ``title``, optional
  ``genres`` (``|``-separated), ``year``, ``description``), or one clear error naming the file.
- :func:`check_new_items`: every row checked against the catalogue (a missing title, an id already
  in the catalogue, a duplicate id, an empty table), then in the ingest's item contract with its
  text built by the dataset's template (``dataset.item_text``), as the trained items' texts were.
- :func:`extend_items`: a model's item-sized tensors with the new items appended: graph embeddings
  placed by a content mapper (:func:`~glta_pipelines.core.cold_start.mapper.fit_mapper`, fitted
  on the items training saw) and the GLLM layer's per-item bias at the trained items' mean.

Every existing item keeps its tensors bit for bit, so a known user's scores for the old catalogue
do not move; the new items are scored by the same dot products as the old ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from glta_pipelines.core.cold_start.mapper import MapperConfig, fit_mapper
from glta_pipelines.core.data.sources.contract import validate_items
from glta_pipelines.core.data.sources.text import ItemTextConfig, clean_text, genre_list, render_text, truncate
from glta_pipelines.core.errors import InputError

REQUIRED = ("item_id", "title")
OPTIONAL = ("genres", "year", "description")
SUFFIXES = (".csv", ".parquet")


def read_item_table(path: str | Path, where: str) -> pd.DataFrame:
    """The table of new items at ``path`` (``.csv`` or ``.parquet``), every cell as text."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise InputError(where, repr(str(path)), "a .csv or .parquet file of new items")
    if not path.is_file():
        raise InputError(where, f"{str(path)!r}, which does not exist", "a .csv or .parquet file of new items")
    if path.stat().st_size == 0:
        raise InputError(f"{where} ({path})", "an empty file", f"a header with the columns {list(REQUIRED)} and one row per new item")
    try:
        if path.suffix.lower() == ".csv":
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
        else:
            table = pd.read_parquet(path)
    except Exception as error:  # a damaged file: say which, in one line
        raise InputError(f"{where} ({path})", f"an unreadable file ({type(error).__name__}: {str(error)[:200]})",
                         f"a {path.suffix.lower()[1:].upper()} table of new items") from None
    return table


def check_new_items(table: pd.DataFrame, catalogue_ids: set[str], text: ItemTextConfig, where: str) -> pd.DataFrame:
    """The new items in the ingest's item contract (``item_id``, ``title``, ``year``, ``genres``,
    ``description``, ``text``), or an :class:`InputError` naming the row (from 1) and the field."""
    text.validate()
    table = table.rename(columns=lambda c: str(c).strip())
    missing = [c for c in REQUIRED if c not in table.columns]
    unknown = [c for c in table.columns if c not in (*REQUIRED, *OPTIONAL)]
    if missing or unknown:
        raise InputError(f"{where} columns", list(table.columns),
                         f"{list(REQUIRED)} and optionally {list(OPTIONAL)}"
                         + (f" (missing {missing})" if missing else "") + (f" (unknown {unknown})" if unknown else ""))
    if table.empty:
        raise InputError(where, "no rows", "one row per new item")
    rows, seen = [], {}
    for number, record in enumerate(table.to_dict("records"), start=1):
        item_id, title = _cell(record.get("item_id")), clean_text(_cell(record.get("title")))
        if not item_id:
            raise InputError(f"{where}, row {number}, field 'item_id'", "an empty id", "the new item's id")
        if item_id in catalogue_ids:
            raise InputError(f"{where}, row {number}, field 'item_id'", f"{item_id!r}, already in the model's catalogue",
                             "an id the model does not know (a known item keeps its trained embedding)")
        if item_id in seen:
            raise InputError(f"{where}, row {number}, field 'item_id'", f"{item_id!r}, also in row {seen[item_id]}",
                             "each new item once")
        if not title:
            raise InputError(f"{where}, row {number}, field 'title'", "an empty title", "the item's title (its text starts there)")
        year = _cell(record.get("year"))
        if year and not _is_year(year):
            raise InputError(f"{where}, row {number}, field 'year'", repr(year), "a whole number such as 1999, or empty")
        seen[item_id] = number
        genres = genre_list(_cell(record.get("genres")).split("|"), text.max_genres)
        description = truncate(clean_text(_cell(record.get("description"))), text.max_description_chars)
        fields = {"item_id": item_id, "title": title, "year": str(int(float(year))) if year else "",
                  "genres": genres, "description": description}
        rows.append({**fields, "year": fields["year"] or None, "text": render_text(fields, text)})
    return validate_items(pd.DataFrame(rows), where)


def _cell(value: object) -> str:
    """A cell as stripped text; empty for None, NaN and pandas' NA."""
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value).strip()


def _is_year(value: str) -> bool:
    try:
        return float(value).is_integer()
    except ValueError:
        return False


def extend_items(content: torch.Tensor, item_embeddings: Mapping[str, torch.Tensor], trained: torch.Tensor,
                 item_bias: torch.Tensor | None, config: MapperConfig,
                 ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None, dict[str, list[dict[str, float]]]]:
    """Each of ``item_embeddings`` (named (n_items, d) tables) grown by the new items' rows.

    ``content`` holds one row per old item, then one per new item. For each table a mapper is
    fitted on the ``trained`` items (a boolean mask over the old ones) and places the new rows;
    tables with equal values share one mapper. ``item_bias`` grows by the trained items' mean.
    Returns (grown tables, grown bias, each table's mapper losses per epoch).
    """
    n_old = trained.shape[0]
    n_new = content.shape[0] - n_old
    if n_new < 1:
        raise InputError("new items", f"{content.shape[0]} content rows for {n_old} catalogue items", "at least one new item")
    warm = torch.cat([trained, torch.zeros(n_new, dtype=torch.bool)])
    grown: dict[str, torch.Tensor] = {}
    losses: dict[str, list[dict[str, float]]] = {}
    for name, table in item_embeddings.items():
        twin = next((other for other in grown if torch.equal(item_embeddings[other], table)), None)
        if twin is not None:
            grown[name], losses[name] = grown[twin], losses[twin]
            continue
        padded = torch.cat([table.float(), torch.zeros(n_new, table.shape[1])])
        placed, losses[name] = fit_mapper(content, padded, warm, config)
        grown[name] = torch.cat([table, placed[n_old:].to(table.dtype)])
    bias = None
    if item_bias is not None:
        bias = torch.cat([item_bias, item_bias[trained].mean().expand(n_new).to(item_bias.dtype)])
    return grown, bias, losses


def nearest_items(new: torch.Tensor, old: torch.Tensor, k: int) -> torch.Tensor:
    """(n_new, k) indices of the old items nearest each new one (cosine similarity): a check by eye."""
    similarity = torch.nn.functional.normalize(new.float(), dim=1) @ torch.nn.functional.normalize(old.float(), dim=1).T
    return similarity.topk(min(k, old.shape[0]), dim=1).indices


ENCODERS = ("minilm", "llm")


@dataclass(frozen=True)
class AddItemsConfig:
    """``add_items``: which table of new items goes into which registered model, and how."""

    path: str = "data/01_raw/new_items.csv"  # .csv or .parquet: item_id, title, optional genres, year, description
    model_name: str | None = None  # null: glta-<dataset name>, the model `full` registers
    source_alias: str = "champion"  # the version the items are added to
    alias: str = "added-items"  # the alias the new version gets (champion: serve it at once)
    encoder: str = "minilm"  # the text encoder whose mapper places the items: minilm or llm
    nearest: int = 3  # catalogue items listed beside each new one, to check its placement by eye

    def validate(self) -> None:
        if not str(self.path).strip():
            raise InputError("parameter add_items.path", repr(self.path), "a .csv or .parquet file of new items")
        if self.encoder not in ENCODERS:
            raise InputError("parameter add_items.encoder", repr(self.encoder), f"one of {list(ENCODERS)}")
        for name in ("source_alias", "alias"):
            if not str(getattr(self, name)).strip():
                raise InputError(f"parameter add_items.{name}", repr(getattr(self, name)), "an alias such as champion")
        if self.model_name is not None and not self.model_name.strip():
            raise InputError("parameter add_items.model_name", repr(self.model_name), "a name, or null (glta-<dataset>)")
        if self.nearest < 0:
            raise InputError("parameter add_items.nearest", self.nearest, "an integer >= 0")
