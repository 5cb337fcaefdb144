"""Wiring of ``recommend``: a table of users or histories in, ranked items out."""

from kedro.pipeline import Node, Pipeline

from glta_pipelines.pipelines.recommend.nodes import recommend


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [Node(recommend, inputs=["requests", "params:recommend", "params:dataset"], outputs="recommendations",
              name="recommend")],
        namespace="recommend",
        parameters={"params:recommend": "params:recommend", "params:dataset": "params:dataset"},
    )
