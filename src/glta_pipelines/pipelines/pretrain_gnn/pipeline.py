"""Wiring of the ``pretrain_gnn`` stage.

Two LightGCNs with the same hyper-parameters: ``lightgcn`` on the whole training split (the
baseline, and the graph score GLTA's residual head starts from at inference), and ``backbone``
on the training split minus the alignment holdout (GLTA's graph tokens, so its fine-tuning
targets are interactions the graph has not fit).
"""

from functools import partial, update_wrapper

from kedro.pipeline import Node, Pipeline

from glta_pipelines.pipelines.pretrain_gnn.nodes import pretrain_lightgcn

GRAPH_INPUTS = {name: f"graph.{name}" for name in ("train", "backbone_train", "valid", "user_map", "item_map")}


def _tracked(prefix: str):
    return update_wrapper(partial(pretrain_lightgcn, tracking_prefix=prefix), pretrain_lightgcn)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(_tracked("lightgcn"), inputs=["train", "valid", "user_map", "item_map", "params:lightgcn"],
                 outputs=["model_weights", "embeddings", "training_history"], name="pretrain_lightgcn"),
            Node(_tracked("backbone"), inputs=["backbone_train", "valid", "user_map", "item_map", "params:lightgcn"],
                 outputs=["backbone_weights", "backbone_embeddings", "backbone_history"], name="pretrain_backbone"),
        ],
        namespace="pretrain_gnn",
        inputs=GRAPH_INPUTS,
    )
