"""The parameter contract: every key of the parameter tree, its type and its allowed values.

:func:`validate_parameters` runs before any node (``hooks.ParameterCheckHook``): an unknown key
at any level fails with the nearest known key, a value of the wrong type or out of range fails
naming the parameter. Each stage's section is the typed config its node builds, so there is one
definition of what a valid parameter is.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from glta_pipelines.core.config import check_known_keys, coerce_value, config_from_params, join
from glta_pipelines.core.data.sources import DatasetConfig, adapter
from glta_pipelines.core.training.distributed import DataParallelConfig
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.glta import AlignConfig, GLLMConfig
from glta_pipelines.core.data.interactions import SplitConfig, check_holdout_fraction
from glta_pipelines.core.models.lightgcn import LightGCNConfig
from glta_pipelines.core.llm.backbone import LLMConfig
from glta_pipelines.core.cold_start import KNNConfig, KnowledgeGraphConfig, MapperConfig, RandomLLMConfig
from glta_pipelines.core.cold_start.new_items import AddItemsConfig
from glta_pipelines.core.models.registry import METHODS, parameter_configs
from glta_pipelines.core.llm.text_encoder import TextEncoderConfig
from glta_pipelines.serving.registry import RecommendConfig, RegistryConfig


@dataclass(frozen=True)
class AlignmentHoldout:
    """``graph.alignment_holdout``: the per-user slice of train kept from GLTA's backbone."""

    # share of each user's training items kept from GLTA's backbone LightGCN (targets of target_scheme holdout)
    fraction: float = 0.0
    # users with fewer training interactions keep them all
    min_interactions: int = 5
    # which interactions are held out
    seed: int = 2025

    def validate(self) -> None:
        check_holdout_fraction(self.fraction)


@dataclass(frozen=True)
class GraphParameters:
    """``graph``: from interactions to the split."""

    min_rating: float | None = None
    k_core: int | None = 0
    split: SplitConfig = field(default_factory=SplitConfig)
    alignment_holdout: AlignmentHoldout = field(default_factory=AlignmentHoldout)

    def validate(self) -> None:
        if self.k_core is not None and self.k_core < 0:
            raise InputError("parameter graph.k_core", self.k_core, "a non-negative integer (0 or 1: no filter)")


@dataclass(frozen=True)
class Comparison:
    """``evaluate.evaluation.comparison``: every method against a reference, with a bootstrap interval."""

    # the method every other one is compared with (paired bootstrap over users)
    reference: str = "lightgcn"
    # resamples of the users behind each interval
    bootstrap_resamples: int = 2000
    # the bootstrap's seed (it resamples users and trains nothing)
    seed: int = 2025

    def validate(self) -> None:
        if self.reference not in METHODS:
            raise InputError("parameter evaluate.evaluation.comparison.reference", repr(self.reference),
                             f"one of the evaluated methods {list(METHODS)}")
        if self.bootstrap_resamples < 100:
            raise InputError("parameter evaluate.evaluation.comparison.bootstrap_resamples",
                             self.bootstrap_resamples, "an integer of at least 100")


@dataclass(frozen=True)
class Evaluation:
    """``evaluate.evaluation``."""

    # the cut-offs K of every metric
    ks: tuple[int, ...] = (10, 20)
    # the K the bar chart and the breakdowns show
    plot_k: int = 20
    chunk_size: int = 1024
    recommendations_k: int = 20
    comparison: Comparison = field(default_factory=Comparison)
    # On the cold-items split equal scores rank in a random order of the items drawn with this
    # seed (popularity gives every cold item 0); other splits keep torch.topk's order, as earlier results did.
    tie_break_seed: int = 2025

    def validate(self) -> None:
        if not self.ks or not all(k > 0 for k in self.ks):
            raise InputError("parameter evaluate.evaluation.ks", list(self.ks), "a non-empty list of positive integers")
        if self.plot_k not in self.ks:
            raise InputError("parameter evaluate.evaluation.plot_k", self.plot_k, f"one of ks {list(self.ks)}")
        for name in ("chunk_size", "recommendations_k"):
            if getattr(self, name) < 1:
                raise InputError(f"parameter evaluate.evaluation.{name}", getattr(self, name), "a positive integer")


