"""One real `full` run in the `test` environment, shared by this module: what MLflow records of it
(metrics, curves, artifacts, timings), and the recommender as an MLflow model: logged, registered with an alias, served over real HTTP by `mlflow models serve`, and used by the
`recommend` pipeline without training."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from glta_pipelines.pipeline_registry import register_pipelines
from glta_pipelines.serving.process import free_port, mlflow_command, server_command
from tests.sessions import run, runs

pytestmark = pytest.mark.slow
MODEL = "glta-movielens-100k"


@contextlib.contextmanager
def _template_copy(folder: Path, full_template: Path, tiny_llm_dir: Path):
    """A project copy in ``folder`` holding the session's template `full` run, entered (working
    directory, test LLM, Kedro project bootstrapped)."""
    from kedro.framework.startup import bootstrap_project

    from tests.sessions import clone_state, new_project

    project = new_project(folder)
    clone_state(full_template, project)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        patch.setenv("GLTA_TEST_LLM", str(tiny_llm_dir))
        bootstrap_project(project)
        yield project


@pytest.fixture(scope="module")
def trained(tmp_path_factory, full_template, tiny_llm_dir):
    """A project copy after one `kedro run --env test --pipelines=full` (the session's template run,
    copied): (project, its MLflow run)."""
    with _template_copy(tmp_path_factory.mktemp("serving_project"), full_template, tiny_llm_dir) as project:
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
    # MLflow 3's UI opens the experiment on its training runs, not on the (empty) GenAI overview
    assert client.get_experiment(mlflow_run.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
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
    assert "Best on test: " in note and "gini@20 (lowest)" in note
    # every method's every number in one table artifact, and every number a metric of the run
    table = json.loads(Path(client.download_artifacts(run_id, "evaluate/methods.json")).read_text())
    frame = pd.DataFrame(table["data"], columns=table["columns"])
    assert {"popularity", "lightgcn", "ease", "glta"} == set(frame["method"])
    # 6 accuracy and 5 beyond-accuracy metrics at 2 K for 4 methods
    assert len(frame) == 4 * 11 * 2 and {"valid", "test", "test_relative_difference", "test_p_value_t_holm"} <= set(frame)
    metrics = mlflow_run.data.metrics
    for name in ("test.glta.mrr_at_20", "test.glta.precision_at_10", "test.ease.gini_at_20", "valid.glta.map_at_10",
                 "comparison.glta.mrr_at_10.ci95_low", "comparison.ease.novelty_at_20.p_value_wilcoxon_holm"):
        assert name in metrics, name
    assert 0 <= metrics["comparison.glta.recall_at_20.p_value_t_holm"] <= 1


def test_a_worse_retrain_becomes_challenger_unless_forced(trained):
    """The champion policy, on the run's own model registered again under other scores."""
    import mlflow

    from glta_pipelines.serving.registry import register

    project, mlflow_run = trained
    client, _ = runs(project)
    uri = f"sqlite:///{project / 'mlflow.db'}"
    model = client.search_logged_models(experiment_ids=[mlflow_run.info.experiment_id])[0]
    info = type("Info", (), {"model_uri": f"models:/{model.model_id}", "model_id": model.model_id})()
    registry = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)  # not the process's global registry
    champion = float(registry.get_model_version_by_alias(MODEL, "champion").tags["valid_recall_at_20"])
    name = "glta-policy-check"
    assert register(uri, info, mlflow_run.info.run_id, name, champion, "auto") == ("1", "champion")
    assert register(uri, info, mlflow_run.info.run_id, name, champion - 0.01, "auto") == ("2", "challenger")
    assert register(uri, info, mlflow_run.info.run_id, name, champion + 0.01, "never") == ("3", "challenger")
    assert register(uri, info, mlflow_run.info.run_id, name, champion - 0.05, "always") == ("4", "champion")
    assert register(uri, info, mlflow_run.info.run_id, name, champion + 0.001, "auto") == ("5", "champion")
    assert str(registry.get_model_version_by_alias(name, "champion").version) == "5"


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


@pytest.fixture(scope="module")
def trained_longer(tmp_path_factory, full_template, tiny_llm_dir):
    """A copy of the template project after a second `full` run whose LightGCN trains 40 epochs (the
    test environment's 4 leave item embeddings near their random start, where no text can place an
    item); the second run's version is champion."""
    with _template_copy(tmp_path_factory.mktemp("add_items_project"), full_template, tiny_llm_dir) as project:
        run(project, {"pretrain_gnn": {"lightgcn": {"max_epochs": 40, "patience": 40}},
                      "registry": {"champion": "always", "limits": {"max_k": 2000, "max_rows": 500}}})  # (whole-catalogue lists, 200 users a call)
        yield project


