"""Wiring of the ``pretrain_gnn`` stage."""

from kedro.pipeline import Node, Pipeline

from glta_pipelines.pipelines.pretrain_gnn.nodes import pretrain_lightgcn

GRAPH_INPUTS = {name: f"graph.{name}" for name in ("train", "valid", "user_map", "item_map")}


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(pretrain_lightgcn, inputs=[*GRAPH_INPUTS, "params:lightgcn"],
                 outputs=["model_weights", "embeddings", "training_history"], name="pretrain_lightgcn"),
        ],
        namespace="pretrain_gnn",
        inputs=GRAPH_INPUTS,
    )
