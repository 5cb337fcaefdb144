"""RLMRec-Gen (Ren et al., WWW'24): LightGCN that reconstructs masked nodes' profile embeddings.

Follows HKUDS/RLMRec ``encoder/models/general_cf/lightgcn_gene.py``, ``models/aug_utils.py``
(``NodeMask``), ``models/loss_utils.py`` (``ssl_con_loss``) and
``config/modelconf/lightgcn_gene.yml`` (general defaults: keep rate 0.8, edges not rescaled;
3 layers; mask_ratio 0.1; recon_weight 0.1; re_temperature 0.2):

- Each step a ``mask_ratio`` share of all user and item nodes has its layer-0 embedding
  replaced by a learned mask token (zeros at init) before propagation with edge dropout.
- ``MLP(final embedding)`` (``d -> (d + t) / 2 -> t``) of the masked nodes is matched to their
  profile embeddings by InfoNCE among the masked nodes (cosine over ``temperature``), times
  ``recon_weight``.

Profiles are as in ``rlmrec_con.py`` (item text embeddings; a user's is the mean of their
training items'). The training schedule is LightGCN's (``bpr_trainer.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from glta_pipelines.core.errors import InputError
from glta_pipelines.core.models.graph_encoder import EdgeDropout, GraphEncoder, bpr_terms, profile_mlp, summed_layers


@dataclass(frozen=True)
class RLMRecGenConfig:
    """``baselines.rlmrec_gen``: ``lightgcn_gene.yml``'s general defaults."""

    # share of edges kept per step (edge dropout)
    keep_rate: float = 0.8
    mask_ratio: float = 0.1
    recon_weight: float = 0.1
    # temperature of the reconstruction's contrast
    temperature: float = 0.2

    def validate(self) -> None:
        if not 0 < self.keep_rate <= 1:
            raise InputError("parameter baselines.rlmrec_gen.keep_rate", self.keep_rate, "a number in (0, 1]")
        if not 0 < self.mask_ratio < 1:
            raise InputError("parameter baselines.rlmrec_gen.mask_ratio", self.mask_ratio, "a number in (0, 1)")
        if self.recon_weight < 0 or not self.temperature > 0:
            raise InputError("parameter baselines.rlmrec_gen.recon_weight/temperature",
                             (self.recon_weight, self.temperature), "recon_weight >= 0 and temperature > 0")


def reconstruction_loss(x: torch.Tensor, y: torch.Tensor, temperature: float) -> torch.Tensor:
    """RLMRec's ``ssl_con_loss``: mean -log softmax of cos(x_n, y_n) among all y."""
    x, y = F.normalize(x), F.normalize(y)
    positive = torch.exp((x * y).sum(1) / temperature)
    total = torch.exp(x @ y.T / temperature).sum(1)
    return -torch.log(positive / (total + 1e-8) + 1e-8).mean()


class RLMRecGen(nn.Module):
    def __init__(self, adjacency: EdgeDropout, n_users: int, n_items: int, dim: int, num_layers: int,
                 profiles: torch.Tensor, config: RLMRecGenConfig, seed: int = 0) -> None:
        super().__init__()
        config.validate()
        self.adjacency, self.num_layers, self.config = adjacency, num_layers, config
        self.encoder = GraphEncoder(n_users, n_items, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.mlp = profile_mlp(dim, profiles.shape[1])
        self.register_buffer("profiles", profiles, persistent=False)
        self.generator = torch.Generator().manual_seed(seed)

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.encoder.layer0()
        n_nodes = x.shape[0]
        masked = torch.randperm(n_nodes, generator=self.generator)[: max(int(n_nodes * self.config.mask_ratio), 1)]
        keep = torch.ones(n_nodes, 1)
        keep[masked] = 0.0
        x = x * keep + self.mask_token * (1.0 - keep)
        adjacency = self.adjacency(self.config.keep_rate, rescale=False, generator=self.generator)
        final = summed_layers(adjacency, x, self.num_layers)
        bpr, *_ = bpr_terms(final, self.encoder.n_users, users, pos, neg)
        recon = reconstruction_loss(self.mlp(final[masked]), self.profiles[masked], self.config.temperature)
        return {"bpr": bpr, "recon": self.config.recon_weight * recon}

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        final = summed_layers(self.adjacency.full, self.encoder.layer0(), self.num_layers)
        return final[: self.encoder.n_users], final[self.encoder.n_users:]
