"""The `cluster` environment: `full` end to end with its data on a non-local fsspec filesystem
(``memory://``) and its tracking on a real `mlflow server` started on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import fsspec
import pytest
from kedro.framework.session import KedroSession
from mlflow.tracking import MlflowClient

from glta_pipelines.serving.process import free_port, mlflow_command

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("tiny_llm")]
ROOT = Path(__file__).parents[1]


@pytest.fixture
def tracking_server(tmp_path):
    """`mlflow server` (sqlite backend, local artifact root) on a free port of 127.0.0.1."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with mlflow_command(["server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                         "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1",
                         "--port", str(port), "--workers", "1"], f"{url}/health", tmp_path / "server.log",
                        timeout=120):
        yield url


def test_cluster_env_runs_full_on_fsspec_data_against_a_tracking_server(project, tracking_server, monkeypatch):
    # the cluster environment with the test environment's short training
    shutil.copy(ROOT / "conf/test/parameters.yml", project / "conf/cluster/parameters.yml")
    root = "memory:///glta-cluster-test"  # memory has no host: the path starts after ://
    monkeypatch.setenv("GLTA_DATA_ROOT", root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    with KedroSession.create(project_path=project, env="cluster",
                             runtime_params={"llm": {"model": os.environ["GLTA_TEST_LLM"]},
                                             # the GLLM on two DDP processes (gloo): the node launches torchrun
                                             "data_parallel": {"processes": 2, "backend": "gloo"}}) as session:
        session.run(pipeline_names=["full"])
    memory = fsspec.filesystem("memory")
    weights = memory.glob("/glta-cluster-test/06_models/gllm_weights.safetensors/*/gllm_weights.safetensors")
    assert len(weights) == 1, memory.find("/")[:20]
    assert memory.exists(str(Path(weights[0]).parent / "lineage.json"))  # lineage beside it, on the same filesystem
    assert memory.glob("/glta-cluster-test/07_model_output/recommendations.parquet/*/*.parquet")
    local = [p for p in (project / "data").rglob("*") if p.is_file()] if (project / "data").exists() else []
    assert all("gllm_checkpoints" in str(p) for p in local), local  # only the training scratch stays local
    client = MlflowClient(tracking_uri=tracking_server, registry_uri=tracking_server)
    (run,) = client.search_runs([client.get_experiment_by_name("glta-pipelines").experiment_id])
    assert run.info.status == "FINISHED" and 0 <= run.data.metrics["test.glta.recall_at_20"] <= 1
    assert {a.path for a in client.list_artifacts(run.info.run_id, "evaluate")} >= {"evaluate/metrics.csv"}
    assert str(client.get_model_version_by_alias("glta-movielens-100k", "champion").version) == "1"
    # rank 0's epochs reached the node's MLflow run: 2 end-to-end and 4 head epochs (conf/test)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "gllm.loss")] == [1, 2, 3, 4, 5, 6]
    memory.rm("/glta-cluster-test", recursive=True)


def test_kedro_airflow_creates_one_task_per_stage_in_run_order(project_copy, tmp_path):
    """`kedro airflow create --group-by namespace`: a DAG whose tasks are the stages of `full`, wired in order."""
    import re

    from glta_pipelines.pipeline_registry import STAGES

    from click.testing import CliRunner
    from kedro.framework.cli.cli import KedroCLI
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_copy)
    result = CliRunner().invoke(KedroCLI(project_copy), ["airflow", "create", "--pipelines", "full", "--group-by",
                                                         "namespace", "--env", "cluster", "--target-dir",
                                                         str(tmp_path / "dags")])
    assert result.exit_code == 0, result.output[-3000:]
    dag = (tmp_path / "dags" / "glta_pipelines_cluster_full_dag.py").read_text()
    assert 'env = "cluster"' in dag and 'pipeline_name = "full"' in dag
    stages = [s.replace("_", "-") for s in STAGES]
    assert set(re.findall(r'@task\(task_id="([\w-]+)"\)', dag)) == set(stages)
    edges = re.findall(r'tasks\["([\w-]+)"\] >> tasks\["([\w-]+)"\]', dag)
    assert edges and all(stages.index(a) < stages.index(b) for a, b in edges)
    for stage in stages[1:]:  # every stage after ingest waits for the one it reads from
        assert any(b == stage for _, b in edges), stage
    compile(dag, "dag.py", "exec")  # valid Python (importing Airflow itself is not needed here)
