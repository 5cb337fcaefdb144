"""LightGCN (He et al., SIGIR'20) on the user-item bipartite graph, trained with BPR.

Wraps ``torch_geometric.nn.models.LightGCN``. The symmetric-normalised adjacency is built once
as a sparse tensor, so propagation is three sparse matmuls per step instead of re-normalising
the edge list every forward.
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch_geometric.nn.models import LightGCN
from tqdm.auto import tqdm

from glta_pipelines.core.errors import InputError
from glta_pipelines.core.ranking import ranking_metrics

log = logging.getLogger(__name__)
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class LightGCNConfig:
    """Hyper-parameters of LightGCN pretraining."""

    embedding_dim: int = 64
    num_layers: int = 3
    learning_rate: float = 2e-3
    batch_size: int = 2048
    max_epochs: int = 300
    weight_decay: float = 1e-4  # L2 on the batch's layer-0 embeddings, as in the LightGCN paper
    eval_every: int = 10
    patience: int = 5  # evaluations without a better validation score before stopping
    selection_metric: str = "recall_at_20"
    seed: int = 2025

    def validate(self) -> None:
        """Raise :class:`InputError` naming the first out-of-range parameter."""
        positive = ("embedding_dim", "learning_rate", "batch_size", "max_epochs", "eval_every", "patience")
        for name in positive:
            if not getattr(self, name) > 0:
                raise InputError(f"parameter pretrain_gnn.lightgcn.{name}", getattr(self, name), "a positive number")
        if self.num_layers < 0 or self.weight_decay < 0:
            raise InputError("parameter pretrain_gnn.lightgcn.num_layers/weight_decay",
                             (self.num_layers, self.weight_decay), "non-negative values")


def normalized_adjacency(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> torch.Tensor:
    """D^-1/2 A D^-1/2 of the bipartite graph (users first, then items), as sparse CSR."""
    u = torch.tensor(users, dtype=torch.long)
    i = torch.tensor(items, dtype=torch.long) + n_users
    row, col = torch.cat([u, i]), torch.cat([i, u])
    n = n_users + n_items
    degree = torch.bincount(row, minlength=n).float()
    inv_sqrt = degree.pow(-0.5).masked_fill(degree == 0, 0.0)
    values = inv_sqrt[row] * inv_sqrt[col]
    coo = torch.sparse_coo_tensor(torch.stack([row, col]), values, (n, n), check_invariants=False)
    return coo.coalesce().to_sparse_csr()  # CSR: PyG's spmm would convert COO on every forward


def build_model(n_users: int, n_items: int, config: LightGCNConfig) -> LightGCN:
    """A PyG LightGCN whose convolutions expect an already-normalised adjacency."""
    torch.manual_seed(config.seed)
    model = LightGCN(num_nodes=n_users + n_items, embedding_dim=config.embedding_dim, num_layers=config.num_layers)
    for conv in model.convs:
        conv.normalize = False
    return model


def split_embeddings(model: LightGCN, adjacency: torch.Tensor, n_users: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Final (layer-combined) user and item embeddings."""
    emb = model.get_embedding(adjacency)
    return emb[:n_users], emb[n_users:]


class NegativeSampler:
    """Uniform negative items that the user has not interacted with in training."""

    def __init__(self, users: np.ndarray, items: np.ndarray, n_items: int, rng: np.random.Generator) -> None:
        self.n_items, self.rng = n_items, rng
        self.positive_keys = np.unique(users.astype(np.int64) * n_items + items)
        if np.bincount(users).max() >= n_items:
            raise InputError("training interactions", "a user who interacted with every item",
                             "at least one non-interacted item per user for negative sampling")

    def sample(self, users: np.ndarray, max_rounds: int = 10) -> np.ndarray:
        """One negative per user: rejection sampling, then an exact draw for rows still clashing."""
        users = users.astype(np.int64)
        negatives = self.rng.integers(0, self.n_items, len(users))
        clash = self._is_positive(users, negatives)
        for _ in range(max_rounds):
            if not clash.any():
                return negatives
            negatives[clash] = self.rng.integers(0, self.n_items, int(clash.sum()))
            clash = self._is_positive(users, negatives)
        for row in np.flatnonzero(clash):  # dense users: draw from the complement directly
            lo, hi = np.searchsorted(self.positive_keys, [users[row] * self.n_items, (users[row] + 1) * self.n_items])
            allowed = np.setdiff1d(np.arange(self.n_items), self.positive_keys[lo:hi] - users[row] * self.n_items)
            negatives[row] = self.rng.choice(allowed)
        return negatives

    def _is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users * self.n_items + items
        found = np.searchsorted(self.positive_keys, keys).clip(max=len(self.positive_keys) - 1)
        return self.positive_keys[found] == keys


