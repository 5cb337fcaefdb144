"""Benchmark: every baseline's whole training (as the pipeline trains it) next to LightGCN's, same run.

Each method trains in its own process with the project's default parameters on MovieLens-100K
(random 80/10/10, seed 2025), so its peak resident memory (``ru_maxrss``) is its own. Reported
per method: training seconds (to early stopping), epochs, seconds per epoch, peak RSS and the
RSS before training (Python, torch and the data), best validation and test Recall@20; and the
ratio of its training time to LightGCN's, measured in the same run. The item text embeddings
(all-MiniLM-L6-v2, 1,682 items) are timed once, loading the model apart from encoding.

Usage: ``python benchmarks/bench_baselines.py [--out benchmarks/results/bench_baselines.json] [--methods a,b]``
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

import yaml

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("lightgcn", "ease", "hccf", "lightgcn_plus", "hccf_plus", "rlmrec_con", "rlmrec_gen")


def parameters() -> dict:
    params = {}
    for path in sorted((ROOT / "conf/base").glob("parameters_*.yml")):
        params.update(yaml.safe_load(path.read_text()) or {})
    return params


def one_method(method: str) -> dict:
    """Train ``method`` in this process; return its figures."""
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    import pandas as pd

    from bench_lightgcn import movielens_ids, movielens_split
    from glta_pipelines.core.models.ease import ease_scorer
    from glta_pipelines.core.models.lightgcn import dot_product_scorer
    from glta_pipelines.core.evaluation.ranking import ranking_metrics
    from glta_pipelines.pipelines.baselines import nodes
    from glta_pipelines.pipelines.pretrain_gnn.nodes import pretrain_lightgcn

    params = parameters()
    splits, n_users, n_items = movielens_split()
    train, valid, test = splits["train"], splits["valid"], splits["test"]
    _, user_map, item_map = movielens_ids()
    schedule, base = params["pretrain_gnn"]["lightgcn"], params["baselines"]
    text = None
    if method in ("lightgcn_plus", "hccf_plus", "rlmrec_con", "rlmrec_gen"):
        from glta_pipelines.core.data.sources import load_dataset

        items = load_dataset({"name": "movielens-100k"}).items
        text = nodes.embed_item_texts(items, item_map, base["text_encoder"], {})
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    if method == "lightgcn":
        _, embeddings, history = pretrain_lightgcn(train, valid, user_map, item_map, schedule)
    elif method == "ease":
    
        weights, history = nodes.train_ease(train, valid, user_map, item_map, base["ease"])
    elif method == "hccf":
        embeddings, history = nodes.train_hccf(train, valid, user_map, item_map, schedule, base["hccf"])
    elif method == "hccf_plus":
        embeddings, history = nodes.train_hccf_plus(train, valid, user_map, item_map, text, schedule, base["hccf"])
    elif method == "lightgcn_plus":
        embeddings, history = nodes.train_lightgcn_plus(train, valid, user_map, item_map, text, schedule)
    else:
        train_fn = getattr(nodes, f"train_{method}")
        embeddings, history = train_fn(train, valid, user_map, item_map, text, schedule, base[method])
    seconds = time.perf_counter() - start
    scorer = (ease_scorer(train, weights["item_item"], n_users) if method == "ease"
              else dot_product_scorer(embeddings["user"], embeddings["item"]))
    seen = pd.concat([train, valid])
    test_metrics = ranking_metrics(scorer, seen, test, n_users, n_items, [20])
    figures = {"train_seconds": seconds, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "rss_before_training_mib": rss_before, "test_recall_at_20": test_metrics["recall_at_20"],
               "test_ndcg_at_20": test_metrics["ndcg_at_20"]}
    if method != "ease":
        figures.update(epochs=int(history["epoch"].max()), seconds_per_epoch=float(history["seconds"].median()),
                       best_valid_recall_at_20=float(history["valid_recall_at_20"].max()))
    return figures


def text_embedding_seconds() -> dict:
    from bench_lightgcn import movielens_ids
    from glta_pipelines.core.data.sources import load_dataset
    from glta_pipelines.core.llm.text_encoder import TextEncoderConfig, item_texts, minilm_path

    items = load_dataset({"name": "movielens-100k"}).items
    texts = item_texts(items, movielens_ids()[2])
    from sentence_transformers import SentenceTransformer

    start = time.perf_counter()
    model = SentenceTransformer(str(minilm_path()), device="cpu", local_files_only=True)
    load = time.perf_counter() - start
    start = time.perf_counter()
    model.encode(texts, batch_size=TextEncoderConfig().batch_size, show_progress_bar=False)
    return {"items": len(texts), "model_load_seconds": load, "encode_seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/bench_baselines.json")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child mode: train one method, print JSON
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one_method(args.one)))
        return
    methods = [m for m in args.methods.split(",") if m]
    results = {}
    for method in methods:
        out = subprocess.run([sys.executable, __file__, "--one", method], capture_output=True, text=True, cwd=ROOT)
        line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
        if line is None:
            raise SystemExit(f"{method} failed:\n{out.stderr[-3000:]}")
        results[method] = json.loads(line[len("RESULT "):])
        print(method, results[method], flush=True)
    reference = results.get("lightgcn", {}).get("train_seconds")
    if reference:
        for figures in results.values():
            figures["train_seconds_over_lightgcn"] = figures["train_seconds"] / reference
    import torch

    report = {
        "dataset": "movielens-100k (random 80/10/10, seed 2025), conf/base parameters",
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": min(2, torch.get_num_threads())},
        "methods": results,
        "text_embeddings_minilm": text_embedding_seconds(),
    }
    from report import write_report

    write_report(report, Path(args.out))


if __name__ == "__main__":
    main()
