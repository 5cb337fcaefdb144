"""Validation of the whole parameter tree before a run starts (nothing is written first).

Each check builds the same typed config the node builds, so there is one definition of what
a valid parameter is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.datasets import adapter, dataset_config_from_params
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.interactions import SplitConfig, check_holdout_fraction
from glta_pipelines.core.glta import AlignConfig, gllm_config_from_params
from glta_pipelines.core.lightgcn import LightGCNConfig
from glta_pipelines.core.llm import LLMConfig
from glta_pipelines.pipelines.evaluate.pipeline import METHODS as EVALUATED_METHODS


def validate_parameters(params: Mapping[str, Any]) -> None:
    """Raise :class:`InputError` naming the first invalid parameter."""
    dataset = params.get("dataset", {})
    adapter(dataset.get("name"))
    dataset_config_from_params(dataset)
    graph = params.get("graph", {})
    if graph:
        k_core = graph.get("k_core") or 0
        if not isinstance(k_core, int) or k_core < 0:
            raise InputError("parameter graph.k_core", repr(k_core), "a non-negative integer (0 or 1: no filter)")
        config_from_params(SplitConfig, graph.get("split"), "graph.split")
        check_holdout_fraction((graph.get("alignment_holdout") or {}).get("fraction", 0))
    if "llm" in params:
        config_from_params(LLMConfig, params["llm"], "llm")
    if "align_tokens" in params:
        config_from_params(AlignConfig, params["align_tokens"].get("alignment"), "align_tokens.alignment")
    if "gllm_finetune" in params:
        gllm = gllm_config_from_params(params["gllm_finetune"].get("gllm"))
        fraction = (graph.get("alignment_holdout") or {}).get("fraction", 0)
        if gllm.target_scheme == "holdout" and not fraction:
            raise InputError("parameter graph.alignment_holdout.fraction", fraction,
                             "a fraction above 0 with gllm_finetune.gllm.target_scheme: holdout (its targets are the holdout)")
    if "pretrain_gnn" in params:
        config_from_params(LightGCNConfig, params["pretrain_gnn"].get("lightgcn"), "pretrain_gnn.lightgcn")
    evaluation = params.get("evaluate", {}).get("evaluation")
    if evaluation is not None:
        ks = evaluation.get("ks")
        if not ks or not all(isinstance(k, int) and k > 0 for k in ks):
            raise InputError("parameter evaluate.evaluation.ks", repr(ks), "a non-empty list of positive integers")
        if evaluation.get("plot_k") not in ks:
            raise InputError("parameter evaluate.evaluation.plot_k", repr(evaluation.get("plot_k")), f"one of ks {ks}")
        comparison = evaluation.get("comparison") or {}
        if comparison.get("reference", "lightgcn") not in EVALUATED_METHODS:
            raise InputError("parameter evaluate.evaluation.comparison.reference", repr(comparison.get("reference")),
                             f"one of the evaluated methods {list(EVALUATED_METHODS)}")
        resamples = comparison.get("bootstrap_resamples", 2000)
        if not isinstance(resamples, int) or resamples < 100:
            raise InputError("parameter evaluate.evaluation.comparison.bootstrap_resamples", repr(resamples),
                             "an integer of at least 100")
