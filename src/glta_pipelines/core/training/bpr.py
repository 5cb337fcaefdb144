"""One trainer for the BPR graph baselines (HCCF, LightGCN+, HCCF+, RLMRec-Con, RLMRec-Gen).

Their training schedule is LightGCN's (``pretrain_gnn.lightgcn``: embedding size, learning
rate, batch size, epochs, validation, patience, L2 on the batch's ID embeddings, seed): the
same uniform negatives, the same loop (:func:`~glta_pipelines.core.training.trainer.fit`), the same
early stopping. A baseline then differs from LightGCN only in what its model adds, so each
difference in the results table is that addition's. (The reference codes train with lr 1e-3 and
batch 4096 for up to 3000 epochs, at embedding size 32: far beyond the 10-minute budget, and a
different schedule for every model would confound the comparison.)

A model supplies ``loss(users, pos, neg) -> {term: tensor}`` (``"bpr"`` among the terms; the
total is their sum) and ``embeddings() -> (user, item)`` for scoring.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
import torch

from glta_pipelines.core.errors import InputError
from glta_pipelines.core.models.lightgcn import LightGCNConfig, NegativeSampler, dot_product_scorer
from glta_pipelines.core.evaluation.ranking import ranking_metrics
from glta_pipelines.core.reproducibility import deterministic
from glta_pipelines.core.training.trainer import EpochCallback, Schedule, fit


class BPRModel(Protocol):
    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> dict[str, torch.Tensor]: ...

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass
class TrainedEmbeddings:
    """A trained model's final embeddings (best validation epoch) with its history."""

    user: torch.Tensor
    item: torch.Tensor
    history: pd.DataFrame  # one row per epoch: loss (BPR), each loss term, seconds, validation metrics
    best_epoch: int


def train_bpr_model(
    name: str,
    build: callable,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    n_users: int,
    n_items: int,
    config: LightGCNConfig,
    on_epoch_end: EpochCallback | None = None,
    show_progress: bool | None = None,
) -> TrainedEmbeddings:
    """Train the model ``build()`` returns with BPR on ``train``; early-stop on ``valid``.

    ``build`` is called after seeding torch with ``config.seed``, so initialisation, dropout
    masks and negatives are reproducible bit for bit.
    """
    config.validate()
    if train.empty:
        raise InputError("train split", "0 interactions", "a non-empty training split")
    with deterministic():
        torch.manual_seed(config.seed)
        model = build()
        return _train(name, model, train, valid, n_users, n_items, config, on_epoch_end, show_progress)


def _train(name, model, train, valid, n_users, n_items, config, on_epoch_end, show_progress) -> TrainedEmbeddings:
    rng = np.random.default_rng(config.seed)
    users, items = train["user_idx"].to_numpy(), train["item_idx"].to_numpy()
    sampler = NegativeSampler(users, items, n_items, rng)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.max_epochs)
                if config.learning_rate_schedule == "cosine" else None)
    ks = sorted({10, 20, int(config.selection_metric.rsplit("_at_", 1)[-1])})

    def train_epoch(epoch: int) -> dict[str, float]:
        start = time.perf_counter()
        model.train()
        order = rng.permutation(len(users))
        sums: dict[str, float] = {}
        n_batches = 0
        for lo in range(0, len(order), config.batch_size):
            batch = order[lo : lo + config.batch_size]
            b_users = torch.from_numpy(users[batch])
            b_pos = torch.from_numpy(items[batch])
            b_neg = torch.from_numpy(sampler.sample(users[batch]))
            terms = model.loss(b_users, b_pos, b_neg)
            terms["l2"] = config.weight_decay * model.encoder.l2(b_users, b_pos, b_neg)
            optimizer.zero_grad()
            sum(terms.values()).backward()
            optimizer.step()
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + value.item()
            n_batches += 1
        row = {"loss": sums.pop("bpr") / n_batches, **{f"{k}_loss": v / n_batches for k, v in sums.items()},
               "seconds": time.perf_counter() - start, "learning_rate": optimizer.param_groups[0]["lr"]}
        if schedule is not None:
            schedule.step()
        return row

    def validate() -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            user_emb, item_emb = model.embeddings()
        metrics = ranking_metrics(dot_product_scorer(user_emb, item_emb), train, valid, n_users, n_items, ks)
        return {f"valid_{k}": v for k, v in metrics.items()}

    state = fit(name, Schedule(config.max_epochs, config.eval_every, config.patience, config.selection_metric),
                train_epoch, validate, lambda: copy.deepcopy(model.state_dict()), on_epoch_end=on_epoch_end,
                show_progress=show_progress)
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    model.eval()
    with torch.no_grad():
        user_emb, item_emb = model.embeddings()
    return TrainedEmbeddings(user_emb, item_emb, pd.DataFrame(state.rows), state.best_epoch)
