"""Stage ``ingest``: read a public dataset into validated interactions and items tables."""

from glta_pipelines.pipelines.ingest.pipeline import create_pipeline

__all__ = ["create_pipeline"]
