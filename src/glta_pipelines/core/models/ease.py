"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW'19): a closed-form
item-item model, the strong classical baseline of the comparison.

Follows RecBole's ``recbole/model/general_recommender/ease.py`` (reg_weight default 250):
``G = XᵀX + λI``, ``P = G⁻¹``, ``B = -P / diag(P)`` column-wise, ``diag(B) = 0``, scores ``X·B``
with the user's training items masked by the evaluator. λ is chosen on validation from a grid
(``lambdas``), as is usual for EASE; the chosen λ, the grid and the validation score of each
point are kept with the weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from glta_pipelines.core.errors import InputError
from glta_pipelines.core.evaluation.ranking import ScoreFn, check_selection_metric, csr_row_entries, ranking_metrics, user_item_csr

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EASEConfig:
    """``baselines.ease``."""

    lambdas: tuple[float, ...] = (50.0, 100.0, 200.0, 300.0, 500.0, 1000.0)  # L2 grid, chosen on validation
    # the validation metric that picks lambda
    selection_metric: str = "recall_at_20"

    def validate(self) -> None:
        if not self.lambdas or any(lam <= 0 for lam in self.lambdas):
            raise InputError("parameter baselines.ease.lambdas", list(self.lambdas), "a non-empty list of numbers above 0")
        check_selection_metric(self.selection_metric, "parameter baselines.ease.selection_metric")


def gram_matrix(train: pd.DataFrame, n_users: int, n_items: int) -> torch.Tensor:
    """XᵀX (float64, n_items x n_items) of the binary user x item matrix X of the training pairs.

    X stays sparse: memory is the interactions plus the n_items² result, never n_users x n_items.
    """
    index = torch.from_numpy(np.stack([np.array(train["user_idx"], dtype=np.int64),
                                       np.array(train["item_idx"], dtype=np.int64)]))
    x = torch.sparse_coo_tensor(index, torch.ones(index.shape[1], dtype=torch.float64), (n_users, n_items),
                                check_invariants=True).coalesce()
    x = torch.sparse_coo_tensor(x.indices(), torch.ones_like(x.values()), x.shape, check_invariants=True)  # binary
    return torch.sparse.mm(x.t(), x).to_dense()


def ease_weights(gram: torch.Tensor, lam: float) -> torch.Tensor:
    """B from the Gram matrix XᵀX (float64 for the inverse), diagonal zero."""
    p = torch.linalg.inv(gram + lam * torch.eye(len(gram), dtype=gram.dtype))
    b = -p / torch.diagonal(p)  # divides column j by P_jj
    b.fill_diagonal_(0.0)
    return b.float()


def ease_scorer(train: pd.DataFrame, weights: torch.Tensor, n_users: int) -> ScoreFn:
    """``users -> X[users] @ B``; X's rows are built per chunk of users from the training CSR."""
    crow, col = user_item_csr(train["user_idx"].to_numpy(), train["item_idx"].to_numpy(), n_users)

    def score(users: torch.Tensor) -> torch.Tensor:
        rows, items = csr_row_entries(crow, col, users)
        x = torch.zeros(len(users), weights.shape[0])
        x[rows, items] = 1.0
        return x @ weights

    return score


@dataclass
class EASEResult:
    weights: torch.Tensor
    lam: float
    selection: pd.DataFrame  # one row per λ: lambda, valid metrics


def fit_ease(train: pd.DataFrame, valid: pd.DataFrame, n_users: int, n_items: int, config: EASEConfig) -> EASEResult:
    """B for every λ of the grid; keep the best on validation (ties: the smaller λ)."""
    gram = gram_matrix(train, n_users, n_items)
    k = int(config.selection_metric.rpartition("_at_")[2])
    rows, best = [], None
    for lam in sorted(config.lambdas):
        weights = ease_weights(gram, lam)
        metrics = ranking_metrics(ease_scorer(train, weights, n_users), train, valid, n_users, n_items, sorted({10, 20, k}))
        rows.append({"lambda": lam, **{f"valid_{name}": value for name, value in metrics.items()}})
        score = metrics[config.selection_metric]
        log.info("EASE lambda=%g: valid %s=%.4f", lam, config.selection_metric, score)
        if best is None or score > best[0]:
            best = (score, lam, weights)
    return EASEResult(best[2], best[1], pd.DataFrame(rows))


def dense_ease_reference(x: np.ndarray, lam: float) -> np.ndarray:
    """Steck's four lines in NumPy (the paper's Algorithm 1), for tests."""
    g = x.T @ x + lam * np.eye(x.shape[1])
    p = np.linalg.inv(g)
    b = p / (-np.diag(p))
    np.fill_diagonal(b, 0.0)
    return b
