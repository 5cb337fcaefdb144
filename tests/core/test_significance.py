"""p-values and Holm's correction, against scipy and a hand case."""

import math

import numpy as np
import pytest
from scipy.stats import ttest_rel, wilcoxon

from glta_pipelines.core.evaluation.significance import holm, paired_tests


def test_paired_tests_are_scipys():
    rng = np.random.default_rng(0)
    reference = rng.random(200)
    ours = reference + rng.normal(0.02, 0.1, 200)
    out = paired_tests(ours, reference)
    assert out["p_value_t"] == pytest.approx(ttest_rel(ours, reference).pvalue)
    assert out["p_value_wilcoxon"] == pytest.approx(wilcoxon(ours, reference).pvalue)


def test_edge_cases():
    same = np.array([0.1, 0.2, 0.3])
    assert paired_tests(same, same) == {"p_value_t": 1.0, "p_value_wilcoxon": 1.0}
    assert all(math.isnan(v) for v in paired_tests(same[:1], same[:1] + 1).values())
    assert math.isnan(paired_tests(same + 0.5, same)["p_value_t"])  # a constant shift: no spread, no t-test
    assert paired_tests(np.r_[same, np.nan], np.r_[same, 1.0]) == {"p_value_t": 1.0, "p_value_wilcoxon": 1.0}


def test_holm_hand_case():
    # sorted 0.01, 0.02, 0.03, 0.5 -> x4, x3, x2, x1 = 0.04, 0.06, 0.06 (kept monotone), 0.5
    out = holm({"a": 0.03, "b": 0.01, "c": 0.5, "d": 0.02, "e": math.nan})
    assert out["b"] == pytest.approx(0.04) and out["d"] == pytest.approx(0.06)
    assert out["a"] == pytest.approx(0.06) and out["c"] == pytest.approx(0.5) and math.isnan(out["e"])
    assert holm({"x": 0.6, "y": 0.7}) == {"x": pytest.approx(1.0), "y": pytest.approx(1.0)}
