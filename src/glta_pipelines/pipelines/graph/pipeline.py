"""Wiring of the ``graph`` stage."""

from kedro.pipeline import Node, Pipeline

from glta_pipelines.pipelines.graph.nodes import (
    build_id_maps,
    compute_statistics,
    data_quality_report,
    filter_interactions,
    hold_out_alignment_targets,
    split_interactions,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(filter_interactions, inputs=["interactions", "params:min_rating", "params:k_core"],
                 outputs=["implicit_interactions", "filter_counts"], name="filter_interactions"),
            Node(build_id_maps, inputs="implicit_interactions", outputs=["user_map", "item_map"], name="build_id_maps"),
            Node(split_interactions, inputs=["implicit_interactions", "user_map", "item_map", "params:split"],
                 outputs=["train", "valid", "test", "cold_history"], name="split_interactions"),
            Node(compute_statistics, inputs=["train", "valid", "test", "user_map", "item_map", "params:split.strategy",
                                             "cold_history", "implicit_interactions"],
                 outputs="statistics", name="compute_statistics"),
            Node(data_quality_report, inputs=["ingest_report", "filter_counts", "statistics"],
                 outputs="data_quality", name="data_quality_report"),
            Node(hold_out_alignment_targets, inputs=["train", "params:alignment_holdout"],
                 outputs=["backbone_train", "alignment_targets"], name="hold_out_alignment_targets"),
        ],
        namespace="graph",
        inputs={"interactions": "ingest.interactions", "ingest_report": "ingest.report"},
    )
