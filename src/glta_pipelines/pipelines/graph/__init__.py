"""Stage ``graph``: implicit feedback, k-core, contiguous ids and the per-user split."""

from glta_pipelines.pipelines.graph.pipeline import create_pipeline

__all__ = ["create_pipeline"]
