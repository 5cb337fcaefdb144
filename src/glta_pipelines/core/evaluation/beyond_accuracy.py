"""Beyond-accuracy metrics of the top-K lists: what a method recommends, not whether it hits.

Computed from the same ranked lists as Recall and NDCG (``ranking.py``), for every method, split
and task; item popularity is each item's number of training interactions. Definitions follow
RecBole 1.2.1 (``recbole/evaluator/metrics.py``: ``ItemCoverage``, ``AveragePopularity``,
``GiniIndex``), novelty as mean self-information (Zhou et al., PNAS 2010) and intra-list
diversity as mean pairwise distance (Ziegler et al., WWW 2005):

- ``coverage@K``: the share of the catalogue in at least one user's top K (one value per list set).
- ``gini@K``: the Gini index of item exposure, each catalogue item counted by how many top-K
  lists hold it: 0 when every item is shown equally often, towards 1 when a few items take all
  (one value per list set).
- ``average_popularity@K``: per user, the mean training popularity of its top K.
- ``novelty@K``: per user, the mean of ``-log2 p(i)`` over its top K, ``p(i) = (training users of
  i + 1) / (training users + 1)`` (add-one, so an item nobody trained on is finite and the most novel).
- ``diversity@K``: per user, the mean cosine distance ``1 - cos(c_i, c_j)`` over the pairs of its
  top K, ``c`` the items' content vectors (genres and decade: ``Catalogue.content``); only where
  the catalogue has content. Pairs with an item without content are left out; a list with fewer
  than two items with content has no value (NaN), and means are taken over the lists that have one.

Per-user metrics come back as one value per user (so they can be compared user by user, like
Recall); list-set metrics as 0-d tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

PER_USER_NAMES = ("average_popularity", "novelty", "diversity")
LIST_SET_NAMES = ("coverage", "gini")
BEYOND_NAMES = ("coverage", "gini", "average_popularity", "novelty", "diversity")
_BLOCK_ROWS = 1024  # users whose content vectors are gathered at once (rows x K x content width)


@dataclass(frozen=True)
class Catalogue:
    """What the beyond-accuracy metrics read about the items: training popularity and content."""

    popularity: torch.Tensor  # (n_items,) training interactions of each item
    n_train_users: int  # users with at least one training interaction
    content: torch.Tensor | None = None  # (n_items, d) unit rows (zero: no content), or None

    @classmethod
    def from_train(cls, train: pd.DataFrame, n_items: int, content: torch.Tensor | None = None) -> Catalogue:
        """The catalogue as ``train`` saw it; ``content``: one row of features per item (any scale)."""
        popularity = torch.from_numpy(np.bincount(train["item_idx"].to_numpy(), minlength=n_items)).double()
        if content is not None:
            content = content.double()
            content = content / content.norm(dim=1, keepdim=True).clamp(min=1e-12)
            if not bool(content.any()):
                content = None
        return cls(popularity, int(train["user_idx"].nunique()), content)


def list_metrics(top_idx: torch.Tensor, ks: Sequence[int], catalogue: Catalogue) -> dict[str, torch.Tensor]:
    """``<metric>_at_<k>`` of the lists ``top_idx`` (users x max K, best first): per-user metrics as
    one value per row, list-set metrics (coverage, gini) as 0-d tensors."""
    n_items = len(catalogue.popularity)
    self_information = -torch.log2((catalogue.popularity + 1.0) / (catalogue.n_train_users + 1.0))
    out: dict[str, torch.Tensor] = {}
    for k in sorted({int(k) for k in ks}):
        top = top_idx[:, :k]
        exposure = torch.bincount(top.reshape(-1), minlength=n_items).double()
        out[f"coverage_at_{k}"] = (exposure > 0).double().mean()
        out[f"gini_at_{k}"] = gini_index(exposure)
        out[f"average_popularity_at_{k}"] = catalogue.popularity[top].mean(1)
        out[f"novelty_at_{k}"] = self_information[top].mean(1)
        if catalogue.content is not None:
            out[f"diversity_at_{k}"] = intra_list_diversity(top, catalogue.content)
    return out


def gini_index(counts: torch.Tensor) -> torch.Tensor:
    """Gini index of non-negative ``counts`` (RecBole's ``GiniIndex``): 0 all equal, (n-1)/n one takes all."""
    counts = torch.sort(counts.double()).values
    n, total = len(counts), counts.sum()
    if n == 0 or float(total) == 0.0:
        return torch.tensor(0.0, dtype=torch.float64)
    rank = torch.arange(1, n + 1, dtype=torch.float64)
    return ((2 * rank - n - 1) * counts).sum() / (n * total)


def intra_list_diversity(top: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Per row of ``top``, the mean cosine distance over the pairs of its items that have content
    (``content``: unit rows, zero for none); NaN for a row with fewer than two such items. Rows are
    taken in blocks, so memory stays ``block x K x d``."""
    values = []
    for start in range(0, len(top), _BLOCK_ROWS):
        vectors = content[top[start:start + _BLOCK_ROWS]]  # (rows, K, d)
        with_content = (vectors.abs().sum(2) > 0).double().sum(1)
        summed = vectors.sum(1)
        # the sum over ordered pairs i != j of cos(c_i, c_j): |sum c|^2 - sum |c|^2 (rows without content add 0)
        pair_similarity = (summed * summed).sum(1) - (vectors * vectors).sum((1, 2))
        pairs = with_content * (with_content - 1)
        values.append(torch.where(pairs > 0, 1.0 - pair_similarity / pairs.clamp(min=1), torch.nan))
    return torch.cat(values) if values else torch.zeros(0, dtype=torch.float64)
