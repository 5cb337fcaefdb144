"""Nodes of the ``evaluate`` stage."""

from __future__ import annotations

import logging
import math
from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure

from glta_pipelines.core.artifacts import TensorArtifact
from glta_pipelines.core.cold_start.content import genre_features
from glta_pipelines.core.data.interactions import trained_items, user_sequences
from glta_pipelines.core.models.popularity import popularity_scorer
from glta_pipelines.core.evaluation.breakdowns import breakdown_table
from glta_pipelines.core.models.ease import ease_scorer
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.glta import history_scorer, residual_base, restore_gllm
from glta_pipelines.core.models.lightgcn import dot_product_scorer, fold_in_users
from glta_pipelines.core.models.sasrec import from_artifact, sequence_scorer
from glta_pipelines.core.evaluation.plots import breakdown_chart, metrics_bar_chart
from glta_pipelines.core.evaluation.beyond_accuracy import PER_USER_NAMES
from glta_pipelines.core.evaluation.ranking import METRIC_NAMES, evaluate_splits, paired_bootstrap, rank_top_k
from glta_pipelines.core.evaluation.significance import holm, paired_tests

log = logging.getLogger(__name__)


def evaluate_popularity(
    train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame, user_map: pd.DataFrame, item_map: pd.DataFrame,
    cold_history: pd.DataFrame, items: pd.DataFrame, evaluation: dict[str, Any], split_strategy: str = "random",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics of the most-popular-items baseline (table, per-user test metrics)."""
    scorer = popularity_scorer(train, len(item_map))
    return _evaluate("popularity", scorer, train, valid, test, user_map, item_map, cold_history, items, evaluation,
                     split_strategy=split_strategy)


def evaluate_embeddings(
    method: str, embeddings: dict[str, torch.Tensor], train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame,
    user_map: pd.DataFrame, item_map: pd.DataFrame, cold_history: pd.DataFrame, items: pd.DataFrame,
    evaluation: dict[str, Any], split_strategy: str = "random",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics of ``method``'s dot-product scores of its final user and item embeddings
    (table, per-user test metrics); bound to a method with ``functools.partial`` in the wiring.
    New users (``cold_history``) are folded in from their history's item embeddings."""
    users = fold_in_users(embeddings["user"], embeddings["item"], train, cold_history)
    scorer = dot_product_scorer(users, embeddings["item"])
    return _evaluate(method, scorer, train, valid, test, user_map, item_map, cold_history, items, evaluation,
                     split_strategy=split_strategy)


def evaluate_ease(
    weights: TensorArtifact, train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame,
    user_map: pd.DataFrame, item_map: pd.DataFrame, cold_history: pd.DataFrame, items: pd.DataFrame,
    evaluation: dict[str, Any], split_strategy: str = "random",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics of EASE (``X @ B`` with X the training rows, and a new user's history as its row;
    table, per-user test metrics)."""
    rows = pd.concat([train, cold_history], ignore_index=True) if len(cold_history) else train
    scorer = ease_scorer(rows, weights["item_item"], len(user_map))
    return _evaluate("ease", scorer, train, valid, test, user_map, item_map, cold_history, items, evaluation,
                     split_strategy=split_strategy)


def evaluate_sequence(
    method: str, weights: TensorArtifact, train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame,
    user_map: pd.DataFrame, item_map: pd.DataFrame, cold_history: pd.DataFrame, items: pd.DataFrame,
    evaluation: dict[str, Any], split_strategy: str = "random",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics of a sequential model rebuilt from its weights (table, per-user test metrics): it reads
    each user's training items in time order for validation, and training + validation items for
    test (as GLTA's prompts do); a new user's history is its sequence. Bound with ``functools.partial``."""
    model = from_artifact(weights)
    shown = pd.concat([train, cold_history], ignore_index=True) if len(cold_history) else train
    n_users = len(user_map)
    scorer = sequence_scorer(model, user_sequences(shown, n_users))
    test_scorer = sequence_scorer(model, user_sequences(pd.concat([shown, valid], ignore_index=True), n_users))
    return _evaluate(method, scorer, train, valid, test, user_map, item_map, cold_history, items, evaluation, test_scorer,
                     split_strategy)


def evaluate_glta(
    weights: TensorArtifact, backbone_embeddings: dict[str, torch.Tensor], lightgcn_embeddings: dict[str, torch.Tensor],
    train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame, user_map: pd.DataFrame, item_map: pd.DataFrame,
    cold_history: pd.DataFrame, items: pd.DataFrame, evaluation: dict[str, Any], split_strategy: str = "random",
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """GLTA's metrics (table, per-user test metrics) and its top-K recommendations for every user.

    The model is rebuilt from its weights artifact alone, never from today's GLTA parameters.
    Valid prompts show train items, test prompts train + valid, recommendation prompts every
    known interaction (none of which is recommended). One node scores all three so that a
    prompt they share goes through the LLM once.
    """
    scorer = _glta_scorers(weights, backbone_embeddings, lightgcn_embeddings, train, valid, test, user_map, cold_history)
    table, per_user = _evaluate("glta", scorer["valid"], train, valid, test, user_map, item_map, cold_history,
                                items, evaluation, scorer["test"], split_strategy)
    k = int(evaluation.get("recommendations_k", max(evaluation["ks"])))
    top, scores = rank_top_k(scorer["known"], scorer["known_interactions"], len(user_map), len(item_map), k, evaluation["chunk_size"])
    return table, per_user, _recommendation_table(top, scores, user_map, item_map, items)


def evaluate_glta_placed(
    method: str, weights: TensorArtifact, backbone_embeddings: dict[str, torch.Tensor],
    lightgcn_embeddings: dict[str, torch.Tensor], placed: dict[str, torch.Tensor], train: pd.DataFrame,
    valid: pd.DataFrame, test: pd.DataFrame, user_map: pd.DataFrame, item_map: pd.DataFrame, cold_history: pd.DataFrame,
    items: pd.DataFrame, evaluation: dict[str, Any], split_strategy: str = "random",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """GLTA on new items: the trained model with each item that training never saw given the graph
    embedding a cold-start method ``placed`` it at (its item token and its residual scoring vector
    both follow), so the GLLM layer ranks warm and cold items together (table, per-user test metrics).
    Bound to a method with ``functools.partial`` in the wiring."""
    scorer = _glta_scorers(weights, backbone_embeddings, lightgcn_embeddings, train, valid, test, user_map, cold_history,
                           placed["item"])
    return _evaluate(method, scorer["valid"], train, valid, test, user_map, item_map, cold_history, items, evaluation,
                     scorer["test"], split_strategy)


def _glta_scorers(weights, backbone_embeddings, lightgcn_embeddings, train, valid, test, user_map, cold_history,
                  placed_items: torch.Tensor | None = None) -> dict:
    """GLTA rebuilt from its weights as score functions for valid, test and every known interaction
    (with those interactions as ``known_interactions``); new users folded in from their history, and
    items training never saw at ``placed_items``."""
    model = restore_gllm(weights, backbone_embeddings)
    base = residual_base(model, lightgcn_embeddings, "LightGCN embeddings (pretrain_gnn.embeddings)")
    if placed_items is not None:
        cold = ~torch.from_numpy(trained_items(train, model.graph_item.shape[0]))
        placed_items = placed_items.to(model.graph_item)
        model.graph_item = torch.where(cold.unsqueeze(1).to(model.graph_item.device), placed_items, model.graph_item)
        base = (base[0], torch.where(cold.unsqueeze(1), placed_items.to(base[1]), base[1]))
    if len(cold_history):  # new users: their user token and residual base folded in from their history
        model.graph_user = fold_in_users(model.graph_user, model.graph_item, train, cold_history)
        base = (fold_in_users(base[0], base[1], train, cold_history), base[1])
    cache: dict = {}
    shown = pd.concat([train, cold_history], ignore_index=True)  # a new user's prompt shows its history
    seen_for_test = pd.concat([shown, valid], ignore_index=True)
    known = pd.concat([shown, valid, test], ignore_index=True)
    scorers = {name: history_scorer(model, history, len(user_map), base, cache)
               for name, history in (("valid", shown), ("test", seen_for_test), ("known", known))}
    return {**scorers, "known_interactions": known}


def _recommendation_table(top: torch.Tensor, scores: torch.Tensor, user_map: pd.DataFrame, item_map: pd.DataFrame,
                          items: pd.DataFrame) -> pd.DataFrame:
    """Ranked lists as rows (user_id, rank, item_id, title, score, user_idx, item_idx)."""
    frame = pd.DataFrame({
        "user_idx": torch.arange(len(user_map)).repeat_interleave(top.shape[1]).numpy(),
        "rank": torch.arange(1, top.shape[1] + 1).repeat(len(user_map)).numpy(),
        "item_idx": top.reshape(-1).numpy(),
        "score": scores.reshape(-1).numpy(),
    })
    frame = frame.merge(user_map, on="user_idx").merge(item_map, on="item_idx").merge(
        items[["item_id", "title"]], on="item_id", how="left")
    return frame.sort_values(["user_idx", "rank"])[["user_id", "rank", "item_id", "title", "score", "user_idx", "item_idx"]
                                                   ].reset_index(drop=True)


def _evaluate(method, scorer, train, valid, test, user_map, item_map, cold_history, items, evaluation, test_scorer=None,
              split_strategy: str = "random") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The one protocol for every method; the new-item and new-user splits add their cold and warm tasks.
    Intra-list diversity reads the items' genres and decade (the cold-start content features)."""
    table, per_user = evaluate_splits(method, scorer, train, valid, test, len(user_map), len(item_map),
                                      evaluation["ks"], evaluation["chunk_size"], test_scorer,
                                      cold_and_warm=split_strategy == "cold-items",
                                      tie_break_seed=int(evaluation.get("tie_break_seed", 2025)),
                                      history=cold_history if split_strategy == "cold-users" else None,
                                      content=genre_features(items, item_map))
    headline = table[(table["split"] == "test") & table["metric"].isin(["recall", "ndcg", "coverage", "novelty"])]
    log.info("%s test: %s", method, ", ".join(f"{r.metric}@{r.k}={r.value:.4f}" for r in headline.itertuples()))
    return table, per_user


def compare_methods(evaluation: dict[str, Any], **per_user: pd.DataFrame) -> dict[str, Any]:
    """Each method's test difference from the reference, user by user: a 95% paired bootstrap
    interval, the paired t-test's and Wilcoxon's p-values, and both adjusted by Holm's method
    across the methods compared (one family per metric: ``p_value_t_holm``, ``p_value_wilcoxon_holm``).

    Users are resampled with their pairing kept, so the interval says how much of a difference the
    luck of the split could produce. It does not cover training randomness (seeds).
    """
    settings = evaluation.get("comparison") or {}
    reference = settings.get("reference", "lightgcn")
    if reference not in per_user:
        raise InputError("parameter evaluate.evaluation.comparison.reference", repr(reference),
                         f"one of the evaluated methods {sorted(per_user)}")
    base = per_user[reference].set_index("user_idx")
    resamples, seed = int(settings.get("bootstrap_resamples", 2000)), int(settings.get("seed", 0))
    report: dict[str, Any] = {"reference": reference, "split": "test", "n_users": len(base),
                              "bootstrap_resamples": resamples, "p_value_correction": "holm"}

    def column(table: pd.DataFrame, metric: str) -> torch.Tensor:
        return torch.tensor(table[metric].to_numpy(), dtype=torch.float64)

    compared = (*METRIC_NAMES, *PER_USER_NAMES)  # not the hit counts
    metrics = [c for c in base.columns if c.rpartition("_at_")[0] in compared]
    others = [m for m in per_user if m != reference]
    for method in others:
        ours = per_user[method].set_index("user_idx").reindex(base.index)
        report[method] = {}
        for metric in metrics:
            known = ours[metric].notna().to_numpy() & base[metric].notna().to_numpy()  # diversity: lists with content
            result = paired_bootstrap(column(ours[known], metric), column(base[known], metric), resamples, seed)
            result.update(paired_tests(ours[metric].to_numpy(), base[metric].to_numpy()))
            report[method][metric] = result
    for metric in metrics:
        for test in ("p_value_t", "p_value_wilcoxon"):
            adjusted = holm({method: report[method][metric][test] for method in others})
            for method in others:
                report[method][metric][f"{test}_holm"] = adjusted[method]
    for method in others:
        report[method] = {metric: {k: None if math.isnan(v) else _rounded(k, v) for k, v in result.items()}
                          for metric, result in report[method].items()}
    return report


def _rounded(key: str, value: float) -> float:
    """Five decimals, except p-values: three significant digits (a p-value of 1e-40 stays readable)."""
    return float(f"{value:.3g}") if key.startswith("p_value") else round(value, 5)


def combine_metrics(*tables: pd.DataFrame) -> pd.DataFrame:
    """One long table (split, method, metric, k, value) of all methods."""
    return pd.concat(tables, ignore_index=True)


def plot_metrics(metrics: pd.DataFrame, evaluation: dict[str, Any]) -> Figure:
    """Bar chart of every method's metrics at ``evaluation.plot_k``."""
    return metrics_bar_chart(metrics, int(evaluation["plot_k"]))


def break_down(train: pd.DataFrame, evaluation: dict[str, Any], **per_user: pd.DataFrame) -> tuple[pd.DataFrame, Figure]:
    """Every method's test metrics per user-activity quartile and its long-tail share of hits (table, plot)."""
    table = breakdown_table(per_user, train)
    return table, breakdown_chart(table, int(evaluation["plot_k"]))
