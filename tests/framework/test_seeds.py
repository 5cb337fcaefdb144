"""``kedro seeds``' summary of the new-item protocol's tasks, on a real MLflow store."""

import pandas as pd
import pytest


def test_the_seed_summary_adds_the_cold_and_warm_tasks_with_their_own_tables_and_metrics(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from glta_pipelines.framework.seeds import _summarize

    monkeypatch.chdir(tmp_path)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = client.create_run(client.create_experiment("seeds", artifact_location=str(tmp_path / "artifacts")))
    metrics = {}
    for seed, (fallback, mapped) in zip((1, 2, 3), ((0.10, 0.30), (0.12, 0.36), (0.11, 0.33))):
        metrics[seed] = {"test.popularity.ndcg_at_20": 0.1, "test.map_minilm.ndcg_at_20": 0.3,
                         "test_cold.popularity.ndcg_at_20": fallback, "test_cold.map_minilm.ndcg_at_20": mapped,
                         "test_warm.popularity.ndcg_at_20": 0.15, "test_warm.map_minilm.ndcg_at_20": 0.34}
    table = _summarize(client, parent.info.run_id, metrics, "popularity")
    cold = table[table.index("Cold items"):table.index("Warm items")]
    assert "Δ NDCG@20 vs Popularity" in cold and "| MiniLM mapper |" in cold and "0.3300 ± 0.0300" in cold
    logged = client.get_run(parent.info.run_id).data.metrics
    assert logged["test_cold.map_minilm.ndcg_at_20.mean"] == pytest.approx(0.33)
    assert logged["test_cold.map_minilm.ndcg_at_20.diff_mean"] == pytest.approx(0.22)
    assert logged["map_minilm.ndcg_at_20.mean"] == pytest.approx(0.3)  # all items: the names as before
    summary = client.download_artifacts(parent.info.run_id, "seeds/summary.csv", str(tmp_path))
    assert set(pd.read_csv(summary)["split"]) == {"test", "test_cold", "test_warm"}
    # the new-user split's runs (they log graph.n_cold_history) get their own task titles
    for seed in metrics:
        metrics[seed]["graph.n_cold_history"] = 300
    table = _summarize(client, parent.info.run_id, metrics, "popularity")
    assert "New users (" in table and "Known users (" in table and "Cold items" not in table


def test_the_experiment_is_marked_as_model_development_unless_it_has_a_kind(tmp_path):
    from mlflow.tracking import MlflowClient

    from glta_pipelines.framework.tracking import EXPERIMENT_KIND, experiment

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    made = experiment(uri, "new")
    assert client.get_experiment(made).tags[EXPERIMENT_KIND] == "custom_model_development"
    older = client.create_experiment("older")  # made before the tag existed: marked when next used
    assert experiment(uri, "older") == older
    assert client.get_experiment(older).tags[EXPERIMENT_KIND] == "custom_model_development"
    own = client.create_experiment("own", tags={EXPERIMENT_KIND: "genai_development"})
    experiment(uri, "own")
    assert client.get_experiment(own).tags[EXPERIMENT_KIND] == "genai_development"  # a user's own kind stays
