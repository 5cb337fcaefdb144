"""Evaluation: one evaluator for every method, and the reports built from it.

Map of the package:

- ``ranking.py``: full-ranking evaluation over all items, chunked over users (Recall, NDCG,
  Precision, Hit, MRR at K), paired bootstrap intervals, top-K lists.
- ``breakdowns.py``: metrics per user-activity bucket and the long tail's share of hits.
- ``seed_summary.py``: several seeds, one verdict (mean, sd, t interval, paired differences).
- ``plots.py``: figures for reports (built here, saved by the caller).
"""
