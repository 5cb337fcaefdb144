"""A trained GLLM as a score function: users -> logits over all items, for the evaluator, the
recommendations and validation during training.

Each prompt's hidden state at the prediction token is cached by (user, shown items), so a prompt
that validation, test and the recommendations share goes through the LLM once; in a data-parallel
group every rank reads its share of the prompts.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from glta_pipelines.core.glta.examples import user_histories
from glta_pipelines.core.glta.model import GLLM, Base
from glta_pipelines.core.training.distributed import SINGLE, Group

Scorer = Callable[[torch.Tensor], torch.Tensor]


def shared_hidden(model: GLLM, users: torch.Tensor, histories: list[np.ndarray], group: Group = SINGLE) -> torch.Tensor:
    """``model.hidden`` of a batch of prompts, each rank reading its share through the LLM; all rows on every rank."""
    if not group.distributed:
        return model.hidden(users, histories)
    lo, hi = group.bounds(len(histories))
    local = (model.hidden(users[lo:hi], histories[lo:hi]) if hi > lo else
             torch.zeros(0, model.norm.normalized_shape[0], device=model.graph_item.device))
    return group.gather(local, len(histories))


HiddenCache = dict[tuple[int, bytes], torch.Tensor]


def make_scorer(model: GLLM, histories: list[np.ndarray], history_length: int, batch_size: int, base: Base,
                cache: HiddenCache | None = None, group: Group = SINGLE) -> Scorer:
    """Score function for the ranking evaluator: users -> GLLM logits over all items, residual on ``base``.

    ``cache`` (shared between scorers of the same model) keeps each prompt's hidden state, keyed by
    user and shown items, so a prompt that validation, test and recommendations have in common
    goes through the LLM once. In a data-parallel ``group`` every rank reads its share of the
    prompts and every rank gets all scores.
    """
    cache = {} if cache is None else cache

    def score(users: torch.Tensor) -> torch.Tensor:
        model.eval()
        out = []
        with torch.no_grad():
            for lo in range(0, len(users), batch_size):
                chunk = users[lo : lo + batch_size]
                hist = [histories[int(u)][-history_length:] for u in chunk]
                keys = [(int(u), h.tobytes()) for u, h in zip(chunk, hist)]
                todo = [row for row, key in enumerate(keys) if key not in cache]
                if todo:
                    fresh = shared_hidden(model, chunk[todo], [hist[row] for row in todo], group)
                    cache.update({keys[row]: h for row, h in zip(todo, fresh)})
                hidden = torch.stack([cache[key] for key in keys])
                out.append(model.logits(chunk, hidden, base).cpu())
        return torch.cat(out)
    return score


def history_scorer(model: GLLM, history: pd.DataFrame, n_users: int, base: Base,
                   cache: HiddenCache | None = None) -> Scorer:
    """Score function of a trained GLLM whose prompts show each user's latest ``history`` items."""
    return make_scorer(model, user_histories(history, n_users), model.config.history_length,
                       model.config.scoring_batch_size, base, cache)
