"""Benchmark: the cold-start content encoders and mappers next to LightGCN's training, same run.

MovieLens-100K on the cold-items split (seed 2025, 20% of the items cold) with the project's
default parameters. Timed in one process, each from its inputs in memory: LightGCN's whole
training (the reference: what the cold-start methods are placed into), each content encoder over
all 1,682 items (the text encoders including their model load; the LLM's conversion is cached
before timing, as it is after a first run), each mapper's fit and text-kNN. Reported: seconds
each, the encoders' and mappers' total, its ratio to LightGCN's time, and the 120-second budget.

Usage: ``python benchmarks/bench_cold_start.py [--out benchmarks/results/bench_cold_start.json]``
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from bench_baselines import parameters
from bench_lightgcn import movielens_ids
from report import write_report
from glta_pipelines.core.data.interactions import SplitConfig, encode_ids, split_cold_items
from glta_pipelines.core.data.sources import load_dataset
from glta_pipelines.core.llm.backbone import LLMConfig, load_llm
from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.models.registry import METHODS, trained_by
from glta_pipelines.pipelines.cold_start import nodes
from glta_pipelines.pipelines.pretrain_gnn.nodes import pretrain_lightgcn

BUDGET_SECONDS = 120.0


def timed(func, *args):
    start = time.perf_counter()
    out = func(*args)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/bench_cold_start.json")
    args = parser.parse_args()
    params = parameters()
    implicit, user_map, item_map = movielens_ids()
    split = split_cold_items(encode_ids(implicit, user_map, item_map), SplitConfig(strategy="cold-items"))
    items = load_dataset({"name": "movielens-100k"}).items
    load_llm(config_from_params(LLMConfig, params["llm"], "llm"))  # conversion and first load: not the encoder's cost
    (_, lightgcn, history), lightgcn_seconds = timed(pretrain_lightgcn, split["train"], split["valid"], user_map,
                                                      item_map, params["pretrain_gnn"]["lightgcn"])
    cold = params["cold_start"]
    methods = trained_by("cold_start")
    encoders, contents = {}, {}
    for encoder in dict.fromkeys(METHODS[m].content for m in methods):
        if encoder == "genres":
            contents[encoder], encoders[encoder] = timed(nodes.genre_content, items, item_map)
        elif encoder == "knowledge_graph":
            contents[encoder], encoders[encoder] = timed(nodes.knowledge_graph_content, item_map,
                                                         cold["knowledge_graph"], {"name": "movielens-100k"})
        else:
            contents[encoder], encoders[encoder] = timed(nodes.text_content, encoder, items, item_map,
                                                         params["baselines"]["text_encoder"],
                                                         params["llm"], cold["random_llm"])
    mappers = {}
    for method in methods:
        _, mappers[method] = timed(nodes.place_cold_items, method, contents[METHODS[method].content], lightgcn,
                                   split["train"], item_map, cold["mapper"], cold["knn"])
    total = sum(encoders.values()) + sum(mappers.values())
    report = {
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "torch_threads": torch.get_num_threads()},
        "data": {"dataset": "movielens-100k", "split": "cold-items", "n_items": len(item_map),
                 "n_cold_items": int(len(item_map) - split["train"]["item_idx"].nunique())},
        "reference_lightgcn_training_seconds": round(lightgcn_seconds, 2),
        "lightgcn_epochs": int(len(history)),
        "encoder_seconds": {k: round(v, 2) for k, v in encoders.items()},
        "mapper_seconds": {k: round(v, 2) for k, v in mappers.items()},
        "encoders_and_mappers_seconds": round(total, 2),
        "ratio_to_lightgcn": round(total / lightgcn_seconds, 2),
        "budget_seconds": BUDGET_SECONDS,
        "within_budget": total <= BUDGET_SECONDS,
    }
    write_report(report, Path(args.out))


if __name__ == "__main__":
    main()
