"""Where methods differ: metrics per user-activity bucket, and the long tail's share of the hits.

Text-aware and LLM methods are expected to help users with few interactions and items few users
have seen; the overall means hide both.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from glta_pipelines.core.evaluation.ranking import HEAD_SHARE, METRIC_NAMES

def activity_buckets(train: pd.DataFrame, users: np.ndarray, n_buckets: int = 4) -> pd.Series:
    """Each user's quartile of training interactions, labelled with its range (e.g. ``Q1 (5-32)``)."""
    counts = pd.Series(train.groupby("user_idx").size()).reindex(users, fill_value=0)
    ranks = counts.rank(method="first")  # equal counts split evenly, so every bucket has users
    bucket = pd.qcut(ranks, n_buckets, labels=False)
    labels = {b: f"Q{b + 1} ({counts[bucket == b].min()}-{counts[bucket == b].max()})" for b in sorted(bucket.unique())}
    return bucket.map(labels).rename("bucket")


def breakdown_table(per_user: dict[str, pd.DataFrame], train: pd.DataFrame) -> pd.DataFrame:
    """Rows (method, breakdown, bucket, metric, k, value, n_users): each metric's mean per activity
    quartile, and per method the share of its test hits that are long-tail items."""
    rows = []
    for method, table in per_user.items():
        buckets = activity_buckets(train, table["user_idx"].to_numpy()).to_numpy()
        for column in table.columns:
            metric, _, k = column.rpartition("_at_")
            if metric in METRIC_NAMES:
                for bucket in sorted(set(buckets)):
                    values = table[column].to_numpy()[buckets == bucket]
                    rows.append((method, "activity", bucket, metric, int(k), float(values.mean()), len(values)))
            elif metric == "tail_hits":
                hits = table[f"hits_at_{k}"].sum()
                share = float(table[column].sum() / hits) if hits else float("nan")
                rows.append((method, "long_tail", f"tail items (all but the top {HEAD_SHARE:.0%})", "hit_share", int(k),
                             share, len(table)))
    return pd.DataFrame(rows, columns=["method", "breakdown", "bucket", "metric", "k", "value", "n_users"])
