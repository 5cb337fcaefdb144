"""Every stage after ingest on a small synthetic dataset, with an in-memory catalog and the tiny test LLM."""

from pathlib import Path

import pandas as pd
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from glta_pipelines.pipeline_registry import register_pipelines

CONF = Path(__file__).parents[2] / "conf" / "base"


def base_parameters() -> dict:
    params: dict = {}
    for path in sorted(CONF.glob("parameters*.yml")):
        params.update(yaml.safe_load(path.read_text()))
    return params


class KeptDataset(MemoryDataset):
    """A MemoryDataset the runner cannot release, so the test can read outputs after the run."""

    def _release(self) -> None:
        pass


def catalog_with(params: dict, outputs: list[str], **data) -> DataCatalog:
    """Inputs and kept outputs in memory, plus ``params:<key>`` for every nesting level, as a session does."""
    catalog = DataCatalog({name: MemoryDataset(value) for name, value in data.items()})
    for name in outputs:
        catalog[name] = KeptDataset()

    def add(prefix: str, value) -> None:
        catalog[f"params:{prefix}"] = value
        if isinstance(value, dict):
            for key, sub in value.items():
                add(f"{prefix}.{key}", sub)

    for key, value in params.items():
        add(key, value)
    return catalog


def test_all_stages_after_ingest_in_memory(interactions, items, tiny_llm_dir, tmp_path):
    params = base_parameters()
    params["pretrain_gnn"]["lightgcn"].update(embedding_dim=8, num_layers=2, learning_rate=0.02, batch_size=128,
                                              max_epochs=20, eval_every=5)
    params["llm"]["model"] = str(tiny_llm_dir)
    params["align_tokens"]["alignment"].update(epochs=1, batch_size=16, n_examples=2)
    params["gllm_finetune"]["gllm"].update(epochs=2, batch_size=16, head_epochs=2, head_eval_every=1, cache_draws=1)
    params["gllm_finetune"]["checkpoint_dir"] = str(tmp_path / "checkpoints")
    pipelines = register_pipelines()
    pipe = pipelines["full"] - pipelines["ingest"]
    outputs = ["evaluate.metrics", "pretrain_gnn.embeddings", "pretrain_gnn.training_history", "evaluate.metrics_plot",
               "evaluate.recommendations", "align_tokens.alignment_examples", "gllm_finetune.history",
               "evaluate.comparison"]
    report = {"dataset": "synthetic", "interactions": {"rows_read": len(interactions)}}
    outputs.append("graph.data_quality")
    catalog = catalog_with(params, outputs, **{"ingest.interactions": interactions, "ingest.items": items,
                                               "ingest.report": report})
    SequentialRunner().run(pipe, catalog)

    metrics = catalog.load("evaluate.metrics")
    assert set(metrics["method"]) == {"popularity", "lightgcn", "ease", "glta"}
    assert set(metrics["split"]) == {"valid", "test"}
    assert set(metrics["k"]) == {10, 20}
    bounded = metrics["metric"].isin(["recall", "ndcg", "precision", "hit_rate", "mrr", "map", "coverage", "gini",
                                      "diversity"])
    assert metrics.loc[bounded, "value"].between(0, 1).all()
    assert (metrics.loc[~bounded, "value"] > 0).all()  # average popularity and novelty
    assert {"map", "coverage", "gini", "average_popularity", "novelty", "diversity"} <= set(metrics["metric"])
    test = metrics[(metrics["split"] == "test") & (metrics["metric"] == "recall") & (metrics["k"] == 20)]
    by_method = test.set_index("method")["value"]
    # Two item communities: popularity ignores them, LightGCN must learn them.
    assert by_method["lightgcn"] > by_method["popularity"]
    embeddings = catalog.load("pretrain_gnn.embeddings")
    assert embeddings["item"].shape == (items.shape[0], 8)
    history = catalog.load("pretrain_gnn.training_history")
    assert isinstance(history, pd.DataFrame) and len(history) >= 5
    assert catalog.load("evaluate.metrics_plot").axes
    recommendations = catalog.load("evaluate.recommendations")
    n_users = interactions["user_id"].nunique()
    assert len(recommendations) == n_users * 20 and recommendations["title"].str.startswith("Item").all()
    known = set(zip(interactions["user_id"], interactions["item_id"]))
    assert not known & set(zip(recommendations["user_id"], recommendations["item_id"]))
    assert recommendations.groupby("user_id")["score"].apply(lambda s: s.is_monotonic_decreasing).all()
    assert catalog.load("align_tokens.alignment_examples").count("true:") == 2
    gllm_history = catalog.load("gllm_finetune.history")
    trained = gllm_history[gllm_history["phase"] != "blend"]
    assert list(trained["epoch"]) == [1, 2, 3, 4] and list(trained["phase"]) == ["end_to_end"] * 2 + ["head"] * 2
    # the default blends with LightGCN: every grid weight (and 0) validated, one history row each
    assert sorted(gllm_history.loc[gllm_history["phase"] == "blend", "blend_weight"]) == sorted(
        {0.0, *params["gllm_finetune"]["gllm"]["blend_grid"]})
    quality = catalog.load("graph.data_quality")
    assert quality["interactions"] == {"rows_read": len(interactions)}
    assert quality["graph_filters_removed"] == {"min_rating": 0, "k_core": 0}
    assert quality["final"]["n_interactions"] == len(interactions)
    comparison = catalog.load("evaluate.comparison")
    assert comparison["reference"] == "lightgcn" and set(comparison) >= {"popularity", "glta"}
    gain = comparison["glta"]["recall_at_20"]
    lightgcn_recall = by_method["lightgcn"]
    assert gain["relative_difference"] == pytest.approx(by_method["glta"] / lightgcn_recall - 1, abs=1e-4)
    assert gain["ci95_low"] <= gain["relative_difference"] <= gain["ci95_high"]
