"""p-values for paired comparisons, and Holm's correction when several methods face one reference.

The evaluator keeps each method's test metric per user; a method and the reference are compared
user by user (the same users, the same split). :func:`paired_tests` gives the two-sided p-values
of the paired t-test and of the Wilcoxon signed-rank test (scipy's ``ttest_rel`` and
``wilcoxon``); :func:`holm` adjusts a family of p-values (one per method compared with the
reference, for one metric) so that the chance of any false rejection in the family stays at the
level (Holm, 1979). Across seeds the same tests run on the per-seed values (``seed_summary.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np


def paired_tests(ours: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Two-sided p-values of the paired t-test (``p_value_t``) and the Wilcoxon signed-rank test
    (``p_value_wilcoxon``) of ``ours - reference``. Identical vectors give 1.0 for both; fewer than
    two pairs, NaN for both; a constant non-zero difference, NaN for the t-test. Pairs with a NaN
    (a user without a value) are left out."""
    from scipy.stats import ttest_rel, wilcoxon

    ours, reference = np.asarray(ours, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    known = ~(np.isnan(ours) | np.isnan(reference))
    ours, reference = ours[known], reference[known]
    if len(ours) < 2:
        return {"p_value_t": math.nan, "p_value_wilcoxon": math.nan}
    differences = ours - reference
    if not np.any(differences):
        return {"p_value_t": 1.0, "p_value_wilcoxon": 1.0}
    if np.ptp(differences) <= 1e-12 * np.abs(differences).max():
        # no spread (two methods that do not depend on the seed): the t-test has nothing to say
        p_t = math.nan
    else:
        p_t = float(ttest_rel(ours, reference).pvalue)
    return {"p_value_t": p_t, "p_value_wilcoxon": float(wilcoxon(ours, reference).pvalue)}


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm's step-down adjustment of a family of p-values (NaN ones are left out and stay NaN):
    the i-th smallest of m becomes ``max over j <= i of min(1, (m - j + 1) p_(j))``."""
    known = sorted(((p, name) for name, p in p_values.items() if not math.isnan(p)))
    adjusted = {name: math.nan for name in p_values}
    running, m = 0.0, len(known)
    for i, (p, name) in enumerate(known):
        running = max(running, min(1.0, (m - i) * p))
        adjusted[name] = running
    return adjusted
