"""Stage ``baselines``: the comparison's other trained methods (EASE; with ``paper``, HCCF,
LightGCN+, HCCF+, RLMRec-Con/Gen and the item text embeddings), on the same split."""

from glta_pipelines.pipelines.baselines.pipeline import DEFAULT_BASELINES, PAPER_BASELINES, create_pipeline

__all__ = ["DEFAULT_BASELINES", "PAPER_BASELINES", "create_pipeline"]
