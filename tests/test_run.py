"""Real Kedro sessions of the `full` pipeline in the `test` environment, in a temporary project
copy (own data folder, own MLflow store): what a user gets from `kedro run`."""

from __future__ import annotations


import pytest
from glta_pipelines.core.errors import InputError
from tests.sessions import FIXTURES, run, runs

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("tiny_llm")]



def test_bad_parameter_fails_before_anything_is_written(project):
    with pytest.raises(InputError, match=r"graph\.split\.ratios.*sum to 1"):
        run(project, {"graph": {"split": {"ratios": [0.8, 0.1, 0.2]}}})
    assert not [p for p in (project / "data").rglob("*") if p.is_file()]
    _, found = runs(project)
    assert found == []  # refused before the MLflow run opens


def test_failing_node_marks_the_run_failed_and_keeps_earlier_outputs(project):
    run(project, pipeline="ingest")
    first = sorted((project / "data/02_intermediate/interactions.parquet").iterdir())
    with pytest.raises(InputError, match=r"graph\.k_core.*removes all"):
        run(project, {"graph": {"k_core": 100000}})
    _, found = runs(project)
    assert [r.info.status for r in found] == ["FAILED", "FINISHED"]
    assert set(first) <= set((project / "data/02_intermediate/interactions.parquet").iterdir())
    assert not (project / "data/05_model_input").exists()


def test_interrupted_run_is_closed_as_killed(project):
    """SIGTERM mid-run (as a scheduler or Ctrl-C would stop it) leaves no RUNNING MLflow run."""
    import signal
    import subprocess
    import sys
    import time

    code = ("from kedro.framework.session import KedroSession; from kedro.framework.startup import bootstrap_project; "
            "import pathlib; p = pathlib.Path.cwd(); bootstrap_project(p); "
            "s = KedroSession.create(project_path=p, env='test', runtime_params="
            "{'pretrain_gnn': {'lightgcn': {'max_epochs': 100000, 'patience': 100000}}}); s.run(pipeline_names=['full'])")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((project / "data/05_model_input").glob("train.parquet/*")):
        time.sleep(1)
    time.sleep(3)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) != 0
    _, found = runs(project)
    assert [r.info.status for r in found] == ["KILLED"]


@pytest.mark.parametrize("adapter", sorted(p.name for p in FIXTURES.iterdir()))
def test_full_run_on_each_adapter_fixture(project, adapter):
    """`kedro run --pipelines=full --params "dataset.name=<adapter>,dataset.path=<dir>"` on fixture data."""
    # no model per adapter (registry.log_model: false; logging and registering are tested in test_serving)
    run(project, {"dataset": {"name": adapter, "path": str(FIXTURES / adapter)}, "registry": {"log_model": False}})
    client, found = runs(project)
    mlflow_run = found[0]
    assert not client.search_logged_models(experiment_ids=[mlflow_run.info.experiment_id])
    assert mlflow_run.info.status == "FINISHED" and mlflow_run.data.tags["dataset"] == adapter
    metrics = mlflow_run.data.metrics
    assert 0 <= metrics["test.glta.recall_at_20"] <= 1
    assert metrics["data_quality.interactions.duplicates_removed"] >= 1
    assert metrics["data_quality.items.without_metadata"] == 1
    assert metrics["data_quality.final.n_interactions"] == metrics["graph.n_interactions"]
    artifacts = {a.path for a in client.list_artifacts(mlflow_run.info.run_id, "graph")}
    assert "graph/data_quality.json" in artifacts
    # the prompts the LLM read, as the trained weights store them, name the dataset's items
    noun = {"amazon": "product", "goodreads": "book", "generic": "item"}.get(adapter.split("-")[0], "movie")
    for weights in ("item_projector", "gllm_weights"):
        prompt = _stored_prompt(project / "data/06_models" / f"{weights}.safetensors")
        assert noun in prompt and "{" not in prompt, prompt
        if noun != "movie":
            assert "movie" not in prompt and "watched" not in prompt, prompt


