"""Stage ``evaluate``: every method through one full-ranking evaluator on the same split."""

from glta_pipelines.pipelines.evaluate.pipeline import DEFAULT_METHODS, PAPER_METHODS, create_pipeline

__all__ = ["DEFAULT_METHODS", "PAPER_METHODS", "create_pipeline"]
