"""Where could GLTA's gain over LightGCN come from? Diagnostics on a finished run's outputs.

Reads the persisted outputs through the Kedro catalog (latest versions unless told otherwise),
prints a table and writes ``data/08_reporting/glta_diagnostics.json``. Every figure is
validation (train masked) and test (train + valid masked), Recall@20 / NDCG@20, on the run's split.

1. ``correction_weight``: the trained GLTA with its LLM correction scaled by a weight
   (0 = LightGCN alone, 1 = the model as trained), and test scored with a prompt history of
   train only (instead of train + valid); ``correction_spread`` compares the spread of the
   correction's scores with LightGCN's.
2. ``ease_blend``: headroom check without any LLM. EASE (closed-form item-item model, Steck 2019)
   on the full history, alone and blended with LightGCN (per-user z-scored scores).
3. ``history_mean``: a correction that reads only the mean of the projected tokens of the
   user's last N training items (no LLM, trained as a denoising task: 20% of the items hidden
   and predicted), blended with LightGCN, for N = 10 (GLTA's prompt) and N = all.
4. ``seed_ensemble`` (with ``--ensemble-weights-versions v1,v2,...``): GLTA models trained with
   different seeds, alone and with their logits averaged.
5. ``glta_vs_lightgcn_test``: GLTA's relative gain on test Recall@20 and NDCG@20 with a 95%
   paired bootstrap interval over users (is the gain larger than the luck of the split?).

    python experiments/glta_diagnostics.py [--weights-version V] [--projector-version V]

Exploration code, not a pipeline: nothing here is used by ``kedro run``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import torch
from torch import nn

from glta_pipelines.core.glta import (
    gllm_loss,
    history_scorer,
    load_projector,
    residual_base,
    restore_gllm,
    user_histories,
)

from common import ROOT, Split, open_catalog, zscore  # noqa: E402  (the experiments' shared module)

def correction_weight(catalog, split: Split, base: torch.Tensor, weights_version: str | None) -> list[dict]:
    valid_logits, test_logits, scale = _glta_logits(catalog, split, weights_version)
    valid_corr, test_corr = valid_logits - scale * base, test_logits - scale * base
    rows = [{"weight": w, **split.score(scale * base + w * valid_corr, scale * base + w * test_corr)}
            for w in (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)]
    rows.append({"weight": 1.0, "test_history": "train only", **split.score(scale * base + valid_corr, scale * base + valid_corr)})
    spread = {"graph_scale": round(scale, 4), "lightgcn_score_std": round(float((scale * base).std()), 4),
              "llm_correction_std": round(float(valid_corr.std()), 4)}
    return rows, split.paired(scale * base + test_corr, base), spread


def _glta_logits(catalog, split: Split, weights_version: str | None):
    """(valid, test) logits of a trained GLTA model for every user, with its ``graph_scale``.

    The model (settings, item projector, LLM) is rebuilt from its weights file alone; its residual
    base is LightGCN trained on all of train, as in the ``evaluate`` stage.
    """
    model = restore_gllm(catalog.load("gllm_finetune.weights", weights_version),
                         catalog.load("pretrain_gnn.backbone_embeddings"))
    base = residual_base(model, catalog.load("pretrain_gnn.embeddings"), "pretrain_gnn.embeddings")
    users = torch.arange(split.n_users)

    def logits(history: pd.DataFrame) -> torch.Tensor:
        return history_scorer(model, history, split.n_users, base)(users)

    return logits(split.train), logits(split.seen_for_test), model.graph_scale.item()


def seed_ensemble(catalog, split: Split, weights_versions: list[str]) -> list[dict]:
    valid_sum, test_sum, rows = 0, 0, []
    for version in weights_versions:
        valid_logits, test_logits, _ = _glta_logits(catalog, split, version)
        rows.append({"models": version, **split.score(valid_logits, test_logits)})
        valid_sum, test_sum = valid_sum + valid_logits, test_sum + test_logits
    rows.append({"models": f"mean of the {len(weights_versions)} models' logits",
                 **split.score(valid_sum / len(weights_versions), test_sum / len(weights_versions))})
    return rows


def ease_blend(split: Split, base: torch.Tensor, regularisation: float = 300.0) -> list[dict]:
    train_matrix = split.interaction_matrix(split.train)
    gram = train_matrix.T @ train_matrix + regularisation * torch.eye(split.n_items)
    inverse = torch.linalg.inv(gram)
    weights = -inverse / torch.diag(inverse)
    weights.fill_diagonal_(0.0)
    valid_scores = train_matrix @ weights
    test_scores = split.interaction_matrix(split.seen_for_test) @ weights
    rows = [{"blend": "EASE alone", **split.score(valid_scores, test_scores)}]
    for alpha in (0.25, 0.5, 1.0):
        rows.append({"blend": f"LightGCN + {alpha} EASE", **split.score(
            zscore(base) + alpha * zscore(valid_scores), zscore(base) + alpha * zscore(test_scores))})
    return rows


class HistoryMean(nn.Module):
    """Mean of the projected tokens of a history -> LayerNorm -> linear -> dot with graph items."""

    def __init__(self, tokens: torch.Tensor, graph_item: torch.Tensor):
        super().__init__()
        self.tokens, self.graph_item = tokens, graph_item
        self.norm = nn.LayerNorm(tokens.shape[1])
        self.head = nn.Linear(tokens.shape[1], graph_item.shape[1])
        self.item_bias = nn.Parameter(torch.zeros(graph_item.shape[0]))

    def forward(self, histories: list[np.ndarray]) -> torch.Tensor:
        pooled = torch.stack([self.tokens[torch.from_numpy(h)].mean(0) for h in histories])
        return self.head(self.norm(pooled)) @ self.graph_item.T + self.item_bias


def history_mean(split: Split, base: torch.Tensor, tokens: torch.Tensor, graph_item: torch.Tensor,
                 last_n: int | None, epochs: int = 20, seed: int = 2025) -> list[dict]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = HistoryMean(tokens, graph_item)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    histories = user_histories(split.train, split.n_users)
    cut = (lambda h: h) if last_n is None else (lambda h: h[-last_n:])
    for _ in range(epochs):
        examples = []
        for items in histories:
            hide = rng.random(len(items)) < 0.2
            if len(items) > 1 and hide.any() and not hide.all():
                examples.append((cut(items[~hide]), items[hide], items[~hide]))
        for lo in range(0, len(examples), 32):
            batch = examples[lo : lo + 32]
            loss = gllm_loss(model([b[0] for b in batch]), [b[1] for b in batch], [b[2] for b in batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        valid_scores = model([cut(h) for h in histories])
        test_scores = model([cut(h) for h in user_histories(split.seen_for_test, split.n_users)])
    label = "all" if last_n is None else str(last_n)
    rows = [{"history": label, "blend": "alone", **split.score(valid_scores, test_scores)}]
    for alpha in (0.2, 0.3, 0.5):
        rows.append({"history": label, "blend": f"LightGCN + {alpha} correction", **split.score(
            zscore(base) + alpha * zscore(valid_scores), zscore(base) + alpha * zscore(test_scores))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights-version", help="version of gllm_finetune.weights (default: latest)")
    parser.add_argument("--projector-version", help="version of align_tokens.item_projector for history_mean "
                        "(default: latest; GLTA itself uses the projector inside its weights)")
    parser.add_argument("--skip-llm", action="store_true", help="only the diagnostics without the LLM")
    parser.add_argument("--ensemble-weights-versions", help="comma-separated gllm_finetune.weights versions to average")
    args = parser.parse_args()
    catalog, _ = open_catalog()
    n_users, n_items = len(catalog.load("graph.user_map")), len(catalog.load("graph.item_map"))
    split = Split(catalog.load("graph.train"), catalog.load("graph.valid"), catalog.load("graph.test"), n_users, n_items)
    lightgcn = catalog.load("pretrain_gnn.embeddings")
    base = lightgcn["user"] @ lightgcn["item"].T
    backbone = catalog.load("pretrain_gnn.backbone_embeddings")
    projector = load_projector(catalog.load("align_tokens.item_projector", args.projector_version)).eval()
    with torch.no_grad():
        tokens = projector(backbone["item"])

    report = {"lightgcn": split.score(base, base), "ease_blend": ease_blend(split, base),
              "history_mean": history_mean(split, base, tokens, backbone["item"], 10)
              + history_mean(split, base, tokens, backbone["item"], None)}
    if not args.skip_llm:
        report["correction_weight"], significance, spread = correction_weight(catalog, split, base, args.weights_version)
        report["correction_spread"] = spread
        if args.ensemble_weights_versions:
            report["seed_ensemble"] = seed_ensemble(catalog, split, args.ensemble_weights_versions.split(","))
        report["glta_vs_lightgcn_test"] = [{"metric": k, **v} for k, v in significance.items()]
    for section, rows in report.items():
        print(f"\n{section}")
        for row in rows if isinstance(rows, list) else [rows]:
            print("  " + ", ".join(f"{k}={v}" for k, v in row.items()))
    out = ROOT / "data/08_reporting/glta_diagnostics.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
