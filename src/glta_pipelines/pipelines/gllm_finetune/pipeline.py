"""Wiring of the ``gllm_finetune`` stage."""

from kedro.pipeline import Node, Pipeline

from glta_pipelines.pipelines.gllm_finetune.nodes import finetune_gllm

EXTERNAL_INPUTS = {
    "backbone_embeddings": "pretrain_gnn.backbone_embeddings",
    "lightgcn_embeddings": "pretrain_gnn.embeddings",
    "item_projector": "align_tokens.item_projector",
    "backbone_train": "graph.backbone_train",
    "alignment_targets": "graph.alignment_targets",
    "train": "graph.train",
    "valid": "graph.valid",
    "item_map": "graph.item_map",
}


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(finetune_gllm,
                 inputs=[*EXTERNAL_INPUTS, "params:llm", "params:gllm", "params:checkpoint_dir",
                         "params:data_parallel", "params:dataset"],
                 outputs=["weights", "history"], name="finetune_gllm"),
        ],
        namespace="gllm_finetune",
        inputs=EXTERNAL_INPUTS,
        parameters={"params:llm": "params:llm", "params:data_parallel": "params:data_parallel",
                    "params:dataset": "params:dataset"},
    )
