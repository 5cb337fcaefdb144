"""Wiring of the ``baselines`` stage: each trained baseline on the graph stage's split.

``create_pipeline()`` is the fast default (the registry's default baselines: EASE, seconds; plus
the RecBole export), part of ``full``; ``create_pipeline(PAPER_BASELINES)`` adds the paper's graph
baselines and their text embeddings (pipeline ``paper``). Which methods exist, and which read
text, is the method registry's (``core/models/registry.py``).
"""

from functools import partial, update_wrapper

from kedro.pipeline import Node, Pipeline

from glta_pipelines.core.models.registry import METHODS, trained_by
from glta_pipelines.pipelines.baselines.nodes import (
    embed_item_texts,
    export_recbole,
    train_ease,
    train_graph_baseline,
    train_sequential,
)

SPLIT_INPUTS = {name: f"graph.{name}" for name in ("train", "valid", "test", "user_map", "item_map")}
DEFAULT_BASELINES = trained_by("baselines", default_only=True)
# The paper's comparison plus EASE
PAPER_BASELINES = trained_by("baselines")
GRAPH = ["train", "valid", "user_map", "item_map"]
SCHEDULE = "params:lightgcn"  # the graph baselines train on LightGCN's schedule (training/bpr.py)


def _trainer(method: str) -> Node:
    spec = METHODS[method]
    if spec.scoring == "sequence":  # SASRec: each user's training items in time order
        return Node(train_sequential, inputs=[*GRAPH, f"params:{spec.parameter_key}"],
                    outputs=[f"{method}_weights", f"{method}_history"], name=f"train_{method}")
    if spec.build is None:  # EASE: closed form, its lambda chosen on validation
        return Node(train_ease, inputs=[*GRAPH, "params:ease"], outputs=["ease_weights", "ease_selection"],
                    name="train_ease")
    inputs = {**{name: name for name in GRAPH}, "lightgcn": SCHEDULE}
    if spec.text_aware:
        inputs["text_embeddings"] = "text_embeddings"
    if spec.config is not None:
        inputs["params"] = f"params:{spec.parameter_key}"
    # partial of a module-level function: picklable, so ParallelRunner can run it
    func = update_wrapper(partial(train_graph_baseline, method), train_graph_baseline)
    func.__name__ = f"train_{method}"
    return Node(func, inputs=inputs, outputs=[f"{method}_embeddings", f"{method}_history"], name=f"train_{method}")


def create_pipeline(methods: tuple[str, ...] | None = None, **kwargs) -> Pipeline:
    """Training of ``methods`` (default: the registry's default baselines, those of ``full``)."""
    methods = trained_by("baselines", default_only=True) if methods is None else methods
    nodes = [_trainer(m) for m in methods]
    if any(METHODS[m].text_aware for m in methods):
        nodes.append(Node(embed_item_texts, inputs=["items", "item_map", "params:text_encoder", "params:llm"],
                          outputs="text_embeddings", name="embed_item_texts"))
    # RecBole's models on exactly this split: `benchmark_filename: [train, valid, test]`
    nodes.append(Node(export_recbole, inputs=["train", "valid", "test", "user_map", "item_map", "items", "params:dataset"],
                      outputs="recbole_files", name="export_recbole"))
    shared = {"params:dataset": "params:dataset", "params:llm": "params:llm", SCHEDULE: "params:pretrain_gnn.lightgcn"}
    used = {i for node in nodes for i in node.inputs}
    return Pipeline(
        nodes,
        namespace="baselines",
        inputs={**SPLIT_INPUTS, "items": "ingest.items"},
        parameters={k: v for k, v in shared.items() if k in used},
    )