def _stored_prompt(folder) -> str:
    """The prompt templates stored in the config of the latest version of a weights file."""
    import json

    from safetensors import safe_open

    path = sorted(folder.glob("*/*.safetensors"))[-1]
    with safe_open(str(path), "pt") as handle:
        config = json.loads(handle.metadata()["config"])
    found = [v for k, v in _flat(config) if k.endswith("prompt_template")]
    assert found, config
    return " / ".join(found)


def _flat(config, prefix=""):
    for key, value in config.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def test_tasks_of_one_dag_log_into_the_orchestrators_run(project, monkeypatch):
    """An orchestrator passes its run as MLFLOW_RUN_ID: each Kedro task logs into it and leaves it open."""
    from glta_pipelines.framework.tracking import experiment

    uri = f"sqlite:///{project / 'mlflow.db'}"
    dag_run = runs(project)[0].create_run(experiment(uri, "glta-pipelines"), run_name="airflow-dag").info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", dag_run)
    run(project, pipeline="ingest")
    run(project, pipeline="graph")
    client, found = runs(project)
    assert [r.info.run_id for r in found] == [dag_run]  # no run of its own
    joined = found[0]
    assert joined.info.status == "RUNNING" and joined.data.tags["kedro_tasks"] == "ingest,graph"
    assert "data_quality.interactions.kept" in joined.data.metrics and "graph.n_users" in joined.data.metrics
    assert {"time.ingest.read_dataset", "time.graph.split_interactions"} <= set(joined.data.metrics)
    client.set_terminated(dag_run, "FINISHED")
    with pytest.raises(InputError, match=r"environment variable MLFLOW_RUN_ID: found run \w+, which is FINISHED"):
        run(project, pipeline="ingest")
    monkeypatch.setenv("MLFLOW_RUN_ID", "0" * 32)
    with pytest.raises(InputError, match="environment variable MLFLOW_RUN_ID: found '0000"):
        run(project, pipeline="ingest")


def test_cold_start_pipeline_places_cold_items_from_each_content_and_keeps_warm_items_as_lightgcn(project):
    """`kedro run --pipelines=cold_start --params graph.split.strategy=cold-items` on MovieLens-100K:
    every encoder once, every cold-start method evaluated on the three tasks; on warm items each is
    LightGCN (or GLTA, for GLTA with the placed cold items), and the fallbacks that give every cold item one score (popularity, EASE) rank them in
    the same seeded random order."""
    from glta_pipelines.core.models.registry import trained_by

    run(project, {"graph": {"split": {"strategy": "cold-items"}}, "registry": {"log_model": False}},
        pipeline="cold_start")
    metrics = runs(project)[1][0].data.metrics
    methods = trained_by("cold_start")
    assert set(methods) == {"map_genres", "map_knowledge_graph", "map_minilm", "map_llm", "map_random_llm", "knn_minilm"}
    for method in ("popularity", "lightgcn", "ease", "lightgcn_plus", *methods):
        for split in ("test", "test_cold", "test_warm", "valid_cold"):
            assert 0 <= metrics[f"{split}.{method}.ndcg_at_20"] <= 1, (split, method)
    for method in methods:
        assert metrics[f"test_warm.{method}.recall_at_20"] == metrics["test_warm.lightgcn.recall_at_20"], method
    assert metrics["test_cold.popularity.ndcg_at_20"] == metrics["test_cold.ease.ndcg_at_20"]
    # GLTA with the cold items each mapper placed (its head standardises a user's scores over all
    # items, so the placed items move the warm ones' scores a little too)
    for method in ("glta_map_llm", "glta_map_random_llm", "glta_map_minilm"):
        for split in ("test", "test_cold", "test_warm"):
            assert 0 <= metrics[f"{split}.{method}.ndcg_at_20"] <= 1, (split, method)
    data = project / "data"
    for encoder in ("genres", "knowledge_graph", "minilm", "llm", "random_llm"):
        assert list((data / "05_model_input" / f"item_content_{encoder}.safetensors").iterdir()), encoder
    assert list((data / "06_models" / "map_minilm_embeddings.safetensors").iterdir())


