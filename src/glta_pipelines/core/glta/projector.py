"""Projectors: graph embeddings -> tokens in the LLM's input-embedding space."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.errors import InputError

PROJECTOR_KINDS = ("linear", "mlp")


@dataclass(frozen=True)
class ProjectorSpec:
    """What a :class:`Projector` is built from; stored in artifacts so its weights load without parameters."""

    kind: str
    d_in: int
    d_out: int
    hidden: int = 1024

    def validate(self) -> None:
        if self.kind not in PROJECTOR_KINDS:
            raise InputError("parameter projector.kind", repr(self.kind), "'linear' or 'mlp'")
        for name in ("d_in", "d_out", "hidden"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) > 0):
                raise InputError(f"projector.{name}", repr(getattr(self, name)), "a positive integer")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str) -> ProjectorSpec:
        return config_from_params(cls, data, where)

    def build(self) -> Projector:
        """A fresh projector of this spec (initialised from the global RNG, like ``nn.Linear``)."""
        return Projector(self.d_in, self.d_out, self.kind, self.hidden)


class Projector(nn.Module):
    """Graph embedding (d_in) -> LLM token embedding (d_out): linear ``W e + b`` or a 2-layer MLP.

    Inputs are standardised with fixed statistics of the graph embeddings, and outputs are scaled
    to the typical norm of the LLM's own token embeddings, so a projected token starts in range.
    """

    def __init__(self, d_in: int, d_out: int, kind: str = "linear", hidden: int = 1024) -> None:
        super().__init__()
        ProjectorSpec(kind, d_in, d_out, hidden).validate()
        self.kind, self.d_in, self.d_out, self.hidden = kind, d_in, d_out, hidden
        self.net = nn.Linear(d_in, d_out) if kind == "linear" else nn.Sequential(
            nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))
        self.register_buffer("mean", torch.zeros(d_in))
        self.register_buffer("std", torch.ones(d_in))
        self.register_buffer("out_scale", torch.ones(()))

    @property
    def spec(self) -> ProjectorSpec:
        return ProjectorSpec(self.kind, self.d_in, self.d_out, self.hidden)

    def fit_scales(self, embeddings: torch.Tensor, token_norm: float) -> Projector:
        """Set input standardisation and output scale from data (before training)."""
        with torch.no_grad():
            self.mean.copy_(embeddings.mean(0))
            self.std.copy_(embeddings.std(0).clamp(min=1e-6))
            raw = self.net((embeddings - self.mean) / self.std)
            self.out_scale.copy_(token_norm / raw.norm(dim=1).mean().clamp(min=1e-6))
        return self

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.net((embeddings - self.mean) / self.std) * self.out_scale


def token_norm(llm: nn.Module) -> float:
    """Mean L2 norm of the LLM's input token embeddings."""
    return float(llm.get_input_embeddings().weight.norm(dim=1).mean())
