"""Pipeline ``recommend``: batch recommendations from a registered model, no training."""

from glta_pipelines.pipelines.recommend.pipeline import create_pipeline

__all__ = ["create_pipeline"]
