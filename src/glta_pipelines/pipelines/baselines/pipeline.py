"""Wiring of the ``baselines`` stage: each trained baseline on the graph stage's split.

``create_pipeline()`` is the fast default (EASE, seconds; plus the RecBole export), part of
``full``; ``create_pipeline(PAPER_BASELINES)`` adds the paper's graph baselines and their text
embeddings (pipeline ``paper``).
"""

from kedro.pipeline import Node, Pipeline

from glta_pipelines.pipelines.baselines.nodes import (
    embed_item_texts,
    export_recbole,
    train_ease,
    train_hccf,
    train_hccf_plus,
    train_lightgcn_plus,
    train_rlmrec_con,
    train_rlmrec_gen,
)

SPLIT_INPUTS = {name: f"graph.{name}" for name in ("train", "valid", "test", "user_map", "item_map")}
DEFAULT_BASELINES = ("ease",)
# The paper's comparison; a text-aware method sits next to its text-free twin.
PAPER_BASELINES = ("ease", "hccf", "lightgcn_plus", "hccf_plus", "rlmrec_con", "rlmrec_gen")
TEXT_AWARE = ("lightgcn_plus", "hccf_plus", "rlmrec_con", "rlmrec_gen")
GRAPH = ["train", "valid", "user_map", "item_map"]
SCHEDULE = "params:lightgcn"  # the graph baselines train on LightGCN's schedule (bpr_trainer.py)


def _trainers() -> dict[str, Node]:
    def graph_model(method, func, *extra):
        return Node(func, inputs=[*GRAPH, *extra], outputs=[f"{method}_embeddings", f"{method}_history"],
                    name=f"train_{method}")

    return {
        "ease": Node(train_ease, inputs=[*GRAPH, "params:ease"], outputs=["ease_weights", "ease_selection"],
                     name="train_ease"),
        "hccf": graph_model("hccf", train_hccf, SCHEDULE, "params:hccf"),
        "lightgcn_plus": graph_model("lightgcn_plus", train_lightgcn_plus, "text_embeddings", SCHEDULE),
        "hccf_plus": graph_model("hccf_plus", train_hccf_plus, "text_embeddings", SCHEDULE, "params:hccf"),
        "rlmrec_con": graph_model("rlmrec_con", train_rlmrec_con, "text_embeddings", SCHEDULE, "params:rlmrec_con"),
        "rlmrec_gen": graph_model("rlmrec_gen", train_rlmrec_gen, "text_embeddings", SCHEDULE, "params:rlmrec_gen"),
    }


def create_pipeline(methods: tuple[str, ...] = DEFAULT_BASELINES, **kwargs) -> Pipeline:
    trainers = _trainers()
    nodes = [trainers[m] for m in methods]
    if any(m in TEXT_AWARE for m in methods):
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
