"""Nodes of the ``graph`` stage."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.data.interactions import (
    HISTORY,
    SplitConfig,
    build_id_map,
    cold_items,
    encode_ids,
    graph_statistics,
    hold_out_per_user,
    k_core_filter,
    split_per_user,
    to_implicit,
)

log = logging.getLogger(__name__)


def filter_interactions(
    interactions: pd.DataFrame, min_rating: float | None, k_core: int
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Implicit feedback (ratings >= ``min_rating``; None keeps all), then the ``k_core`` filter.

    Returns the kept interactions and how many rows each step removed.
    """
    rated = to_implicit(interactions, min_rating)
    implicit = k_core_filter(rated, int(k_core or 0))
    log.info("Kept %d of %d interactions after implicit feedback and %s-core", len(implicit), len(interactions), k_core)
    removed = {"min_rating": len(interactions) - len(rated), "k_core": len(rated) - len(implicit)}
    return implicit, removed


def data_quality_report(ingest_report: dict[str, Any], removed: dict[str, int], statistics: dict[str, float]) -> dict[str, Any]:
    """The ingest counts, what the graph filters removed, and the final graph, in one report."""
    final = {k: statistics[k] for k in ("n_users", "n_items", "n_interactions", "density")}
    return {**ingest_report, "graph_filters_removed": removed, "final": final}


def build_id_maps(implicit: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Contiguous indices for users and items: (user_map, item_map)."""
    return build_id_map(implicit["user_id"], "user_idx"), build_id_map(implicit["item_id"], "item_idx")


def split_interactions(
    implicit: pd.DataFrame, user_map: pd.DataFrame, item_map: pd.DataFrame, split: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Encode ids and split each user's interactions into (train, valid, test, cold_history); the
    last is the new-user split's histories (no rows under any other strategy)."""
    splits = split_per_user(encode_ids(implicit, user_map, item_map), config_from_params(SplitConfig, split, "graph.split"))
    if "dropped" in splits:  # the temporal split: held-out interactions of users or items training never saw
        counts = splits["dropped"].groupby(["split", "reason"]).size()
        log.info("Temporal split: dropped held-out interactions that training cannot score: %s",
                 ", ".join(f"{s} {r} {n}" for (s, r), n in counts.items()) or "none")
    return splits["train"], splits["valid"], splits["test"], splits.get(HISTORY, splits["train"].iloc[:0])


def compute_statistics(
    train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame, user_map: pd.DataFrame, item_map: pd.DataFrame,
    split_strategy: str = "random", cold_history: pd.DataFrame | None = None, implicit: pd.DataFrame | None = None,
) -> dict[str, float]:
    """Users, items, edges and density of the graph, overall and per split; with the new-item split
    also the cold items of valid and test and the users that have one (those its cold task scores);
    with the new-user split the cold users of valid and test and their history interactions; with the
    temporal split the held-out interactions dropped because training never saw their user or item."""
    stats = graph_statistics({"train": train, "valid": valid, "test": test}, len(user_map), len(item_map))
    if split_strategy == "cold-items":
        for name, held_out in (("valid", valid), ("test", test)):
            on_cold = held_out[held_out["item_idx"].isin(cold_items(train, held_out))]
            stats[f"n_{name}_cold_items"] = int(on_cold["item_idx"].nunique())
            stats[f"n_{name}_cold_users"] = int(on_cold["user_idx"].nunique())
    if split_strategy == "cold-users" and cold_history is not None:
        cold = set(cold_history["user_idx"])
        for name, held_out in (("valid", valid), ("test", test)):
            stats[f"n_{name}_cold_users"] = len(cold & set(held_out["user_idx"]))
        stats["n_cold_history"] = len(cold_history)
    if split_strategy == "temporal" and implicit is not None:
        stats["n_held_out_dropped"] = len(implicit) - stats["n_interactions"]
    log.info("Graph: %s", ", ".join(f"{k}={v:.4g}" for k, v in stats.items()))
    return stats


def hold_out_alignment_targets(train: pd.DataFrame, holdout: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(backbone_train, alignment_targets): a per-user slice of train kept from GLTA's graph backbone."""
    kept, held = hold_out_per_user(train, float(holdout["fraction"]), int(holdout["min_interactions"]), int(holdout["seed"]))
    log.info("Alignment holdout: %d of %d training interactions held out of the backbone", len(held), len(train))
    return kept, held
