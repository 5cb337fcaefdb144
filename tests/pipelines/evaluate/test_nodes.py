import numpy as np
import pandas as pd
import pytest

from glta_pipelines.core.errors import InputError
from glta_pipelines.pipelines.evaluate.nodes import compare_methods

EVALUATION = {"comparison": {"reference": "lightgcn", "bootstrap_resamples": 500, "seed": 0}}


def _per_user(values):
    return pd.DataFrame({"user_idx": np.arange(len(values)), "recall_at_20": np.asarray(values, dtype=float)})


def test_comparison_pairs_users_by_index_not_by_row_order():
    rng = np.random.default_rng(0)
    reference = rng.random(300)
    better = reference + 0.1
    shuffled = rng.permutation(300)
    ours = pd.DataFrame({"user_idx": shuffled, "recall_at_20": better[shuffled]})
    report = compare_methods(EVALUATION, lightgcn=_per_user(reference), glta=ours)
    gain = report["glta"]["recall_at_20"]
    assert report["reference"] == "lightgcn" and report["n_users"] == 300 and "lightgcn" not in report
    assert gain["relative_difference"] == pytest.approx(0.1 / reference.mean(), abs=1e-5)
    # paired: every user gains 0.1, so no resample can show a loss
    assert gain["share_of_resamples_above_zero"] == 1.0 and gain["ci95_low"] > 0


def test_unknown_reference_method_is_named():
    with pytest.raises(InputError, match="comparison.reference.*'bpr'"):
        compare_methods({"comparison": {"reference": "bpr"}}, lightgcn=_per_user([0.1]), glta=_per_user([0.2]))


def test_zero_reference_gives_null_relative_values():
    report = compare_methods(EVALUATION, lightgcn=_per_user([0.0, 0.0]), glta=_per_user([0.5, 0.0]))
    assert report["glta"]["recall_at_20"]["relative_difference"] is None
    assert report["glta"]["recall_at_20"]["absolute_difference"] == pytest.approx(0.25)


@pytest.mark.parametrize("comparison, match", [
    ({"reference": "bpr"}, "comparison.reference.*'bpr'"),
    ({"bootstrap_resamples": 10}, "bootstrap_resamples.*at least 100"),
])
def test_bad_comparison_parameters_fail_before_the_run(comparison, match):
    from glta_pipelines.framework.parameters import validate_parameters

    params = {"dataset": {"name": "movielens-100k"},
              "evaluate": {"evaluation": {"ks": [20], "plot_k": 20, "comparison": comparison}}}
    with pytest.raises(InputError, match=match):
        validate_parameters(params)
