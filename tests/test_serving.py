"""One real `full` run in the `test` environment, shared by this module: what MLflow records of it
(metrics, curves, artifacts, timings), and the recommender as an MLflow model: logged, registered with an alias, served over real HTTP by `mlflow models serve`, and used by the
`recommend` pipeline without training."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from glta_pipelines.pipeline_registry import register_pipelines
from glta_pipelines.serving.process import free_port, mlflow_command
from tests.sessions import run, runs

pytestmark = pytest.mark.slow
MODEL = "glta-movielens-100k"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, full_template, tiny_llm_dir):
    """A project copy after one `kedro run --env test --pipelines=full` (the session's template run,
    copied): (project, its MLflow run)."""
    from kedro.framework.startup import bootstrap_project

    from tests.sessions import clone_state, new_project

    project = new_project(tmp_path_factory.mktemp("serving_project"))
    clone_state(full_template, project)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        patch.setenv("GLTA_TEST_LLM", str(tiny_llm_dir))
        bootstrap_project(project)
        yield project, runs(project)[1][0]


def test_full_run_is_tracked_in_mlflow(trained):
    project, mlflow_run = trained
    client, _ = runs(project)
    assert mlflow_run.info.status == "FINISHED"
    metrics = mlflow_run.data.metrics
    for method in ("popularity", "lightgcn"):
        for split in ("valid", "test"):
            for name in ("recall", "ndcg"):  # the others are in evaluate/methods.json
                assert 0 <= metrics[f"{split}.{method}.{name}_at_20"] <= 1
    assert metrics["graph.n_users"] == 943 and metrics["graph.n_items"] == 1682
    history = client.get_metric_history(mlflow_run.info.run_id, "lightgcn.loss")
    assert [m.step for m in history] == [1, 2, 3, 4]
    params = mlflow_run.data.params
    assert params["pretrain_gnn.lightgcn.max_epochs"] == "4"
    assert params["dataset.name"] == "movielens-100k"
    tags = mlflow_run.data.tags
    assert tags["pipeline_names"] == "full" and tags["dataset"] == "movielens-100k" and "git_commit" in tags
    artifacts = {a.path for a in client.list_artifacts(mlflow_run.info.run_id, "evaluate")}
    assert {"evaluate/metrics.csv", "evaluate/metrics_plot.png", "evaluate/comparison.json",
            "evaluate/breakdowns.csv", "evaluate/breakdowns_plot.png"} <= artifacts
    assert "test.ease.recall_at_20" in mlflow_run.data.metrics
    recbole = sorted(p.name for p in (project / "data/05_model_input/recbole/movielens-100k").iterdir())
    assert recbole == [f"movielens-100k.{s}" for s in ("item", "test.inter", "train.inter", "valid.inter")]
    assert "comparison.glta.recall_at_20.ci95_low" in mlflow_run.data.metrics
    # NodeTimingHook: every node's wall time, and the whole pipeline's
    nodes = {n.name for n in register_pipelines()["full"].nodes}
    assert {f"time.{n}" for n in nodes} <= set(metrics) and metrics["time.pipeline"] > 0
    assert metrics["time.pipeline"] >= max(metrics[f"time.{n}"] for n in nodes)
    # versioned outputs: one timestamped version per run
    assert len(list((project / "data/08_reporting/metrics.parquet").iterdir())) == 1
    assert len(list((project / "data/06_models/lightgcn_weights.safetensors").iterdir())) == 1


def test_run_logs_registers_and_describes_the_model(trained):
    project, mlflow_run = trained
    client, _ = runs(project)
    run_id = mlflow_run.info.run_id
    # "Logged models": the pyfunc, linked to the run, with its signature and input example
    logged = client.search_logged_models(experiment_ids=[mlflow_run.info.experiment_id])
    assert [m.source_run_id for m in logged] == [run_id]
    assert logged[0].name == "recommender"
    # the registry: version 1 of glta-<dataset>, champion (the first), linked back to the run
    version = client.get_model_version_by_alias(MODEL, "champion")
    assert str(version.version) == "1" and version.run_id == run_id
    valid = mlflow_run.data.metrics["valid.glta.recall_at_20"]
    assert float(version.tags["valid_recall_at_20"]) == pytest.approx(valid, abs=1e-6)
    assert mlflow_run.data.tags["registered_model"] == f"{MODEL}/1@champion"
    # the run's datasets: interactions and the three splits, with digest, schema and row counts
    inputs = {d.dataset.name: d for d in mlflow_run.inputs.dataset_inputs}
    assert set(inputs) == {"ingest.interactions", "graph.train", "graph.valid", "graph.test"}
    for name, split in (("graph.train", "train"), ("graph.valid", "valid"), ("graph.test", "test")):
        profile = json.loads(inputs[name].dataset.profile)
        assert profile["num_rows"] == mlflow_run.data.metrics[f"graph.n_{split}"]
        assert "item_idx" in inputs[name].dataset.schema and inputs[name].dataset.digest
        assert {t.key: t.value for t in inputs[name].tags}["mlflow.data.context"] in ("training", "validation", "test")
    # system metrics, sampled while the pipeline ran
    assert any(k.startswith("system/cpu_utilization_percentage") for k in mlflow_run.data.metrics)
    assert any(k.startswith("system/system_memory_usage_megabytes") for k in mlflow_run.data.metrics)
    # a description with the headline metric and the model
    note = mlflow_run.data.tags["mlflow.note.content"]
    assert "--pipelines=full" in note and f"glta {mlflow_run.data.metrics['test.glta.recall_at_20']:.4f}" in note
    assert f"{MODEL}/1@champion" in note
    # every method's every number in one table artifact; flat metrics keep what people chart
    table = json.loads(Path(client.download_artifacts(run_id, "evaluate/methods.json")).read_text())
    frame = pd.DataFrame(table["data"], columns=table["columns"])
    assert {"popularity", "lightgcn", "ease", "glta"} == set(frame["method"])
    assert len(frame) == 4 * 5 * 2 and {"valid", "test", "test_relative_difference", "test_ci95_low"} <= set(frame)
    metrics = mlflow_run.data.metrics
    assert "test.glta.mrr_at_20" not in metrics and "comparison.glta.mrr_at_10.ci95_low" not in metrics
    assert "test.glta.ndcg_at_10" in metrics and "comparison.glta.recall_at_20.ci95_low" in metrics
    assert len(metrics) < 150


def test_a_worse_retrain_becomes_challenger_unless_forced(trained):
    """The champion policy, on the run's own model registered again under other scores."""
    from glta_pipelines.serving.registry import register

    project, mlflow_run = trained
    client, _ = runs(project)
    uri = f"sqlite:///{project / 'mlflow.db'}"
    model = client.search_logged_models(experiment_ids=[mlflow_run.info.experiment_id])[0]
    info = type("Info", (), {"model_uri": f"models:/{model.model_id}", "model_id": model.model_id})()
    champion = float(client.get_model_version_by_alias(MODEL, "champion").tags["valid_recall_at_20"])
    name = "glta-policy-check"
    assert register(uri, info, mlflow_run.info.run_id, name, champion, "auto") == ("1", "champion")
    assert register(uri, info, mlflow_run.info.run_id, name, champion - 0.01, "auto") == ("2", "challenger")
    assert register(uri, info, mlflow_run.info.run_id, name, champion + 0.01, "never") == ("3", "challenger")
    assert register(uri, info, mlflow_run.info.run_id, name, champion - 0.05, "always") == ("4", "champion")
    assert register(uri, info, mlflow_run.info.run_id, name, champion + 0.001, "auto") == ("5", "champion")
    assert str(client.get_model_version_by_alias(name, "champion").version) == "5"


