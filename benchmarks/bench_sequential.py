"""Benchmark: SASRec's training next to LightGCN's, same run, on the next-item protocols.

Each model trains in its own process (so its peak resident memory, ``ru_maxrss``, is its own) with
the project's default parameters on MovieLens-100K, on ``leave-last-out`` and on ``temporal``
(seed 2025). Reported per model and split: training seconds (to early stopping), epochs, seconds
per epoch, peak RSS and the RSS before training, and test Recall/NDCG/Hit/MRR@10 and @20 (SASRec reads
train + valid in time order for test, as the pipeline does; LightGCN masks both); and SASRec's
training time as a multiple of LightGCN's, measured in the same run.

Usage: ``python benchmarks/bench_sequential.py [--out benchmarks/results/bench_sequential.json] [--splits a,b]``
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench_baselines import ROOT, parameters

MODELS = ("lightgcn", "sasrec", "sasrec_bpr")
SPLITS = ("leave-last-out", "temporal")


def one_model(model: str, strategy: str, epochs: int | None = None) -> dict:
    """Train ``model`` on ``strategy`` in this process; return its figures. ``epochs``: SASRec trains
    exactly that many and is scored at the last (as the RecBole check's budget). Test metrics are
    given masked (the product's protocol) and, as ``test_unmasked_*``, with the history left in the
    ranking (RecBole's full ranking of a sequential model)."""
    import pandas as pd
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    from bench_lightgcn import movielens_ids
    from glta_pipelines.core.data.interactions import SplitConfig, encode_ids, split_per_user, user_sequences
    from glta_pipelines.core.evaluation.ranking import ranking_metrics
    from glta_pipelines.core.models.lightgcn import dot_product_scorer
    from glta_pipelines.core.models.sasrec import from_artifact, sequence_scorer
    from glta_pipelines.pipelines.baselines.nodes import train_sequential
    from glta_pipelines.pipelines.pretrain_gnn.nodes import pretrain_lightgcn

    params = parameters()
    implicit, user_map, item_map = movielens_ids()
    splits = split_per_user(encode_ids(implicit, user_map, item_map), SplitConfig(strategy=strategy))
    train, valid, test = splits["train"], splits["valid"], splits["test"]
    n_users, n_items = len(user_map), len(item_map)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    if model == "lightgcn":
        _, embeddings, history = pretrain_lightgcn(train, valid, user_map, item_map, params["pretrain_gnn"]["lightgcn"])
        seconds = time.perf_counter() - start
        scorer = dot_product_scorer(embeddings["user"], embeddings["item"])
    else:
        config = {**params["baselines"]["sasrec"], **({"loss": "bpr"} if model == "sasrec_bpr" else {})}
        if epochs:  # the last epoch is the one kept: one validation, at the end
            config.update(max_epochs=epochs, eval_every=epochs, patience=epochs + 1)
        weights, history = train_sequential(train, valid, user_map, item_map, config)
        seconds = time.perf_counter() - start
        scorer = sequence_scorer(from_artifact(weights), user_sequences(pd.concat([train, valid]), n_users))
    seen = pd.concat([train, valid])
    metrics = ranking_metrics(scorer, seen, test, n_users, n_items, [10, 20])
    unmasked = ranking_metrics(scorer, seen.iloc[:0], test, n_users, n_items, [10, 20])
    return {"train_seconds": seconds, "epochs": int(history["epoch"].max()),
            "seconds_per_epoch": float(history["seconds"].median()),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_before_training_mib": rss_before, "best_valid_recall_at_20": float(history["valid_recall_at_20"].max()),
            **{f"test_{k}": v for k, v in metrics.items()},
            **{f"test_unmasked_{k}": v for k, v in unmasked.items()}, "n_train": len(train), "n_test": len(test)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/bench_sequential.json")
    parser.add_argument("--splits", default=",".join(SPLITS))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # child mode: model strategy
    parser.add_argument("--epochs", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one_model(*args.one, epochs=args.epochs)))
        return
    results: dict[str, dict] = {}
    for strategy in [s for s in args.splits.split(",") if s]:
        results[strategy] = {}
        for model in [m for m in args.models.split(",") if m]:
            out = subprocess.run([sys.executable, __file__, "--one", model, strategy], capture_output=True, text=True,
                                 cwd=ROOT)
            line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                raise SystemExit(f"{model} on {strategy} failed:\n{out.stderr[-3000:]}")
            results[strategy][model] = json.loads(line[len("RESULT "):])
            print(strategy, model, results[strategy][model], flush=True)
        reference = results[strategy].get("lightgcn", {}).get("train_seconds")
        for figures in results[strategy].values():
            if reference:
                figures["train_seconds_over_lightgcn"] = figures["train_seconds"] / reference
    import torch

    from report import write_report

    write_report({"dataset": "movielens-100k, next-item splits (seed 2025), conf/base parameters",
                  "machine": {"platform": platform.platform(), "torch": torch.__version__,
                              "threads": min(2, torch.get_num_threads())},
                  "results": results}, Path(args.out))


if __name__ == "__main__":
    main()
