"""Stage ``evaluate``: every method through one full-ranking evaluator on the same split."""

from glta_pipelines.pipelines.evaluate.pipeline import create_pipeline

__all__ = ["create_pipeline"]
