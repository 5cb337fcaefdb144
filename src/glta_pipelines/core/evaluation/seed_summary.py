"""Several training seeds, one verdict: mean, standard deviation and a 95% interval per method
and metric, and each method's paired difference from a reference across seeds.

The interval is Student's t on the seeds (``mean ± t(0.975, n-1) · sd / sqrt(n)``), so it
covers training randomness; the evaluator's bootstrap (``ranking.paired_bootstrap``) covers the
luck of the users instead. The paired difference is taken seed by seed (same seed, same split),
which removes what two methods share from run to run. Its p-values (paired t-test and Wilcoxon
over the seeds, ``significance.py``) are adjusted by Holm's method across the methods compared
with the reference, per metric. With 3 seeds Wilcoxon cannot go below 0.25; the t-test can.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from glta_pipelines.core.errors import InputError
from glta_pipelines.core.evaluation.significance import holm, paired_tests
from glta_pipelines.core.models.registry import labels, twins as registry_twins

PAPER_COLUMNS = ("recall_at_10", "recall_at_20", "ndcg_at_10", "ndcg_at_20")
def metrics_long(seed_metrics: dict[int, dict[str, float]], split: str = "test") -> pd.DataFrame:
    """MLflow metrics ``<split>.<method>.<metric>_at_<k>`` of each seed's run as rows (seed, method, metric, value)."""
    rows = []
    for seed, metrics in seed_metrics.items():
        for key, value in metrics.items():
            parts = key.split(".")
            if len(parts) == 3 and parts[0] == split and "_at_" in parts[2]:
                rows.append((seed, parts[1], parts[2], float(value)))
    return pd.DataFrame(rows, columns=["seed", "method", "metric", "value"])


def t_quantile(df: int, level: float = 0.975) -> float:
    """Student's t quantile (scipy's), for the interval of a mean over ``df + 1`` seeds."""
    from scipy.stats import t

    return float(t.ppf(level, df))


def _interval(values: np.ndarray) -> tuple[float, float, float, float]:
    n = len(values)
    mean = float(values.mean())
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    sd = float(values.std(ddof=1))
    half = t_quantile(n - 1) * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half


def summarize(long: pd.DataFrame, reference: str = "lightgcn") -> pd.DataFrame:
    """One row per (method, metric): n, mean, sd, ci_low, ci_high, and the paired difference from
    ``reference`` over the seeds both have (diff_mean, diff_sd, diff_ci_low, diff_ci_high, diff_pct,
    p_value_t, p_value_wilcoxon and both Holm-adjusted across the methods: ``*_holm``)."""
    if long.empty:
        raise InputError("seed runs", "no test metrics", "runs whose pipeline includes evaluate")
    if reference not in set(long["method"]):
        raise InputError("option --reference", repr(reference), f"one of the evaluated methods {sorted(set(long['method']))}")
    wide = long.pivot_table(index=["method", "metric"], columns="seed", values="value", aggfunc="first")
    rows = []
    for (method, metric), values in wide.iterrows():
        ours = values.dropna()
        mean, sd, low, high = _interval(ours.to_numpy())
        row = {"method": method, "metric": metric, "n": len(ours), "mean": mean, "sd": sd, "ci_low": low, "ci_high": high}
        if (reference, metric) in wide.index:
            base = wide.loc[(reference, metric)]
            paired = (ours - base).dropna()
            d_mean, d_sd, d_low, d_high = _interval(paired.to_numpy())
            base_mean = float(base[paired.index].mean())
            row.update(diff_mean=d_mean, diff_sd=d_sd, diff_ci_low=d_low, diff_ci_high=d_high,
                       diff_pct=100 * d_mean / base_mean if base_mean else math.nan)
            if method != reference:
                row.update(paired_tests(ours[paired.index].to_numpy(), base[paired.index].to_numpy()))
        rows.append(row)
    order = {m: i for i, m in enumerate(labels())}
    table = pd.DataFrame(rows)
    for test in ("p_value_t", "p_value_wilcoxon"):
        table[f"{test}_holm"] = math.nan
        if test not in table:
            table[test] = math.nan
            continue
        for metric, group in table[table["method"] != reference].groupby("metric"):
            adjusted = holm(dict(zip(group.index, group[test])))
            table.loc[list(adjusted), f"{test}_holm"] = list(adjusted.values())
    return table.sort_values(["method", "metric"], key=lambda c: c.map(order).fillna(len(order)) if c.name == "method"
                             else c).reset_index(drop=True)


