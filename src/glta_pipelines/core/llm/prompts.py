"""Prompts that mix text with soft tokens (graph tokens, learned tokens) for a decoder LLM.

A template is text with slots such as ``<user>``, ``<history>``, ``<profile>``,
``<prediction>`` or ``<item>``. Text pieces are tokenised once; each example fills the slots
with vectors in the LLM's token-embedding space. Batches are left-padded so the last position
of every row is the template's last piece, and position ids skip the padding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from glta_pipelines.core.errors import InputError

SLOT = re.compile(r"<(user|history|profile|prediction|item)>")


@dataclass
class Template:
    """A parsed template: alternating text token ids and slot names."""

    pieces: list[torch.Tensor | str]

    @classmethod
    def parse(cls, text: str, tokenizer, required: tuple[str, ...], where: str) -> Template:
        text = fill_words(text)  # a template never reaches the LLM with a word slot left open
        names = SLOT.findall(text)
        missing = [r for r in required if r not in names]
        if missing or len(set(names)) != len(names):
            raise InputError(f"parameter {where}", repr(text),
                             f"a template with each of {['<' + r + '>' for r in required]} exactly once")
        pieces: list[torch.Tensor | str] = []
        position = 0
        for match in SLOT.finditer(text):
            if match.start() > position:
                pieces.append(_ids(tokenizer, text[position : match.start()]))
            pieces.append(match.group(1))
            position = match.end()
        if position < len(text):
            pieces.append(_ids(tokenizer, text[position:]))
        return cls(pieces)

    def embed(self, embed_tokens: torch.nn.Module, slots: dict[str, torch.Tensor]) -> torch.Tensor:
        """(length, d) embeddings of one example; ``slots`` maps a slot name to (n, d) vectors."""
        device = embed_tokens.weight.device
        parts = [embed_tokens(p.to(device)) if isinstance(p, torch.Tensor) else slots[p] for p in self.pieces]
        return torch.cat(parts, dim=0)


def _ids(tokenizer, text: str) -> torch.Tensor:
    return torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)


def pad(sequences: list[torch.Tensor], side: str = "left") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack (L_i, d) sequences padded on ``side``: (embeds, attention_mask, position_ids).

    Left padding puts every row's last token at the last position; position ids skip padding.
    """
    length = max(s.shape[0] for s in sequences)
    embeds = sequences[0].new_zeros(len(sequences), length, sequences[0].shape[1])
    mask = torch.zeros(len(sequences), length, dtype=torch.long, device=embeds.device)
    for row, seq in enumerate(sequences):
        span = slice(length - seq.shape[0], length) if side == "left" else slice(0, seq.shape[0])
        embeds[row, span] = seq
        mask[row, span] = 1
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    return embeds, mask, positions


# Dataset words a template may name (``{item_noun}``, ``{interaction_verb}``), and their
# dataset-neutral values for a template filled without a dataset.
NEUTRAL_WORDS = {"item_noun": "item", "interaction_verb": "interacted with"}


def fill_words(template: str, words: dict[str, str] | None = None) -> str:
    """``template`` with its ``{item_noun}`` and ``{interaction_verb}`` replaced by ``words`` (the
    dataset's, :func:`~glta_pipelines.core.data.sources.item_words`), neutral words where none are given."""
    for name, neutral in NEUTRAL_WORDS.items():
        template = template.replace("{" + name + "}", (words or {}).get(name, neutral))
    return template
