"""Parts shared by the BPR graph baselines (HCCF, LightGCN+, HCCF+, RLMRec-Con, RLMRec-Gen).

- :class:`GraphEncoder`: the layer-0 node embeddings ``E0 = [U; I]`` (one Xavier-initialised
  table, as PyG's LightGCN has, so every model starts at our LightGCN's scale; HCCF and RLMRec
  initialise users and items as two tables, about 1.3-1.6x larger at MovieLens-100K's size),
  optionally plus a gated MLP of each node's text embedding (the ``_plus`` reading: see
  ``lightgcn_plus.py``).
- :class:`EdgeDropout`: that adjacency with a random share of the interactions kept per step,
  as HCCF's ``SpAdjDropEdge`` (kept values rescaled by 1/keep) and RLMRec's ``SpAdjEdgeDrop``
  (not rescaled) do. Both reference codes drop the two directed entries of an edge
  independently; here an interaction is kept or dropped as a whole, so the matrix stays
  symmetric and its backward stays the deterministic ``A @ grad``
  (:class:`~glta_pipelines.core.models.lightgcn.SymmetricPropagation`).
- :func:`profile_mlp`: RLMRec's MLP ``t -> (t + d) / 2 -> d`` with LeakyReLU, Xavier weights.
- :func:`user_profiles`: a user's text embedding as the mean of their training items' ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from glta_pipelines.core.models.lightgcn import SymmetricPropagation, bpr_loss, normalized_adjacency


class EdgeDropout:
    """The normalised adjacency of the training graph, whole or with a random share of edges kept.

    A dropped edge keeps its place in the sparse structure with value 0 (its two directions
    together), so a step costs one random draw per edge and no re-indexing.
    """

    def __init__(self, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> None:
        self.full = normalized_adjacency(users, items, n_users, n_items)
        rows = torch.repeat_interleave(torch.arange(len(self.full.crow_indices()) - 1),
                                       self.full.crow_indices().diff())
        cols = self.full.col_indices()
        keys = torch.minimum(rows, cols) * (n_users + n_items) + torch.maximum(rows, cols)
        _, self.edge_of_entry = torch.unique(keys, return_inverse=True)  # both directions: one edge id
        self.n_edges = int(self.edge_of_entry.max()) + 1 if len(keys) else 0

    def __call__(self, keep_rate: float, rescale: bool, generator: torch.Generator) -> torch.Tensor:
        if keep_rate >= 1.0:
            return self.full
        kept = (torch.rand(self.n_edges, generator=generator) < keep_rate).to(self.full.dtype)
        scale = 1.0 / keep_rate if rescale else 1.0
        values = self.full.values() * kept[self.edge_of_entry] * scale
        return torch.sparse_csr_tensor(self.full.crow_indices(), self.full.col_indices(), values, self.full.shape,
                                       check_invariants=False)


def profile_mlp(in_dim: int, out_dim: int) -> nn.Sequential:
    """RLMRec's projector: Linear(in, (in + out) // 2), LeakyReLU, Linear(-, out), Xavier weights."""
    hidden = (in_dim + out_dim) // 2
    mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.LeakyReLU(), nn.Linear(hidden, out_dim))
    for layer in mlp:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
    return mlp


def user_profiles(train: pd.DataFrame, item_text: torch.Tensor, n_users: int) -> torch.Tensor:
    """Each user's text embedding: the mean of their training items' (zeros for a user without any)."""
    users = torch.tensor(train["user_idx"].to_numpy(), dtype=torch.long)
    items = torch.tensor(train["item_idx"].to_numpy(), dtype=torch.long)
    total = torch.zeros(n_users, item_text.shape[1], dtype=item_text.dtype).index_add_(0, users, item_text[items])
    count = torch.bincount(users, minlength=n_users).clamp(min=1).unsqueeze(1).to(item_text.dtype)
    return total / count


def node_text(train: pd.DataFrame, item_text: torch.Tensor, n_users: int) -> torch.Tensor:
    """Text embeddings of all nodes, users first (:func:`user_profiles`), then items."""
    return torch.cat([user_profiles(train, item_text.float(), n_users), item_text.float()])


class GraphEncoder(nn.Module):
    """Layer-0 embeddings: the ID embeddings, plus ``gate · MLP(centred text)`` when text is given.

    Text embeddings of one catalogue share a large common direction (MiniLM's mean item vector
    has norm 0.6 on MovieLens-100K's 1,682 items); summed over every node by HCCF's hyperedges
    it made HCCF+'s loss explode (760 at epoch 5, measured). So each side's text is centred on
    its mean, and the text term enters through a learned scalar gate that starts at 0: a
    ``_plus`` model starts exactly where its text-free twin starts, and takes as much text as
    training finds useful.
    """

    def __init__(self, n_users: int, n_items: int, dim: int, text: torch.Tensor | None = None) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.embedding = nn.Embedding(n_users + n_items, dim)
        nn.init.xavier_uniform_(self.embedding.weight)
        self.text_mlp = None if text is None else profile_mlp(text.shape[1], dim)
        self.text_gate = None if text is None else nn.Parameter(torch.zeros(()))
        if text is not None:
            text = torch.cat([text[:n_users] - text[:n_users].mean(0), text[n_users:] - text[n_users:].mean(0)])
        self.register_buffer("text", text, persistent=False)

    def layer0(self) -> torch.Tensor:
        """``E0``: the ID embeddings, plus ``gate · MLP(text)`` for a text-augmented model."""
        x = self.embedding.weight
        return x if self.text_mlp is None else x + self.text_gate * self.text_mlp(self.text)

    def l2(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """LightGCN's regulariser: squared norms of the batch's ID embeddings, per triple, halved."""
        ego = self.embedding.weight
        return (ego[users].pow(2).sum() + ego[pos + self.n_users].pow(2).sum()
                + ego[neg + self.n_users].pow(2).sum()) / (2 * len(users))


def propagate_once(adjacency: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One LightGCN layer ``A @ x`` with a deterministic backward (``A`` symmetric)."""
    return SymmetricPropagation.apply(adjacency, x)


def summed_layers(adjacency: torch.Tensor, x: torch.Tensor, num_layers: int) -> torch.Tensor:
    """``Σ_l A^l x`` for l = 0..num_layers (RLMRec and HCCF sum the layers; LightGCN+ averages them)."""
    out = x
    for _ in range(num_layers):
        x = propagate_once(adjacency, x)
        out = out + x
    return out


def bpr_terms(final: torch.Tensor, n_users: int, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """LightGCN's BPR loss and the batch's final user, positive, negative embeddings."""
    u, p, n = final[users], final[pos + n_users], final[neg + n_users]
    return bpr_loss(u, p, n), u, p, n
