"""Wiring of the ``cold_start`` stage: each content encoder once, then one node per cold-start method.

Which methods exist, and which content and mapper each uses, is the method registry's
(``core/models/registry.py``).
"""

from functools import partial, update_wrapper

from kedro.pipeline import Node, Pipeline

from glta_pipelines.core.models.registry import METHODS, trained_by
from glta_pipelines.pipelines.cold_start.nodes import (
    genre_content,
    knowledge_graph_content,
    place_cold_items,
    text_content,
)

EXTERNAL_INPUTS = {"items": "ingest.items", "item_map": "graph.item_map", "train": "graph.train",
                   "lightgcn_embeddings": "pretrain_gnn.embeddings"}


def _bound(func, value: str, name: str):
    """``func`` with its first argument bound, named ``name`` in Kedro's logs (picklable for ParallelRunner)."""
    bound = update_wrapper(partial(func, value), func)
    bound.__name__ = name
    return bound


def _content(encoder: str) -> Node:
    output = f"content_{encoder}"
    if encoder == "genres":
        return Node(genre_content, inputs=["items", "item_map"], outputs=output, name="genre_content")
    if encoder == "knowledge_graph":
        return Node(knowledge_graph_content, inputs=["item_map", "params:knowledge_graph", "params:dataset"],
                    outputs=output, name="knowledge_graph_content")
    return Node(_bound(text_content, encoder, f"{encoder}_content"),
                inputs=["items", "item_map", "params:text_encoder", "params:llm", "params:random_llm"],
                outputs=output, name=f"{encoder}_content")


def create_pipeline(methods: tuple[str, ...] | None = None, **kwargs) -> Pipeline:
    """Content of the encoders ``methods`` read, and the embeddings of each (default: every cold-start method)."""
    methods = trained_by("cold_start") if methods is None else methods
    encoders = list(dict.fromkeys(METHODS[m].content for m in methods))
    nodes = [_content(e) for e in encoders]
    nodes += [Node(_bound(place_cold_items, m, f"place_{m}"),
                   inputs=[f"content_{METHODS[m].content}", "lightgcn_embeddings", "train", "item_map",
                           "params:mapper", "params:knn"],
                   outputs=[f"{m}_embeddings", f"{m}_history"], name=f"place_{m}") for m in methods]
    shared = {"params:dataset": "params:dataset", "params:llm": "params:llm",
              "params:text_encoder": "params:baselines.text_encoder"}
    used = {i for node in nodes for i in node.inputs}
    return Pipeline(
        nodes,
        namespace="cold_start",
        inputs={k: v for k, v in EXTERNAL_INPUTS.items() if k in used},
        parameters={k: v for k, v in shared.items() if k in used},
    )
