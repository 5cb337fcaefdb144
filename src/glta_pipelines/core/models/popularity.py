"""Non-learned baselines scored by the same full-ranking evaluator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from glta_pipelines.core.evaluation.ranking import ScoreFn


def popularity_scorer(train: pd.DataFrame, n_items: int) -> ScoreFn:
    """Every user gets the items ranked by their number of training interactions."""
    counts = torch.from_numpy(np.bincount(train["item_idx"].to_numpy(), minlength=n_items).astype(np.float32))
    return lambda users: counts.expand(len(users), n_items)
