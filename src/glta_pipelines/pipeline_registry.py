"""Every pipeline is registered explicitly: `full` runs the stages in order."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from glta_pipelines.pipelines import evaluate, graph, ingest, pretrain_gnn

# In run order; later stages (align_tokens, gllm_finetune) slot in before `evaluate`.
STAGES = {
    "ingest": ingest.create_pipeline,
    "graph": graph.create_pipeline,
    "pretrain_gnn": pretrain_gnn.create_pipeline,
    "evaluate": evaluate.create_pipeline,
}


def register_pipelines() -> dict[str, Pipeline]:
    """Each stage by name, ``full`` = all stages, ``__default__`` = ``full``."""
    pipelines = {name: create() for name, create in STAGES.items()}
    pipelines["full"] = sum(pipelines.values(), Pipeline([]))
    pipelines["__default__"] = pipelines["full"]
    return pipelines
