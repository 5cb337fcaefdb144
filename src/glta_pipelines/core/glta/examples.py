"""What the user-item alignment learns from: users' histories and each epoch's (prompt, targets) examples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from glta_pipelines.core.data.interactions import user_sequences
from glta_pipelines.core.glta.configuration import GLLMConfig

# (user, items shown in the prompt, target items, known items masked out of the loss)
Example = tuple[int, np.ndarray, np.ndarray, np.ndarray]


def user_histories(interactions: pd.DataFrame, n_users: int) -> list[np.ndarray]:
    """Each user's item indices in time order (ties broken by item index)."""
    return user_sequences(interactions, n_users)


@dataclass
class GLLMData:
    """Training examples and validation protocol of the user-item alignment."""

    visible: list[np.ndarray]  # per user, time-ordered items the prompt may show
    targets: list[np.ndarray]  # per user, held-out targets; read by the holdout scheme only
    train: pd.DataFrame  # full training split (masked when scoring valid)
    valid: pd.DataFrame
    n_items: int
    # residual base for validation (LightGCN on all of train); None: the backbone graph embeddings
    eval_base: tuple[torch.Tensor, torch.Tensor] | None = None


def epoch_examples(data: GLLMData, config: GLLMConfig, rng: np.random.Generator) -> list[Example]:
    """This epoch's examples in random order, by ``config.target_scheme``.

    holdout: the prompt shows the backbone's items, targets are the held-out interactions;
    mask: a fresh ``mask_fraction`` of each user's items is hidden and predicted (at least one
    hidden, at least one shown);
    multinomial (CLLM4Rec): a fresh ``mask_fraction`` is dropped from the prompt, and the targets
    are all of the user's items (a multinomial likelihood over the whole catalogue).
    """
    build = {"holdout": _holdout_example, "mask": _mask_example, "multinomial": _multinomial_example}[config.target_scheme]
    examples = []
    for user, items in enumerate(data.visible):
        example = build(user, items, data, config, rng)
        if example is not None:
            examples.append(example)
    order = rng.permutation(len(examples))
    return [examples[i] for i in order]


def _holdout_example(user: int, items: np.ndarray, data: GLLMData, config: GLLMConfig,
                     rng: np.random.Generator) -> Example | None:
    targets = data.targets[user]
    if len(targets) == 0 or len(items) == 0:
        return None
    return user, items[-config.history_length:], targets, items


def _hidden(items: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A random ``fraction`` of ``items`` to hide: at least one hidden, at least one shown."""
    hide = rng.random(len(items)) < fraction
    if not hide.any():
        hide[rng.integers(len(items))] = True
    if hide.all():
        hide[rng.integers(len(items))] = False
    return hide


def _mask_example(user: int, items: np.ndarray, data: GLLMData, config: GLLMConfig,
                  rng: np.random.Generator) -> Example | None:
    if len(items) < 2:
        return None
    hide = _hidden(items, config.mask_fraction, rng)
    shown = items[~hide]
    return user, shown[-config.history_length:], items[hide], shown


def _multinomial_example(user: int, items: np.ndarray, data: GLLMData, config: GLLMConfig,
                         rng: np.random.Generator) -> Example | None:
    if len(items) < 2:
        return None
    shown = items[~_hidden(items, config.mask_fraction, rng)]
    return user, shown[-config.history_length:], items, np.zeros(0, dtype=np.int64)
