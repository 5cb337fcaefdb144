"""Recommender models, one per file, each with its defaults (a ``*Config`` dataclass) and its scorer.

Map of the package:

- ``registry.py``: THE list of methods (:data:`METHODS`): name, label, text-free twin, whether it
  reads item text, and how it is trained and scored. Pipelines, the evaluator, the seed summary and
  the parameter check read it; adding a method is a model file here, an entry there and its conf.
- ``popularity.py``: the most-popular-items baseline (no training).
- ``lightgcn.py``: LightGCN with BPR (the graph backbone of GLTA), :func:`dot_product_scorer`.
- ``ease.py``: EASE, closed form, λ chosen on validation.
- ``graph_encoder.py``: parts shared by the BPR graph baselines (layer-0 embeddings, edge dropout,
  node text).
- ``hccf.py``: HCCF and HCCF+; ``lightgcn_plus.py``: LightGCN+; ``rlmrec_con.py`` and
  ``rlmrec_gen.py``: RLMRec's contrastive and generative variants.
- ``sasrec.py``: SASRec, the sequential baseline (causal self-attention over a user's latest
  items; RecBole's defaults), :func:`sequence_scorer` reads each user's items in time order.

GLTA itself lives in :mod:`glta_pipelines.core.glta` (it needs the LLM).
"""
