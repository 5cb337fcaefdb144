"""LightGCN (He et al., SIGIR'20) on the user-item bipartite graph, trained with BPR.

Wraps ``torch_geometric.nn.models.LightGCN`` (its embedding table and layer weights). The
symmetric-normalised adjacency is built once as a sparse CSR tensor, so propagation is three
sparse matmuls per step instead of re-normalising the edge list every forward.

Propagation is bit-reproducible with any thread count: autograd's backward of a CSR matmul
scatters into the gradient from several threads (float sums in a varying order, about 2e-7 of
drift per run), whereas :class:`SymmetricPropagation` uses that the normalised adjacency is
symmetric (``A^T = A``), so its backward is the same row-parallel ``A @ grad`` as its forward.
"""

from __future__ import annotations

import copy
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from glta_pipelines.core.devices import check_device, resolve_device
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.evaluation.ranking import METRIC_NAMES, ranking_metrics
from glta_pipelines.core.reproducibility import deterministic
from glta_pipelines.core.training.trainer import EpochCallback, Schedule, fit

if TYPE_CHECKING:  # imported where a model is built: PyG takes 3.7 s to import, and most processes
    # (the CLI, serving, the LLM stages' workers) never build one
    from torch_geometric.nn.models import LightGCN

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")

@dataclass(frozen=True)
class LightGCNConfig:
    """Hyper-parameters of LightGCN pretraining."""

    # size of the user and item embeddings
    embedding_dim: int = 64
    # propagation layers (their mean is the embedding)
    num_layers: int = 3
    learning_rate: float = 1e-2
    # constant, or cosine: decays from learning_rate to 0 over max_epochs (fast start, careful end)
    learning_rate_schedule: str = "constant"
    # BPR triples (user, positive, negative) per step
    batch_size: int = 2048
    # an upper bound: early stopping ends sooner
    max_epochs: int = 100
    weight_decay: float = 1e-3  # L2 on the batch's layer-0 embeddings, as in the LightGCN paper
    eval_every: int = 5
    patience: int = 4  # evaluations without a better validation score before stopping
    # validation metric of early stopping and of the best epoch
    selection_metric: str = "recall_at_20"
    # initialisation, negatives and batch order
    seed: int = 2025
    # cpu: bit-identical runs (OMP_NUM_THREADS=1); auto: CUDA when present (sparse products on a GPU
    # are not bit-reproducible); cuda[:N]. Embeddings come back to the CPU either way.
    device: str = "auto"

    def validate(self) -> None:
        """Raise :class:`InputError` naming the first out-of-range parameter."""
        positive = ("embedding_dim", "learning_rate", "batch_size", "max_epochs", "eval_every", "patience")
        for name in positive:
            if not getattr(self, name) > 0:
                raise InputError(f"parameter pretrain_gnn.lightgcn.{name}", getattr(self, name), "a positive number")
        if self.learning_rate_schedule not in ("constant", "cosine"):
            raise InputError("parameter pretrain_gnn.lightgcn.learning_rate_schedule", repr(self.learning_rate_schedule),
                             "constant or cosine")
        if re.fullmatch(rf"({'|'.join(METRIC_NAMES)})_at_[1-9][0-9]*", self.selection_metric) is None:
            raise InputError("parameter pretrain_gnn.lightgcn.selection_metric", repr(self.selection_metric),
                             f"<metric>_at_<k> with <metric> one of {', '.join(METRIC_NAMES)} (e.g. recall_at_20)")
        if self.num_layers < 0 or self.weight_decay < 0:
            raise InputError("parameter pretrain_gnn.lightgcn.num_layers/weight_decay",
                             (self.num_layers, self.weight_decay), "non-negative values")
        check_device(self.device, "pretrain_gnn.lightgcn.device")


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
    from torch_geometric.nn.models import LightGCN

    torch.manual_seed(config.seed)
    model = LightGCN(num_nodes=n_users + n_items, embedding_dim=config.embedding_dim, num_layers=config.num_layers)
    for conv in model.convs:
        conv.normalize = False
    return model


