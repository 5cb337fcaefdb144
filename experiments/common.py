"""What the experiment scripts share: the project's catalog and parameters, and a split's two
evaluation protocols on full score matrices. Scripts import it as ``common`` (their own folder is
on ``sys.path`` when run as ``python experiments/<script>.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import torch

from glta_pipelines.core.evaluation.ranking import paired_bootstrap, per_user_metrics, ranking_metrics
from glta_pipelines.core.glta.model import zscore

__all__ = ["ROOT", "Split", "open_catalog", "zscore"]

ROOT = Path(__file__).resolve().parents[1]


def open_catalog():
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
    bootstrap_project(ROOT)
    session = KedroSession.create(project_path=ROOT)
    context = session.load_context()
    return context.catalog, context.params


class Split:
    """The run's split and the two evaluation protocols on full score matrices."""

    def __init__(self, train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame, n_users: int, n_items: int):
        self.train, self.valid, self.test = train, valid, test
        self.seen_for_test = pd.concat([train, valid], ignore_index=True)
        self.n_users, self.n_items = n_users, n_items

    def score(self, valid_scores: torch.Tensor, test_scores: torch.Tensor) -> dict[str, float]:
        out = {}
        for split, scores, exclude, truth in (("valid", valid_scores, self.train, self.valid),
                                              ("test", test_scores, self.seen_for_test, self.test)):
            metrics = ranking_metrics(lambda users, s=scores: s[users], exclude, truth, self.n_users, self.n_items, [20])
            out[f"{split}_recall_at_20"] = round(metrics["recall_at_20"], 4)
            out[f"{split}_ndcg_at_20"] = round(metrics["ndcg_at_20"], 4)
        return out

    def paired(self, ours: torch.Tensor, reference: torch.Tensor) -> dict[str, dict[str, float]]:
        """Test: relative difference of per-user Recall@20 and NDCG@20 with a 95% bootstrap interval."""
        def per_user(scores):
            _, values = per_user_metrics(lambda users: scores[users], self.seen_for_test, self.test,
                                         self.n_users, self.n_items, [20])
            return values
        a, b = per_user(ours), per_user(reference)
        return {name: {k: round(v, 4) for k, v in paired_bootstrap(a[name], b[name]).items()}
                for name in ("recall_at_20", "ndcg_at_20")}

    def interaction_matrix(self, frame: pd.DataFrame) -> torch.Tensor:
        matrix = torch.zeros(self.n_users, self.n_items)
        matrix[frame["user_idx"].to_numpy(), frame["item_idx"].to_numpy()] = 1.0
        return matrix
