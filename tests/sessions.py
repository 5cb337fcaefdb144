"""Helpers for tests that run real Kedro sessions in a temporary project copy (fixtures
``project`` and ``tiny_llm`` are in conftest.py): run a pipeline, read the project's MLflow runs."""

from __future__ import annotations

import os
from pathlib import Path

from kedro.framework.session import KedroSession
from mlflow.tracking import MlflowClient

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"


def run(project: Path, runtime_params: dict | None = None, pipeline: str = "full", **options) -> None:
    """``kedro run --env test --pipelines=<pipeline> --params ...`` in-process; ``options`` as ``session.run``'s."""
    params = {"llm": {"model": os.environ["GLTA_TEST_LLM"]}, **(runtime_params or {})}
    with KedroSession.create(project_path=project, env="test", runtime_params=params) as session:
        session.run(pipeline_names=[pipeline], **options)


def runs(project: Path):
    """The project's MLflow client and its runs, newest first (none before the first run)."""
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("glta-pipelines")
    if experiment is None:
        return client, []
    return client, client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
