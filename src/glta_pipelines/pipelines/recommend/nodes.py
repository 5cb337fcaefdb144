"""Nodes of ``recommend``."""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from tqdm.auto import tqdm

from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.glta.recommender import requests_from_table
from glta_pipelines.serving.registry import RecommendConfig, load_registered
from glta_pipelines.framework.tracking import current_run


def recommend(requests: pd.DataFrame, recommend: dict[str, Any], dataset: dict[str, Any]) -> pd.DataFrame:
    """Ranked items for every row of ``requests`` (columns user_id or history, optional k and exclude),
    from the registered model ``recommend.model_name@recommend.alias``.

    The model is loaded here, like the LLM in the training nodes: it holds an LLM, which must never
    travel between nodes. It comes from the run's tracking store (``conf/<env>/mlflow.yml``). Every
    row is checked first (an error names the table's row, from 0, and the field); then the rows are
    scored in chunks of the model's ``max_rows``, so scoring memory does not grow with the table.
    """
    config = config_from_params(RecommendConfig, recommend, "recommend")
    rows = requests_from_table(requests, "recommend.requests", config.k)
    run = current_run()
    uri = run["tracking_uri"] if run else mlflow.get_tracking_uri()
    recommender = load_registered(uri, config.model_name or f"glta-{dataset.get('name', 'unknown')}",
                                  config.alias).unwrap_python_model().recommender
    chunk = recommender.limits.max_rows
    for lo in range(0, len(rows), chunk):  # every row checked before any is scored
        recommender.parse(rows[lo:lo + chunk], row_offset=lo)
    answers = [recommender.recommend(rows[lo:lo + chunk], row_offset=lo)
               for lo in tqdm(range(0, len(rows), chunk), desc="recommend", unit="chunk", disable=None)]
    return pd.concat(answers, ignore_index=True) if answers else recommender.recommend([])
