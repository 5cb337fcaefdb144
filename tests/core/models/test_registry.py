"""The method registry is the one list of methods: a method added there alone reaches the
pipelines, the evaluator, the seed summary and the parameter check."""

from __future__ import annotations

import pandas as pd
import pytest

from glta_pipelines.core.evaluation.seed_summary import markdown_table, summarize, twin_table
from glta_pipelines.core.models import registry
from glta_pipelines.core.models.lightgcn_plus import LightGCNPlus
from glta_pipelines.core.models.registry import METHODS, Method


@pytest.fixture
def toy(monkeypatch):
    """A toy text-aware BPR baseline, registered in the registry only."""
    method = Method("toy", "Toy", "embeddings", twin="lightgcn", text_aware=True, stage="baselines",
                    embeddings="baselines.toy_embeddings",
                    build=lambda adjacency, n_users, n_items, schedule, config, text: LightGCNPlus(
                        adjacency, n_users, n_items, schedule.embedding_dim, schedule.num_layers, text))
    monkeypatch.setitem(METHODS, "toy", method)
    return method


def test_the_registry_describes_every_method():
    assert list(METHODS)[0] == "popularity" and "glta" in METHODS
    for method in METHODS.values():
        assert method.scoring in registry.SCORINGS
        assert method.twin is None or (method.text_aware and method.twin in METHODS)
        assert (method.scoring == "embeddings") == (method.embeddings is not None)
    assert registry.method_names(default_only=True) == ("popularity", "lightgcn", "ease", "glta")
    assert registry.twins() == {"lightgcn_plus": "lightgcn", "hccf_plus": "hccf", "rlmrec_con": "lightgcn",
                                "rlmrec_gen": "lightgcn"}
    assert list(registry.labels())[:3] == ["popularity", "lightgcn", "lightgcn_plus"]  # each twin after its method
    # the cold-start methods: their own stage and pipeline, in neither full nor paper
    cold = registry.trained_by("cold_start")
    assert cold and all(METHODS[m].cold_start and METHODS[m].content in registry.CONTENT_ENCODERS
                        and METHODS[m].mapper in registry.MAPPERS for m in cold)
    assert not set(cold) & set(registry.method_names())
    glta_on_new_items = tuple(m for m in METHODS if METHODS[m].places)
    assert glta_on_new_items and all(METHODS[METHODS[m].places].cold_start for m in glta_on_new_items)
    assert registry.method_names(cold_start=True) == registry.method_names() + cold + glta_on_new_items


def test_a_toy_method_reaches_the_pipelines_the_evaluator_and_the_seed_summary(toy):
    from glta_pipelines.framework.parameters import validate_parameters
    from glta_pipelines.pipelines import baselines, evaluate

    names = registry.method_names()
    assert "toy" in names and "toy" in registry.trained_by("baselines")
    trained = baselines.create_pipeline(registry.trained_by("baselines"))
    assert "baselines.train_toy" in {n.name for n in trained.nodes}
    assert "baselines.text_embeddings" in trained.inputs() | trained.all_outputs()  # text-aware: texts embedded
    evaluated = evaluate.create_pipeline(names)
    assert "evaluate.evaluate_toy" in {n.name for n in evaluated.nodes}
    assert "baselines.toy_embeddings" in evaluated.inputs()
    validate_parameters({"dataset": {"name": "movielens-100k"}, "evaluate": {"evaluation": {"comparison": {"reference": "toy"}}}})

    long = pd.DataFrame([(seed, method, "recall_at_20", value) for seed, (a, b) in enumerate([(0.30, 0.31), (0.32, 0.34)])
                         for method, value in (("lightgcn", a), ("toy", b))], columns=["seed", "method", "metric", "value"])
    summary = summarize(long, reference="lightgcn")
    assert "| Toy |" in markdown_table(summary, columns=("recall_at_20",), reference="lightgcn")
    assert "| Toy vs LightGCN |" in twin_table(long)


def test_an_unknown_reference_names_the_registry(toy):
    from glta_pipelines.core.errors import InputError
    from glta_pipelines.framework.parameters import validate_parameters

    with pytest.raises(InputError, match=r"comparison\.reference.*'nope'.*toy"):
        validate_parameters({"dataset": {"name": "movielens-100k"}, "evaluate": {"evaluation": {"comparison": {"reference": "nope"}}}})