def test_add_items_registers_a_version_that_recommends_items_known_only_by_their_text(trained_longer):
    """`kedro run --pipelines=add_items`: bad tables stop with the row and field and register nothing;
    text twins of popular items (their title, genres and year under new ids) become a new version,
    served over real HTTP, where they are recommended, flagged, and the old items keep their scores."""
    import mlflow

    from glta_pipelines.core.errors import InputError

    project = trained_longer
    client, _ = runs(project)
    source = client.get_model_version_by_alias(MODEL, "champion")
    items = _latest(project, "data/02_intermediate/items.parquet")
    item_map = _latest(project, "data/03_primary/item_map.parquet")
    train = _latest(project, "data/05_model_input/train.parquet")
    table = project / "data/01_raw/new_items.csv"
    table.parent.mkdir(parents=True, exist_ok=True)
    before = len(client.search_model_versions(f"name='{MODEL}'"))
    bad = (("item_id,title\n9001,\n", r"row 1, field 'title': found an empty title"),
           ("item_id,title\n9001,A\n50,Copy\n", r"row 2, field 'item_id': found '50', already in the model's catalogue"),
           ("item_id,title\n9001,A\n9001,B\n", r"row 2, field 'item_id': found '9001', also in row 1"),
           ("", r"found an empty file"))
    for body, match in bad:
        table.write_text(body)
        with pytest.MonkeyPatch.context() as patch, pytest.raises(InputError, match=match):
            patch.chdir(project)
            run(project, pipeline="add_items")
    assert len(client.search_model_versions(f"name='{MODEL}'")) == before
    popular = train["item_idx"].value_counts().index[:5]
    originals = item_map.set_index("item_idx").loc[popular, "item_id"].astype(str).tolist()
    twins = items.set_index("item_id").loc[originals, ["title", "genres", "year"]].reset_index()
    twins["item_id"] = "new-" + twins["item_id"].astype(str)
    # controls: new items whose text says nothing a trained item's does
    controls = pd.DataFrame({"item_id": ["blank-1", "blank-2"], "title": ["Qzx", "Vrr kplt"]})
    pd.concat([twins, controls], ignore_index=True).to_csv(table, index=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        run(project, pipeline="add_items")
    version = client.get_model_version_by_alias(MODEL, "added-items")
    assert version.tags["added_items"] == "7" and version.tags["source_version"] == str(source.version)
    assert client.get_model_version_by_alias(MODEL, "champion").version == source.version  # champion untouched
    added = _latest(project, "data/07_model_output/added_items.parquet")
    assert list(added["item_id"]) == [*twins["item_id"], *controls["item_id"]]
    assert list(added["item_idx"]) == list(range(1682, 1689))
    assert (added["version"] == str(version.version)).all() and added["nearest_items"].map(len).eq(3).all()
    newest = runs(project)[1][0]
    assert newest.data.tags["registered_model"] == f"{MODEL}/{version.version}@added-items"
    assert newest.data.metrics["add_items.n_items"] == 1689
    # the old catalogue keeps its scores for a known user; the new items slot in between
    uri = f"sqlite:///{project / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    request = pd.DataFrame([{"user_id": 7, "k": 1600}])
    champion = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion").predict(request)
    grown = mlflow.pyfunc.load_model(f"models:/{MODEL}@added-items").predict(request)
    old = grown[~grown["added_by_text"]].merge(champion, on="item_id", suffixes=("", "_champion"))
    assert len(old) >= len(champion) - 7 and old["score"].to_numpy() == pytest.approx(old["score_champion"].to_numpy(), rel=1e-5)
    assert not champion["added_by_text"].any() and set(grown.loc[grown["added_by_text"], "item_id"]) == set(added["item_id"])
    # over REST: among 200 users, with the originals excluded, twins reach top-10 lists and the
    # controls do not (this small test model places the two Star Wars twins there; the `make run`
    # model all five: docs/serving.md)
    users = [str(u) for u in _latest(project, "data/03_primary/user_map.parquet")["user_id"].head(200)]
    port = free_port()
    with mlflow_command(["models", "serve", "-m", f"models:/{MODEL}@added-items", "--env-manager", "local",
                         "--host", "127.0.0.1", "--port", str(port)], f"http://127.0.0.1:{port}/ping",
                        project / "serve_added.log", env={"MLFLOW_TRACKING_URI": uri}, cwd=project):
        status, body = _post(port, {"dataframe_records": [{"user_id": u, "k": 10, "exclude": originals} for u in users]})
        history_status, history_body = _post(port, {"dataframe_records": [{"history": twins["item_id"].tolist(), "k": 5}]})
    assert status == 200
    answer = pd.DataFrame(body["predictions"])
    recommended = answer[answer["added_by_text"]]
    assert len(set(recommended["item_id"])) >= 2 and set(recommended["item_id"]) <= set(twins["item_id"]), recommended
    assert set(answer.loc[~answer["added_by_text"], "item_id"]).isdisjoint(added["item_id"])
    # a new user's history may name the new items: they are known ids, folded in like any other
    assert history_status == 200 and history_body["predictions"][0]["ignored_items"] == []


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
    from glta_pipelines.serving.bundle import COLUMNS, known_and_train, read_interactions, save_bundle

    user_map, item_map = build_id_map(interactions["user_id"], "user_idx"), build_id_map(interactions["item_id"], "item_idx")
    splits = split_per_user(encode_ids(interactions, user_map, item_map), SplitConfig(seed=1))
    weights = {"w": torch.zeros(1)}
    folder = save_bundle(tmp_path / "new", weights, weights, weights, user_map, item_map, items, **splits)
    stored = pd.read_parquet(folder / "interactions.parquet")
    assert len(stored) == sum(len(s) for s in splits.values()) and not (folder / "train.parquet").exists()
    known, train = known_and_train(read_interactions(folder))
    expected_known = pd.concat([splits[s][COLUMNS] for s in ("train", "valid", "test")], ignore_index=True)
    pd.testing.assert_frame_equal(known, expected_known)
    pd.testing.assert_frame_equal(train, splits["train"][COLUMNS].reset_index(drop=True))
    old = tmp_path / "old"
    old.mkdir()
    expected_known.to_parquet(old / "known.parquet", index=False)
    splits["train"][COLUMNS].to_parquet(old / "train.parquet", index=False)
    pd.testing.assert_frame_equal(known_and_train(read_interactions(old))[1], splits["train"][COLUMNS].reset_index(drop=True))


def _send(port: int, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _alive(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=30) as response:
        return response.status == 200


@pytest.fixture(scope="module")
def hardened_server(trained):
    """`kedro serve --model models:/glta-movielens-100k@champion` on a free port."""
    project, _ = trained
    port = free_port()
    with server_command("kedro", ["serve", "--env", "test", "--model", f"models:/{MODEL}@champion", "--port", str(port)],
                        f"http://127.0.0.1:{port}/ping", project / "kedro-serve.log",
                        env={"MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"}, cwd=project):
        yield port


def _hostile_requests(project: Path) -> list[tuple[str, bytes, str, int, str]]:
    """(what, body, content type, expected status, what the message must name)."""
    records = lambda rows: json.dumps({"dataframe_records": rows}).encode()  # noqa: E731
    deep = "[" * 5000 + "]" * 5000
    return [
        ("5,000 unknown ids in a history", records([{"history": [f"x{i}" for i in range(5000)], "k": 100}]),
         "application/json", 400, "field 'history'"),
        ("1,000 users in one call", records([{"user_id": 7, "k": 10}] * 1000), "application/json", 400, "max_rows"),
        ("a k of 400 digits", b'{"dataframe_records": [{"user_id": 7, "k": ' + b"9" * 400 + b"}]}",
         "application/json", 400, "field 'k'"),
        ("a k over the model's limit", records([{"user_id": 7, "k": 101}]), "application/json", 400, "max_k"),
        ("a 0.9 MB user_id", records([{"user_id": "u" * 900_000}]), "application/json", 400, "field 'user_id'"),
        ("a history nested 5,000 deep", b'{"dataframe_records": [{"history": ' + deep.encode() + b"}]}",
         "application/json", 400, "nested too deep"),
        ("a body that is not JSON", b'{"dataframe_records": [', "application/json", 400, "not JSON"),
        ("a body of another shape", b'{"rows": []}', "application/json", 400, "dataframe_records"),
        ("a malformed CSV", b'user_id,k\n7,"5\n', "text/csv", 400, "CSV"),
        ("a CSV with one bad k", b"user_id,k\n7,5\n8,ten\n", "text/csv", 400, "request 1, field 'k'"),
        ("a Parquet body", b"PAR1\x00\x00garbage", "application/vnd.apache.parquet", 415, "application/json"),
        ("a body over 1 MB", records([{"history": ["1"] * 300_000}]), "application/json", 413, "bytes"),
    ]


def test_kedro_serve_answers_hostile_requests_with_short_clean_errors(trained, hardened_server):
    project, _ = trained
    for what, body, content_type, status, named in _hostile_requests(project):
        found, answer = _send(hardened_server, body, content_type)
        text = answer.decode()
        assert found == status, (what, found, text[:300])
        message = json.loads(text)["message"]
        assert named in message, (what, message)
        assert "stack_trace" not in text and "Traceback" not in text and str(project) not in text, what
        assert len(answer) < 2000, (what, len(answer))
        assert _alive(hardened_server), what
    # valid calls in JSON (three formats) and CSV give the same answers
    for body, content_type in ((json.dumps({"dataframe_records": [{"user_id": 7, "k": 5}]}).encode(), "application/json"),
                               (json.dumps({"dataframe_split": {"columns": ["user_id", "k"], "data": [[7, 5]]}}).encode(),
                                "application/json"),
                               (json.dumps({"inputs": [{"user_id": "7", "k": 5}]}).encode(), "application/json"),
                               (b"user_id,k\n7,5\n", "text/csv; charset=utf-8")):
        status, answer = _send(hardened_server, body, content_type)
        assert status == 200, (content_type, answer[:300])
        assert [r["rank"] for r in json.loads(answer)["predictions"]] == [1, 2, 3, 4, 5]
    # a call at the limits stays small: unknown ids counted, only the first ten listed, on one row
    status, answer = _send(hardened_server, json.dumps({"dataframe_records": [
        {"history": [f"x{i}" for i in range(999)] + ["50"], "k": 100}]}).encode())
    rows = json.loads(answer)["predictions"]
    assert status == 200 and len(rows) == 100 and {r["ignored_count"] for r in rows} == {999}
    assert len(rows[0]["ignored_items"]) == 10 and all(r["ignored_items"] == [] for r in rows[1:])
    assert len(answer) < 100_000


def test_mlflow_models_serve_keeps_the_models_limits_and_hides_failures(trained, server):
    """`mlflow models serve` parses bodies itself (its answers to malformed bodies are its own); what
    reaches the model is bounded and answered without a traceback."""
    project, _ = trained
    for record, named in (({"user_id": 7, "k": 10 ** 30}, "field 'k'"), ({"user_id": "u" * 1_000_000}, "field 'user_id'"),
                          ({"history": [f"x{i}" for i in range(5000)]}, "max_history")):
        status, body = _post(server, {"dataframe_records": [record]})
        assert status == 400 and named in body["message"], body
        assert "stack_trace" not in body and str(project) not in json.dumps(body)
        assert len(json.dumps(body)) < 5000
    status, body = _post(server, {"dataframe_records": [{"user_id": 7, "k": 1}] * 101})
    assert status == 400 and "max_rows" in body["message"]
    assert _alive(server)


def test_a_registered_model_serves_from_another_folder_without_the_training_project(tmp_path, full_template,
                                                                                    tiny_llm_dir):
    """The model as another machine gets it: downloaded, the training project gone, served elsewhere;
    nothing in it names the training project, and nothing is written where it was."""
    import mlflow

    with _template_copy(tmp_path / "training", full_template, tiny_llm_dir) as project, pytest.MonkeyPatch.context() as patch:
        uri = f"sqlite:///{project / 'mlflow.db'}"
        # MLflow's global URIs are left alone (the URIs are arguments; the environment is restored):
        # other tests of this process, and the servers they start, must not inherit this copy's store
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("MLFLOW_REGISTRY_URI", uri)
        model = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{MODEL}@champion", tracking_uri=uri,
                                                         registry_uri=uri, dst_path=str(tmp_path / "elsewhere" / "model")))
    project.rename(tmp_path / "moved-away")
    for path in model.rglob("*"):  # no path of the training projects (this copy, or the template it came from)
        if path.is_file():
            content = path.read_bytes()
            if path.name == "MLmodel":  # MLflow's note of where the store kept it: not read when serving
                content = b"\n".join(line for line in content.splitlines() if not line.startswith(b"artifact_path:"))
            assert str(project).encode() not in content and str(full_template).encode() not in content, path
    port = free_port()
    cache = tmp_path / "user-cache"
    with server_command("mlflow", ["models", "serve", "-m", str(model), "--env-manager", "local", "--host",
                                   "127.0.0.1", "--port", str(port)], f"http://127.0.0.1:{port}/ping",
                        tmp_path / "serve.log", cwd=tmp_path / "elsewhere",
                        env={"XDG_CACHE_HOME": str(cache)}):
        status, body = _post(port, {"dataframe_records": [{"user_id": 7, "k": 3}]})
    assert status == 200 and len(body["predictions"]) == 3
    assert not project.exists()  # no LLM converted (or anything else written) into the old project path
