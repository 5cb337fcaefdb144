"""The one list of methods: what each is called, what it is compared with, how it is trained and scored.

The pipelines (which nodes train and evaluate a method), the evaluator's comparison, the seed
summary (labels, twins, table order) and the parameter check all read :data:`METHODS`. Adding a
method is a model file in this package, one :class:`Method` entry here and its parameters in
``conf/base/parameters_baselines.yml``.

How a method is scored (:attr:`Method.scoring`):

- ``popularity``: counts of the training interactions (no training).
- ``embeddings``: the dot product of the method's final user and item embeddings, read from
  :attr:`Method.embeddings` (a dict ``{"user", "item"}`` of tensors).
- ``ease``: ``X_train @ B`` with EASE's item-item weights.
- ``glta``: the GLLM layer on the LLM's hidden state at the prediction token.
- ``sequence``: a sequential model (SASRec) reading each user's items in time order: validation
  from the training sequence, test from training + validation (as GLTA's prompts, and RecBole).

A cold-start method (stage ``cold_start``, pipeline ``cold_start``) is LightGCN with each item
that training never saw placed from its content (:attr:`Method.content`, an encoder of
``core/cold_start``) by a mapper (:attr:`Method.mapper`: ``mlp`` or ``knn``); it is scored as
``embeddings``. A ``glta_*`` method is the trained GLTA model with each cold item's graph
embedding, hence its item token and scoring vector, taken from such a method
(:attr:`Method.places`). These are not in ``full`` or ``paper``: on a warm split they are
LightGCN or GLTA.

A BPR graph baseline (:attr:`Method.build` set) is trained by one generic node of the
``baselines`` stage on LightGCN's schedule (``training/bpr.py``); its config dataclass is
:attr:`Method.config`, read from ``baselines.<params>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from glta_pipelines.core.models.ease import EASEConfig
from glta_pipelines.core.models.hccf import HCCF, HCCFConfig
from glta_pipelines.core.models.lightgcn_plus import LightGCNPlus
from glta_pipelines.core.models.rlmrec_con import RLMRecCon, RLMRecConConfig
from glta_pipelines.core.models.rlmrec_gen import RLMRecGen, RLMRecGenConfig
from glta_pipelines.core.models.sasrec import SASRecConfig

SCORINGS = ("popularity", "embeddings", "ease", "glta", "sequence")
# what a cold-start method reads about an item: genres and decade, knowledge-graph entities, or its
# text through MiniLM, the LLM, or the LLM's architecture with random weights
CONTENT_ENCODERS = ("genres", "knowledge_graph", "minilm", "llm", "random_llm")
MAPPERS = ("mlp", "knn")

# build(adjacency, n_users, n_items, schedule, config, text) -> a model with loss() and embeddings()
Build = Callable[[Any, int, int, Any, Any, Any], Any]


@dataclass(frozen=True)
class Method:
    """One recommender of the comparison.

    ``name`` is its key everywhere (metrics ``<split>.<name>.<metric>_at_<k>``, catalog entries
    ``baselines.<name>_embeddings``); ``twin`` is the text-free method a text-aware one extends
    (their paired difference is the measured value of the text); ``default`` puts it in ``full``
    (every method is in ``paper``).
    """

    name: str
    label: str
    scoring: str
    twin: str | None = None
    text_aware: bool = False
    default: bool = False
    stage: str | None = None  # the stage that trains it (none: nothing to train)
    embeddings: str | None = None  # catalog entry of its embeddings (scoring "embeddings")
    build: Build | None = None  # a BPR graph baseline trained by the baselines stage
    config: type | None = None  # its typed parameters, ``baselines.<params>``
    params: str | None = None  # its parameter section under ``baselines`` (default: its name)
    content: str | None = None  # a cold-start method's item content (an encoder of CONTENT_ENCODERS)
    mapper: str | None = None  # how a cold-start method places a cold item from its content (MAPPERS)
    # GLTA on new items: the cold-start method whose placed item embeddings give each cold item
    # its token and its scoring vector in the trained GLTA model
    places: str | None = None

    @property
    def cold_start(self) -> bool:
        return self.content is not None

    @property
    def parameter_key(self) -> str:
        return self.params or self.name


def _hccf(adjacency, n_users, n_items, schedule, config, text):
    return HCCF(adjacency, n_users, n_items, schedule.embedding_dim, config, text, seed=schedule.seed)


def _lightgcn_plus(adjacency, n_users, n_items, schedule, config, text):
    return LightGCNPlus(adjacency, n_users, n_items, schedule.embedding_dim, schedule.num_layers, text)


def _rlmrec(model):
    return lambda adjacency, n_users, n_items, schedule, config, text: model(
        adjacency, n_users, n_items, schedule.embedding_dim, schedule.num_layers, text, config, seed=schedule.seed)


def _baseline(name: str, label: str, build: Build, config: type | None = None, **kwargs: Any) -> Method:
    return Method(name, label, "embeddings", stage="baselines", embeddings=f"baselines.{name}_embeddings", build=build,
                  config=config, **kwargs)


def _cold_start(name: str, label: str, content: str, mapper: str) -> Method:
    return Method(name, label, "embeddings", stage="cold_start", embeddings=f"cold_start.{name}_embeddings",
                  content=content, mapper=mapper)


# In table order: the paper's comparison plus EASE.
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("popularity", "Popularity", "popularity", default=True),
    Method("lightgcn", "LightGCN", "embeddings", default=True, stage="pretrain_gnn", embeddings="pretrain_gnn.embeddings"),
    Method("ease", "EASE", "ease", default=True, stage="baselines", config=EASEConfig),
    Method("sasrec", "SASRec", "sequence", stage="baselines", config=SASRecConfig),
    _baseline("hccf", "HCCF", _hccf, HCCFConfig),
    _baseline("lightgcn_plus", "LightGCN+", _lightgcn_plus, twin="lightgcn", text_aware=True),
    _baseline("hccf_plus", "HCCF+", _hccf, HCCFConfig, params="hccf", twin="hccf", text_aware=True),
    _baseline("rlmrec_con", "RLMRec-Con", _rlmrec(RLMRecCon), RLMRecConConfig, twin="lightgcn", text_aware=True),
    _baseline("rlmrec_gen", "RLMRec-Gen", _rlmrec(RLMRecGen), RLMRecGenConfig, twin="lightgcn", text_aware=True),
    Method("glta", "GLTA", "glta", default=True, stage="gllm_finetune"),
    *(_cold_start(f"map_{content}", f"{label} mapper", content, "mlp") for content, label in (
        ("genres", "Genres"), ("knowledge_graph", "KG"), ("minilm", "MiniLM"), ("llm", "LLM"),
        ("random_llm", "Random-LLM"))),
    _cold_start("knn_minilm", "Text-kNN", "minilm", "knn"),
    *(Method(f"glta_{m}", f"GLTA + {label} mapper", "glta", content=content, mapper="mlp", places=f"map_{content}")
      for m, label, content in (("map_llm", "LLM", "llm"), ("map_random_llm", "Random-LLM", "random_llm"),
                                ("map_minilm", "MiniLM", "minilm"))),
)}


def method_names(default_only: bool = False, cold_start: bool = False) -> tuple[str, ...]:
    """The names of the paper's comparison plus EASE in table order (with ``default_only`` those of
    ``full``), and with ``cold_start`` the cold-start methods after them."""
    return tuple(m.name for m in METHODS.values()
                 if (m.default or not default_only) and not m.cold_start or cold_start and m.cold_start)


def trained_by(stage: str, default_only: bool = False) -> tuple[str, ...]:
    """The methods a stage trains, in table order; with ``default_only`` those of ``full``."""
    return tuple(m for m in method_names(default_only, cold_start=True) if METHODS[m].stage == stage)


def labels() -> dict[str, str]:
    """Method -> its label, in summary order: each text-free method followed by its text-aware twins."""
    order: list[str] = []
    for method in METHODS.values():
        if method.twin is None:
            order += [method.name] + [m.name for m in METHODS.values() if m.twin == method.name]
    order += [name for name in METHODS if name not in order]
    return {name: METHODS[name].label for name in order}


def twins() -> dict[str, str]:
    """Text-aware method -> its text-free twin."""
    return {m.name: m.twin for m in METHODS.values() if m.twin}


def parameter_configs() -> dict[str, type]:
    """``baselines.<key>`` -> the config dataclass of the methods that read it."""
    return {m.parameter_key: m.config for m in METHODS.values() if m.config is not None}
