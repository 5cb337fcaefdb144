"""The run's description names the best method per metric."""

import math

import pandas as pd

from glta_pipelines.framework.reports import best_methods


def test_best_methods_take_the_lowest_where_less_is_better_and_skip_metrics_without_values():
    rows = [("recall", "a", 0.1), ("recall", "b", 0.2), ("gini", "a", 0.8), ("gini", "b", 0.9),
            ("diversity", "a", math.nan), ("diversity", "b", math.nan)]
    metrics = pd.DataFrame([{"split": "test", "metric": m, "method": x, "k": 20, "value": v} for m, x, v in rows])
    assert best_methods(metrics) == ["recall@20 b 0.2", "gini@20 (lowest) a 0.8"]
