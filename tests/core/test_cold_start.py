"""Content features and the mappers that place cold items (``core/cold_start``)."""

import pandas as pd
import pytest
import torch

from glta_pipelines.core.cold_start import (
    KNNConfig,
    KnowledgeGraphConfig,
    MapperConfig,
    fit_mapper,
    genre_features,
    knn_embeddings,
    knowledge_graph_features,
    knowledge_graph_folder,
    read_knowledge_graph,
)
from glta_pipelines.core.errors import InputError


def _item_map(ids):
    return pd.DataFrame({"item_id": [str(i) for i in ids], "item_idx": range(len(ids))})


def test_genres_are_multi_hot_and_the_decade_one_hot_in_item_idx_order():
    items = pd.DataFrame({"item_id": ["b", "a", "c"], "genres": [["Drama", "War"], ["Comedy"], []],
                          "year": [1994, 1987, None]})
    features = genre_features(items, pd.DataFrame({"item_id": ["a", "b", "c"], "item_idx": [0, 1, 2]}))
    # columns: Comedy, Drama, War, 1980s, 1990s
    assert features.tolist() == [[1, 0, 0, 1, 0], [0, 1, 1, 0, 1], [0, 0, 0, 0, 0]]


def test_knowledge_graph_features_read_both_directions_and_keep_only_shared_entities(tmp_path):
    (tmp_path / "kg.kg").write_text("head_id:token\trelation_id:token\ttail_id:token\n"
                                    "m.1\tfilm.film.actor\tm.tom\n"
                                    "m.2\tfilm.film.actor\tm.tom\n"
                                    "m.2\tfilm.film.actor\tm.solo\n"      # an entity of one film only: dropped
                                    "m.ridley\tfilm.director.film\tm.1\n"  # the film is the tail
                                    "m.ridley\tfilm.director.film\tm.3\n"
                                    "m.9\tfilm.film.actor\tm.tom\n")      # not a film of the catalogue
    (tmp_path / "kg.link").write_text("item_id:token\tentity_id:token\n1\tm.1\n2\tm.2\n3\tm.3\n9\tm.9\n")
    triples, links = read_knowledge_graph(tmp_path, "kg")
    features = knowledge_graph_features(triples, links, _item_map([1, 2, 3, 4]), min_items=2)
    # columns (sorted): director Ridley, actor Tom; item 4 has no link
    assert features.tolist() == [[1, 1], [0, 1], [1, 0], [0, 0]]


def test_knowledge_graph_files_are_checked_and_found(tmp_path):
    with pytest.raises(InputError, match=r"knowledge-graph file .*kg\.kg: found no such file"):
        read_knowledge_graph(tmp_path, "kg")
    (tmp_path / "kg.kg").write_text("head\trelation\ttail\n")
    (tmp_path / "kg.link").write_text("item_id:token\tentity_id:token\n")
    with pytest.raises(InputError, match=r"kg\.kg header: .*expected the columns"):
        read_knowledge_graph(tmp_path, "kg")
    assert knowledge_graph_folder(KnowledgeGraphConfig(path=str(tmp_path)), "generic", None) == tmp_path
    assert (knowledge_graph_folder(KnowledgeGraphConfig(), "movielens-100k", None) / "ml-100k.kg").is_file()
    with pytest.raises(InputError, match=r"parameter cold_start\.knowledge_graph\.path: found null"):
        knowledge_graph_folder(KnowledgeGraphConfig(), "generic", None)


def test_the_bundled_movielens_knowledge_graph_describes_almost_every_item():
    triples, links = read_knowledge_graph(knowledge_graph_folder(KnowledgeGraphConfig(), "movielens-100k", None),
                                          "ml-100k")
    features = knowledge_graph_features(triples, links, _item_map(range(1, 1683)), min_items=2)
    assert features.shape[0] == 1682 and features.shape[1] > 1000
    assert int((features.sum(1) > 0).sum()) > 1500


