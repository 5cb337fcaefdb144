"""Wiring of the ``baselines`` stage: each trained baseline on the graph stage's split."""

from kedro.pipeline import Node, Pipeline

from glta_pipelines.pipelines.baselines.nodes import train_ease

SPLIT_INPUTS = {name: f"graph.{name}" for name in ("train", "valid", "user_map", "item_map")}


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(train_ease, inputs=["train", "valid", "user_map", "item_map", "params:ease"],
                 outputs=["ease_weights", "ease_selection"], name="train_ease"),
        ],
        namespace="baselines",
        inputs=SPLIT_INPUTS,
    )
