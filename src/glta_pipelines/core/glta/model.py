"""Stage 2's model: the GLLM, which scores every item from an LLM-read prompt of graph tokens.

``logits = graph_scale * <base_user, base_item> + correction(h)`` (residual head). The residual
base is an argument, never state: training scores against the backbone graph embeddings the
prompt tokens come from (:attr:`GLLM.graph_base`), validation and evaluation against LightGCN
trained on all of train (:func:`residual_base`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from glta_pipelines.core.errors import InputError
from glta_pipelines.core.glta.configuration import GLLMConfig
from glta_pipelines.core.glta.projector import Projector, token_norm
from glta_pipelines.core.llm.prompts import Template, pad

Base = tuple[torch.Tensor, torch.Tensor]  # (user, item) embeddings of the residual's dot-product score


class GLLM(nn.Module):
    """Projectors, soft tokens and the GLLM head around a frozen (optionally LoRA-adapted) LLM.

    The LLM is held outside the module's parameters: ``state_dict()`` holds only what trains
    (plus LoRA weights, added by :func:`~glta_pipelines.core.glta.weights.trainable_state`).
    """

    def __init__(self, llm: nn.Module | None, tokenizer, item_projector: Projector, graph_user: torch.Tensor,
                 graph_item: torch.Tensor, config: GLLMConfig) -> None:
        super().__init__()
        self.config = config
        self._llm = [llm]  # a list keeps the LLM out of parameters and state_dict
        d_gnn = graph_item.shape[1]
        d_llm = item_projector.d_out
        # token inputs (backbone embeddings): buffers, so .to(device) moves them, kept out of state_dict
        self.register_buffer("graph_user", graph_user, persistent=False)
        self.register_buffer("graph_item", graph_item, persistent=False)
        self.item_projector = item_projector
        with torch.no_grad():
            norm = token_norm(llm) if llm is not None else float(item_projector(graph_item[:256]).norm(dim=1).mean())
        with torch.random.fork_rng(devices=[]):  # reproducible for a seed, global RNG untouched
            torch.manual_seed(config.seed)
            self.user_projector = Projector(d_gnn, d_llm, config.user_projector_kind).fit_scales(graph_user, norm)
            start = torch.randn(2, d_llm) * norm / math.sqrt(d_llm)
            out = {"graph": d_gnn, "token": d_llm, "free": graph_item.shape[0]}[config.scoring_space]
            self.head = nn.Linear(d_llm, out)
        self.profile = nn.Parameter(start[0].clone())
        self.prediction = nn.Parameter(start[1].clone())
        self.norm = nn.LayerNorm(d_llm)
        if config.residual and config.logits == "dot":  # start exactly at the graph's ranking
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        self.item_bias = nn.Parameter(torch.zeros(graph_item.shape[0]))
        # The first rows that a blend's per-user standardisation is measured on: None, every item; a
        # catalogue grown by items added by text keeps the trained items' (their order cannot move).
        self.standardise_over: int | None = None
        self.graph_scale = nn.Parameter(torch.ones(()))
        if config.blend_grid:  # chosen on validation after training; -1: not yet (the GLLM scores alone)
            self.register_buffer("blend_weight", torch.tensor(-1.0))
        if config.logits == "cosine":  # dot-product models keep their state keys
            self.log_temperature = nn.Parameter(torch.tensor(math.log(config.temperature)),
                                                requires_grad=config.learn_temperature)
            # a cosine has no zero: a residual model gates it, from 0, so it starts at the graph's ranking
            self.cosine_gate = nn.Parameter(torch.tensor(0.0 if config.residual else 1.0))
        self.template = (Template.parse(config.prompt_template, tokenizer, ("user", "history", "profile", "prediction"),
                                        "gllm_finetune.gllm.prompt_template") if config.encoder == "llm" else None)

    @property
    def llm(self) -> nn.Module | None:
        return self._llm[0]

    @property
    def graph_base(self) -> Base:
        """The backbone graph embeddings as residual base: what training scores against."""
        return self.graph_user, self.graph_item

    def hidden(self, users: torch.Tensor | None, histories: list[np.ndarray],
               user_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """(B, d_llm) representation of each user's prompt at the prediction token.

        ``user_vectors`` (B, d_gnn) replace the rows of known ``users`` in the graph: a new user's
        graph embedding, built from its history (:mod:`glta_pipelines.core.glta.recommender`).
        """
        device = self.graph_item.device
        graph = self.graph_user[users.to(device)] if user_vectors is None else user_vectors.to(device)
        user_tokens = self.user_projector(graph)
        # one projector call for the batch's distinct items, not one per user (thousands of small calls)
        shown = np.unique(np.concatenate([np.asarray(h, dtype=np.int64) for h in histories] or [np.zeros(0, np.int64)]))
        table = self.item_projector(self.graph_item[torch.from_numpy(shown).to(device)])
        item_tokens = [self.history_tokens(table[torch.from_numpy(np.searchsorted(shown, h)).to(device)])
                       for h in self.ordered(histories)]
        if self.config.encoder == "mean":
            return torch.stack([torch.cat([u[None], t]).mean(0) for u, t in zip(user_tokens, item_tokens)])
        embed = self.llm.get_input_embeddings()
        sequences = [self.template.embed(embed, {"user": u[None], "history": t, "profile": self.profile[None],
                                                 "prediction": self.prediction[None]})
                     for u, t in zip(user_tokens, item_tokens)]
        embeds, mask, positions = pad(sequences, side="left")
        out = self.llm.get_decoder()(inputs_embeds=embeds.to(embed.weight.dtype), attention_mask=mask,
                                     position_ids=positions)
        return out.last_hidden_state[:, -1].float()

    def forward(self, users: torch.Tensor, histories: list[np.ndarray] | None = None,
                hidden: torch.Tensor | None = None) -> torch.Tensor:
        """Training logits (B, n_items): the prompts of ``histories`` (or their cached ``hidden`` states)
        scored against the backbone graph the prompt tokens come from. What DDP calls, so that it
        averages the gradients of everything this pass used."""
        if hidden is None:
            hidden = self.hidden(users, histories)
        return self.logits(users, hidden, self.graph_base)

    def ordered(self, histories: list[np.ndarray]) -> list[np.ndarray]:
        """The histories as the prompt reads them (``config.history_order``): in time order, or each
        sorted by a fixed random key per item drawn from ``config.seed`` (the same items, the order gone)."""
        if self.config.history_order == "time":
            return histories
        key = np.random.default_rng([self.config.seed, 7]).permutation(self.graph_item.shape[0])
        return [np.asarray(h)[np.argsort(key[np.asarray(h, dtype=np.int64)], kind="stable")] for h in histories]

    def history_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """The history slot's tokens from the (n, d) item tokens, by ``config.history_tokens``."""
        kind = self.config.history_tokens
        if kind == "items" or len(tokens) == 0:
            return tokens
        if kind == "mean":
            return tokens.mean(0, keepdim=True)
        return torch.stack([chunk.mean(0) for chunk in torch.tensor_split(tokens, min(self.config.history_chunks,
                                                                                       len(tokens)))])

    def logits(self, users: torch.Tensor | None, hidden: torch.Tensor, base: Base,
               base_users: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n_items) GLLM logits: every item scored; ``base`` is the residual's (user, item) embeddings.

        ``base_users`` (B, d) replace the rows of ``users`` in the base: new users' base embeddings.
        """
        z = self.head(self.norm(hidden))
        if self.config.scoring_space == "free":  # E4SRec's head: one free weight vector per item
            correction = z
        elif self.config.logits == "cosine":
            items = self.graph_item if self.config.scoring_space == "graph" else self.item_projector(self.graph_item)
            correction = self.cosine_gate * (nn.functional.normalize(z, dim=1) @ nn.functional.normalize(items, dim=1).T
                                             / self.log_temperature.exp())
        elif self.config.scoring_space == "graph":
            correction = z @ self.graph_item.T
        else:
            correction = z @ self.item_projector(self.graph_item).T / math.sqrt(z.shape[1])
        correction = correction + self.item_bias
        blending = self.config.blend_grid and self.blend_weight >= 0
        if not self.config.residual and not blending:
            return correction
        base_user, base_item = (b.to(correction.device) for b in base)
        rows = base_user[users.to(correction.device)] if base_users is None else base_users.to(correction.device)
        graph = rows @ base_item.T
        if blending:
            return zscore(graph, self.standardise_over) + self.blend_weight * zscore(correction, self.standardise_over)
        return self.graph_scale * graph + correction


def zscore(scores: torch.Tensor, columns: int | None = None) -> torch.Tensor:
    """Each row's scores standardised (mean 0, sd 1, measured on the first ``columns``; all by
    default), so two scorers of different scales can be blended."""
    measured = scores if columns is None else scores[:, :columns]
    return (scores - measured.mean(1, keepdim=True)) / measured.std(1, keepdim=True).clamp(min=1e-8)


def graph_shape(embeddings: Mapping[str, torch.Tensor], where: str) -> dict[str, int]:
    """``n_users``, ``n_items`` and ``embedding_dim`` of a ``{"user", "item"}`` embeddings dict."""
    if not {"user", "item"} <= set(embeddings):
        raise InputError(where, f"tensors {sorted(embeddings)}", "'user' and 'item' embeddings")
    user, item = embeddings["user"], embeddings["item"]
    if user.ndim != 2 or item.ndim != 2 or user.shape[1] != item.shape[1]:
        raise InputError(where, f"user {tuple(user.shape)} and item {tuple(item.shape)} tensors",
                         "two matrices with the same embedding size")
    return {"n_users": user.shape[0], "n_items": item.shape[0], "embedding_dim": item.shape[1]}


def describe_graph(shape: Mapping[str, int]) -> str:
    """``64-d embeddings of 943 users and 1,682 items``: a graph shape as an error message says it."""
    return f"{shape['embedding_dim']}-d embeddings of {shape['n_users']:,} users and {shape['n_items']:,} items"


def residual_base(model: GLLM, embeddings: Mapping[str, torch.Tensor], where: str) -> Base:
    """``embeddings`` (e.g. LightGCN on all of train) as the residual base, checked to cover the model's users and items."""
    found = graph_shape(embeddings, where)
    expected = {"n_users": model.graph_user.shape[0], "n_items": model.graph_item.shape[0]}
    if (found["n_users"], found["n_items"]) != (expected["n_users"], expected["n_items"]):
        raise InputError(where, describe_graph(found),
                         f"embeddings of the {expected['n_users']:,} users and {expected['n_items']:,} items GLTA was "
                         "trained on (the same graph run)")
    return embeddings["user"], embeddings["item"]
