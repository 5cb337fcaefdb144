"""Wiring of the ``ingest`` stage."""

from kedro.pipeline import Node, Pipeline

from glta_pipelines.pipelines.ingest.nodes import read_dataset


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [Node(read_dataset, inputs="params:dataset", outputs=["interactions", "items", "quarantine", "report"],
              name="read_dataset")],
        namespace="ingest",
        parameters={"params:dataset"},
    )
