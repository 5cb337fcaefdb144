"""SASRec (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM'18): causal
self-attention over a user's latest items in time order, the sequential baseline of LLM
recommenders (E4SRec, LLaRA, A-LLMRec).

Follows RecBole's ``recbole/model/sequential_recommender/sasrec.py`` and its
``TransformerEncoder`` (``recbole/model/layers.py``): item and learned position embeddings summed,
LayerNorm and dropout; post-norm blocks of multi-head attention (attention-probability dropout,
output dropout, residual, LayerNorm) and a GELU feed-forward (dropout, residual, LayerNorm);
weights drawn from N(0, 0.02), LayerNorm at (1, 0); the user is the output at the last item; the
score of an item is its dot product with that item's input embedding (tied). Defaults are
RecBole's: 2 layers, 2 heads, hidden 64, inner 256, dropout 0.5 and 0.5, 50 items, full-catalogue
cross-entropy (or BPR with one uniform negative), Adam at 1e-3, early stopping after 10
validations without a better one.

One difference, for speed on a CPU: RecBole makes every prefix of a training sequence an example
and takes the loss at its last position; here each user's training sequence is cut into windows
of ``max_length`` targets (latest first) and the loss is taken at every position of a window, as
the authors' code does. The targets are the same; a target early in a window sees fewer than
``max_length`` earlier items. The padding row is not a class of the cross-entropy (RecBole's is).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from glta_pipelines.core.artifacts import TensorArtifact, artifact_config
from glta_pipelines.core.data.interactions import user_sequences
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.evaluation.ranking import ScoreFn, check_selection_metric, ranking_metrics
from glta_pipelines.core.reproducibility import deterministic
from glta_pipelines.core.training.trainer import EpochCallback, Schedule, fit

LOSSES = ("ce", "bpr")


@dataclass(frozen=True)
class SASRecConfig:
    """``baselines.sasrec`` (RecBole's defaults)."""

    num_layers: int = 2
    num_heads: int = 2
    hidden_size: int = 64  # item, position and hidden width
    inner_size: int = 256  # width of the feed-forward layer
    hidden_dropout: float = 0.5
    attention_dropout: float = 0.5
    max_length: int = 50  # latest items a user is read from
    loss: str = "ce"  # ce: cross-entropy over all items; bpr: one uniform negative per target
    learning_rate: float = 0.001
    batch_size: int = 64  # windows of up to max_length targets per step
    max_epochs: int = 200
    eval_every: int = 1
    patience: int = 10  # validations without a better one before training stops
    selection_metric: str = "recall_at_20"
    seed: int = 2025

    def validate(self) -> None:
        where = "parameter baselines.sasrec"
        for name in ("num_layers", "num_heads", "hidden_size", "inner_size", "max_length", "batch_size", "max_epochs",
                     "eval_every", "patience"):
            if getattr(self, name) < 1:
                raise InputError(f"{where}.{name}", getattr(self, name), "an integer of at least 1")
        if self.hidden_size % self.num_heads:
            raise InputError(f"{where}.hidden_size", self.hidden_size,
                             f"a multiple of baselines.sasrec.num_heads ({self.num_heads})")
        for name in ("hidden_dropout", "attention_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise InputError(f"{where}.{name}", getattr(self, name), "a probability in [0, 1)")
        if self.loss not in LOSSES:
            raise InputError(f"{where}.loss", repr(self.loss), "one of " + ", ".join(repr(x) for x in LOSSES))
        if self.learning_rate <= 0:
            raise InputError(f"{where}.learning_rate", self.learning_rate, "a number above 0")
        check_selection_metric(self.selection_metric, f"{where}.selection_metric")


class _Block(nn.Module):
    """RecBole's ``TransformerLayer``: post-norm attention and feed-forward sublayers."""

    def __init__(self, config: SASRecConfig, eps: float = 1e-12) -> None:
        super().__init__()
        h = config.hidden_size
        self.heads = config.num_heads
        self.query, self.key, self.value, self.dense = (nn.Linear(h, h) for _ in range(4))
        self.attention_dropout = nn.Dropout(config.attention_dropout)
        self.attention_out_dropout = nn.Dropout(config.hidden_dropout)
        self.attention_norm = nn.LayerNorm(h, eps=eps)
        self.inner, self.outer = nn.Linear(h, config.inner_size), nn.Linear(config.inner_size, h)
        self.ff_dropout = nn.Dropout(config.hidden_dropout)
        self.ff_norm = nn.LayerNorm(h, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, length, h = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, length, self.heads, h // self.heads).transpose(1, 2)

        scores = heads(self.query(x)) @ heads(self.key(x)).transpose(-1, -2) / math.sqrt(h // self.heads) + mask
        context = (self.attention_dropout(scores.softmax(-1)) @ heads(self.value(x))).transpose(1, 2).reshape(b, length, h)
        x = self.attention_norm(self.attention_out_dropout(self.dense(context)) + x)
        return self.ff_norm(self.ff_dropout(self.outer(F.gelu(self.inner(x)))) + x)


class SASRec(nn.Module):
    """Item ``i`` is row ``i + 1`` of the item embedding; row 0 pads a sequence on the right."""

    def __init__(self, n_items: int, config: SASRecConfig) -> None:
        super().__init__()
        self.config = config
        self.item_embedding = nn.Embedding(n_items + 1, config.hidden_size, padding_idx=0)
        self.position_embedding = nn.Embedding(config.max_length, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=1e-12)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.num_layers))
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(0.0, 0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.data.fill_(1.0)
            module.bias.data.zero_()

    def encode(self, sequences: torch.Tensor) -> torch.Tensor:
        """(B, L, hidden) outputs of (B, L) padded sequences (row indices: item + 1, 0 = padding)."""
        length = sequences.shape[1]
        x = self.item_embedding(sequences) + self.position_embedding(torch.arange(length, device=sequences.device))
        x = self.dropout(self.norm(x))
        # causal: position i reads positions <= i (right padding is never read by a real item)
        mask = torch.triu(torch.full((length, length), -10000.0, device=sequences.device), diagonal=1)
        for block in self.blocks:
            x = block(x, mask)
        return x

    def item_vectors(self) -> torch.Tensor:
        return self.item_embedding.weight[1:]

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor | None = None) -> torch.Tensor:
        """Mean loss over the real targets of item-index windows (``inputs`` and ``targets`` -1 where padded)."""
        hidden = self.encode(inputs + 1)[targets >= 0]
        positives = targets[targets >= 0]
        if self.config.loss == "ce":
            return F.cross_entropy(hidden @ self.item_vectors().T, positives)
        items = self.item_vectors()
        gap = (hidden * (items[positives] - items[negatives[targets >= 0]])).sum(-1)
        return -F.logsigmoid(gap).mean()

    def users(self, histories: list[np.ndarray]) -> torch.Tensor:
        """(B, hidden) output at each history's last item (its latest ``max_length``); zeros for an empty one."""
        shown = [h[-self.config.max_length:] for h in histories]
        lengths = torch.tensor([len(h) for h in shown])
        padded = torch.zeros(len(shown), max(1, max((len(h) for h in shown), default=0)), dtype=torch.long)
        for row, h in enumerate(shown):
            padded[row, :len(h)] = torch.from_numpy(np.asarray(h, dtype=np.int64)) + 1
        out = self.encode(padded.to(self.item_embedding.weight.device))
        last = out[torch.arange(len(shown)), (lengths - 1).clamp(min=0)]
        return torch.where((lengths > 0).unsqueeze(1).to(last.device), last, torch.zeros_like(last))


def training_windows(histories: list[np.ndarray], max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), each (windows, max_length), right-padded with -1: every user's sequence
    cut into windows of at most ``max_length`` next-item targets, latest first, each target once."""
    inputs, targets = [], []
    for items in histories:
        for end in range(len(items), 1, -max_length):
            window = items[max(0, end - max_length - 1):end]
            inputs.append(window[:-1])
            targets.append(window[1:])
    shape = (len(inputs), max_length)
    padded = np.full(shape, -1, dtype=np.int64), np.full(shape, -1, dtype=np.int64)
    for row, (x, y) in enumerate(zip(inputs, targets)):
        padded[0][row, :len(x)], padded[1][row, :len(y)] = x, y
    return padded


def sequence_scorer(model: SASRec, histories: list[np.ndarray]) -> ScoreFn:
    """Scores of every item for the given users, each read from ``histories[user]`` (time order)."""
    def score(users: torch.Tensor) -> torch.Tensor:
        model.eval()
        with torch.no_grad():
            return model.users([histories[int(u)] for u in users]) @ model.item_vectors().T
    return score


@dataclass
class TrainedSASRec:
    model: SASRec
    history: pd.DataFrame  # one row per epoch: loss, seconds, validation metrics
    best_epoch: int


def train_sasrec(train: pd.DataFrame, valid: pd.DataFrame, n_users: int, n_items: int, config: SASRecConfig,
                 on_epoch_end: EpochCallback | None = None, show_progress: bool | None = None) -> TrainedSASRec:
    """SASRec on each user's training sequence; early-stopped on validation (prompts: the training
    sequence, validation items masked as every method's are). Reproducible bit for bit for a seed."""
    config.validate()
    if train.empty:
        raise InputError("train split", "0 interactions", "a non-empty training split")
    histories = user_sequences(train, n_users)
    inputs, targets = training_windows(histories, config.max_length)
    if not len(inputs):
        raise InputError("train split", "no user with 2 or more training interactions", "sequences to learn from")
    rng = np.random.default_rng(config.seed)
    ks = sorted({10, 20, int(config.selection_metric.rsplit("_at_", 1)[-1])})
    with deterministic():
        torch.manual_seed(config.seed)
        model = SASRec(n_items, config)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)

        def train_epoch(epoch: int) -> dict[str, float]:
            start, total, batches = time.perf_counter(), 0.0, 0
            model.train()
            order = rng.permutation(len(inputs))
            for lo in range(0, len(order), config.batch_size):
                rows = order[lo:lo + config.batch_size]
                x, y = torch.from_numpy(inputs[rows]), torch.from_numpy(targets[rows])
                used = int((y >= 0).sum(1).max())  # trim the batch's padding columns
                x, y = x[:, :used], y[:, :used]
                negatives = torch.from_numpy(rng.integers(0, n_items, y.shape)) if config.loss == "bpr" else None
                loss = model.loss(x, y, negatives)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total, batches = total + loss.item(), batches + 1
            return {"loss": total / batches, "seconds": time.perf_counter() - start}

        def validate() -> dict[str, float]:
            metrics = ranking_metrics(sequence_scorer(model, histories), train, valid, n_users, n_items, ks)
            return {f"valid_{k}": v for k, v in metrics.items()}

        state = fit("sasrec", Schedule(config.max_epochs, config.eval_every, config.patience, config.selection_metric),
                    train_epoch, validate, lambda: copy.deepcopy(model.state_dict()), on_epoch_end=on_epoch_end,
                    show_progress=show_progress)
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    model.eval()
    return TrainedSASRec(model, pd.DataFrame(state.rows), state.best_epoch)


def to_artifact(trained: TrainedSASRec, n_items: int) -> TensorArtifact:
    """The weights with the config that rebuilds the model (:func:`from_artifact`)."""
    state = {k: v.detach().clone() for k, v in trained.model.state_dict().items()}
    return TensorArtifact(state, {"model": "sasrec", "n_items": n_items, "best_epoch": trained.best_epoch,
                                  "config": asdict(trained.model.config)})


def from_artifact(weights: TensorArtifact) -> SASRec:
    """A trained SASRec rebuilt from its weights artifact alone."""
    meta = artifact_config(weights)
    model = SASRec(int(meta["n_items"]), SASRecConfig(**meta["config"]))
    model.load_state_dict(dict(weights))
    return model.eval()
