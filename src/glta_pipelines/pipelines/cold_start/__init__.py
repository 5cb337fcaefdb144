"""Stage ``cold_start``: every item's content, and LightGCN with cold items placed from it."""

from glta_pipelines.pipelines.cold_start.pipeline import create_pipeline

__all__ = ["create_pipeline"]
