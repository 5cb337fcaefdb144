"""Stage ``align_tokens``: item-text alignment of the item token projector (LLM frozen)."""

from glta_pipelines.pipelines.align_tokens.pipeline import create_pipeline

__all__ = ["create_pipeline"]
