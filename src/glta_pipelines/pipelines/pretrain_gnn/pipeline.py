"""Wiring of the ``pretrain_gnn`` stage."""

from kedro.pipeline import Node, Pipeline

from glta_pipelines.pipelines.pretrain_gnn.nodes import pretrain_lightgcn


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(pretrain_lightgcn,
                 inputs=["graph.train", "graph.valid", "graph.user_map", "graph.item_map", "params:lightgcn"],
                 outputs=["model_weights", "embeddings", "training_history"], name="pretrain_lightgcn"),
        ],
        namespace="pretrain_gnn",
        inputs={"graph.train", "graph.valid", "graph.user_map", "graph.item_map"},
    )