def test_cold_users_split_folds_new_users_in_from_their_history_for_each_method(project):
    """`--params graph.split.strategy=cold-users`: the graph never trains on a cold user; each method
    scores one from its first interactions (popularity, EASE's row, LightGCN's and GLTA's fold-in,
    GLTA's prompt), on the cold users, the warm users and everyone."""
    run(project, {"dataset": {"name": "movielens-1m", "path": str(FIXTURES / "movielens-1m")},
                  "graph": {"split": {"strategy": "cold-users", "cold_fraction": 0.3, "cold_history": 2}},
                  "registry": {"log_model": False}})
    metrics = runs(project)[1][0].data.metrics
    assert metrics["graph.n_valid_cold_users"] >= 1 and metrics["graph.n_test_cold_users"] >= 1
    assert metrics["graph.n_cold_history"] == 2 * (metrics["graph.n_valid_cold_users"] + metrics["graph.n_test_cold_users"])
    for method in ("popularity", "lightgcn", "ease", "glta"):
        for split in ("valid", "test", "valid_cold", "test_cold", "valid_warm", "test_warm"):
            assert 0 <= metrics[f"{split}.{method}.ndcg_at_20"] <= 1, (split, method)
    # a new user's history is never recommended back to it
    import pandas as pd

    def latest(path: str) -> pd.DataFrame:
        return pd.read_parquet(sorted((project / "data" / path).glob("*/*.parquet"))[-1])

    history = latest("05_model_input/cold_history.parquet")
    recommended = latest("07_model_output/recommendations.parquet")
    assert set(history["user_idx"]) <= set(recommended["user_idx"])
    ranked = recommended[recommended["score"] > float("-inf")]  # a tiny catalogue pads lists with masked items
    assert ranked.merge(history, on=["user_idx", "item_idx"]).empty and len(ranked)


def test_cold_items_split_evaluates_each_method_on_cold_warm_and_all_items(project):
    """`--params graph.split.strategy=cold-items`: the graph never trains on a cold item, and every
    method gets the cold task (only cold items ranked), the warm task and the all-items task."""
    run(project, {"dataset": {"name": "movielens-1m", "path": str(FIXTURES / "movielens-1m")},
                  "graph": {"split": {"strategy": "cold-items", "cold_fraction": 0.3}}, "registry": {"log_model": False}})
    metrics = runs(project)[1][0].data.metrics
    assert metrics["graph.n_valid_cold_items"] >= 1 and metrics["graph.n_test_cold_items"] >= 1
    for method in ("popularity", "lightgcn", "ease", "glta"):
        for split in ("valid", "test", "valid_cold", "test_cold", "valid_warm", "test_warm"):
            assert 0 <= metrics[f"{split}.{method}.ndcg_at_20"] <= 1, (split, method)


def test_sequential_pipeline_on_the_temporal_split_adds_sasrec_and_counts_what_it_drops(project):
    """`kedro run --pipelines=sequential --params graph.split.strategy=temporal`: one cut-off time for
    everyone, held-out interactions of users or items training never saw dropped and counted, and
    SASRec evaluated beside the methods of `full` (with Hit and MRR chartable)."""
    run(project, {"dataset": {"name": "movielens-1m", "path": str(FIXTURES / "movielens-1m")},
                  "graph": {"split": {"strategy": "temporal", "temporal_quantiles": [0.6, 0.8]}},
                  "registry": {"log_model": False}}, pipeline="sequential")
    client, found = runs(project)
    metrics = found[0].data.metrics
    assert metrics["graph.n_held_out_dropped"] >= 0 and metrics["graph.n_test"] >= 1
    from glta_pipelines.core.data.interactions import to_implicit
    from glta_pipelines.core.data.sources import load_dataset

    source = load_dataset({"name": "movielens-1m", "path": str(FIXTURES / "movielens-1m")}).interactions
    assert metrics["graph.n_interactions"] + metrics["graph.n_held_out_dropped"] == len(to_implicit(source, None))
    for method in ("popularity", "lightgcn", "ease", "sasrec", "glta"):
        for metric in ("recall", "ndcg", "hit_rate", "mrr"):
            assert 0 <= metrics[f"test.{method}.{metric}_at_20"] <= 1, (method, metric)
    assert [m.step for m in client.get_metric_history(found[0].info.run_id, "sasrec.loss")] == [1, 2, 3]