def bpr_loss(user_e: torch.Tensor, pos_e: torch.Tensor, neg_e: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking loss: -log sigmoid(score(u, i+) - score(u, i-))."""
    return -torch.nn.functional.logsigmoid((user_e * pos_e).sum(1) - (user_e * neg_e).sum(1)).mean()


@dataclass
class TrainResult:
    """A trained LightGCN with its history."""

    model: LightGCN
    user_embedding: torch.Tensor
    item_embedding: torch.Tensor
    history: pd.DataFrame  # one row per epoch: epoch, loss, seconds, and validation metrics when evaluated
    best_epoch: int


def train_lightgcn(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    n_users: int,
    n_items: int,
    config: LightGCNConfig,
    on_epoch_end: EpochCallback | None = None,
    show_progress: bool | None = None,
) -> TrainResult:
    """Train LightGCN with BPR on ``train``; early-stop on ``valid`` ``selection_metric``.

    ``train``/``valid`` have columns user_idx, item_idx. The weights of the best validation
    evaluation are returned. ``on_epoch_end(epoch, metrics)`` is called after every epoch.
    ``show_progress=None`` shows a bar only on a terminal.
    """
    config.validate()
    if train.empty:
        raise InputError("train split", "0 interactions", "a non-empty training split")
    rng = np.random.default_rng(config.seed)
    users, items = train["user_idx"].to_numpy(), train["item_idx"].to_numpy()
    adjacency = normalized_adjacency(users, items, n_users, n_items)
    model = build_model(n_users, n_items, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    sampler = NegativeSampler(users, items, n_items, rng)
    ks = sorted({10, 20, int(config.selection_metric.rsplit("_at_", 1)[-1])})

    best_score, best_epoch, best_state, evals_since_best = -1.0, 0, None, 0
    rows = []
    bar = tqdm(range(1, config.max_epochs + 1), desc="LightGCN", unit="epoch", disable=_quiet(show_progress))
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        order = rng.permutation(len(users))
        total, n_batches = 0.0, 0
        for lo in range(0, len(order), config.batch_size):
            batch = order[lo : lo + config.batch_size]
            b_users = torch.from_numpy(users[batch])
            b_pos = torch.from_numpy(items[batch]) + n_users
            b_neg = torch.from_numpy(sampler.sample(users[batch])) + n_users
            emb = model.get_embedding(adjacency)
            loss = bpr_loss(emb[b_users], emb[b_pos], emb[b_neg])
            ego = model.embedding.weight
            reg = (ego[b_users].pow(2).sum() + ego[b_pos].pow(2).sum() + ego[b_neg].pow(2).sum()) / (2 * len(batch))
            optimizer.zero_grad()
            (loss + config.weight_decay * reg).backward()
            optimizer.step()
            total, n_batches = total + loss.item(), n_batches + 1
        row = {"epoch": epoch, "loss": total / n_batches, "seconds": time.perf_counter() - start}

        if epoch % config.eval_every == 0 or epoch == config.max_epochs:
            metrics = evaluate_embeddings(model, adjacency, train, valid, n_users, n_items, ks)
            row.update({f"valid_{k}": v for k, v in metrics.items()})
            score = metrics[config.selection_metric]
            if score > best_score:
                best_score, best_epoch, evals_since_best = score, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                evals_since_best += 1
        rows.append(row)
        bar.set_postfix(loss=f"{row['loss']:.4f}", best=f"{max(best_score, 0):.4f}")
        log.info("LightGCN epoch %d: %s", epoch, ", ".join(f"{k}={v:.4f}" for k, v in row.items() if k != "epoch"))
        if on_epoch_end is not None:
            on_epoch_end(epoch, {k: v for k, v in row.items() if k != "epoch"})
        if evals_since_best >= config.patience:
            log.info("LightGCN early stop at epoch %d; best epoch %d (%s=%.4f)", epoch, best_epoch,
                     config.selection_metric, best_score)
            break
    bar.close()

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        user_emb, item_emb = split_embeddings(model, adjacency, n_users)
    return TrainResult(model, user_emb, item_emb, pd.DataFrame(rows), best_epoch)


def evaluate_embeddings(
    model: LightGCN,
    adjacency: torch.Tensor,
    seen: pd.DataFrame,
    truth: pd.DataFrame,
    n_users: int,
    n_items: int,
    ks: list[int],
) -> dict[str, float]:
    """Full-ranking metrics of the model's current embeddings (seen items masked)."""
    model.eval()
    with torch.no_grad():
        user_emb, item_emb = split_embeddings(model, adjacency, n_users)
    return ranking_metrics(dot_product_scorer(user_emb, item_emb), seen, truth, n_users, n_items, ks)


def dot_product_scorer(user_emb: torch.Tensor, item_emb: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """Score function ``users -> user_emb[users] @ item_emb.T`` for the ranking evaluator."""
    return lambda users: user_emb[users] @ item_emb.T


def _quiet(show_progress: bool | None) -> bool | None:
    """tqdm's ``disable``: None hides the bar when stderr is not a terminal (CI, logs)."""
    return None if show_progress is None else not show_progress
