"""Content features of every item, for scoring items the graph has never seen.

Each encoder turns what is known about an item without its interactions into one row per item
(``item_idx`` order), float32:

- :func:`genre_features`: its genres (multi-hot) and its release decade (one-hot).
- :func:`knowledge_graph_features`: the knowledge-graph entities linked to it (actors, directors,
  writers, genres, companies, ...; multi-hot over the entities shared by at least
  ``min_items`` items, since an entity of one item cannot carry anything to another).
- text: the item's text through the bundled MiniLM, the LLM, or the LLM's architecture with
  random weights (``core/llm/text_encoder.py``, one home for text encoders).

:func:`read_knowledge_graph` reads a RecBole-style knowledge graph: ``<name>.kg``
(head_id, relation_id, tail_id) and ``<name>.link`` (item_id, entity_id), as the bundled
MovieLens-100K files (from KB4Rec's Freebase links) are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from glta_pipelines.core.errors import InputError

@dataclass(frozen=True)
class KnowledgeGraphConfig:
    """``cold_start.knowledge_graph``."""

    # Folder of <name>.kg and <name>.link; null: the dataset's folder (the bundled copy for
    # movielens-100k without a dataset.path)
    path: str | None = None
    name: str = "ml-100k"  # the files' stem
    min_items: int = 2  # an entity of a single item cannot carry anything to another item

    def validate(self) -> None:
        if self.min_items < 1:
            raise InputError("parameter cold_start.knowledge_graph.min_items", self.min_items, "a positive integer")


@dataclass(frozen=True)
class RandomLLMConfig:
    """``cold_start.random_llm``: the LLM's architecture with fresh weights (``core/llm/text_encoder.py``)."""

    seed: int = 2025  # of the fresh weights


def knowledge_graph_folder(config: KnowledgeGraphConfig, dataset_name: str, dataset_path: str | None) -> Path:
    """Where the knowledge graph's files are: the parameter, else the dataset's folder."""
    if config.path is not None:
        return Path(config.path)
    if dataset_path is not None:
        return Path(dataset_path)
    if dataset_name == "movielens-100k":
        from glta_pipelines.core.data.sources.adapters import bundled_movielens_100k_dir

        return bundled_movielens_100k_dir()
    raise InputError("parameter cold_start.knowledge_graph.path", "null, and the dataset has no folder",
                     "the folder of <name>.kg and <name>.link (or leave the knowledge-graph mapper out)")


KG_COLUMNS = ("head_id:token", "relation_id:token", "tail_id:token")
LINK_COLUMNS = ("item_id:token", "entity_id:token")


def genre_features(items: pd.DataFrame, item_map: pd.DataFrame) -> torch.Tensor:
    """Multi-hot genres and one-hot release decade of every mapped item (an item without either: zeros)."""
    table = item_map.merge(items, on="item_id", how="left").sort_values("item_idx")
    genres = table["genres"] if "genres" in table.columns else pd.Series([[]] * len(table))
    names = [[str(g) for g in (row if isinstance(row, (list, tuple, np.ndarray)) else [])] for row in genres]
    vocabulary = sorted({g for row in names for g in row})
    years = pd.to_numeric(table["year"], errors="coerce") if "year" in table.columns else pd.Series([np.nan] * len(table))
    decades = sorted({int(y) // 10 for y in years.dropna()})
    features = torch.zeros(len(table), len(vocabulary) + len(decades))
    column = {g: i for i, g in enumerate(vocabulary)}
    for row, row_names in enumerate(names):
        for g in row_names:
            features[row, column[g]] = 1.0
    decade_column = {d: len(vocabulary) + i for i, d in enumerate(decades)}
    for row, year in enumerate(years.to_numpy()):
        if not np.isnan(year):
            features[row, decade_column[int(year) // 10]] = 1.0
    return features


def read_knowledge_graph(folder: Path, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(triples: head, relation, tail; links: item_id, entity) of ``folder/<name>.kg`` and ``.link``."""
    tables = []
    for suffix, columns, short in ((".kg", KG_COLUMNS, ("head", "relation", "tail")),
                                   (".link", LINK_COLUMNS, ("item_id", "entity"))):
        path = Path(folder) / f"{name}{suffix}"
        if not path.is_file():
            raise InputError(f"knowledge-graph file {path}", "no such file",
                             f"RecBole atomic files {name}.kg and {name}.link (parameter cold_start.knowledge_graph)")
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        if tuple(table.columns) != columns:
            raise InputError(f"knowledge-graph file {path} header", list(table.columns), f"the columns {list(columns)}")
        tables.append(table.set_axis(list(short), axis=1))
    return tables[0], tables[1]


def knowledge_graph_features(triples: pd.DataFrame, links: pd.DataFrame, item_map: pd.DataFrame,
                             min_items: int = 2) -> torch.Tensor:
    """Multi-hot over the (relation, entity) pairs next to each item's entity that at least ``min_items``
    items share; an item without a link (or without shared entities) gets a zero row."""
    entity_of = links.drop_duplicates("item_id").merge(item_map.astype({"item_id": str}), on="item_id")
    item_of_entity = dict(zip(entity_of["entity"], entity_of["item_idx"]))
    # both directions: (film, actor, x) and (producer, film-of, film) describe the film
    out = triples[triples["head"].isin(item_of_entity)].rename(columns={"head": "item", "tail": "neighbour"})
    into = triples[triples["tail"].isin(item_of_entity)].rename(columns={"tail": "item", "head": "neighbour"})
    edges = pd.concat([out, into], ignore_index=True)
    edges["item_idx"] = edges["item"].map(item_of_entity)
    edges["feature"] = edges["relation"] + "|" + edges["neighbour"]
    edges = edges.drop_duplicates(["item_idx", "feature"])
    shared = edges.groupby("feature")["item_idx"].transform("size") >= min_items
    edges = edges[shared]
    vocabulary = {f: i for i, f in enumerate(sorted(edges["feature"].unique()))}
    features = torch.zeros(len(item_map), len(vocabulary))
    if vocabulary:
        rows = torch.from_numpy(np.array(edges["item_idx"], dtype=np.int64))
        cols = torch.from_numpy(np.array(edges["feature"].map(vocabulary), dtype=np.int64))
        features[rows, cols] = 1.0
    return features
