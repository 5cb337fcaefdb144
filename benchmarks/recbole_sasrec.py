"""Check: our SASRec against RecBole's SASRec on exactly the same next-item split.

The product never imports RecBole. This script exports MovieLens-100K's ``leave-last-out`` split
(seed 2025, the pipeline's split) as RecBole benchmark files, runs RecBole 1.2.1's SASRec on them
with RecBole's defaults (``properties/model/SASRec.yaml``: CE loss, 2048 prefixes per batch,
lr 1e-3, early stopping after 10 validations) in a separate Python that has RecBole's own
dependencies, trains ours with ``conf/base`` on the same split in the product's Python, and
reports test Recall/NDCG/Hit/MRR@10 and @20 of both with their relative gap.

RecBole reads a sequential benchmark split as pre-built examples: ``<name>.train.inter`` holds one
row per training prefix (``item_id_list``, the latest 50 items before it, and the next ``item_id``);
``valid.inter`` the training sequence and the validation item; ``test.inter`` training +
validation and the test item (as our evaluator's test input). Two protocol differences remain:
RecBole's full ranking of a sequential model does not mask the history (ours does; MovieLens
interactions are unique per user and item, so masking can only move the held-out item up), and
RecBole's CE has the padding id as a class.

A throw-away RecBole environment (RecBole's pins: ray 2.6.3 wants numpy < 2), reusing the
product's torch::

    python3 -m venv /tmp/recbole-env
    echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/recbole-env/lib/python3.11/site-packages/product.pth
    /tmp/recbole-env/bin/python -m pip install colorlog==4.7.2 colorama==0.4.4 texttable tensorboard thop \\
        tabulate plotly ray==2.6.3 "setuptools<70" "numpy<2" "pandas<2.3" "scipy<1.14" "scikit-learn<1.6"

Usage: ``python benchmarks/recbole_sasrec.py --recbole-python /tmp/recbole-env/bin/python
[--out benchmarks/results/recbole_sasrec.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_baselines import ROOT

NAME = "ml100k-llo"
KS = (10, 20)
RECBOLE = """
import json, sys, time
from recbole.quick_start import run_recbole
config = json.loads(sys.argv[1])
start = time.perf_counter()
result = run_recbole(model="SASRec", dataset=config.pop("dataset"), config_dict=config)
result["seconds"] = time.perf_counter() - start
print("RESULT " + json.dumps({k: (float(v) if isinstance(v, (int, float)) else {m: float(x) for m, x in v.items()})
                              for k, v in result.items() if k in ("best_valid_score", "test_result", "seconds")}))
"""


def export(folder: Path, max_length: int) -> dict[str, int]:
    """The split as RecBole's pre-built sequential examples under ``folder/NAME``."""
    import pandas as pd

    from bench_lightgcn import movielens_ids
    from glta_pipelines.core.data.interactions import SplitConfig, encode_ids, split_per_user, user_sequences

    implicit, user_map, item_map = movielens_ids()
    splits = split_per_user(encode_ids(implicit, user_map, item_map), SplitConfig(strategy="leave-last-out"))
    n_users = len(user_map)
    users, items = user_map["user_id"].to_numpy(), item_map["item_id"].to_numpy()
    train_seqs = user_sequences(splits["train"], n_users)
    seen_seqs = user_sequences(pd.concat([splits["train"], splits["valid"]]), n_users)
    rows = {"train": [], "valid": [], "test": []}
    for u, seq in enumerate(train_seqs):
        rows["train"] += [(users[u], seq[max(0, t - max_length):t], seq[t]) for t in range(1, len(seq))]
    for name, seqs in (("valid", train_seqs), ("test", seen_seqs)):
        for row in splits[name].itertuples():
            seq = seqs[row.user_idx]
            rows[name].append((users[row.user_idx], seq[-max_length:], row.item_idx))
    (folder / NAME).mkdir(parents=True)
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    for name, examples in rows.items():
        lines = [f"{u}\t{' '.join(str(items[i]) for i in history)}\t{items[target]}" for u, history, target in examples
                 if len(history)]
        (folder / NAME / f"{NAME}.{name}.inter").write_text(header + "\n".join(lines) + "\n")
    return {name: len(examples) for name, examples in rows.items()}


