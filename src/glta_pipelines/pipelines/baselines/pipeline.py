"""Wiring of the ``baselines`` stage: each trained baseline on the graph stage's split."""

from kedro.pipeline import Node, Pipeline

from glta_pipelines.pipelines.baselines.nodes import export_recbole, train_ease

SPLIT_INPUTS = {name: f"graph.{name}" for name in ("train", "valid", "test", "user_map", "item_map")}


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(train_ease, inputs=["train", "valid", "user_map", "item_map", "params:ease"],
                 outputs=["ease_weights", "ease_selection"], name="train_ease"),
            # RecBole's models on exactly this split: `benchmark_filename: [train, valid, test]`
            Node(export_recbole, inputs=["train", "valid", "test", "user_map", "item_map", "items", "params:dataset"],
                 outputs="recbole_files", name="export_recbole"),
        ],
        namespace="baselines",
        inputs={**SPLIT_INPUTS, "items": "ingest.items"},
        parameters={"params:dataset": "params:dataset"},
    )
