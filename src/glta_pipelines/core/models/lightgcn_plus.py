"""LightGCN+ : LightGCN whose layer-0 node embeddings add an MLP of the node's text embedding.

The GLTA paper lists LightGCN+ and HCCF+ without defining them, and no public code defines them
(RLMRec's ``lightgcn_plus.py`` is RLMRec-Con). Our assumption, the common reading: a
text-augmented backbone, ``E0 = ID embedding + gate · MLP(text embedding)``, where an item's
text embedding is that of ``items.text`` (``text_encoder.py``), centred on the catalogue's mean,
and a user's is the mean of their training items' (``graph_encoder.user_profiles``), centred
likewise. The MLP is RLMRec's projector shape (``t -> (t + d) / 2 -> d``, LeakyReLU); the
scalar gate starts at 0, so the model starts as its twin (``graph_encoder.GraphEncoder`` says
why). Everything else is our LightGCN: mean over layers
``0..L`` (PyG's ``alpha = 1/(L+1)``), BPR, L2 on the batch's ID embeddings, its schedule. So
LightGCN+ minus LightGCN is the measured value of the item text on a dataset.
"""

from __future__ import annotations

import torch
from torch import nn

from glta_pipelines.core.models.graph_encoder import EdgeDropout, GraphEncoder, bpr_terms, summed_layers


class LightGCNPlus(nn.Module):
    """LightGCN on ``E0 = ID + MLP(text)`` (``text=None``: plain LightGCN on the same code path)."""

    def __init__(self, adjacency: EdgeDropout, n_users: int, n_items: int, dim: int, num_layers: int,
                 text: torch.Tensor | None) -> None:
        super().__init__()
        self.adjacency, self.num_layers = adjacency, num_layers
        self.encoder = GraphEncoder(n_users, n_items, dim, text)

    def final(self) -> torch.Tensor:
        return summed_layers(self.adjacency.full, self.encoder.layer0(), self.num_layers) / (self.num_layers + 1)

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> dict[str, torch.Tensor]:
        bpr, *_ = bpr_terms(self.final(), self.encoder.n_users, users, pos, neg)
        return {"bpr": bpr}

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        final = self.final()
        return final[: self.encoder.n_users], final[self.encoder.n_users:]
