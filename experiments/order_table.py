"""The order table: several `kedro seeds` parents of one split in one table, mean ± sd over seeds,
with paired differences (seed by seed) against a reference method.

A parent's methods keep their names; ``--control NAME=PARENT`` takes GLTA from that parent as the
method ``glta_<NAME>`` (e.g. ``shuffled``: `gllm_finetune.gllm.history_order=shuffled`).

Usage::

    python experiments/order_table.py --tracking-uri sqlite:///mlflow.db --parent <sequential parent> \\
        --control shuffled=<parent> --control mean=<parent> [--reference sasrec] [--metrics recall_at_20,ndcg_at_20]
"""

from __future__ import annotations

import argparse

import pandas as pd
from mlflow.tracking import MlflowClient

from glta_pipelines.core.evaluation.seed_summary import metrics_long, summarize


def seed_metrics(client: MlflowClient, parent: str) -> dict[int, dict[str, float]]:
    experiment = client.get_run(parent).info.experiment_id
    children = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent}' and attributes.status = 'FINISHED'")
    return {int(run.data.tags["seed"]): run.data.metrics for run in children}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--parent", required=True)
    parser.add_argument("--control", action="append", default=[], help="NAME=PARENT: GLTA of PARENT as glta_NAME")
    parser.add_argument("--reference", default="sasrec")
    parser.add_argument("--metrics", default="recall_at_20,ndcg_at_20,mrr_at_20")
    args = parser.parse_args()
    client = MlflowClient(tracking_uri=args.tracking_uri)
    frames = [metrics_long(seed_metrics(client, args.parent))]
    for control in args.control:
        name, parent = control.split("=", 1)
        glta = metrics_long(seed_metrics(client, parent))
        frames.append(glta[glta["method"] == "glta"].assign(method=f"glta_{name}"))
    long = pd.concat(frames, ignore_index=True)
    long = long[long["metric"].isin(args.metrics.split(","))]
    for reference in dict.fromkeys([args.reference, "glta"]):
        table = summarize(long, reference)
        print(f"\n## paired against {reference} (seeds {sorted(long['seed'].unique())})")
        for row in table.itertuples():
            print(f"{row.method:16s} {row.metric:14s} {row.mean:.4f} ± {row.sd:.4f}   "
                  f"diff {row.diff_pct:+6.1f}% [{row.diff_ci_low:+.4f}, {row.diff_ci_high:+.4f}]")


if __name__ == "__main__":
    main()
