"""Turning raw ratings into an implicit-feedback graph: filtering, id maps, per-user splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from glta_pipelines.core.errors import InputError

SPLIT_NAMES = ("train", "valid", "test")
HISTORY = "history"  # the new-user split's fourth table: each cold user's first interactions


def to_implicit(interactions: pd.DataFrame, min_rating: float | None) -> pd.DataFrame:
    """Keep interactions rated at least ``min_rating`` (all of them when None), one row per pair.

    A user who rated the same item twice keeps the latest interaction.
    """
    kept = interactions if min_rating is None else interactions[interactions["rating"] >= min_rating]
    kept = kept.sort_values("timestamp", kind="stable").drop_duplicates(["user_id", "item_id"], keep="last")
    if kept.empty:
        raise InputError(
            "parameter graph.min_rating",
            f"{min_rating!r}, which leaves 0 of {len(interactions)} interactions",
            "a threshold at or below the highest rating in the data (or null to keep all)",
        )
    return kept.reset_index(drop=True)


def k_core_filter(interactions: pd.DataFrame, k: int) -> pd.DataFrame:
    """Repeatedly drop users and items with fewer than ``k`` interactions (k <= 1: no-op)."""
    if k <= 1:
        return interactions
    kept = interactions
    while True:
        user_counts = kept["user_id"].map(kept["user_id"].value_counts())
        item_counts = kept["item_id"].map(kept["item_id"].value_counts())
        mask = (user_counts >= k) & (item_counts >= k)
        if mask.all():
            break
        kept = kept[mask]
        if kept.empty:
            raise InputError(
                "parameter graph.k_core",
                f"{k}, which removes all {len(interactions)} interactions",
                "a smaller k (every user and item needs at least k interactions)",
            )
    return kept.reset_index(drop=True)


def build_id_map(ids: pd.Series, index_name: str) -> pd.DataFrame:
    """Map raw ids to contiguous integers 0..n-1, in sorted raw-id order."""
    unique = np.sort(ids.unique())
    return pd.DataFrame({ids.name: unique, index_name: np.arange(len(unique), dtype=np.int64)})


def encode_ids(interactions: pd.DataFrame, user_map: pd.DataFrame, item_map: pd.DataFrame) -> pd.DataFrame:
    """Replace raw user/item ids by their contiguous indices."""
    encoded = interactions.merge(user_map, on="user_id", how="inner").merge(item_map, on="item_id", how="inner")
    if len(encoded) != len(interactions):
        raise InputError("id maps", f"{len(interactions) - len(encoded)} interactions with unmapped ids", "every id mapped")
    return encoded[["user_idx", "item_idx", "timestamp"]].sort_values(["user_idx", "timestamp"], kind="stable").reset_index(drop=True)


def decode_ids(encoded: pd.DataFrame, user_map: pd.DataFrame, item_map: pd.DataFrame) -> pd.DataFrame:
    """Inverse of :func:`encode_ids`: indices back to raw ids."""
    return encoded.merge(user_map, on="user_idx").merge(item_map, on="item_idx")


@dataclass(frozen=True)
class SplitConfig:
    """How each user's interactions are divided into train/valid/test."""

    strategy: str = "random"  # one of STRATEGIES
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    min_interactions: int = 3
    # which interactions fall in valid and test
    seed: int = 2025
    # cold-items: the share of the catalogue held out of training with all its interactions;
    # cold-users: the share of the users
    cold_fraction: float = 0.2
    # cold-users: each cold user's earliest interactions given as its history when it is scored
    cold_history: int = 3
    # temporal: the quantiles of all interactions' times where validation and test begin
    temporal_quantiles: tuple[float, float] = (0.8, 0.9)

    STRATEGIES = ("random", "leave-last-out", "temporal", "cold-items", "cold-users")

    def validate(self) -> None:
        """Raise :class:`InputError` for a split that cannot be made."""
        if self.strategy not in self.STRATEGIES:
            raise InputError("parameter graph.split.strategy", repr(self.strategy),
                             "one of " + ", ".join(repr(s) for s in self.STRATEGIES))
        if not isinstance(self.cold_fraction, (int, float)) or not 0 < self.cold_fraction < 1:
            raise InputError("parameter graph.split.cold_fraction", repr(self.cold_fraction),
                             "a fraction of the items (cold-items) or users (cold-users) in (0, 1)")
        if len(self.ratios) != 3 or any(r < 0 for r in self.ratios) or not np.isclose(sum(self.ratios), 1.0):
            raise InputError(
                "parameter graph.split.ratios",
                f"{list(self.ratios)} (sum {sum(self.ratios):.4g})",
                "three non-negative ratios [train, valid, test] that sum to 1",
            )
        quantiles = self.temporal_quantiles
        if (len(quantiles) != 2 or not all(isinstance(q, (int, float)) for q in quantiles)
                or not 0 < quantiles[0] < quantiles[1] < 1):
            raise InputError("parameter graph.split.temporal_quantiles", repr(list(quantiles)),
                             "two increasing fractions in (0, 1): where validation and test begin in time")
        if not isinstance(self.cold_history, int) or self.cold_history < 1:
            raise InputError("parameter graph.split.cold_history", repr(self.cold_history),
                             "a positive number of interactions shown as a new user's history")
        if self.min_interactions < 3:
            raise InputError(
                "parameter graph.split.min_interactions",
                self.min_interactions,
                "at least 3 (one interaction for each of train, valid and test)",
            )