def markdown_table(summary: pd.DataFrame, columns: tuple[str, ...] = PAPER_COLUMNS, reference: str = "lightgcn",
                   difference_metric: str = "recall_at_20") -> str:
    """The paper's layout: methods as rows, Recall/NDCG at 10 and 20 as columns (mean ± sd), and
    each method's paired difference from ``reference`` in ``difference_metric`` with its 95% interval."""
    def cell(method: str, metric: str) -> str:
        row = summary[(summary["method"] == method) & (summary["metric"] == metric)]
        if row.empty:
            return "n/a"
        r = row.iloc[0]
        return f"{r['mean']:.4f}" if math.isnan(r["sd"]) else f"{r['mean']:.4f} ± {r['sd']:.4f}"

    def difference(method: str) -> str:
        row = summary[(summary["method"] == method) & (summary["metric"] == difference_metric)]
        if method == reference or row.empty or "diff_mean" not in row or math.isnan(row.iloc[0]["diff_mean"]):
            return "(reference)" if method == reference else "n/a"
        r = row.iloc[0]
        scale = 100 / (r["mean"] - r["diff_mean"]) if r["mean"] != r["diff_mean"] else math.nan
        if math.isnan(r["diff_ci_low"]):
            return f"{r['diff_pct']:+.1f}%"
        p = r.get("p_value_t_holm", math.nan)
        tested = "" if p is None or math.isnan(p) else f", p {p:.2g}"
        return f"{r['diff_pct']:+.1f}% [{r['diff_ci_low'] * scale:+.1f}, {r['diff_ci_high'] * scale:+.1f}]{tested}"

    n = int(summary["n"].max())
    names = labels()
    header = ["Method", *(_label(c) for c in columns), f"Δ {_label(difference_metric)} vs {names.get(reference, reference)} (95% CI, p)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for method in summary["method"].drop_duplicates():
        lines.append("| " + " | ".join([names.get(method, method), *(cell(method, c) for c in columns),
                                        difference(method)]) + " |")
    lines.append(f"\nMean ± sd over {n} seeds; Δ is the paired difference per seed, relative to the reference's mean;"
                 " p: paired t-test over the seeds, Holm-adjusted across the methods.")
    return "\n".join(lines)


def _label(metric: str) -> str:
    name, _, k = metric.rpartition("_at_")
    return {"recall": "Recall", "ndcg": "NDCG"}.get(name, name) + f"@{k}"


def twin_table(long: pd.DataFrame, metric: str = "recall_at_20", twins: dict[str, str] | None = None) -> str:
    """Markdown: each text-aware method against its text-free twin in ``metric``, paired per seed
    (the twin's mean, the method's, the relative difference with its 95% interval), or "" when
    no pair was run (``twins``: the method registry's by default)."""
    names, lines = labels(), []
    for method, twin in (registry_twins() if twins is None else twins).items():
        present = set(long["method"])
        if method not in present or twin not in present:
            continue
        row = summarize(long[long["method"].isin([method, twin])], reference=twin)
        row = row[(row["method"] == method) & (row["metric"] == metric)]
        if row.empty:
            continue
        r = row.iloc[0]
        base = r["mean"] - r["diff_mean"]
        interval = ("" if math.isnan(r["diff_ci_low"]) else
                    f" [{100 * r['diff_ci_low'] / base:+.1f}, {100 * r['diff_ci_high'] / base:+.1f}]")
        lines.append(f"| {names.get(method, method)} vs {names.get(twin, twin)} | {base:.4f} | {r['mean']:.4f} | "
                     f"{r['diff_pct']:+.1f}%{interval} |")
    if not lines:
        return ""
    name = _label(metric)
    return "\n".join([f"| text-aware vs its text-free twin | twin {name} | with text {name} | Δ (95% CI) |",
                      "|---|---:|---:|---:|", *lines])