# The whole tree: a mapping is a level of plain keys, a dataclass a typed config, a type a value.
SCHEMA: dict[str, Any] = {
    "dataset": DatasetConfig,
    "graph": GraphParameters,
    "pretrain_gnn": {"lightgcn": LightGCNConfig},
    # each method's own parameters (the method registry) beside the text encoder of the text-aware ones
    "baselines": {"ease": parameter_configs()["ease"], "text_encoder": TextEncoderConfig, **parameter_configs()},
    "llm": LLMConfig,
    "data_parallel": DataParallelConfig,
    "cold_start": {"knowledge_graph": KnowledgeGraphConfig, "mapper": MapperConfig, "knn": KNNConfig,
                   "random_llm": RandomLLMConfig},
    "align_tokens": {"alignment": AlignConfig},
    "gllm_finetune": {"checkpoint_dir": str, "gllm": GLLMConfig},
    "evaluate": {"evaluation": Evaluation},
    "registry": RegistryConfig,
    "recommend": RecommendConfig,
    "add_items": AddItemsConfig,
}
# Read by hooks, not nodes (``hooks.ModelRegistryHook``): `--params registry.*` takes effect in any run.
HOOK_PARAMETERS = ("registry",)


def dataset_source(dataset: Mapping[str, Any]) -> str:
    """The name a run's data is known by in lineage and in MLflow: the adapter, and category if any."""
    name, category = dataset.get("name", "unknown"), dataset.get("category")
    return f"{name}/{category}" if category else str(name)


def validate_parameters(params: Mapping[str, Any]) -> None:
    """Raise :class:`InputError` naming the first unknown key or invalid value of the tree."""
    _check(params, SCHEMA, "")
    adapter(params.get("dataset", {}).get("name"))
    gllm = params.get("gllm_finetune", {}).get("gllm", {})
    fraction = params.get("graph", {}).get("alignment_holdout", {}).get("fraction", 0)
    if gllm.get("target_scheme") == "holdout" and not fraction:
        raise InputError("parameter graph.alignment_holdout.fraction", fraction,
                         "a fraction above 0 with gllm_finetune.gllm.target_scheme: holdout (its targets are the holdout)")


def _check(value: Any, schema: Any, where: str) -> None:
    if isinstance(schema, Mapping):
        if not isinstance(value, Mapping):
            raise InputError(f"parameter {where}", repr(value), f"a mapping with the keys {', '.join(schema)}")
        check_known_keys(value, schema, where)
        for key, sub in value.items():
            _check(sub, schema[key], join(where, key))
    elif isinstance(schema, type) and hasattr(schema, "__dataclass_fields__"):
        config_from_params(schema, value, where)
    else:
        coerce_value(value, schema, where)


def seed_parameters(vary_split: bool = False) -> list[str]:
    """Dotted keys of every training seed in the tree (``pretrain_gnn.lightgcn.seed``, ...); with
    ``vary_split`` also the data split's (``graph.*.seed``). The evaluator's bootstrap seed is never
    among them: it resamples users, it trains nothing."""
    found: list[str] = []

    def walk(schema: Any, where: str) -> None:
        if isinstance(schema, Mapping):
            for key, sub in schema.items():
                walk(sub, join(where, key))
        elif isinstance(schema, type) and hasattr(schema, "__dataclass_fields__"):
            hints = typing.get_type_hints(schema)
            for name in schema.__dataclass_fields__:
                if name == "seed":
                    found.append(join(where, name))
                else:
                    walk(hints.get(name), join(where, name))

    walk(SCHEMA, "")
    return [key for key in found if not key.startswith("evaluate.") and (vary_split or not key.startswith("graph."))]
