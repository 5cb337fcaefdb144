"""LightGCN schedule sweep on MovieLens-100K: one training per call, quality and epochs to the best.

The split is the pipeline's default (random 80/10/10, seed 2025); any ``LightGCNConfig`` field
can be overridden as ``key=value``. Writes one JSON line per call to ``--out`` (appended), so
a sweep is a loop in the shell, e.g.::

    for lr in 0.002 0.005 0.01; do python benchmarks/sweep_lightgcn.py learning_rate=$lr; done
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import pandas as pd
import torch

from bench_lightgcn import movielens_split
from glta_pipelines.core.models.lightgcn import LightGCNConfig, dot_product_scorer, train_lightgcn
from glta_pipelines.core.evaluation.ranking import ranking_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="LightGCNConfig fields as key=value")
    parser.add_argument("--out", default="benchmarks/results/sweep_lightgcn.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    defaults = LightGCNConfig()
    overrides = {k: type(getattr(defaults, k))(v) for k, v in (item.split("=", 1) for item in args.overrides)}
    config = dataclasses.replace(defaults, **overrides)
    splits, n_users, n_items = movielens_split()
    start = time.perf_counter()
    result = train_lightgcn(splits["train"], splits["valid"], n_users, n_items, config, show_progress=False)
    seconds = time.perf_counter() - start
    seen = pd.concat([splits["train"], splits["valid"]])
    test = ranking_metrics(dot_product_scorer(result.user_embedding, result.item_embedding), seen, splits["test"],
                           n_users, n_items, [20])
    row = {"overrides": overrides, "config": dataclasses.asdict(config), "best_epoch": result.best_epoch,
           "epochs_run": int(result.history["epoch"].max()), "seconds": seconds,
           "valid_recall_at_20": float(result.history["valid_recall_at_20"].max()),
           "test_recall_at_20": test["recall_at_20"], "test_ndcg_at_20": test["ndcg_at_20"]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
