"""Benchmark: peak memory of the streaming ingest on generated Amazon-2018-style dumps.

Generates gzipped JSON-lines review files of 1M and 5M lines (and a metadata file), then, each
in a fresh process so peak RSS is its own:
- ``stream``: the chunked parse and row checks alone (what a file-to-file conversion costs);
- ``load``: the whole ``amazon-2018`` adapter (parse, quarantine, dedupe, items, contract tables);
- ``reference``: ``pandas.read_json(lines=True)`` on the same file, the usual one-liner.

Peak RSS of ``stream`` should not depend on the file's length; ``load`` grows only with the
compact result it returns (ids are dictionary-coded while reading).

Usage: ``python benchmarks/bench_ingest.py [--lines 5000000] [--out benchmarks/results/bench_ingest.json]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from report import write_report

CATEGORY = "Bench"


def generate(folder: Path, n_lines: int, n_users: int, n_items: int, seed: int = 0) -> None:
    """Reviews with a realistic shape (text fields included) and metadata for every item."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / f"{CATEGORY}_5.json.gz", "wt", compresslevel=1) as out:
        for start in range(0, n_lines, 100_000):
            n = min(100_000, n_lines - start)
            users, items = rng.integers(0, n_users, n), rng.zipf(1.3, n) % n_items
            ratings, times = rng.integers(1, 6, n), rng.integers(1_000_000_000, 1_500_000_000, n)
            out.write("".join(
                f'{{"overall": {r}.0, "verified": true, "reviewTime": "01 1, 2014", "reviewerID": "A{u:013d}", '
                f'"asin": "B{i:09d}", "reviewerName": "Reader {u}", "reviewText": "Solid product, does what it says.", '
                f'"summary": "Good", "unixReviewTime": {t}}}\n' for u, i, r, t in zip(users, items, ratings, times)))
    with gzip.open(folder / f"meta_{CATEGORY}.json.gz", "wt", compresslevel=1) as out:
        for i in range(n_items):
            out.write(json.dumps({"asin": f"B{i:09d}", "title": f"Product {i}", "category": ["Bench", f"Group {i % 50}"],
                                  "description": ["A product used to measure ingest memory."]}) + "\n")


def child(mode: str, folder: str) -> None:
    """Runs in a fresh process; prints one JSON line with its own peak RSS."""
    start = time.perf_counter()
    if mode == "stream":
        from glta_pipelines.core.data.sources.adapters import amazon_2018
        from glta_pipelines.core.data.sources.reader import Source, _clean_interaction_chunk
        from glta_pipelines.core.data.sources.settings import DatasetConfig
        from glta_pipelines.core.data.sources.streams import Quarantine

        source: Source = amazon_2018(Path(folder), DatasetConfig(name="amazon-2018"))
        quarantine, rows = Quarantine(), 0
        for chunk in source.interactions.chunks(quarantine, 100_000, None):
            rows += len(_clean_interaction_chunk(chunk, source.interactions.path, source, quarantine))
            del chunk
    elif mode == "load":
        from glta_pipelines.core.data.sources import load_dataset

        rows = len(load_dataset({"name": "amazon-2018", "path": folder}).interactions)
    else:
        import pandas as pd

        rows = len(pd.read_json(Path(folder) / f"{CATEGORY}_5.json.gz", lines=True))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - start, "peak_rss_mb": peak_mb}))


def measure(mode: str, folder: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(folder)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=5_000_000)
    parser.add_argument("--small-lines", type=int, default=1_000_000)
    parser.add_argument("--out", default="benchmarks/results/bench_ingest.json")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    results: dict = {"machine": {"platform": platform.platform(), "python": platform.python_version()}, "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for n_lines in (args.small_lines, args.lines):
            folder = Path(tmp) / str(n_lines)
            start = time.perf_counter()
            generate(folder, n_lines, n_users=n_lines // 10, n_items=max(1000, n_lines // 50))
            size = {"generate_seconds": time.perf_counter() - start,
                    "gz_bytes": (folder / f"{CATEGORY}_5.json.gz").stat().st_size}
            for mode in ("stream", "load", "reference"):
                size[mode] = measure(mode, folder)
                print(n_lines, mode, size[mode], flush=True)
            size["load_lines_per_second"] = n_lines / size["load"]["seconds"]
            size["load_over_reference_peak_rss"] = size["load"]["peak_rss_mb"] / size["reference"]["peak_rss_mb"]
            results["sizes"][str(n_lines)] = size
    small, large = results["sizes"][str(args.small_lines)], results["sizes"][str(args.lines)]
    growth = args.lines / args.small_lines
    results["summary"] = {
        "lines": [args.small_lines, args.lines],
        "stream_peak_rss_mb": [small["stream"]["peak_rss_mb"], large["stream"]["peak_rss_mb"]],
        "stream_peak_rss_ratio_for_5x_lines": large["stream"]["peak_rss_mb"] / small["stream"]["peak_rss_mb"],
        "load_peak_rss_mb": [small["load"]["peak_rss_mb"], large["load"]["peak_rss_mb"]],
        "load_extra_bytes_per_line": (large["load"]["peak_rss_mb"] - small["load"]["peak_rss_mb"]) * 2**20
        / (args.lines - args.small_lines),
        "reference_peak_rss_mb": [small["reference"]["peak_rss_mb"], large["reference"]["peak_rss_mb"]],
        "reference_extra_bytes_per_line": (large["reference"]["peak_rss_mb"] - small["reference"]["peak_rss_mb"]) * 2**20
        / (args.lines - args.small_lines),
        "line_growth": growth,
    }
    write_report(results, Path(args.out), results["summary"])


if __name__ == "__main__":
    main()
