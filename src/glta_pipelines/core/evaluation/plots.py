"""Figures for reports: built here, saved by the caller (a Kedro dataset, MLflow)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers or CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def metrics_bar_chart(metrics: pd.DataFrame, k: int) -> Figure:
    """Grouped bars: one panel per split, one group per accuracy metric at ``k``, one bar per method
    (the beyond-accuracy metrics have other scales: popularity in interactions, novelty in bits)."""
    from glta_pipelines.core.evaluation.ranking import METRIC_NAMES

    at_k = metrics[(metrics["k"] == k) & metrics["metric"].isin(METRIC_NAMES)]
    splits = [s for s in ("valid", "test") if s in set(at_k["split"])]
    methods = list(dict.fromkeys(at_k["method"]))
    names = list(dict.fromkeys(at_k["metric"]))
    fig, axes = plt.subplots(1, len(splits), figsize=(6 * len(splits), 4), squeeze=False, sharey=True)
    width = 0.8 / max(len(methods), 1)
    for ax, split in zip(axes[0], splits):
        table = at_k[at_k["split"] == split].pivot(index="metric", columns="method", values="value")
        for j, method in enumerate(methods):
            values = table.reindex(names)[method].to_numpy()
            bars = ax.bar(np.arange(len(names)) + (j - (len(methods) - 1) / 2) * width, values, width, label=method)
            ax.bar_label(bars, fmt="%.3f", fontsize=7, rotation=90, padding=2)
        ax.set_xticks(np.arange(len(names)), [f"{n}@{k}" for n in names], rotation=20)
        ax.set_title(f"{split} split")
        ax.set_ylim(0, min(1.0, float(at_k["value"].max()) * 1.3 + 0.02))
    axes[0][0].set_ylabel("score")
    axes[0][-1].legend(loc="upper left")
    fig.suptitle("Full-ranking metrics (seen items masked)")
    fig.tight_layout()
    return fig


def breakdown_chart(breakdowns: pd.DataFrame, k: int, metric: str = "recall") -> Figure:
    """Left: ``metric@k`` per user-activity quartile, one bar per method. Right: each method's share
    of test hits@k that are long-tail items."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 1]})
    activity = breakdowns[(breakdowns["breakdown"] == "activity") & (breakdowns["metric"] == metric)
                          & (breakdowns["k"] == k)]
    table = activity.pivot(index="bucket", columns="method", values="value")
    methods = list(dict.fromkeys(activity["method"]))
    width = 0.8 / max(len(methods), 1)
    for j, method in enumerate(methods):
        left.bar(np.arange(len(table)) + (j - (len(methods) - 1) / 2) * width, table[method].to_numpy(), width,
                 label=method)
    left.set_xticks(np.arange(len(table)), list(table.index))
    left.set_xlabel("users by training interactions (quartile: range)")
    left.set_ylabel(f"test {metric}@{k}")
    left.legend(loc="upper right")  # the least active users score highest: their bars are tallest
    tail = breakdowns[(breakdowns["breakdown"] == "long_tail") & (breakdowns["k"] == k)]
    right.bar(tail["method"], tail["value"], color=[f"C{methods.index(m) if m in methods else 0}" for m in tail["method"]])
    right.set_ylabel(f"share of test hits@{k} on long-tail items")
    right.tick_params(axis="x", rotation=30)
    fig.suptitle("Where methods differ: user activity and the long tail")
    fig.tight_layout()
    return fig
