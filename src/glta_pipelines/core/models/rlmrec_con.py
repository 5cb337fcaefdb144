"""RLMRec-Con (Ren et al., "Representation Learning with Large Language Models for
Recommendation", WWW'24): LightGCN aligned with projected profile embeddings by contrast.

Follows HKUDS/RLMRec ``encoder/models/general_cf/lightgcn_plus.py``, ``models/loss_utils.py``
(``cal_infonce_loss``) and ``config/modelconf/lightgcn_plus.yml`` (defaults: keep rate 0.8,
edges not rescaled; 3 layers; kd_weight 1e-2; kd_temperature 0.2):

- LightGCN with edge dropout during training; final embedding ``Σ_l E_l`` (layer 0 included).
- ``MLP(profile)`` (``t -> (t + d) / 2 -> d``) for every user and item profile embedding.
- kd = [InfoNCE(u, MLP(p_u); all users' projected profiles as negatives)
  + InfoNCE(i⁺, MLP(p_i⁺); the batch's positives) + InfoNCE(i⁻, MLP(p_i⁻); the batch's
  negatives)], each summed over the batch, divided by the batch size, times ``kd_weight``.
  Cosine similarity over ``kd_temperature``. Computed on the batch's unique nodes with their
  counts (:func:`grouped_infonce`): the same loss at a third of the cost.

RLMRec's profiles are GPT-written texts embedded by an API model. Here an item's profile is the
embedding of its ``items.text`` (``text_encoder.py``) and a user's the mean of their training
items' (``graph_encoder.user_profiles``), so no validation or test interaction enters a profile
(as RLMRec's maintainers require, their issue #10). The training schedule is LightGCN's
(``bpr_trainer.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from glta_pipelines.core.errors import InputError
from glta_pipelines.core.models.graph_encoder import EdgeDropout, GraphEncoder, bpr_terms, profile_mlp, summed_layers


@dataclass(frozen=True)
class RLMRecConConfig:
    """``baselines.rlmrec_con``: ``lightgcn_plus.yml``'s defaults."""

    # share of edges kept per step (edge dropout)
    keep_rate: float = 0.8
    kd_weight: float = 1e-2
    # temperature of the alignment's InfoNCE
    kd_temperature: float = 0.2

    def validate(self) -> None:
        if not 0 < self.keep_rate <= 1:
            raise InputError("parameter baselines.rlmrec_con.keep_rate", self.keep_rate, "a number in (0, 1]")
        if self.kd_weight < 0 or not self.kd_temperature > 0:
            raise InputError("parameter baselines.rlmrec_con.kd_weight/kd_temperature",
                             (self.kd_weight, self.kd_temperature), "kd_weight >= 0 and kd_temperature > 0")


def infonce(anchor: torch.Tensor, positive: torch.Tensor, candidates: torch.Tensor, temperature: float,
            weights: torch.Tensor | None = None, candidate_counts: torch.Tensor | None = None) -> torch.Tensor:
    """RLMRec's ``cal_infonce_loss``: Σ over rows of -log softmax of cos(anchor, positive) among candidates.

    ``weights`` counts each row that many times and ``candidate_counts`` each candidate, so a batch
    with repeated nodes can be computed on its unique nodes (:func:`grouped_infonce`).
    """
    def unit(x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt(1e-8 + x.square().sum(-1, keepdim=True))

    anchor, positive, candidates = unit(anchor), unit(positive), unit(candidates)
    numerator = -(anchor * positive / temperature).sum(-1)
    logits = anchor @ candidates.T / temperature
    if candidate_counts is not None:
        logits = logits + candidate_counts.to(logits.dtype).log()
    per_row = numerator + torch.logsumexp(logits, dim=-1)
    return per_row.sum() if weights is None else (per_row * weights.to(per_row.dtype)).sum()


def grouped_infonce(embeddings: torch.Tensor, profiles: torch.Tensor, nodes: torch.Tensor, temperature: float,
                    candidates: torch.Tensor | None = None) -> torch.Tensor:
    """``infonce(embeddings[nodes], profiles[nodes], candidates or profiles[nodes])`` on unique nodes.

    A batch's rows of one node are identical, and so are its repeated in-batch candidates: the sum
    over rows is each unique row times its count, and a candidate's repeats add the log of its
    count to its logit. Same loss, same gradients (to rounding); a 2,048-row MovieLens-100K batch
    has about 750 unique users and 1,100 unique items, so the similarity matrices shrink 3x.
    """
    unique, counts = torch.unique(nodes, return_counts=True)
    if candidates is None:  # in-batch: the batch's own (repeated) profiles
        return infonce(embeddings[unique], profiles[unique], profiles[unique], temperature, counts, counts)
    return infonce(embeddings[unique], profiles[unique], candidates, temperature, counts)


class RLMRecCon(nn.Module):
    def __init__(self, adjacency: EdgeDropout, n_users: int, n_items: int, dim: int, num_layers: int,
                 profiles: torch.Tensor, config: RLMRecConConfig, seed: int = 0) -> None:
        super().__init__()
        config.validate()
        self.adjacency, self.num_layers, self.config = adjacency, num_layers, config
        self.encoder = GraphEncoder(n_users, n_items, dim)
        self.mlp = profile_mlp(profiles.shape[1], dim)
        self.register_buffer("profiles", profiles, persistent=False)
        self.generator = torch.Generator().manual_seed(seed)

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> dict[str, torch.Tensor]:
        adjacency = self.adjacency(self.config.keep_rate, rescale=False, generator=self.generator)
        n_users = self.encoder.n_users
        final = summed_layers(adjacency, self.encoder.layer0(), self.num_layers)
        bpr, *_ = bpr_terms(final, n_users, users, pos, neg)
        projected = self.mlp(self.profiles)
        user_profiles, item_profiles = projected[:n_users], projected[n_users:]
        user_final, item_final = final[:n_users], final[n_users:]
        t = self.config.kd_temperature
        kd = (grouped_infonce(user_final, user_profiles, users, t, candidates=user_profiles)
              + grouped_infonce(item_final, item_profiles, pos, t) + grouped_infonce(item_final, item_profiles, neg, t)
              ) / len(users)
        return {"bpr": bpr, "kd": self.config.kd_weight * kd}

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        final = summed_layers(self.adjacency.full, self.encoder.layer0(), self.num_layers)
        return final[: self.encoder.n_users], final[self.encoder.n_users:]
