"""Mappers from an item's content to the graph's item space, trained on the warm items.

A cold item has no interactions, so LightGCN has no embedding for it (only its untrained start,
moved as a sampled negative). A mapper learns ``content -> LightGCN item embedding`` on the items
training saw and places every cold item in the same space, where the unchanged user embeddings
score it by the same dot product.

- :func:`fit_mapper`: an MLP ``c -> h -> d`` (LeakyReLU) on standardised content, trained full
  batch with MSE to the warm items' embeddings plus an InfoNCE term that makes a mapped item
  nearer its own embedding than the other items' (the alignment of CLCRec and ALDI), early-stopped
  on a held-out share of the warm items.
- :func:`knn_embeddings`: a cold item as the similarity-weighted mean of its ``k`` most similar warm
  items' embeddings (cosine similarity of content; softmax weights at ``temperature``).

Both keep every warm item's embedding as it is: on warm items the method is LightGCN.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from glta_pipelines.core.errors import InputError


@dataclass(frozen=True)
class MapperConfig:
    """``cold_start.mapper``."""

    hidden_dim: int = 256  # width of the MLP's one hidden layer
    # Adam over all warm items at once (a catalogue of thousands fits in one batch)
    learning_rate: float = 0.003
    weight_decay: float = 0.0001  # Adam's L2: thousands of content features, about a thousand warm items
    max_epochs: int = 400
    # epochs without a better held-out loss before stopping (the best epoch's weights are kept)
    patience: int = 30
    # share of warm items held out to choose the epoch
    holdout_fraction: float = 0.1
    contrastive_weight: float = 0.1  # InfoNCE beside the MSE (0: MSE alone)
    temperature: float = 0.2  # of the InfoNCE (RLMRec's kd_temperature)
    seed: int = 2025  # of the weights and of which warm items are held out

    def validate(self) -> None:
        for key in ("hidden_dim", "max_epochs", "patience"):
            if getattr(self, key) < 1:
                raise InputError(f"parameter cold_start.mapper.{key}", getattr(self, key), "a positive integer")
        for key in ("learning_rate", "temperature"):
            if not getattr(self, key) > 0:
                raise InputError(f"parameter cold_start.mapper.{key}", getattr(self, key), "a positive number")
        for key in ("weight_decay", "contrastive_weight"):
            if getattr(self, key) < 0:
                raise InputError(f"parameter cold_start.mapper.{key}", getattr(self, key), "a number >= 0")
        if not 0 < self.holdout_fraction < 1:
            raise InputError("parameter cold_start.mapper.holdout_fraction", self.holdout_fraction, "a share in (0, 1)")


@dataclass(frozen=True)
class KNNConfig:
    """``cold_start.knn``."""

    k: int = 20  # warm neighbours averaged per cold item
    temperature: float = 0.05  # of the softmax over cosine similarities (small: the nearest dominate)

    def validate(self) -> None:
        if self.k < 1:
            raise InputError("parameter cold_start.knn.k", self.k, "a positive integer")
        if not self.temperature > 0:
            raise InputError("parameter cold_start.knn.temperature", self.temperature, "a positive number")


def _standardise(content: torch.Tensor, warm: torch.Tensor) -> torch.Tensor:
    """Each feature centred and scaled on the warm items; a feature constant on them is zeroed (nothing
    can be learned from it, and dividing by its zero spread would blow up the cold items that have it)."""
    mean, std = content[warm].mean(0), content[warm].std(0)
    varies = std > 1e-6
    return torch.where(varies, (content - mean) / torch.where(varies, std, torch.ones_like(std)), torch.zeros_like(content))


def _check(content: torch.Tensor, item_embeddings: torch.Tensor, warm: torch.Tensor, what: str) -> None:
    if content.shape[0] != item_embeddings.shape[0] or warm.shape != (content.shape[0],):
        raise InputError(f"{what} inputs", f"content {tuple(content.shape)}, embeddings {tuple(item_embeddings.shape)}, "
                         f"warm mask {tuple(warm.shape)}", "one row per item in each")
    if int(warm.sum()) < 2:
        raise InputError(f"{what} inputs", f"{int(warm.sum())} warm items", "at least 2 items with training interactions")


def fit_mapper(content: torch.Tensor, item_embeddings: torch.Tensor, warm: torch.Tensor, config: MapperConfig,
               ) -> tuple[torch.Tensor, list[dict[str, float]]]:
    """(item embeddings with every cold item mapped from its content, the per-epoch losses)."""
    config.validate()
    _check(content, item_embeddings, warm, "mapper")
    content, target = _standardise(content.float(), warm), item_embeddings.float()
    warm_idx = torch.nonzero(warm).flatten()
    generator = torch.Generator().manual_seed(config.seed)
    order = warm_idx[torch.randperm(len(warm_idx), generator=generator)]
    n_held = max(1, round(config.holdout_fraction * len(order)))
    held, fit = order[:n_held], order[n_held:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        mlp = nn.Sequential(nn.Linear(content.shape[1], config.hidden_dim), nn.LeakyReLU(),
                            nn.Linear(config.hidden_dim, target.shape[1]))
    optimizer = torch.optim.Adam(mlp.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)

    def loss(rows: torch.Tensor) -> torch.Tensor:
        mapped, true = mlp(content[rows]), target[rows]
        value = F.mse_loss(mapped, true)
        if config.contrastive_weight:
            logits = F.normalize(mapped, dim=1) @ F.normalize(true, dim=1).T / config.temperature
            value = value + config.contrastive_weight * F.cross_entropy(logits, torch.arange(len(rows)))
        return value

    best, best_state, since, history = float("inf"), copy.deepcopy(mlp.state_dict()), 0, []
    for epoch in range(config.max_epochs):
        mlp.train()
        optimizer.zero_grad()
        train_loss = loss(fit)
        train_loss.backward()
        optimizer.step()
        mlp.eval()
        with torch.no_grad():
            held_loss = float(loss(held))
        history.append({"epoch": epoch, "train_loss": train_loss.item(), "held_out_loss": held_loss})
        if held_loss < best:
            best, best_state, since = held_loss, copy.deepcopy(mlp.state_dict()), 0
        else:
            since += 1
            if since >= config.patience:
                break
    mlp.load_state_dict(best_state)
    with torch.no_grad():
        mapped = mlp(content)
    return torch.where(warm.unsqueeze(1), target, mapped), history


def knn_embeddings(content: torch.Tensor, item_embeddings: torch.Tensor, warm: torch.Tensor, config: KNNConfig,
                   ) -> torch.Tensor:
    """Item embeddings with every cold item the softmax-weighted mean of its nearest warm items'."""
    config.validate()
    _check(content, item_embeddings, warm, "text-kNN")
    target = item_embeddings.float()
    cold_idx, warm_idx = torch.nonzero(~warm).flatten(), torch.nonzero(warm).flatten()
    out = target.clone()
    if len(cold_idx) == 0:
        return out
    unit = F.normalize(content.float(), dim=1)
    similarity = unit[cold_idx] @ unit[warm_idx].T
    top = torch.topk(similarity, min(config.k, len(warm_idx)), dim=1)
    weights = torch.softmax(top.values / config.temperature, dim=1)
    out[cold_idx] = torch.einsum("ck,ckd->cd", weights, target[warm_idx][top.indices])
    return out
