"""HCCF (Xia et al., "Hypergraph Contrastive Collaborative Filtering", SIGIR'22), and HCCF+.

Follows the official PyTorch code, akaxlh/HCCF ``torchVersion/Model.py`` (model, loss),
``Utils/Utils.py`` (``contrastLoss``) and ``Params.py`` (defaults: 128 hyperedges, 2 layers,
keep rate 0.5, temperature 1, ssl weight 1e-3):

- ``E0 = [U; I]``; hyperedge incidences from layer-0 embeddings, ``H_u = U0·W_u``,
  ``H_i = I0·W_i`` (``W``: d x hyperedges, Xavier).
- Layer ``l``: ``gcn_l = Â_drop·E_{l-1}`` (edges kept with ``keep_rate``, kept values
  rescaled by 1/keep); ``hyp_l = H·(Hᵀ·E_{l-1})`` per side, with dropout on ``H``;
  ``E_l = gcn_l + hyp_l``. Final embedding ``Σ_l E_l`` (layer 0 included). No activation.
- Loss: BPR + ``ssl_weight · Σ_l [InfoNCE(gcn_l.detach(), hyp_l)]`` over the batch's unique
  users and unique positive items, in-batch negatives, cosine similarity over ``temperature``.

The training schedule (epochs, L2, embedding size) is LightGCN's (``bpr_trainer.py``
says why), except the learning rate and the batch: the reference's 1e-3 and 4096
(``learning_rate``, ``batch_size``). ``HCCF+`` is HCCF with a text-augmented ``E0``
(``lightgcn_plus.py`` gives that reading). Edge dropout keeps or drops an interaction's two
directions together (``graph_encoder.py``); the official code drops them independently.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from glta_pipelines.core.errors import InputError
from glta_pipelines.core.models.graph_encoder import EdgeDropout, GraphEncoder, bpr_terms, propagate_once


@dataclass(frozen=True)
class HCCFConfig:
    """``baselines.hccf`` (also HCCF+'s): the official ``Params.py`` defaults."""

    # hypergraph propagation layers
    num_layers: int = 2
    # learned hyperedges shared by all nodes
    hyperedges: int = 128
    keep_rate: float = 0.5  # edges and hyperedge incidences kept during training
    ssl_weight: float = 1e-3
    # InfoNCE temperature of the local-global contrast
    temperature: float = 1.0
    # The reference's Adam rate, in place of LightGCN's 0.01: at 0.01 the hypergraph term, cubic in
    # the embeddings, grows without bound (BPR loss 1.8e8 at epoch 40 on MovieLens-100K, measured).
    learning_rate: float = 1e-3
    # The reference's batch (None: LightGCN's). The contrast runs over the batch's unique nodes,
    # which barely grow with the batch, so a larger batch makes an epoch cheaper.
    batch_size: int | None = 4096

    def validate(self) -> None:
        if self.batch_size is not None and self.batch_size < 1:
            raise InputError("parameter baselines.hccf.batch_size", self.batch_size, "a positive integer or null")
        for name in ("num_layers", "hyperedges", "temperature", "learning_rate"):
            if not getattr(self, name) > 0:
                raise InputError(f"parameter baselines.hccf.{name}", getattr(self, name), "a positive number")
        if not 0 < self.keep_rate <= 1:
            raise InputError("parameter baselines.hccf.keep_rate", self.keep_rate, "a number in (0, 1]")
        if self.ssl_weight < 0:
            raise InputError("parameter baselines.hccf.ssl_weight", self.ssl_weight, "a non-negative number")


def hypergraph_propagate(incidence: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``H·(Hᵀ·x)``: nodes to hyperedges and back (HCCF's ``HGNNLayer``, no activation)."""
    return incidence @ (incidence.T @ x)


def contrast_loss(a: torch.Tensor, b: torch.Tensor, nodes: torch.Tensor, temperature: float) -> torch.Tensor:
    """HCCF's ``contrastLoss``: InfoNCE of row ``n`` of ``a`` against row ``n`` of ``b`` among ``nodes``."""
    a = F.normalize(a + 1e-8, p=2, dim=1)[nodes]
    b = F.normalize(b + 1e-8, p=2, dim=1)[nodes]
    positive = torch.exp((a * b).sum(-1) / temperature)
    total = torch.exp(a @ b.T / temperature).sum(-1) + 1e-8
    return -torch.log(positive / total).mean()


class HCCF(nn.Module):
    """Local (graph) and global (hypergraph) views, summed per layer, aligned by InfoNCE."""

    def __init__(self, adjacency: EdgeDropout, n_users: int, n_items: int, dim: int, config: HCCFConfig,
                 text: torch.Tensor | None = None, seed: int = 0) -> None:
        super().__init__()
        config.validate()
        self.adjacency, self.config = adjacency, config
        self.encoder = GraphEncoder(n_users, n_items, dim, text)
        self.user_hyper = nn.Parameter(nn.init.xavier_uniform_(torch.empty(dim, config.hyperedges)))
        self.item_hyper = nn.Parameter(nn.init.xavier_uniform_(torch.empty(dim, config.hyperedges)))
        self.generator = torch.Generator().manual_seed(seed)

    def _dropout(self, x: torch.Tensor, keep: float) -> torch.Tensor:
        if keep >= 1.0:
            return x
        return x * (torch.rand(x.shape, generator=self.generator) < keep).to(x.dtype) / keep

    def views(self, keep: float) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Final embeddings and, per layer, the graph view and the hypergraph view."""
        n_users = self.encoder.n_users
        x = self.encoder.layer0()
        user_incidence, item_incidence = x[:n_users] @ self.user_hyper, x[n_users:] @ self.item_hyper
        layers, gcn, hyper = [x], [], []
        for _ in range(self.config.num_layers):
            previous = layers[-1]
            # a fresh edge mask per layer, as the official forward draws one in its layer loop
            local = propagate_once(self.adjacency(keep, rescale=True, generator=self.generator), previous)
            global_ = torch.cat([
                hypergraph_propagate(self._dropout(user_incidence, keep), previous[:n_users]),
                hypergraph_propagate(self._dropout(item_incidence, keep), previous[n_users:]),
            ])
            gcn.append(local)
            hyper.append(global_)
            layers.append(local + global_)
        return sum(layers), gcn, hyper

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> dict[str, torch.Tensor]:
        final, gcn, hyper = self.views(self.config.keep_rate)
        n_users = self.encoder.n_users
        bpr, *_ = bpr_terms(final, n_users, users, pos, neg)
        batch_users, batch_items = torch.unique(users), torch.unique(pos)
        ssl = sum(contrast_loss(g[:n_users].detach(), h[:n_users], batch_users, self.config.temperature)
                  + contrast_loss(g[n_users:].detach(), h[n_users:], batch_items, self.config.temperature)
                  for g, h in zip(gcn, hyper))
        return {"bpr": bpr, "ssl": self.config.ssl_weight * ssl}

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        final, _, _ = self.views(1.0)
        return final[: self.encoder.n_users], final[self.encoder.n_users:]
