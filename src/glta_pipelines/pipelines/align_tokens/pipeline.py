"""Wiring of the ``align_tokens`` stage."""

from kedro.pipeline import Node, Pipeline

from glta_pipelines.pipelines.align_tokens.nodes import align_item_tokens


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(align_item_tokens, inputs=["backbone_embeddings", "items", "item_map", "params:llm", "params:alignment",
                                                    "params:data_parallel", "params:dataset"],
                 outputs=["item_projector", "alignment_history", "alignment_examples"], name="align_item_tokens"),
        ],
        namespace="align_tokens",
        inputs={"backbone_embeddings": "pretrain_gnn.backbone_embeddings", "items": "ingest.items",
                "item_map": "graph.item_map"},
        parameters={"params:llm": "params:llm", "params:data_parallel": "params:data_parallel",
                    "params:dataset": "params:dataset"},
    )
