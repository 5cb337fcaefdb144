"""Wiring of the ``evaluate`` stage: one node per method, then one table and one plot."""

from kedro.pipeline import Node, Pipeline

from glta_pipelines.pipelines.evaluate.nodes import combine_metrics, evaluate_lightgcn, evaluate_popularity, plot_metrics

SPLIT = ["train", "valid", "test", "user_map", "item_map"]
EXTERNAL_INPUTS = {**{name: f"graph.{name}" for name in SPLIT}, "lightgcn_embeddings": "pretrain_gnn.embeddings"}


def create_pipeline(**kwargs) -> Pipeline:
    methods = {
        "popularity": Node(evaluate_popularity, inputs=[*SPLIT, "params:evaluation"],
                           outputs="popularity_metrics", name="evaluate_popularity"),
        "lightgcn": Node(evaluate_lightgcn, inputs=["lightgcn_embeddings", *SPLIT, "params:evaluation"],
                         outputs="lightgcn_metrics", name="evaluate_lightgcn"),
    }
    return Pipeline(
        [
            *methods.values(),
            Node(combine_metrics, inputs=[f"{m}_metrics" for m in methods], outputs="metrics", name="combine_metrics"),
            Node(plot_metrics, inputs=["metrics", "params:evaluation"], outputs="metrics_plot", name="plot_metrics"),
        ],
        namespace="evaluate",
        inputs=EXTERNAL_INPUTS,
    )
