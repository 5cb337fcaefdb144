"""EASE: the closed form against Steck's NumPy algorithm, the λ selection, bad parameters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from glta_pipelines.core.models.popularity import popularity_scorer
from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.models.ease import EASEConfig, dense_ease_reference, ease_scorer, ease_weights, fit_ease
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.evaluation.ranking import ranking_metrics
from glta_pipelines.core.data.interactions import SplitConfig, build_id_map, encode_ids, split_per_user


@pytest.fixture
def split(interactions):
    user_map, item_map = build_id_map(interactions["user_id"], "user_idx"), build_id_map(interactions["item_id"], "item_idx")
    parts = split_per_user(encode_ids(interactions, user_map, item_map), SplitConfig())
    return parts, len(user_map), len(item_map)


def test_weights_match_the_dense_numpy_reference():
    rng = np.random.default_rng(0)
    x = (rng.random((30, 12)) < 0.3).astype(np.float64)
    for lam in (0.5, 10.0, 250.0):
        ours = ease_weights(torch.from_numpy(x.T @ x), lam).numpy()
        np.testing.assert_allclose(ours, dense_ease_reference(x, lam), rtol=1e-5, atol=1e-6)
        assert np.all(np.diag(ours) == 0)


def test_scores_are_the_training_rows_times_b():
    rng = np.random.default_rng(1)
    x = (rng.random((9, 7)) < 0.4).astype(np.float32)
    users, items = np.nonzero(x)
    train = pd.DataFrame({"user_idx": users, "item_idx": items})
    b = torch.randn(7, 7)
    scores = ease_scorer(train, b, 9)(torch.tensor([4, 0, 8]))
    torch.testing.assert_close(scores, torch.from_numpy(x[[4, 0, 8]]) @ b)


def test_lambda_is_chosen_on_validation(split):
    parts, n_users, n_items = split
    result = fit_ease(parts["train"], parts["valid"], n_users, n_items, EASEConfig(lambdas=(1.0, 10.0, 100.0)))
    assert list(result.selection["lambda"]) == [1.0, 10.0, 100.0]
    best = result.selection.loc[result.selection["valid_recall_at_20"].idxmax(), "lambda"]
    assert result.lam == best and result.weights.shape == (n_items, n_items)
    # two communities of taste: item-item co-occurrence finds them, popularity cannot
    popularity = ranking_metrics(popularity_scorer(parts["train"], n_items), parts["train"], parts["valid"], n_users,
                                 n_items, [20])
    assert result.selection["valid_recall_at_20"].max() > popularity["recall_at_20"] + 0.1


@pytest.mark.parametrize(("params", "match"), [
    ({"lambdas": [100, 0]}, r"baselines\.ease\.lambdas: found \[100\.0, 0\.0\]; expected a non-empty list of numbers above 0"),
    ({"lambdas": []}, r"baselines\.ease\.lambdas"),
    ({"selection_metric": "recal_at_20"}, r"baselines\.ease\.selection_metric: found 'recal_at_20'"),
    ({"lamdas": [1]}, r"baselines\.ease\.lamdas: found an unknown key.*did you mean baselines\.ease\.lambdas\?"),
])
def test_bad_parameters_are_named(params, match):
    with pytest.raises(InputError, match=match):
        config_from_params(EASEConfig, params, "baselines.ease")
