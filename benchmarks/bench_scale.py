"""Benchmark: the project's code at 10^6 users x 10^5 items, on a synthetic zipf interaction graph.

Measured in one run (issue 15), each next to a same-run reference:

1. **data**: a synthetic graph (``--users`` x ``--items``, ``--per-user`` interactions per user on
   average, item popularity zipf with exponent ``--zipf``), split per user (last 20% of each
   user's items held out); seconds and size.
2. **LightGCN**: the pipeline's training step (``core.lightgcn.training_step``: ``propagate`` over
   the normalised adjacency, BPR, L2, Adam) timed over ``--batches`` batches at the default batch
   size and at ``--big-batch``; an epoch's time is the per-batch time x batches per epoch
   (an estimate: a measured epoch would take hours here). Reference: one propagation alone.
3. **evaluator**: ``per_user_metrics`` (masking, top-K, 6 metrics at 2 Ks) on ``--eval-users``
   users with the real split, against the bare ``user @ item.T`` + ``topk`` of the same chunks,
   and again with the beyond-accuracy metrics (``Catalogue``: popularity and 20-d content);
   users/s, and its peak memory is bounded by ``chunk_size x n_items`` floats per chunk.
4. **GLTA scoring**: the GLLM (the bundled SmolLM2, 8 chunk tokens of each user's whole history,
   head over all items) on ``--glta-users`` users, users/s, against LightGCN's dot product.

Peak memory is the process's peak resident set after each phase (``ru_maxrss``; phases run in
order, so each peak includes what earlier phases hold).

Usage: ``python benchmarks/bench_scale.py [--out benchmarks/results/bench_scale.json]`` (about
15 minutes on 2 CPU cores; ``--users 100000 --items 10000`` for a quick look).
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import numpy as np
import pandas as pd
import torch

from report import write_report
from glta_pipelines.core.glta import GLLMConfig, Projector, build_gllm, history_scorer, token_norm
from glta_pipelines.core.models.lightgcn import (
    LightGCNConfig,
    NegativeSampler,
    build_model,
    dot_product_scorer,
    normalized_adjacency,
    propagate,
    training_step,
)
from glta_pipelines.core.llm.backbone import LLMConfig, load_llm
from glta_pipelines.core.evaluation.beyond_accuracy import Catalogue
from glta_pipelines.core.evaluation.ranking import per_user_metrics


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_graph(n_users: int, n_items: int, per_user: float, zipf: float, seed: int) -> pd.DataFrame:
    """(user_idx, item_idx, timestamp): per-user counts geometric with mean ``per_user`` (at least 2),
    items drawn with probability proportional to rank^-zipf, repeated pairs dropped."""
    rng = np.random.default_rng(seed)
    counts = np.maximum(2, rng.geometric(1 / per_user, n_users))
    users = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    weights = np.arange(1, n_items + 1, dtype=np.float64) ** -zipf
    cumulative = np.cumsum(weights / weights.sum())
    items = np.minimum(np.searchsorted(cumulative, rng.random(len(users))), n_items - 1)
    items = rng.permutation(n_items)[items]  # popular items anywhere in the id space
    frame = pd.DataFrame({"user_idx": users, "item_idx": items.astype(np.int64)}).drop_duplicates()
    frame["timestamp"] = rng.integers(0, 10**9, len(frame))
    return frame.sort_values(["user_idx", "timestamp"], kind="stable").reset_index(drop=True)


def split_last(frame: pd.DataFrame, fraction: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's last ``fraction`` of items (at least one) as test, the rest as train."""
    position = frame.groupby("user_idx").cumcount()
    size = frame.groupby("user_idx")["item_idx"].transform("size")
    held = position >= size - np.maximum(1, (size * fraction).astype(int))
    return frame[~held].reset_index(drop=True), frame[held].reset_index(drop=True)