def split_per_user(encoded: pd.DataFrame, config: SplitConfig) -> dict[str, pd.DataFrame]:
    """Split each user's interactions into train/valid/test, reproducibly for a seed.

    ``random``: shuffle each user's interactions and cut by ``ratios`` (valid and test get at
    least one each). ``leave-last-out``: the latest interaction is test, the one before valid.
    Users with fewer than ``min_interactions`` go wholly to train. ``temporal``: see
    :func:`split_temporal` (one cut-off time for everyone). ``cold-items``: see
    :func:`split_cold_items`; ``cold-users``: see :func:`split_cold_users` (the only strategy
    with a fourth table, ``history``).
    """
    config.validate()
    if config.strategy == "cold-items":
        return split_cold_items(encoded, config)
    if config.strategy == "cold-users":
        return split_cold_users(encoded, config)
    if config.strategy == "temporal":
        return split_temporal(encoded, config)
    rng = np.random.default_rng(config.seed)
    frame = encoded.assign(_key=rng.random(len(encoded)))
    if config.strategy == "random":
        frame = frame.sort_values(["user_idx", "_key"], kind="stable")
    else:  # ties in time are broken by the seeded key, so the split stays reproducible
        frame = frame.sort_values(["user_idx", "timestamp", "_key"], kind="stable")
    position = frame.groupby("user_idx").cumcount().to_numpy()
    count = frame.groupby("user_idx")["user_idx"].transform("size").to_numpy()

    if config.strategy == "random":
        n_valid, n_test = (
            np.maximum(1, np.round(count * r)).astype(np.int64) if r > 0 else np.zeros_like(count)
            for r in config.ratios[1:]
        )
        n_train = count - n_valid - n_test
    else:
        n_train = count - 2
        n_valid = np.ones_like(count)
    part = np.where(position < n_train, 0, np.where(position < n_train + n_valid, 1, 2))
    part[count < config.min_interactions] = 0
    frame = frame.drop(columns="_key")
    splits = {name: frame[part == i].sort_values(["user_idx", "timestamp"], kind="stable").reset_index(drop=True)
              for i, name in enumerate(SPLIT_NAMES)}
    return splits