def _linear_items(n_items=300, n_content=12, dim=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    content = torch.randn(n_items, n_content, generator=generator)
    embeddings = content @ torch.randn(n_content, dim, generator=generator) / 3
    warm = torch.ones(n_items, dtype=torch.bool)
    warm[torch.randperm(n_items, generator=generator)[:60]] = False
    return content, embeddings, warm


def test_the_mapper_keeps_warm_items_and_places_cold_items_near_their_true_embeddings():
    content, embeddings, warm = _linear_items()
    placed, history = fit_mapper(content, embeddings, warm, MapperConfig(max_epochs=300, seed=1))
    assert torch.equal(placed[warm], embeddings[warm])
    cosine = torch.nn.functional.cosine_similarity(placed[~warm], embeddings[~warm]).mean()
    assert cosine > 0.9, cosine
    assert history[-1]["held_out_loss"] < history[0]["held_out_loss"]
    again, _ = fit_mapper(content, embeddings, warm, MapperConfig(max_epochs=300, seed=1))
    assert torch.equal(placed, again)  # reproducible for a seed
    # without the content (a constant), a mapper can only place every cold item at one point
    flat, _ = fit_mapper(torch.ones_like(content), embeddings, warm, MapperConfig(max_epochs=300, seed=1))
    assert torch.allclose(flat[~warm][0], flat[~warm][1]) and torch.equal(flat[warm], embeddings[warm])


def test_a_feature_no_warm_item_has_cannot_blow_up_the_cold_items_that_have_it():
    content, embeddings, warm = _linear_items()
    only_cold = torch.zeros(len(content), 1)
    only_cold[~warm] = 1.0  # e.g. an actor of cold films only
    placed, _ = fit_mapper(torch.cat([content, only_cold], 1), embeddings, warm, MapperConfig(max_epochs=300, seed=1))
    assert placed[~warm].norm(dim=1).max() < 3 * embeddings.norm(dim=1).max()
    cosine = torch.nn.functional.cosine_similarity(placed[~warm], embeddings[~warm]).mean()
    assert cosine > 0.9, cosine


def test_knn_places_a_cold_item_at_its_nearest_warm_neighbours():
    content = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.95, 0.05]])
    embeddings = torch.arange(10, dtype=torch.float32).reshape(5, 2)
    warm = torch.tensor([True, True, True, True, False])
    placed = knn_embeddings(content, embeddings, warm, KNNConfig(k=1))
    assert torch.equal(placed[:4], embeddings[:4])
    assert torch.equal(placed[4], embeddings[0])  # item 0 is the most similar
    two = knn_embeddings(content, embeddings, warm, KNNConfig(k=2, temperature=100.0))
    assert torch.allclose(two[4], (embeddings[0] + embeddings[1]) / 2, atol=1e-3)  # a flat softmax: the mean


@pytest.mark.parametrize(("config", "message"), [
    (MapperConfig(hidden_dim=0), r"cold_start\.mapper\.hidden_dim: found 0"),
    (MapperConfig(holdout_fraction=1.0), r"cold_start\.mapper\.holdout_fraction: found 1\.0"),
    (MapperConfig(contrastive_weight=-1), r"cold_start\.mapper\.contrastive_weight: found -1"),
    (KNNConfig(k=0), r"cold_start\.knn\.k: found 0"),
])
def test_bad_mapper_settings_name_the_parameter(config, message):
    content, embeddings, warm = _linear_items(n_items=20)
    run = fit_mapper if isinstance(config, MapperConfig) else knn_embeddings
    with pytest.raises(InputError, match=message):
        run(content, embeddings, warm, config)


def test_a_mapper_needs_warm_items_and_one_row_per_item():
    content, embeddings, warm = _linear_items(n_items=20)
    with pytest.raises(InputError, match="0 warm items"):
        fit_mapper(content, embeddings, torch.zeros(20, dtype=torch.bool), MapperConfig())
    with pytest.raises(InputError, match="one row per item"):
        knn_embeddings(content[:10], embeddings, warm, KNNConfig())


def test_random_llm_has_the_architecture_and_fresh_seeded_weights(tiny_llm_dir):
    from transformers import AutoModelForCausalLM

    from glta_pipelines.core.llm.text_encoder import random_weights

    model = AutoModelForCausalLM.from_pretrained(tiny_llm_dir)
    fresh, again, other = random_weights(model, 1), random_weights(model, 1), random_weights(model, 2)
    names = [n for n, _ in model.named_parameters()]
    assert [n for n, _ in fresh.named_parameters()] == names
    weight = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(dict(fresh.named_parameters())[weight], dict(again.named_parameters())[weight])
    assert not torch.equal(dict(fresh.named_parameters())[weight], dict(other.named_parameters())[weight])
    assert not torch.equal(dict(fresh.named_parameters())[weight], dict(model.named_parameters())[weight])
    assert not any(p.requires_grad for p in fresh.parameters())
    assert fresh.config.hidden_size == model.config.hidden_size
