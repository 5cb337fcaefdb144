"""Every pipeline is registered explicitly: `full` runs the stages in order."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from glta_pipelines.core.models.registry import METHODS, method_names, trained_by

from glta_pipelines.pipelines import (
    add_items,
    align_tokens,
    baselines,
    cold_start,
    evaluate,
    gllm_finetune,
    graph,
    ingest,
    pretrain_gnn,
    recommend,
)

# Text-aware baselines that the cold_start pipeline trains beside the cold-start methods.
COLD_START_BASELINES = ("lightgcn_plus",)
# The next-item comparison (`--params graph.split.strategy=leave-last-out` or `temporal`): full's
# methods and the sequential models of the registry.
SEQUENTIAL = tuple(m for m in method_names() if METHODS[m].scoring == "sequence")
# In run order.
STAGES = {
    "ingest": ingest.create_pipeline,
    "graph": graph.create_pipeline,
    "pretrain_gnn": pretrain_gnn.create_pipeline,
    "baselines": baselines.create_pipeline,
    "align_tokens": align_tokens.create_pipeline,
    "gllm_finetune": gllm_finetune.create_pipeline,
    "evaluate": evaluate.create_pipeline,
}
# Re-runs on the latest persisted upstream outputs (ablations, tuning): `kedro run --pipelines=glta`.
PARTIAL = {
    "glta": ("align_tokens", "gllm_finetune", "evaluate"),
    "gllm": ("gllm_finetune", "evaluate"),
}


def register_pipelines() -> dict[str, Pipeline]:
    """Each stage by name, ``full`` = all stages, ``__default__`` = ``full``, plus :data:`PARTIAL`
    ``paper``: ``full`` with every baseline of the GLTA paper's comparison, ``cold_start``: the
    cold-start methods beside popularity, LightGCN and EASE, ``sequential``: ``full`` with SASRec
    (the next-item protocol), ``recommend``: batch
    recommendations from a registered model, and ``add_items``: new items into a registered model
    by their text."""
    pipelines = {name: create() for name, create in STAGES.items()}
    partial = {name: sum((pipelines[s] for s in stages), Pipeline([])) for name, stages in PARTIAL.items()}
    pipelines["full"] = sum(pipelines.values(), Pipeline([]))
    # every method of the registry (core/models/registry.py), read now: a method added there is in `paper`
    paper = {**STAGES, "baselines": lambda: baselines.create_pipeline(trained_by("baselines")),
             "evaluate": lambda: evaluate.create_pipeline(method_names())}
    pipelines["paper"] = sum((create() for create in paper.values()), Pipeline([]))
    # items the graph never saw, for `--params graph.split.strategy=cold-items`: the methods of
    # full, LightGCN+ (a cold item's layer 0 is its untrained ID plus its text branch), every
    # cold-start method of the registry and GLTA with the cold items they place
    graph_methods = (*method_names(default_only=True), *COLD_START_BASELINES)
    pipelines["cold_start"] = sum((pipelines[s] for s in ("ingest", "graph", "pretrain_gnn")), Pipeline([])) \
        + baselines.create_pipeline(trained_by("baselines", default_only=True) + COLD_START_BASELINES) \
        + cold_start.create_pipeline() + pipelines["align_tokens"] + pipelines["gllm_finetune"] \
        + evaluate.create_pipeline(graph_methods + tuple(m for m in method_names(cold_start=True) if METHODS[m].cold_start))
    pipelines["sequential"] = sum((pipelines[s] for s in ("ingest", "graph", "pretrain_gnn")), Pipeline([])) \
        + baselines.create_pipeline(trained_by("baselines", default_only=True) + SEQUENTIAL) \
        + pipelines["align_tokens"] + pipelines["gllm_finetune"] \
        + evaluate.create_pipeline(tuple(m for m in method_names() if METHODS[m].default or m in SEQUENTIAL))
    pipelines.update(partial)
    pipelines["recommend"] = recommend.create_pipeline()  # scoring with a registered model: not part of full
    pipelines["add_items"] = add_items.create_pipeline()  # new items into a registered model: not part of full
    pipelines["__default__"] = pipelines["full"]
    return pipelines