def run_recbole(args: argparse.Namespace, params: dict) -> tuple[dict, dict]:
    """(example counts, RecBole's test metrics and seconds) from RecBole's own SASRec in ``--recbole-python``."""
    with tempfile.TemporaryDirectory() as tmp:
        counts = export(Path(tmp), params["max_length"])
        config = {"dataset": NAME, "data_path": tmp, "benchmark_filename": ["train", "valid", "test"],
                  "load_col": {"inter": ["user_id", "item_id_list", "item_id"]}, "alias_of_item_id": ["item_id_list"],
                  "MAX_ITEM_LIST_LENGTH": params["max_length"], "train_neg_sample_args": None,
                  "eval_args": {"order": "TO", "mode": "full", "group_by": "user", "split": {"LS": "valid_and_test"}},
                  "metrics": ["Recall", "NDCG", "Hit", "MRR"], "topk": list(KS), "valid_metric": "Recall@20",
                  "seed": params["seed"], "reproducibility": True, "use_gpu": False, "device": "cpu",
                  "show_progress": False, "checkpoint_dir": str(Path(tmp) / "saved"), "log_wandb": False}
        if args.epochs:
            config.update(epochs=args.epochs, stopping_step=args.epochs + 1, eval_step=args.epochs)
        start = time.perf_counter()
        # RecBole 1.2.1 reloads its own best checkpoint with torch.load, whose default became
        # weights_only=True in torch 2.6; the file is the one it has just written
        env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
        out = subprocess.run([args.recbole_python, "-c", RECBOLE, json.dumps(config)], capture_output=True, text=True,
                             cwd=tmp, env=env)
        for log in Path(tmp).glob("log/SASRec/*.log"):  # RecBole's own log, kept beside the report
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(log, Path(args.out).with_suffix(".recbole.log"))
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise SystemExit(f"RecBole failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
        recbole = json.loads(line[len("RESULT "):])
        recbole["wall_seconds"] = time.perf_counter() - start
    theirs = {f"{m}_at_{k}": recbole["test_result"][f"{m.replace('hit_rate', 'hit')}@{k}"]
              for m in ("recall", "ndcg", "hit_rate", "mrr") for k in KS}
    return counts, {**theirs, "best_valid_recall_at_20": recbole["best_valid_score"], "seconds": recbole["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recbole-python", help="a Python with RecBole and its dependencies")
    parser.add_argument("--out", default="benchmarks/results/recbole_sasrec.json")
    # RecBole recomputes every prefix (about 190 s an epoch on a 2-core CPU, ours 2.4 s): a budget
    # trains both for exactly this many epochs, test scored at the last one (validation unused)
    parser.add_argument("--epochs", type=int, default=None, help="train both exactly this many epochs")
    parser.add_argument("--recbole-report", default=None,
                        help="reuse RecBole's side of an earlier report of this script (same --epochs)")
    args = parser.parse_args()
    from bench_baselines import parameters

    params = parameters()["baselines"]["sasrec"]
    if args.recbole_report:  # RecBole's side as measured before (its own run takes ~17 min for 5 epochs)
        earlier = json.loads(Path(args.recbole_report).read_text())
        if earlier.get("epochs") != args.epochs:
            raise SystemExit(f"{args.recbole_report}: RecBole ran {earlier.get('epochs')} epochs, --epochs is {args.epochs}")
        counts, theirs = earlier["examples"], earlier["recbole_sasrec"]
    elif args.recbole_python:
        counts, theirs = run_recbole(args, params)
    else:
        parser.error("--recbole-python or --recbole-report is needed")
    budget = ["--epochs", str(args.epochs)] if args.epochs else []
    ours_out = subprocess.run([sys.executable, str(Path(__file__).with_name("bench_sequential.py")), "--one", "sasrec",
                               "leave-last-out", *budget], capture_output=True, text=True, cwd=ROOT)
    line = next((x for x in ours_out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"our SASRec failed:\n{ours_out.stderr[-3000:]}")
    ours = json.loads(line[len("RESULT "):])
    keys = [f"{m}_at_{k}" for m in ("recall", "ndcg", "hit_rate", "mrr") for k in KS]
    ours_k = {key: ours[f"test_{key}"] for key in keys}
    unmasked = {key: ours[f"test_unmasked_{key}"] for key in keys}
    gap = {key: ours_k[key] / theirs[key] - 1 for key in keys if theirs[key]}
    gap_unmasked = {key: unmasked[key] / theirs[key] - 1 for key in keys if theirs[key]}
    from report import write_report

    write_report({"split": "movielens-100k leave-last-out (seed 2025)", "examples": counts, "epochs": args.epochs,
                  "recbole_sasrec": theirs, "recbole_from": args.recbole_report,
                  "ours": {**ours_k, "train_seconds": ours["train_seconds"], "epochs": ours["epochs"]},
                  "ours_unmasked": unmasked,
                  "relative_gap_ours_vs_recbole": gap, "within_10_percent": all(abs(g) <= 0.10 for g in gap.values()),
                  "relative_gap_ours_unmasked_vs_recbole": gap_unmasked,
                  "unmasked_within_10_percent": all(abs(g) <= 0.10 for g in gap_unmasked.values())},
                 Path(args.out))


if __name__ == "__main__":
    main()
