"""Benchmark: LightGCN epoch time and full-ranking evaluation throughput on MovieLens-100K.

Each figure stands next to a reference measured in the same run on the same data:
- epoch: our trainer (pre-normalised sparse adjacency) vs a textbook PyG LightGCN epoch
  (``edge_index`` re-normalised every forward, PyG's ``recommendation_loss``);
- evaluation: our evaluator (seen-item masking + 5 metrics at 2 Ks, chunked) vs a plain dense
  ``user_emb @ item_emb.T`` + ``topk`` with no masking and no metrics;
- baselines: EASE's whole fit (every λ of the default grid, each validated) vs one LightGCN epoch.

Usage: ``python benchmarks/bench_lightgcn.py [--out benchmarks/results/bench_lightgcn.json]``
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch_geometric.nn.models import LightGCN

from report import write_report
from glta_pipelines.core.data.sources import load_dataset
from glta_pipelines.core.models.ease import EASEConfig, fit_ease
from glta_pipelines.core.data.interactions import SplitConfig, build_id_map, encode_ids, split_per_user, to_implicit
from glta_pipelines.core.models.lightgcn import LightGCNConfig, dot_product_scorer, train_lightgcn
from glta_pipelines.core.evaluation.ranking import ranking_metrics


def movielens_ids():
    """MovieLens-100K as implicit feedback, with its user and item id maps."""
    implicit = to_implicit(load_dataset({"name": "movielens-100k"}).interactions, None)
    return implicit, build_id_map(implicit["user_id"], "user_idx"), build_id_map(implicit["item_id"], "item_idx")


def movielens_split():
    implicit, user_map, item_map = movielens_ids()
    return split_per_user(encode_ids(implicit, user_map, item_map), SplitConfig()), len(user_map), len(item_map)


def reference_epoch_seconds(train, n_users, n_items, config: LightGCNConfig, epochs: int) -> float:
    """A textbook PyG LightGCN epoch: edge_index input, uniform negatives, recommendation_loss."""
    torch.manual_seed(config.seed)
    users = torch.tensor(train["user_idx"].to_numpy())
    items = torch.tensor(train["item_idx"].to_numpy()) + n_users
    edge_index = torch.stack([torch.cat([users, items]), torch.cat([items, users])])
    model = LightGCN(n_users + n_items, config.embedding_dim, config.num_layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        for batch in torch.randperm(len(users)).split(config.batch_size):
            neg = torch.randint(n_users, n_users + n_items, (len(batch),))
            label_index = torch.stack([torch.cat([users[batch], users[batch]]), torch.cat([items[batch], neg])])
            rank = model(edge_index, label_index)
            pos_rank, neg_rank = rank.chunk(2)
            loss = model.recommendation_loss(pos_rank, neg_rank, node_id=label_index.unique(), lambda_reg=config.weight_decay)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/bench_lightgcn.json")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))

    splits, n_users, n_items = movielens_split()
    config = LightGCNConfig(max_epochs=args.epochs, eval_every=10_000, patience=10_000)
    result = train_lightgcn(splits["train"], splits["valid"], n_users, n_items, config, show_progress=False)
    ours_epoch = float(result.history["seconds"].median())
    reference_epoch = reference_epoch_seconds(splits["train"], n_users, n_items, config, args.epochs)

    user_emb, item_emb = result.user_embedding, result.item_embedding
    scorer = dot_product_scorer(user_emb, item_emb)
    n_eval_users = splits["valid"]["user_idx"].nunique()
    ours_eval, reference_eval = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        ranking_metrics(scorer, splits["train"], splits["valid"], n_users, n_items, ks=[10, 20])
        ours_eval.append(time.perf_counter() - start)
        start = time.perf_counter()
        torch.topk(user_emb[torch.from_numpy(np.unique(splits["valid"]["user_idx"]))] @ item_emb.T, 20, dim=1)
        reference_eval.append(time.perf_counter() - start)

    ease_config = EASEConfig()
    start = time.perf_counter()
    ease = fit_ease(splits["train"], splits["valid"], n_users, n_items, ease_config)
    ease_seconds = time.perf_counter() - start

    report = {
        "dataset": "movielens-100k (random 80/10/10, seed 2025)",
        "n_users": n_users, "n_items": n_items, "n_train": len(splits["train"]),
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "lightgcn_epoch": {
            "config": {"embedding_dim": config.embedding_dim, "num_layers": config.num_layers,
                       "batch_size": config.batch_size},
            "ours_seconds": ours_epoch,
            "reference_pyg_edge_index_seconds": reference_epoch,
            "speedup_vs_reference": reference_epoch / ours_epoch,
        },
        "full_ranking_evaluation": {
            "users": int(n_eval_users),
            "ours_users_per_second": n_eval_users / float(np.median(ours_eval)),
            "reference_dense_topk_users_per_second": n_eval_users / float(np.median(reference_eval)),
            "ours_over_reference_time_ratio": float(np.median(ours_eval) / np.median(reference_eval)),
        },
        "baselines": {
            "ease_fit_seconds": ease_seconds,  # the whole grid, each lambda validated
            "ease_lambdas": list(ease_config.lambdas), "ease_chosen_lambda": ease.lam,
            "ease_weights_mib": ease.weights.numel() * 4 / 2**20,
            "lightgcn_epoch_seconds": ours_epoch,
            "ease_fit_over_one_lightgcn_epoch": ease_seconds / ours_epoch,
        },
    }
    write_report(report, Path(args.out))


if __name__ == "__main__":
    main()
