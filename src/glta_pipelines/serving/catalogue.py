"""A registered recommender's catalogue grown by new items placed from their text (``add_items``).

The bundle's item-sized tensors get one row per new item (:func:`~glta_pipelines.core.cold_start.
new_items.extend_items`): both graph embedding tables (the backbone's, which make the item token
and the GLLM layer's scoring vector, and LightGCN's, the residual base) from mappers fitted on the
items training saw, and the per-item bias at their mean. Users, interactions and every other weight
are copied unchanged, so old items keep their scores; the new items are flagged ``added_by_text``.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import torch

from glta_pipelines.core.artifacts import TensorArtifact
from glta_pipelines.core.cold_start.mapper import MapperConfig
from glta_pipelines.core.cold_start.new_items import extend_items, nearest_items
from glta_pipelines.core.data.interactions import trained_items
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.glta.weights import TRAINED_ITEMS
from glta_pipelines.core.llm.text_encoder import item_texts
from glta_pipelines.serving.bundle import ADDED, Bundle

GRAPH_TABLES = ("backbone_embeddings", "lightgcn_embeddings")


def check_extendable(bundle: Bundle, where: str) -> None:
    """Raise :class:`InputError` when ``bundle`` cannot take new items (no item texts; a free head)."""
    if "text" not in bundle.items.columns:
        raise InputError(where, "a model logged without its items' texts (by an earlier version of glta-pipelines)",
                         "a model registered by `make run` of this version, whose bundle keeps the item texts")
    space = bundle.glta_weights.config.get("gllm", {}).get("scoring_space", "graph")
    if space == "free":
        raise InputError(f"{where}, config gllm.scoring_space", repr(space),
                         "graph or token: a free head holds one trained vector per item, so a new item has none")


def catalogue_texts(bundle: Bundle, new_items: pd.DataFrame) -> list[str]:
    """The texts of the bundle's items in ``item_idx`` order, then the new items' in table order."""
    return item_texts(bundle.items, bundle.item_map) + new_items["text"].astype(str).tolist()


def trained_mask(bundle: Bundle) -> torch.Tensor:
    """The bundle's items that training saw: what a mapper learns from (an item added by text earlier
    has no interaction, so it is never among them)."""
    interactions = bundle.interactions
    return torch.from_numpy(trained_items(interactions[interactions["split"] == "train"], len(bundle.item_map)))


def add_to_bundle(bundle: Bundle, new_items: pd.DataFrame, content: torch.Tensor, mapper: MapperConfig,
                  nearest: int = 3) -> tuple[Bundle, pd.DataFrame, dict[str, list[dict[str, float]]]]:
    """(the bundle with ``new_items`` appended, a table of what was added, each mapper's losses per epoch).

    ``content`` has one row per text of :func:`catalogue_texts`. The table lists each new item's
    index and text and the titles of the ``nearest`` trained items to where it was placed.
    """
    n_old = len(bundle.item_map)
    trained = trained_mask(bundle)
    tables = {name: getattr(bundle, name)["item"] for name in GRAPH_TABLES}
    grown, bias, losses = extend_items(content, tables, trained, bundle.glta_weights.get("item_bias"), mapper)
    weights = TensorArtifact({**bundle.glta_weights, **({"item_bias": bias} if bias is not None else {})},
                             bundle.glta_weights.config)
    graph = dict(weights.config.get("graph", {}))
    if "n_items" in graph:
        weights.config["graph"] = {**graph, "n_items": n_old + len(new_items)}
    weights.config.setdefault(TRAINED_ITEMS, n_old)  # the items a blend standardises on stay the trained ones
    embeddings = {name: _with_items(getattr(bundle, name), grown[name]) for name in GRAPH_TABLES}
    new_idx = range(n_old, n_old + len(new_items))
    item_map = pd.concat([bundle.item_map, pd.DataFrame({"item_id": new_items["item_id"].to_numpy(),
                                                         "item_idx": list(new_idx)})], ignore_index=True)
    item_map = item_map.astype(bundle.item_map.dtypes.to_dict())
    old_items = bundle.items if ADDED in bundle.items.columns else bundle.items.assign(**{ADDED: False})
    items = pd.concat([old_items, new_items[["item_id", "title", "text"]].assign(**{ADDED: True})], ignore_index=True)
    items = items.astype({"item_id": bundle.items["item_id"].dtype})
    extended = replace(bundle, glta_weights=weights, item_map=item_map, items=items, **embeddings)
    added = new_items[["item_id", "title", "text"]].assign(item_idx=list(new_idx)).reset_index(drop=True)
    if nearest:
        old_titles = bundle.item_map.astype({"item_id": str}).merge(
            bundle.items[["item_id", "title"]].astype({"item_id": str}), on="item_id", how="left")
        title_of = dict(zip(old_titles["item_idx"], old_titles["title"].fillna(old_titles["item_id"].astype(str))))
        trained_idx = torch.nonzero(trained).flatten()
        placed = grown["lightgcn_embeddings"][n_old:]
        near = trained_idx[nearest_items(placed, tables["lightgcn_embeddings"][trained_idx], nearest)]
        added["nearest_items"] = [[str(title_of[int(i)]) for i in row] for row in near]
    return extended, added, losses


def _with_items(embeddings, items: torch.Tensor):
    """``embeddings`` (a dict or :class:`TensorArtifact`) with its ``item`` table replaced."""
    out = {**embeddings, "item": items}
    return TensorArtifact(out, embeddings.config) if isinstance(embeddings, TensorArtifact) else out
