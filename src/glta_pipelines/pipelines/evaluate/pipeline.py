"""Wiring of the ``evaluate`` stage: one node per method, then one table, one plot and the paired comparison."""

from functools import partial, update_wrapper

from kedro.pipeline import Node, Pipeline

from glta_pipelines.pipelines.evaluate.nodes import (
    break_down,
    combine_metrics,
    compare_methods,
    evaluate_ease,
    evaluate_embeddings,
    evaluate_glta,
    evaluate_lightgcn,
    evaluate_popularity,
    plot_metrics,
)

# Evaluated methods, in table order; each node below writes <method>_metrics and <method>_per_user.
DEFAULT_METHODS = ("popularity", "lightgcn", "ease", "glta")  # `full`: seconds besides GLTA
# `paper`: the GLTA paper's comparison plus EASE; text-aware methods next to their text-free twins
PAPER_METHODS = ("popularity", "lightgcn", "ease", "hccf", "lightgcn_plus", "hccf_plus", "rlmrec_con", "rlmrec_gen",
                 "glta")
METHODS = PAPER_METHODS  # every method a table can hold
# Baselines scored by the dot product of their final user and item embeddings.
EMBEDDING_METHODS = ("hccf", "lightgcn_plus", "hccf_plus", "rlmrec_con", "rlmrec_gen")
SPLIT = ["train", "valid", "test", "user_map", "item_map"]
# GLTA is rebuilt from its self-describing weights alone: no GLTA parameters are read here.
GLTA_MODEL = ["glta_weights", "backbone_embeddings", "lightgcn_embeddings"]
EXTERNAL_INPUTS = {
    **{name: f"graph.{name}" for name in SPLIT},
    "lightgcn_embeddings": "pretrain_gnn.embeddings",
    "ease_weights": "baselines.ease_weights",
    "backbone_embeddings": "pretrain_gnn.backbone_embeddings",
    "glta_weights": "gllm_finetune.weights",
    "items": "ingest.items",
    **{f"{m}_embeddings": f"baselines.{m}_embeddings" for m in EMBEDDING_METHODS},
}


def create_pipeline(methods: tuple[str, ...] = DEFAULT_METHODS, **kwargs) -> Pipeline:
    nodes = {
        "popularity": Node(evaluate_popularity, inputs=[*SPLIT, "params:evaluation"],
                           outputs=["popularity_metrics", "popularity_per_user"], name="evaluate_popularity"),
        "lightgcn": Node(evaluate_lightgcn, inputs=["lightgcn_embeddings", *SPLIT, "params:evaluation"],
                         outputs=["lightgcn_metrics", "lightgcn_per_user"], name="evaluate_lightgcn"),
        "ease": Node(evaluate_ease, inputs=["ease_weights", *SPLIT, "params:evaluation"],
                     outputs=["ease_metrics", "ease_per_user"], name="evaluate_ease"),
        # partial of a module-level function: picklable, so ParallelRunner can run it
        **{m: Node(_bound(evaluate_embeddings, m), inputs=[f"{m}_embeddings", *SPLIT, "params:evaluation"],
                   outputs=[f"{m}_metrics", f"{m}_per_user"], name=f"evaluate_{m}") for m in EMBEDDING_METHODS},
        # one node for GLTA's metrics and recommendations: prompts they share go through the LLM once
        "glta": Node(evaluate_glta, inputs=[*GLTA_MODEL, *SPLIT, "items", "params:evaluation"],
                     outputs=["glta_metrics", "glta_per_user", "recommendations"], name="evaluate_glta"),
    }
    return Pipeline(
        [
            *(nodes[m] for m in methods),
            Node(combine_metrics, inputs=[f"{m}_metrics" for m in methods], outputs="metrics", name="combine_metrics"),
            Node(compare_methods, inputs={"evaluation": "params:evaluation", **{m: f"{m}_per_user" for m in methods}},
                 outputs="comparison", name="compare_methods"),
            Node(break_down, inputs={"train": "train", "evaluation": "params:evaluation",
                                     **{m: f"{m}_per_user" for m in methods}},
                 outputs=["breakdowns", "breakdowns_plot"], name="break_down"),
            Node(plot_metrics, inputs=["metrics", "params:evaluation"], outputs="metrics_plot", name="plot_metrics"),
        ],
        namespace="evaluate",
        inputs={k: v for k, v in EXTERNAL_INPUTS.items() if k in _external_inputs([nodes[m] for m in methods])},
    )


def _bound(func, method: str):
    """``func`` with its method bound, named ``evaluate_<method>`` in Kedro's logs."""
    bound = update_wrapper(partial(func, method), func)
    bound.__name__ = f"evaluate_{method}"
    return bound


def _external_inputs(nodes: list[Node]) -> set[str]:
    return {name for node in nodes for name in node.inputs} | set(SPLIT) | {"train"}
