"""The multi-seed summary: its numbers against a direct computation, and its Markdown layout."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from glta_pipelines.core.errors import InputError
from glta_pipelines.core.evaluation.seed_summary import markdown_table, metrics_long, summarize, twin_table

RUNS = {
    2025: {"test.lightgcn.recall_at_20": 0.38, "test.glta.recall_at_20": 0.39, "test.ease.recall_at_20": 0.390,
           "test.lightgcn.ndcg_at_20": 0.33, "test.glta.ndcg_at_20": 0.34, "valid.glta.recall_at_20": 0.9,
           "time.pipeline": 600.0},
    2026: {"test.lightgcn.recall_at_20": 0.39, "test.glta.recall_at_20": 0.37, "test.ease.recall_at_20": 0.390,
           "test.lightgcn.ndcg_at_20": 0.34, "test.glta.ndcg_at_20": 0.33},
    2027: {"test.lightgcn.recall_at_20": 0.37, "test.glta.recall_at_20": 0.41, "test.ease.recall_at_20": 0.390,
           "test.lightgcn.ndcg_at_20": 0.32, "test.glta.ndcg_at_20": 0.35},
}


def test_only_test_metrics_become_rows():
    long = metrics_long(RUNS)
    assert set(long["method"]) == {"lightgcn", "glta", "ease"}
    assert len(long) == 3 * 5


def test_mean_sd_interval_and_paired_difference_match_a_direct_computation():
    summary = summarize(metrics_long(RUNS)).set_index(["method", "metric"])
    glta = np.array([0.39, 0.37, 0.41])
    lightgcn = np.array([0.38, 0.39, 0.37])
    row = summary.loc[("glta", "recall_at_20")]
    assert row["n"] == 3
    assert row["mean"] == pytest.approx(glta.mean())
    assert row["sd"] == pytest.approx(np.std(glta, ddof=1))
    half = stats.t.ppf(0.975, 2) * np.std(glta, ddof=1) / math.sqrt(3)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((glta.mean() - half, glta.mean() + half))
    diff = glta - lightgcn
    assert row["diff_mean"] == pytest.approx(diff.mean())
    assert row["diff_sd"] == pytest.approx(np.std(diff, ddof=1))
    assert row["diff_pct"] == pytest.approx(100 * diff.mean() / lightgcn.mean())
    # the reference's difference from itself is exactly zero; a constant method has sd 0
    assert summary.loc[("lightgcn", "recall_at_20"), "diff_mean"] == 0
    assert summary.loc[("ease", "recall_at_20"), "sd"] == pytest.approx(0.0)


def test_markdown_has_the_papers_layout():
    table = markdown_table(summarize(metrics_long(RUNS)))
    lines = table.splitlines()
    assert lines[0] == "| Method | Recall@10 | Recall@20 | NDCG@10 | NDCG@20 | Δ Recall@20 vs LightGCN (95% CI, p) |"
    rows = {line.split(" | ")[0].strip("| "): line for line in lines[2:] if line.startswith("|")}
    assert list(rows) == ["LightGCN", "EASE", "GLTA"]  # the registry's order; a text-aware method follows its twin
    assert "0.3900 ± 0.0200" in rows["GLTA"] and "n/a" in rows["GLTA"]  # no Recall@10 logged
    assert "+2.6%" in rows["GLTA"] and "(reference)" in rows["LightGCN"]
    assert "over 3 seeds" in table and "Holm" in table


def test_p_values_are_scipys_over_the_seeds_with_holm_across_methods():
    summary = summarize(metrics_long(RUNS)).set_index(["method", "metric"])
    glta, lightgcn = np.array([0.39, 0.37, 0.41]), np.array([0.38, 0.39, 0.37])
    row = summary.loc[("glta", "recall_at_20")]
    assert row["p_value_t"] == pytest.approx(stats.ttest_rel(glta, lightgcn).pvalue)
    assert row["p_value_wilcoxon"] == pytest.approx(stats.wilcoxon(glta, lightgcn).pvalue)
    # two methods face LightGCN on recall_at_20: Holm multiplies the smaller p by 2, keeps order
    family = summary.xs("recall_at_20", level="metric").drop("lightgcn")
    smallest = family["p_value_t"].idxmin()
    assert family.loc[smallest, "p_value_t_holm"] == pytest.approx(min(1.0, 2 * family.loc[smallest, "p_value_t"]))
    assert (family["p_value_t_holm"] >= family["p_value_t"]).all()
    assert math.isnan(summary.loc[("lightgcn", "recall_at_20"), "p_value_t_holm"])


def test_a_single_seed_has_no_interval_and_an_unknown_reference_is_refused():
    summary = summarize(metrics_long({1: RUNS[2025]}))
    assert math.isnan(summary.loc[0, "sd"]) and math.isnan(summary.loc[0, "ci_low"])
    with pytest.raises(InputError, match="--reference.*'hcf'"):
        summarize(metrics_long(RUNS), reference="hcf")
    with pytest.raises(InputError, match="no test metrics"):
        summarize(pd.DataFrame(columns=["seed", "method", "metric", "value"]))


def test_twin_table_pairs_each_text_aware_method_with_its_text_free_twin():
    runs = {seed: {**metrics, "test.lightgcn_plus.recall_at_20": metrics["test.lightgcn.recall_at_20"] + 0.038}
            for seed, metrics in RUNS.items()}
    table = twin_table(metrics_long(runs))
    lines = table.splitlines()
    assert lines[0].startswith("| text-aware vs its text-free twin |")
    assert len(lines) == 3 and lines[2].startswith("| LightGCN+ vs LightGCN | 0.3800 | 0.4180 | +10.0% [+10.0, +10.0]")
    assert twin_table(metrics_long(RUNS)) == ""  # no text-aware method run