class SymmetricPropagation(torch.autograd.Function):
    """``A @ x`` for a symmetric sparse ``A``, whose backward is ``A @ grad`` (deterministic)."""

    @staticmethod
    def forward(ctx, adjacency: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adjacency = adjacency
        return adjacency @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, ctx.adjacency @ grad


def propagate(model: LightGCN, adjacency: torch.Tensor) -> torch.Tensor:
    """Layer-combined embeddings ``sum_l alpha_l A^l E`` of all nodes (PyG's ``get_embedding``)."""
    x = model.embedding.weight
    out = x * model.alpha[0]
    for layer in range(model.num_layers):
        x = SymmetricPropagation.apply(adjacency, x)
        out = out + x * model.alpha[layer + 1]
    return out


def split_embeddings(model: LightGCN, adjacency: torch.Tensor, n_users: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Final (layer-combined) user and item embeddings."""
    emb = propagate(model, adjacency)
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


def training_step(model: LightGCN, adjacency: torch.Tensor, optimizer: torch.optim.Optimizer, users: np.ndarray,
                  positives: np.ndarray, negatives: np.ndarray, n_users: int, weight_decay: float) -> float:
    """One BPR step over the full-graph propagation, with L2 on the batch's layer-0 embeddings; returns the BPR loss."""
    device = model.embedding.weight.device
    b_users = torch.from_numpy(users).to(device)
    b_pos = torch.from_numpy(positives).to(device) + n_users
    b_neg = torch.from_numpy(negatives).to(device) + n_users
    emb = propagate(model, adjacency)
    loss = bpr_loss(emb[b_users], emb[b_pos], emb[b_neg])
    ego = model.embedding.weight
    reg = (ego[b_users].pow(2).sum() + ego[b_pos].pow(2).sum() + ego[b_neg].pow(2).sum()) / (2 * len(users))
    optimizer.zero_grad()
    (loss + weight_decay * reg).backward()
    optimizer.step()
    return loss.item()


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
    ``show_progress=None`` shows a bar only on a terminal. Bit-reproducible for a seed.
    """
    with deterministic():
        return _train_lightgcn(train, valid, n_users, n_items, config, on_epoch_end, show_progress)


def _train_lightgcn(train, valid, n_users, n_items, config, on_epoch_end, show_progress) -> TrainResult:
    config.validate()
    if train.empty:
        raise InputError("train split", "0 interactions", "a non-empty training split")
    rng = np.random.default_rng(config.seed)
    users, items = train["user_idx"].to_numpy(), train["item_idx"].to_numpy()
    device = resolve_device(config.device)
    adjacency = normalized_adjacency(users, items, n_users, n_items).to(device)
    model = build_model(n_users, n_items, config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.max_epochs)
                if config.learning_rate_schedule == "cosine" else None)
    sampler = NegativeSampler(users, items, n_items, rng)
    ks = sorted({10, 20, int(config.selection_metric.rsplit("_at_", 1)[-1])})

    def train_epoch(epoch: int) -> dict[str, float]:
        start = time.perf_counter()
        model.train()
        order = rng.permutation(len(users))
        total, n_batches = 0.0, 0
        for lo in range(0, len(order), config.batch_size):
            batch = order[lo : lo + config.batch_size]
            loss = training_step(model, adjacency, optimizer, users[batch], items[batch],
                                 sampler.sample(users[batch]), n_users, config.weight_decay)
            total, n_batches = total + loss, n_batches + 1
        row = {"loss": total / n_batches, "seconds": time.perf_counter() - start,
               "learning_rate": optimizer.param_groups[0]["lr"]}
        if schedule is not None:
            schedule.step()
        return row

    def validate() -> dict[str, float]:
        metrics = evaluate_embeddings(model, adjacency, train, valid, n_users, n_items, ks)
        return {f"valid_{k}": v for k, v in metrics.items()}

    state = fit("LightGCN", Schedule(config.max_epochs, config.eval_every, config.patience, config.selection_metric),
                train_epoch, validate, lambda: copy.deepcopy(model.state_dict()), on_epoch_end=on_epoch_end,
                show_progress=show_progress)
    best_state, best_epoch = state.best_state, state.best_epoch

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        user_emb, item_emb = (e.cpu() for e in split_embeddings(model, adjacency, n_users))
    return TrainResult(model.cpu(), user_emb, item_emb, pd.DataFrame(state.rows), best_epoch)


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
    with torch.no_grad():  # the evaluator ranks on the CPU, in float32
        user_emb, item_emb = (e.cpu() for e in split_embeddings(model, adjacency, n_users))
    return ranking_metrics(dot_product_scorer(user_emb, item_emb), seen, truth, n_users, n_items, ks)


def dot_product_scorer(user_emb: torch.Tensor, item_emb: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """Score function ``users -> user_emb[users] @ item_emb.T`` for the ranking evaluator."""
    return lambda users: user_emb[users] @ item_emb.T


def fold_in_map(item_embeddings: torch.Tensor, user_embeddings: torch.Tensor, histories: Sequence[np.ndarray],
                ridge: float = 1e-3) -> torch.Tensor:
    """(d, d) ridge map from a user's mean history-item embedding to its trained embedding.

    Fitted on the users with a history; ``ridge`` is relative to the mean squared feature.
    """
    users = [u for u, h in enumerate(histories) if len(h)]
    if not users:
        return torch.eye(item_embeddings.shape[1], dtype=torch.float64)
    features = torch.stack([item_embeddings[torch.from_numpy(histories[u])].double().mean(0) for u in users])
    targets = user_embeddings[users].double()
    gram = features.T @ features
    penalty = ridge * gram.diagonal().mean() * torch.eye(gram.shape[0], dtype=gram.dtype)
    return torch.linalg.solve(gram + penalty, features.T @ targets)


def user_item_lists(interactions: pd.DataFrame, n_users: int) -> list[np.ndarray]:
    """Each user's items (oldest first when there are timestamps); an empty array for a user without any."""
    order = ["user_idx", "timestamp"] if "timestamp" in interactions.columns else ["user_idx"]
    frame = interactions.sort_values(order, kind="stable")
    out = [np.zeros(0, dtype=np.int64) for _ in range(n_users)]
    for user, items in frame.groupby("user_idx")["item_idx"]:
        out[int(user)] = items.to_numpy(dtype=np.int64)
    return out


def fold_in_users(user_embeddings: torch.Tensor, item_embeddings: torch.Tensor, train: pd.DataFrame,
                  new_histories: pd.DataFrame) -> torch.Tensor:
    """``user_embeddings`` with each user of ``new_histories`` (user_idx, item_idx) replaced by its
    folded-in vector: the mean of its history items' embeddings through :func:`fold_in_map`, fitted
    on the users of ``train``. The served model folds new users in the same way."""
    if new_histories.empty:
        return user_embeddings
    n_users = user_embeddings.shape[0]
    mapping = fold_in_map(item_embeddings.cpu(), user_embeddings.cpu(), user_item_lists(train, n_users))
    out = user_embeddings.clone()
    for user, items in enumerate(user_item_lists(new_histories, n_users)):
        if len(items):
            out[user] = (item_embeddings[torch.from_numpy(items)].double().mean(0).cpu() @ mapping).to(out)
    return out