def _post(port: int, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def server(trained):
    """`mlflow models serve -m models:/glta-movielens-100k@champion --env-manager local` on a free port."""
    project, _ = trained
    port = free_port()
    with mlflow_command(["models", "serve", "-m", f"models:/{MODEL}@champion", "--env-manager", "local",
                         "--host", "127.0.0.1", "--port", str(port)], f"http://127.0.0.1:{port}/ping",
                        project / "serve.log", env={"MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"},
                        cwd=project):
        yield port


def test_rest_answers_known_and_new_users_and_rejects_bad_requests(trained, server):
    project, _ = trained
    user_map = _latest(project, "data/03_primary/user_map.parquet")
    item_map = _latest(project, "data/03_primary/item_map.parquet")
    test = _latest(project, "data/05_model_input/test.parquet")
    # a known user, by its number and by its string
    status, body = _post(server, {"dataframe_records": [{"user_id": 7, "k": 10}, {"user_id": "7", "k": 10}]})
    assert status == 200
    answer = pd.DataFrame(body["predictions"])
    assert list(answer["rank"]) == list(range(1, 11)) * 2 and answer["title"].notna().all()
    first, second = answer[answer["request"] == 0], answer[answer["request"] == 1]
    assert list(first["item_id"]) == list(second["item_id"])
    # a new user built from a test user's history (train + valid), with an exclusion
    user = int(test["user_idx"].iloc[0])
    ids = dict(zip(item_map["item_idx"], item_map["item_id"]))
    train = _latest(project, "data/05_model_input/train.parquet")
    history = [ids[i] for i in train.loc[train["user_idx"] == user, "item_idx"]]
    status, body = _post(server, {"dataframe_records": [{"history": [int(h) for h in history], "k": 10,
                                                          "exclude": [int(history[0]) + 100000, "1"]}]})
    assert status == 200
    answer = pd.DataFrame(body["predictions"])
    assert len(answer) == 10 and not set(history) & set(answer["item_id"]) and "1" not in set(answer["item_id"])
    assert answer["ignored_items"].iloc[0] == [str(int(history[0]) + 100000)]
    # an empty history: popularity, flagged
    status, body = _post(server, {"dataframe_records": [{"history": [], "k": 3}]})
    assert status == 200 and {r["fallback"] for r in body["predictions"]} == {"popularity"}
    # bad requests: a clear 400, and the server keeps serving
    for record, field in (({"user_id": "no-such-user", "k": 10}, "user_id"), ({"user_id": 7, "k": 0}, "k"),
                          ({"user_id": 7, "k": len(item_map) + 1}, "k"), ({"history": "50 172", "k": 5}, "history")):
        status, body = _post(server, {"dataframe_records": [record]})
        assert status == 400, body
        assert f"request 0, field '{field}'" in body["message"], body["message"]
    status, body = _post(server, {"dataframe_records": [{"usr": 7}]})  # MLflow drops the unknown field: nothing left
    assert status == 400 and "no request" in body["message"]
    status, _ = _post(server, {"dataframe_records": [{"user_id": str(user_map["user_id"].iloc[0]), "k": 1}]})
    assert status == 200


def _latest(project: Path, path: str) -> pd.DataFrame:
    folder = project / path
    version = sorted(p for p in folder.iterdir() if p.is_dir())[-1]
    return pd.read_parquet(version / folder.name)


def test_recommend_pipeline_scores_a_cohort_without_training(trained):
    project, _ = trained
    from glta_pipelines.core.errors import InputError

    with pytest.MonkeyPatch.context() as patch, pytest.raises(InputError, match=r"catalog entry recommend\.requests: "
                                                                   r"found no version under .*recommend_requests\.csv"):
        patch.chdir(project)
        run(project, pipeline="recommend")
    folder = project / "data/05_model_input/recommend_requests.csv/2026-01-01T00.00.00.000Z"
    folder.mkdir(parents=True)
    (folder / "recommend_requests.csv").write_text('user_id,history,k\n7,,5\n,"50 172 181",3\n,[],2\n')
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        run(project, pipeline="recommend")
    _, found = runs(project)
    newest = found[0]
    assert newest.data.tags["pipeline_names"] == "recommend" and newest.info.status == "FINISHED"
    assert {k for k in newest.data.metrics if k.startswith("time.")} == {"time.recommend.recommend", "time.pipeline"}
    out = _latest(project, "data/07_model_output/recommend_recommendations.parquet")
    assert list(out.groupby("request").size()) == [5, 3, 2]
    assert set(out.loc[out["request"] == 2, "fallback"]) == {"popularity"}
    assert not {"50", "172", "181"} & set(out.loc[out["request"] == 1, "item_id"])
    assert "recommend.requests" in {d.dataset.name for d in newest.inputs.dataset_inputs}


def test_a_server_that_exits_is_reported_with_its_log(tmp_path):
    """What the fixtures above start their servers with: a server that dies says so, with its log."""
    port = free_port()
    with pytest.raises(RuntimeError, match=r"(?s)the server exited \(2\); its log ends: .*No such command"):
        with mlflow_command(["no-such-command"], f"http://127.0.0.1:{port}/ping", tmp_path / "server.log", timeout=60):
            pass


def test_bundle_stores_each_interaction_once_and_reads_older_bundles(tmp_path, interactions, items):
    """``known`` (every split) and ``train`` come from one table with a split column; a bundle of the
    earlier layout (``known.parquet`` + ``train.parquet``) still loads."""
    import torch

    from glta_pipelines.core.data.interactions import SplitConfig, build_id_map, encode_ids, split_per_user
    from glta_pipelines.serving.bundle import COLUMNS, _interactions, save_bundle

    user_map, item_map = build_id_map(interactions["user_id"], "user_idx"), build_id_map(interactions["item_id"], "item_idx")
    splits = split_per_user(encode_ids(interactions, user_map, item_map), SplitConfig(seed=1))
    weights = {"w": torch.zeros(1)}
    folder = save_bundle(tmp_path / "new", weights, weights, weights, user_map, item_map, items, **splits)
    stored = pd.read_parquet(folder / "interactions.parquet")
    assert len(stored) == sum(len(s) for s in splits.values()) and not (folder / "train.parquet").exists()
    known, train = _interactions(folder)
    expected_known = pd.concat([splits[s][COLUMNS] for s in ("train", "valid", "test")], ignore_index=True)
    pd.testing.assert_frame_equal(known, expected_known)
    pd.testing.assert_frame_equal(train, splits["train"][COLUMNS].reset_index(drop=True))
    old = tmp_path / "old"
    old.mkdir()
    expected_known.to_parquet(old / "known.parquet", index=False)
    splits["train"][COLUMNS].to_parquet(old / "train.parquet", index=False)
    pd.testing.assert_frame_equal(_interactions(old)[1], splits["train"][COLUMNS].reset_index(drop=True))
