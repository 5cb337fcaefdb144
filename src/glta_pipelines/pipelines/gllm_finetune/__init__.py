"""Stage ``gllm_finetune``: user-item alignment with the GLLM layer over all items."""

from glta_pipelines.pipelines.gllm_finetune.pipeline import create_pipeline

__all__ = ["create_pipeline"]
