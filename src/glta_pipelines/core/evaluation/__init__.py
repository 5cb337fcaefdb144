"""Evaluation: one evaluator for every method, and the reports built from it.

Map of the package:

- ``ranking.py``: full-ranking evaluation over all items, chunked over users (Recall, NDCG,
  Precision, Hit, MRR, MAP at K), paired bootstrap intervals, top-K lists.
- ``beyond_accuracy.py``: what the lists show: coverage, Gini of exposure, average popularity,
  novelty and intra-list diversity at K.
- ``significance.py``: paired t-test and Wilcoxon p-values, Holm's correction across methods.
- ``breakdowns.py``: metrics per user-activity bucket and the long tail's share of hits.
- ``seed_summary.py``: several seeds, one verdict (mean, sd, t interval, paired differences).
- ``plots.py``: figures for reports (built here, saved by the caller).
"""
