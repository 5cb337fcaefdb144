"""Wiring of ``add_items``: a table of new items in, a new registered model version out."""

from kedro.pipeline import Node, Pipeline

from glta_pipelines.pipelines.add_items.nodes import add_items, read_new_items


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [Node(read_new_items, inputs="params:add_items", outputs="new_items", name="read_new_items"),
         Node(add_items, inputs=["new_items", "params:add_items", "params:dataset", "params:text_encoder",
                                 "params:llm", "params:mapper"],
              outputs="added", name="add_items")],
        namespace="add_items",
        parameters={"params:add_items": "params:add_items", "params:dataset": "params:dataset",
                    "params:text_encoder": "params:baselines.text_encoder", "params:llm": "params:llm",
                    "params:mapper": "params:cold_start.mapper"},
    )