def split_temporal(encoded: pd.DataFrame, config: SplitConfig) -> dict[str, pd.DataFrame]:
    """The global time split: every interaction at or after the time at ``temporal_quantiles[0]`` of
    all interactions is held out, validation until the time at ``temporal_quantiles[1]``, test from
    it; train is everything earlier, for every user alike (no future leaks into training).

    A held-out interaction of a user or an item that training never saw cannot be scored from the
    graph, so it is dropped, and returned as ``dropped`` with its ``split`` and ``reason``
    (``new_user`` first, else ``new_item``) so that the run can count it.
    """
    times = np.sort(encoded["timestamp"].to_numpy())
    cut_valid, cut_test = (times[min(len(times) - 1, int(q * len(times)))] for q in config.temporal_quantiles)
    time = encoded["timestamp"].to_numpy()
    part = np.where(time < cut_valid, 0, np.where(time < cut_test, 1, 2))
    order = ["user_idx", "timestamp", "item_idx"]
    train = encoded[part == 0].sort_values(order, kind="stable").reset_index(drop=True)
    if train.empty or not (part == 2).any():
        raise InputError("parameter graph.split.temporal_quantiles", repr(list(config.temporal_quantiles)),
                         f"quantiles that leave interactions before the validation cut-off and after the test cut-off "
                         f"(cut-offs at times {cut_valid} and {cut_test} of {times[0]}..{times[-1]})")
    splits, dropped = {"train": train}, []
    users, items = set(train["user_idx"]), set(train["item_idx"])
    for i, name in ((1, "valid"), (2, "test")):
        held = encoded[part == i]
        new_user = ~held["user_idx"].isin(users).to_numpy()
        new_item = ~held["item_idx"].isin(items).to_numpy() & ~new_user
        dropped.append(held[new_user | new_item].assign(split=name, reason=np.where(new_user[new_user | new_item],
                                                                                     "new_user", "new_item")))
        splits[name] = held[~(new_user | new_item)].sort_values(order, kind="stable").reset_index(drop=True)
    splits["dropped"] = pd.concat(dropped, ignore_index=True)
    return splits


