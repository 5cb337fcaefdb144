"""Stage ``pretrain_gnn``: LightGCN with BPR on the training graph."""

from glta_pipelines.pipelines.pretrain_gnn.pipeline import create_pipeline

__all__ = ["create_pipeline"]
