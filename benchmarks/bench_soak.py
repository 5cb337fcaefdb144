"""Benchmark: a served recommender under a bounded soak of mixed valid and hostile requests.

Starts ``kedro serve`` (default) or ``mlflow models serve`` (``--server mlflow``) on 127.0.0.1 for
the registered model (``make run`` registers ``glta-movielens-100k@champion``), warms it up, then
sends ``--requests`` calls from ``--clients`` threads: known users, new users (a history of 5 to 50
known items), calls at the model's limits (``max_rows`` users, ``k`` = ``max_k``), and hostile calls
(over each limit, a ``k`` of 400 digits, a 0.9 MB ``user_id``, JSON nested 5,000 deep, malformed JSON
and CSV, a wrong content type, a body over the size limit). It reports, in one JSON:

- latency p50/p99 per kind of call, and the answers by status per kind (no 5xx is the bar);
- the server's resident memory after warm-up and at the end (growth under 20% is the bar);
- the largest answer in bytes;
- **reference**: the same valid calls answered in this process (``Recommender.recommend``, no
  HTTP), p50/p99, so the HTTP and queueing cost is read off the same run.

Usage: ``python benchmarks/bench_soak.py [--requests 2000 --clients 8 --out benchmarks/results/bench_soak.json]``
(after ``make run``; about 5 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import psutil
import torch

from report import write_report
from glta_pipelines.serving.process import free_port, server_command

ROOT = Path(__file__).resolve().parents[1]


def send(port: int, body: bytes, content_type: str) -> tuple[int, int]:
    """(status, answer bytes) of one POST /invocations."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, len(response.read())
    except urllib.error.HTTPError as error:
        return error.code, len(error.read())


def records(rows: list[dict]) -> bytes:
    return json.dumps({"dataframe_records": rows}).encode()


def make_calls(recommender, n: int, seed: int) -> list[tuple[str, bytes, str, list[dict] | None]]:
    """``n`` calls (kind, body, content type, the requests when valid), in a fixed random order."""
    rng = random.Random(seed)
    limits, users, items = recommender.limits, recommender.user_ids, recommender.item_ids
    deep = "[" * 5000 + "]" * 5000

    def history() -> list[str]:
        return rng.sample(items, rng.randint(5, 50))

    valid = {
        "known user": lambda: [{"user_id": rng.choice(users), "k": 10}],
        "new user": lambda: [{"history": history(), "k": 10}],
        "at the limits": lambda: [{"user_id": rng.choice(users), "k": limits.max_k} if i % 2 else
                                  {"history": history(), "k": limits.max_k} for i in range(limits.max_rows)],
    }
    hostile = {
        "over max_rows": lambda: records([{"user_id": users[0]}] * (limits.max_rows + 1)),
        "over max_k": lambda: records([{"user_id": users[0], "k": limits.max_k + 1}]),
        "over max_history": lambda: records([{"history": [f"x{i}" for i in range(limits.max_history + 1)]}]),
        "k of 400 digits": lambda: b'{"dataframe_records": [{"user_id": 1, "k": ' + b"9" * 400 + b"}]}",
        "0.9 MB user_id": lambda: records([{"user_id": "u" * 900_000}]),
        "JSON nested 5,000 deep": lambda: b'{"dataframe_records": [{"history": ' + deep.encode() + b"}]}",
        "malformed JSON": lambda: b'{"dataframe_records": [',
        "malformed CSV": lambda: b'user_id,k\n7,"5\n',
        "wrong content type": lambda: b"PAR1\x00garbage",
        "body over the limit": lambda: records([{"history": ["1"] * 300_000}]),
    }
    calls = []
    for _ in range(n):
        if rng.random() < 0.7:
            kind = rng.choices(list(valid), weights=[0.55, 0.4, 0.05])[0]
            rows = valid[kind]()
            calls.append((kind, records(rows), "application/json", rows))
        else:
            kind = rng.choice(list(hostile))
            content_type = {"malformed CSV": "text/csv", "wrong content type": "application/vnd.apache.parquet"}
            calls.append((kind, hostile[kind](), content_type.get(kind, "application/json"), None))
    return calls