def lightgcn_batches(train: pd.DataFrame, n_users: int, n_items: int, batch_size: int, batches: int) -> tuple:
    config = LightGCNConfig(batch_size=batch_size)
    users, items = train["user_idx"].to_numpy(), train["item_idx"].to_numpy()
    start = time.perf_counter()
    adjacency = normalized_adjacency(users, items, n_users, n_items)
    adjacency_seconds = time.perf_counter() - start
    torch.manual_seed(0)
    model = build_model(n_users, n_items, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    rng = np.random.default_rng(0)
    sampler = NegativeSampler(users, items, n_items, rng)
    start = time.perf_counter()
    with torch.no_grad():
        propagate(model, adjacency)
    propagation_seconds = time.perf_counter() - start
    times = []
    for step in range(batches + 1):  # the first is a warm-up
        begin = time.perf_counter()
        batch = rng.integers(0, len(users), batch_size)
        training_step(model, adjacency, optimizer, users[batch], items[batch], sampler.sample(users[batch]), n_users,
                      config.weight_decay)
        if step:
            times.append(time.perf_counter() - begin)
    per_batch = float(np.median(times))
    batches_per_epoch = int(np.ceil(len(users) / batch_size))
    return {"batch_size": batch_size, "adjacency_nnz": int(adjacency._nnz()), "adjacency_seconds": round(adjacency_seconds, 2),
            "reference_propagation_seconds": round(propagation_seconds, 3), "seconds_per_batch": round(per_batch, 3),
            "batches_timed": batches, "batches_per_epoch": batches_per_epoch,
            "estimated_epoch_hours": round(per_batch * batches_per_epoch / 3600, 3),
            "embedding_dim": config.embedding_dim, "num_layers": config.num_layers}, model, adjacency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--per-user", type=float, default=20.0)
    parser.add_argument("--zipf", type=float, default=1.0)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--big-batch", type=int, default=65536)
    parser.add_argument("--eval-users", type=int, default=20_000)
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--glta-users", type=int, default=128)
    parser.add_argument("--out", default="benchmarks/results/bench_scale.json")
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    report = {"platform": platform.platform(), "torch_threads": torch.get_num_threads(), "settings": vars(args)}

    start = time.perf_counter()
    frame = synthetic_graph(args.users, args.items, args.per_user, args.zipf, seed=0)
    train, test = split_last(frame)
    counts = np.bincount(frame["item_idx"], minlength=args.items)
    report["data"] = {"seconds": round(time.perf_counter() - start, 1), "interactions": len(frame),
                      "train": len(train), "test": len(test), "items_with_interactions": int((counts > 0).sum()),
                      "top_1pct_items_share": round(float(np.sort(counts)[::-1][: args.items // 100].sum() / counts.sum()), 3),
                      "peak_rss_mib": round(peak_rss_mib())}
    print(report["data"], flush=True)
    del frame

    small, _, _ = lightgcn_batches(train, args.users, args.items, LightGCNConfig().batch_size, args.batches)
    big, model, adjacency = lightgcn_batches(train, args.users, args.items, args.big_batch, args.batches)
    report["lightgcn"] = {"default_batch": small, "big_batch": big, "peak_rss_mib": round(peak_rss_mib())}
    print(report["lightgcn"], flush=True)
    with torch.no_grad():
        emb = propagate(model, adjacency)
    user_emb, item_emb = emb[: args.users].contiguous(), emb[args.users:].contiguous()
    del adjacency, model, emb

    rng = np.random.default_rng(1)
    eval_users = np.sort(rng.choice(args.users, args.eval_users, replace=False))
    truth = test[test["user_idx"].isin(eval_users)]
    exclude = train[train["user_idx"].isin(eval_users)]
    scorer = dot_product_scorer(user_emb, item_emb)
    start = time.perf_counter()
    per_user_metrics(scorer, exclude, truth, args.users, args.items, (10, 20), args.chunk_size)
    evaluator = args.eval_users / (time.perf_counter() - start)
    start = time.perf_counter()
    for lo in range(0, len(eval_users), args.chunk_size):
        chunk = torch.from_numpy(eval_users[lo:lo + args.chunk_size])
        torch.topk(user_emb[chunk] @ item_emb.T, 20, dim=1)
    bare = args.eval_users / (time.perf_counter() - start)
    # the same with the beyond-accuracy metrics of the lists (popularity, novelty, coverage, Gini,
    # and intra-list diversity over 20-d content vectors)
    catalogue = Catalogue.from_train(train, args.items, torch.from_numpy(rng.random((args.items, 20), dtype=np.float32)))
    start = time.perf_counter()
    per_user_metrics(scorer, exclude, truth, args.users, args.items, (10, 20), args.chunk_size, catalogue=catalogue)
    beyond = args.eval_users / (time.perf_counter() - start)
    report["evaluator"] = {"users": args.eval_users, "chunk_size": args.chunk_size, "users_per_second": round(evaluator),
                           "with_beyond_accuracy_users_per_second": round(beyond),
                           "reference_bare_matmul_topk_users_per_second": round(bare),
                           "time_vs_reference": round(bare / evaluator, 2),
                           "chunk_buffer_mib": round(args.chunk_size * args.items * 4 / 2**20),
                           "estimated_all_users_minutes": round(args.users / evaluator / 60, 1),
                           "peak_rss_mib": round(peak_rss_mib())}
    print(report["evaluator"], flush=True)

    llm, tokenizer = load_llm(LLMConfig(device="cpu", dtype="float32"))
    torch.manual_seed(0)
    projector = Projector(item_emb.shape[1], llm.config.hidden_size).fit_scales(item_emb[:4096], token_norm(llm))
    config = GLLMConfig(history_length=1000, history_tokens="chunks", history_chunks=8, residual=False)
    gllm = build_gllm(llm, tokenizer, projector, user_emb, item_emb, config)
    glta_users = torch.from_numpy(np.sort(rng.choice(args.users, args.glta_users, replace=False)))
    seen = train[train["user_idx"].isin(glta_users.numpy())]
    start = time.perf_counter()
    history_scorer(gllm, seen, args.users, (user_emb, item_emb))(glta_users)
    glta = args.glta_users / (time.perf_counter() - start)
    start = time.perf_counter()
    scorer(glta_users)
    dot = args.glta_users / (time.perf_counter() - start)
    report["glta_scoring"] = {"users": args.glta_users, "llm": "bundled:smollm2-135m-instruct (float32, CPU)",
                              "users_per_second": round(glta, 2), "reference_dot_product_users_per_second": round(dot),
                              "estimated_all_users_hours": round(args.users / glta / 3600, 1),
                              "peak_rss_mib": round(peak_rss_mib())}
    write_report(report, args.out)


if __name__ == "__main__":
    main()
