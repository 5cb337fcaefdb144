"""Wiring of the ``pretrain_gnn`` stage.

Two LightGCNs with the same hyper-parameters: ``lightgcn`` on the whole training split (the
baseline, and the graph score GLTA's residual head starts from at inference), and ``backbone``
on the training split minus the alignment holdout (GLTA's graph tokens, so its fine-tuning
targets are interactions the graph has not fit). With no holdout (the default, measured in the
README) the backbone is the baseline itself and is not trained twice.
"""

from kedro.pipeline import Node, Pipeline

from glta_pipelines.pipelines.pretrain_gnn.nodes import pretrain_backbone, pretrain_lightgcn

GRAPH_INPUTS = {name: f"graph.{name}" for name in ("train", "backbone_train", "valid", "user_map", "item_map")}


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(pretrain_lightgcn, inputs=["train", "valid", "user_map", "item_map", "params:lightgcn"],
                 outputs=["model_weights", "embeddings", "training_history"], name="pretrain_lightgcn"),
            Node(pretrain_backbone, inputs=["backbone_train", "train", "valid", "user_map", "item_map", "params:lightgcn",
                                            "model_weights", "embeddings", "training_history"],
                 outputs=["backbone_weights", "backbone_embeddings", "backbone_history"], name="pretrain_backbone"),
        ],
        namespace="pretrain_gnn",
        inputs=GRAPH_INPUTS,
    )
