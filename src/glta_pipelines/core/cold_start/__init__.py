"""Items the graph has never seen: content features, and mappers from content to graph embeddings.

On the ``cold-items`` split (``core/data/interactions.py``) training never sees a cold item, so
the graph methods cannot place it. This package places it from what is known without
interactions, and leaves every warm item's embedding as it is.

Map of the package:

- ``content.py``: an item's content as features: genres and decade (:func:`genre_features`),
  knowledge-graph entities (:func:`read_knowledge_graph`, :func:`knowledge_graph_features`); the
  text encoders (MiniLM, the LLM, the LLM with random weights) live in ``core/llm/text_encoder.py``.
- ``mapper.py``: content -> LightGCN item space on warm items (:func:`fit_mapper`, MSE plus
  InfoNCE), and text-kNN (:func:`knn_embeddings`).
- ``new_items.py``: items added to a trained model by their text (the ``add_items`` pipeline):
  the table a user hands in, checked row by row (:func:`check_new_items`), and a model's
  item-sized tensors grown by mapped rows (:func:`extend_items`).

The methods built on them (one per encoder, each compared with the popularity fallback and with
the other encoders) are entries of the method registry (``core/models/registry.py``).
"""

from glta_pipelines.core.cold_start.content import (
    KnowledgeGraphConfig,
    RandomLLMConfig,
    genre_features,
    knowledge_graph_features,
    knowledge_graph_folder,
    read_knowledge_graph,
)
from glta_pipelines.core.cold_start.mapper import KNNConfig, MapperConfig, fit_mapper, knn_embeddings

__all__ = [
    "KNNConfig",
    "KnowledgeGraphConfig",
    "MapperConfig",
    "RandomLLMConfig",
    "fit_mapper",
    "genre_features",
    "knn_embeddings",
    "knowledge_graph_features",
    "knowledge_graph_folder",
    "read_knowledge_graph",
]
