"""What a finished run shows in the MLflow UI: the method table and the run's description."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd


def method_table(metrics: pd.DataFrame, comparison: Mapping[str, Any] | None) -> pd.DataFrame:
    """One row per (method, metric, k): valid and test values, and on test the difference from the
    comparison's reference with its 95% bootstrap interval and Holm-adjusted p-values."""
    wide = metrics.pivot_table(index=["method", "metric", "k"], columns="split", values="value").reset_index()
    wide.columns.name = None
    order = {m: i for i, m in enumerate(dict.fromkeys(metrics["method"]))}
    wide = wide.sort_values(["method", "metric", "k"], key=lambda c: c.map(order) if c.name == "method" else c)
    comparison = dict(comparison or {})
    reference = comparison.get("reference")
    fields = ("relative_difference", "ci95_low", "ci95_high", "share_of_resamples_above_zero", "p_value_t_holm",
              "p_value_wilcoxon_holm")
    for name in fields:
        wide[f"test_{name}"] = [
            (comparison.get(r.method) or {}).get(f"{r.metric}_at_{r.k}", {}).get(name) for r in wide.itertuples()]
    wide["reference"] = reference
    return wide.reset_index(drop=True)


# metrics where less is better: concentration of exposure on a few items, and popularity of what is shown
LOWER_IS_BETTER = ("gini", "average_popularity")


def best_methods(metrics: pd.DataFrame, split: str = "test") -> list[str]:
    """``metric@K method value`` for each metric and K of ``split``: the method with the highest
    value, or the lowest for :data:`LOWER_IS_BETTER` (said as "lowest")."""
    rows = metrics[metrics["split"] == split]
    out = []
    for (metric, k), group in rows.groupby(["metric", "k"], sort=False):
        group = group.dropna(subset=["value"])  # diversity where no list has items with content
        if group.empty:
            continue
        lowest = metric in LOWER_IS_BETTER
        best = group.loc[group["value"].idxmin() if lowest else group["value"].idxmax()]
        out.append(f"{metric}@{k}{' (lowest)' if lowest else ''} {best['method']} {best['value']:.4g}")
    return out


def describe_run(run, metrics: pd.DataFrame | None) -> str:
    """The run's description in the MLflow UI: what ran, on what, its headline metric and its model."""
    tags = run.data.tags
    lines = [f"`kedro run --pipelines={tags.get('pipeline_names', '?')}` on {tags.get('dataset', '?')} "
             f"(env {tags.get('kedro_env') or 'local'}, commit {tags.get('git_commit', '?')[:8]})."]
    if metrics is not None and len(metrics):
        test = metrics[(metrics["split"] == "test") & (metrics["metric"].isin(["recall", "ndcg"]))
                       & (metrics["k"] == 20)].set_index(["method", "metric"])["value"]
        methods = list(dict.fromkeys(metrics["method"]))
        headline = [f"{m} {test[(m, 'recall')]:.4f} / {test[(m, 'ndcg')]:.4f}" for m in methods
                    if (m, "recall") in test.index and (m, "ndcg") in test.index]
        if headline:
            lines.append("Test Recall@20 / NDCG@20: " + "; ".join(headline) + ".")
        best = best_methods(metrics)
        if best:
            lines.append("Best on test: " + "; ".join(best) + ".")
    if tags.get("runtime_params", "{}") != "{}":
        lines.append(f"Parameters changed on the command line: `{tags['runtime_params']}`.")
    if tags.get("registered_model"):
        lines.append(f"Model: `{tags['registered_model']}` (name/version@alias in the registry).")
    return "\n\n".join(lines)
