"""Wiring of the ``evaluate`` stage: one node per method, then one table, one plot and the paired comparison.

Which methods exist, and how each is scored, is the method registry's (``core/models/registry.py``).
"""

from functools import partial, update_wrapper

from kedro.pipeline import Node, Pipeline

from glta_pipelines.core.models.registry import METHODS, method_names
from glta_pipelines.pipelines.evaluate.nodes import (
    break_down,
    combine_metrics,
    compare_methods,
    evaluate_ease,
    evaluate_embeddings,
    evaluate_glta,
    evaluate_glta_placed,
    evaluate_popularity,
    evaluate_sequence,
    plot_metrics,
)

# Evaluated methods, in table order; each node below writes <method>_metrics and <method>_per_user.
DEFAULT_METHODS = method_names(default_only=True)  # `full`: seconds besides GLTA
PAPER_METHODS = method_names()  # `paper`: the GLTA paper's comparison plus EASE
SPLIT = ["train", "valid", "test", "user_map", "item_map", "cold_history", "items"]  # items: content for diversity
# the new-item split adds cold and warm tasks to every method's evaluation
STRATEGY = "params:graph.split.strategy"
# GLTA is rebuilt from its self-describing weights alone: no GLTA parameters are read here.
GLTA_MODEL = ["glta_weights", "backbone_embeddings", "lightgcn_embeddings"]
FIXED_INPUTS = {
    **{name: f"graph.{name}" for name in SPLIT},
    "lightgcn_embeddings": "pretrain_gnn.embeddings",
    "ease_weights": "baselines.ease_weights",
    "backbone_embeddings": "pretrain_gnn.backbone_embeddings",
    "glta_weights": "gllm_finetune.weights",
    "items": "ingest.items",
}


def external_inputs() -> dict[str, str]:
    """Every input this stage may read from an earlier stage, with its catalog name."""
    embeddings = {f"{m.name}_embeddings": m.embeddings for m in METHODS.values() if m.embeddings}
    sequential = {f"{m.name}_weights": f"baselines.{m.name}_weights" for m in METHODS.values() if m.scoring == "sequence"}
    return {**FIXED_INPUTS, **embeddings, **sequential}


def _node(method: str) -> Node:
    scoring = METHODS[method].scoring
    outputs = [f"{method}_metrics", f"{method}_per_user"]
    if scoring == "popularity":
        return Node(evaluate_popularity, inputs=[*SPLIT, "params:evaluation", STRATEGY], outputs=outputs,
                    name=f"evaluate_{method}")
    if scoring == "ease":
        return Node(evaluate_ease, inputs=[f"{method}_weights", *SPLIT, "params:evaluation", STRATEGY], outputs=outputs,
                    name=f"evaluate_{method}")
    if scoring == "sequence":
        return Node(_bound(evaluate_sequence, method), inputs=[f"{method}_weights", *SPLIT, "params:evaluation", STRATEGY],
                    outputs=outputs, name=f"evaluate_{method}")
    if scoring == "embeddings":
        # partial of a module-level function: picklable, so ParallelRunner can run it
        return Node(_bound(evaluate_embeddings, method), inputs=[f"{method}_embeddings", *SPLIT, "params:evaluation", STRATEGY],
                    outputs=outputs, name=f"evaluate_{method}")
    if METHODS[method].places:  # GLTA with the cold items a cold-start method placed
        return Node(_bound(evaluate_glta_placed, method),
                    inputs=[*GLTA_MODEL, f"{METHODS[method].places}_embeddings", *SPLIT, "params:evaluation", STRATEGY],
                    outputs=outputs, name=f"evaluate_{method}")
    # one node for GLTA's metrics and recommendations: prompts they share go through the LLM once
    return Node(evaluate_glta, inputs=[*GLTA_MODEL, *SPLIT, "params:evaluation", STRATEGY],
                outputs=[*outputs, "recommendations"], name=f"evaluate_{method}")


def create_pipeline(methods: tuple[str, ...] | None = None, **kwargs) -> Pipeline:
    """The evaluation of ``methods`` (default: the registry's default methods, those of ``full``)."""
    methods = method_names(default_only=True) if methods is None else methods
    nodes = [_node(m) for m in methods]
    known = external_inputs()
    return Pipeline(
        [
            *nodes,
            Node(combine_metrics, inputs=[f"{m}_metrics" for m in methods], outputs="metrics", name="combine_metrics"),
            Node(compare_methods, inputs={"evaluation": "params:evaluation", **{m: f"{m}_per_user" for m in methods}},
                 outputs="comparison", name="compare_methods"),
            Node(break_down, inputs={"train": "train", "evaluation": "params:evaluation",
                                     **{m: f"{m}_per_user" for m in methods}},
                 outputs=["breakdowns", "breakdowns_plot"], name="break_down"),
            Node(plot_metrics, inputs=["metrics", "params:evaluation"], outputs="metrics_plot", name="plot_metrics"),
        ],
        namespace="evaluate",
        inputs={k: v for k, v in known.items() if k in _external_inputs(nodes)},
        parameters={STRATEGY: STRATEGY},  # the graph stage's parameter, under its own name
    )


def _bound(func, method: str):
    """``func`` with its method bound, named ``evaluate_<method>`` in Kedro's logs."""
    bound = update_wrapper(partial(func, method), func)
    bound.__name__ = f"evaluate_{method}"
    return bound


def _external_inputs(nodes: list[Node]) -> set[str]:
    return {name for node in nodes for name in node.inputs} | set(SPLIT) | {"train"}
