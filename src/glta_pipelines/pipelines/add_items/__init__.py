"""Pipeline ``add_items``: new items into a registered model by their text, no graph retraining."""

from glta_pipelines.pipelines.add_items.pipeline import create_pipeline

__all__ = ["create_pipeline"]
