"""Stage ``baselines``: the comparison's other trained methods (EASE), on the same split."""

from glta_pipelines.pipelines.baselines.pipeline import create_pipeline

__all__ = ["create_pipeline"]