def percentiles(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(1000 * statistics.median(values), 1),
            "p99_ms": round(1000 * float(np.percentile(values, 99)), 1), "n": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models:/glta-movielens-100k@champion")
    parser.add_argument("--tracking-uri", default=f"sqlite:///{ROOT / 'mlflow.db'}")
    parser.add_argument("--server", choices=("kedro", "mlflow"), default="kedro")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--out", default="benchmarks/results/bench_soak.json")
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    os.environ.setdefault("GLTA_LLM_CACHE_DIR", str(ROOT / "data/06_models/llm"))  # the project's converted LLM
    import mlflow

    mlflow.set_tracking_uri(args.tracking_uri)
    mlflow.set_registry_uri(args.tracking_uri)
    recommender = mlflow.pyfunc.load_model(args.model).unwrap_python_model().recommender
    calls = make_calls(recommender, args.requests, seed=0)

    # reference: the valid calls answered in this process, no HTTP (one at a time, as the server does)
    reference = defaultdict(list)
    for kind, _, _, rows in calls[:300]:
        if rows is not None:
            start = time.perf_counter()
            recommender.recommend(rows)
            reference[kind].append(time.perf_counter() - start)

    (ROOT / "benchmarks/results").mkdir(parents=True, exist_ok=True)  # the server log goes there
    port = free_port()
    command = (["serve", "--model", args.model, "--port", str(port)] if args.server == "kedro" else
               ["models", "serve", "-m", args.model, "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)])
    with server_command(args.server, command, f"http://127.0.0.1:{port}/ping", ROOT / "benchmarks/results/soak-server.log",
                        timeout=300, env={"MLFLOW_TRACKING_URI": args.tracking_uri}, cwd=ROOT) as process:
        server = psutil.Process(process.pid)

        def rss_mb() -> float:  # the server and its children (mlflow's uvicorn worker)
            return sum(p.memory_info().rss for p in [server, *server.children(recursive=True)]) / 2 ** 20

        for kind, body, content_type, _ in calls[:50]:  # warm-up: every kind once or more
            send(port, body, content_type)
        memory_start = rss_mb()
        latencies, statuses, largest = defaultdict(list), defaultdict(Counter), [0]
        queue, lock = list(enumerate(calls)), threading.Lock()

        def client() -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    _, (kind, body, content_type, _) = queue.pop()
                start = time.perf_counter()
                status, size = send(port, body, content_type)
                with lock:
                    latencies[kind].append(time.perf_counter() - start)
                    statuses[kind][status] += 1
                    largest[0] = max(largest[0], size)

        begin = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - begin
        memory_end = rss_mb()

    by_status = Counter()
    for counts in statuses.values():
        by_status.update(counts)
    report = {
        "model": args.model, "server": args.server, "platform": platform.platform(),
        "requests": args.requests, "clients": args.clients, "seconds": round(seconds, 1),
        "limits": dataclasses.asdict(recommender.limits),
        "status_counts": {str(k): v for k, v in sorted(by_status.items())},
        "server_errors_5xx": sum(v for k, v in by_status.items() if k >= 500),
        "memory_mb": {"after_warm_up": round(memory_start, 1), "end": round(memory_end, 1),
                      "growth_fraction": round(memory_end / memory_start - 1, 4)},
        "largest_answer_bytes": largest[0],
        "latency": {kind: {**percentiles(values), "statuses": dict(statuses[kind])}
                    for kind, values in sorted(latencies.items())},
        "reference_in_process": {kind: percentiles(values) for kind, values in sorted(reference.items())},
    }
    write_report(report, args.out)


if __name__ == "__main__":
    main()