def split_cold_items(encoded: pd.DataFrame, config: SplitConfig) -> dict[str, pd.DataFrame]:
    """The new-item protocol: a seeded ``cold_fraction`` of the items leaves training with all its
    interactions; half of those items (by item) are validation's, the other half test's. The
    warm interactions are split per user as ``random`` does. Training sees no cold item.

    Validation then holds the cold-validation items' interactions beside the warm ones, test
    the cold-test items' (:func:`cold_items` tells them apart again).
    """
    items = np.unique(encoded["item_idx"].to_numpy())
    n_cold = int(round(config.cold_fraction * len(items)))
    if n_cold < 2 or n_cold > len(items) - 1:
        raise InputError("parameter graph.split.cold_fraction",
                         f"{config.cold_fraction}, which makes {n_cold} of {len(items)} items cold",
                         "a fraction that leaves at least 2 cold items (one per split) and 1 warm item")
    # its own stream: the warm split below draws from the seed as `random` does
    drawn = np.random.default_rng([config.seed, 1]).permutation(items)[:n_cold]
    cold_valid, cold_test = np.sort(drawn[: (n_cold + 1) // 2]), np.sort(drawn[(n_cold + 1) // 2:])
    item = encoded["item_idx"].to_numpy()
    warm = split_per_user(encoded[~np.isin(item, drawn)], SplitConfig("random", config.ratios, config.min_interactions,
                                                                      config.seed))
    order = ["user_idx", "timestamp"]
    return {"train": warm["train"],
            "valid": pd.concat([warm["valid"], encoded[np.isin(item, cold_valid)]]).sort_values(order, kind="stable")
                       .reset_index(drop=True),
            "test": pd.concat([warm["test"], encoded[np.isin(item, cold_test)]]).sort_values(order, kind="stable")
                      .reset_index(drop=True)}


def split_cold_users(encoded: pd.DataFrame, config: SplitConfig) -> dict[str, pd.DataFrame]:
    """The new-user protocol: a seeded ``cold_fraction`` of the users (those with more than
    ``cold_history`` interactions) leaves training with all its interactions. Each cold user's
    earliest ``cold_history`` interactions (by time; ties by a seeded key) are its ``history``,
    given to a method when it scores the user; the rest are its targets, in validation for half
    of the cold users and in test for the other half. The warm users are split as ``random`` does.
    """
    sizes = encoded.groupby("user_idx").size()
    eligible = np.sort(sizes.index[sizes > config.cold_history].to_numpy())
    n_cold = int(round(config.cold_fraction * len(sizes)))
    if n_cold < 2 or n_cold > len(eligible) or n_cold > len(sizes) - 1:
        raise InputError("parameter graph.split.cold_fraction",
                         f"{config.cold_fraction}, which makes {n_cold} of {len(sizes)} users cold "
                         f"({len(eligible)} have more than graph.split.cold_history={config.cold_history} interactions)",
                         "a fraction that leaves at least 2 cold users with targets beyond their history, and 1 warm user")
    rng = np.random.default_rng([config.seed, 2])  # its own stream: the warm split draws from the seed as `random` does
    drawn = rng.permutation(eligible)[:n_cold]
    cold_valid = np.sort(drawn[: (n_cold + 1) // 2])
    user = encoded["user_idx"].to_numpy()
    warm = split_per_user(encoded[~np.isin(user, drawn)], SplitConfig("random", config.ratios, config.min_interactions,
                                                                      config.seed))
    cold = encoded[np.isin(user, drawn)]
    cold = cold.assign(_key=rng.random(len(cold))).sort_values(["user_idx", "timestamp", "_key"], kind="stable")
    first = (cold.groupby("user_idx").cumcount() < config.cold_history).to_numpy()
    cold = cold.drop(columns="_key")
    targets, history = cold[~first], cold[first]
    in_valid = np.isin(targets["user_idx"].to_numpy(), cold_valid)
    order = ["user_idx", "timestamp"]

    def joined(*frames: pd.DataFrame) -> pd.DataFrame:
        return pd.concat(frames).sort_values(order, kind="stable").reset_index(drop=True)

    return {"train": warm["train"], "valid": joined(warm["valid"], targets[in_valid]),
            "test": joined(warm["test"], targets[~in_valid]), HISTORY: history.reset_index(drop=True)}


def user_sequences(interactions: pd.DataFrame, n_users: int) -> list[np.ndarray]:
    """Each user's item indices in time order (ties broken by item index); empty for a user without any."""
    ordered = interactions.sort_values(["user_idx", "timestamp", "item_idx"], kind="stable")
    # np.array copies: torch.from_numpy needs a writable array
    groups = ordered.groupby("user_idx")["item_idx"].apply(lambda s: np.array(s, dtype=np.int64))
    empty = np.zeros(0, dtype=np.int64)
    return [groups.get(u, empty) for u in range(n_users)]


def trained_items(train: pd.DataFrame, n_items: int) -> np.ndarray:
    """A boolean mask over the ``n_items`` items: True where training has an interaction with the item."""
    seen = np.zeros(n_items, dtype=bool)
    seen[train["item_idx"].to_numpy()] = True
    return seen


def cold_items(train: pd.DataFrame, held_out: pd.DataFrame) -> np.ndarray:
    """The items of ``held_out`` that training never saw, sorted."""
    return np.setdiff1d(held_out["item_idx"].to_numpy(), train["item_idx"].to_numpy())


def graph_statistics(splits: dict[str, pd.DataFrame], n_users: int, n_items: int) -> dict[str, float]:
    """Size and density of the interaction graph, overall and per split."""
    n_edges = sum(len(df) for df in splits.values())
    stats: dict[str, float] = {
        "n_users": n_users,
        "n_items": n_items,
        "n_interactions": n_edges,
        "density": n_edges / float(n_users * n_items),
    }
    for name, df in splits.items():
        stats[f"n_{name}"] = len(df)
        stats[f"n_{name}_users"] = int(df["user_idx"].nunique())
    return stats


def hold_out_per_user(train: pd.DataFrame, fraction: float, min_interactions: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Randomly move ``fraction`` of each user's training interactions (at least one) into a held-out
    set; users with fewer than ``min_interactions`` keep all. Returns (kept, held_out).

    GLTA's graph backbone is pretrained on ``kept`` only, so the user-item alignment can learn
    from interactions the graph has not already fit (no leaked targets).
    """
    check_holdout_fraction(fraction)
    if fraction == 0:
        return train.reset_index(drop=True), train.iloc[:0].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    frame = train.assign(_key=rng.random(len(train))).sort_values(["user_idx", "_key"], kind="stable")
    position = frame.groupby("user_idx").cumcount().to_numpy()
    count = frame.groupby("user_idx")["user_idx"].transform("size").to_numpy()
    n_out = np.where(count >= min_interactions, np.maximum(1, np.round(count * fraction)), 0)
    held = position < n_out
    frame = frame.drop(columns="_key")
    order = ["user_idx", "timestamp"]
    return (frame[~held].sort_values(order, kind="stable").reset_index(drop=True),
            frame[held].sort_values(order, kind="stable").reset_index(drop=True))


def check_holdout_fraction(fraction: object) -> None:
    """Raise :class:`InputError` unless ``fraction`` is in [0, 1)."""
    if not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise InputError("parameter graph.alignment_holdout.fraction", fraction, "a fraction in [0, 1)")
