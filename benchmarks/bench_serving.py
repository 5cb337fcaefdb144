"""Benchmark: the registered GLTA recommender served over REST, against the pipeline's in-process scoring.

In one run, on the registered model ``glta-<dataset>@champion`` (``make run`` registers it):

1. **Reference**: the pipeline's in-process batch scoring (``history_scorer`` + top-K, as
   ``evaluate_glta`` ranks every user), users/s.
2. **REST**: ``mlflow models serve --env-manager local`` on 127.0.0.1; p50/p99 latency of single
   known-user requests, and users/s of batch requests (``--batch`` users per request).
3. **New users**: every test user sent as a *new* user (``{"history": <train + valid items>}``:
   user vectors folded in from the history), against the same users scored as known users (the
   pipeline's test scoring: same prompt, trained user vectors). Both through the project's
   evaluator, Recall@20 and NDCG@20: the cost of not being in the graph.

Usage: ``python benchmarks/bench_serving.py [--out benchmarks/results/bench_serving.json]``
(after ``make run``; about 3 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from report import write_report
from glta_pipelines.core.glta import history_scorer
from glta_pipelines.core.evaluation.ranking import per_user_metrics, rank_top_k
from glta_pipelines.serving.process import free_port, mlflow_command

ROOT = Path(__file__).resolve().parents[1]


def latest(path: str) -> pd.DataFrame:
    folder = ROOT / path
    return pd.read_parquet(sorted(p for p in folder.iterdir() if p.is_dir())[-1] / folder.name)


def post(port: int, records: list[dict]) -> list[dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations",
                                     data=json.dumps({"dataframe_records": records}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())["predictions"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models:/glta-movielens-100k@champion")
    parser.add_argument("--tracking-uri", default=f"sqlite:///{ROOT / 'mlflow.db'}")
    parser.add_argument("--single", type=int, default=200, help="single requests timed")
    parser.add_argument("--batch", type=int, default=64, help="users per batch request")
    parser.add_argument("--out", default="benchmarks/results/bench_serving.json")
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    os.environ.setdefault("GLTA_LLM_CACHE_DIR", str(ROOT / "data/06_models/llm"))  # the project's converted LLM
    import mlflow

    mlflow.set_tracking_uri(args.tracking_uri)
    recommender = mlflow.pyfunc.load_model(args.model).unwrap_python_model().recommender
    model, base = recommender.model, recommender.base
    train, valid, test = (latest(f"data/05_model_input/{s}.parquet") for s in ("train", "valid", "test"))
    n_users, n_items = len(recommender.user_ids), recommender.n_items
    seen = pd.concat([train, valid], ignore_index=True)

    # 1. the pipeline's in-process batch scoring of every user (known users, train + valid prompts)
    start = time.perf_counter()
    scorer = history_scorer(model, seen, n_users, base)
    rank_top_k(scorer, seen, n_users, n_items, 20)
    in_process = n_users / (time.perf_counter() - start)
    known = per_user_metrics(history_scorer(model, seen, n_users, base), seen, test, n_users, n_items, (20,))[1]

    (ROOT / "benchmarks/results").mkdir(parents=True, exist_ok=True)  # the server log goes there
    port = free_port()
    with mlflow_command(["models", "serve", "-m", args.model, "--env-manager", "local", "--host", "127.0.0.1",
                         "--port", str(port)], f"http://127.0.0.1:{port}/ping",
                        ROOT / "benchmarks/results/serve.log", timeout=300,
                        env={"MLFLOW_TRACKING_URI": args.tracking_uri}, cwd=ROOT):
        user_ids = recommender.user_ids
        rng = np.random.default_rng(0)
        post(port, [{"user_id": user_ids[0], "k": 10}])  # warm-up
        latencies = []
        for user in rng.choice(n_users, args.single, replace=False):
            begin = time.perf_counter()
            post(port, [{"user_id": user_ids[user], "k": 10}])
            latencies.append(time.perf_counter() - begin)
        begin = time.perf_counter()
        for lo in range(0, n_users, args.batch):
            post(port, [{"user_id": user_ids[u], "k": 10} for u in range(lo, min(n_users, lo + args.batch))])
        batch_users_per_s = n_users / (time.perf_counter() - begin)

        # 3. test users as new users: their train + valid items as a history, test items to find
        histories = user_histories_by_id(seen, recommender)
        test_users = sorted(test["user_idx"].unique())
        answers = []
        begin = time.perf_counter()
        for lo in range(0, len(test_users), args.batch):
            chunk = test_users[lo:lo + args.batch]
            rows = post(port, [{"history": histories[u], "k": 20} for u in chunk])
            answers += [(chunk[r["request"]], recommender.item_index[r["item_id"]], r["rank"]) for r in rows]
        new_user_seconds = time.perf_counter() - begin

    scores = torch.full((n_users, n_items), -1e9)
    for user, item, rank in answers:
        scores[user, item] = -rank  # the served ranking, as scores the evaluator ranks again
    new = per_user_metrics(lambda users: scores[users].clone(), seen, test, n_users, n_items, (20,))[1]
    report = {
        "model": args.model, "platform": platform.platform(), "torch_threads": torch.get_num_threads(),
        "n_users": n_users, "n_items": n_items,
        "reference_in_process_users_per_s": round(in_process, 1),
        "rest_single_latency_ms": {"p50": round(1000 * statistics.median(latencies), 1),
                                   "p99": round(1000 * float(np.percentile(latencies, 99)), 1), "n": len(latencies)},
        "rest_batch_users_per_s": round(batch_users_per_s, 1), "batch_size": args.batch,
        "rest_batch_vs_in_process": round(batch_users_per_s / in_process, 3),
        "new_users": {"n_users": len(test_users), "seconds": round(new_user_seconds, 1),
                      **{f"{kind}_{m}_at_20": round(float(values[f"{m}_at_20"].mean()), 4)
                         for kind, values in (("as_new", new), ("as_known", known)) for m in ("recall", "ndcg")}},
    }
    report["new_users"]["recall_ratio"] = round(report["new_users"]["as_new_recall_at_20"]
                                                / report["new_users"]["as_known_recall_at_20"], 4)
    write_report(report, args.out)


def user_histories_by_id(interactions: pd.DataFrame, recommender) -> dict[int, list[str]]:
    """Each user's items (source ids) in time order, as a new user would send them."""
    ordered = interactions.sort_values(["user_idx", "timestamp", "item_idx"], kind="stable")
    return {int(u): [recommender.item_ids[i] for i in items]
            for u, items in ordered.groupby("user_idx")["item_idx"]}


if __name__ == "__main__":
    main()
