"""Helpers for tests that run real Kedro sessions in a temporary project copy (fixtures
``project`` and ``tiny_llm`` are in conftest.py): run a pipeline, read the project's MLflow runs."""

from __future__ import annotations

import os
from pathlib import Path

from kedro.framework.session import KedroSession
from mlflow.tracking import MlflowClient

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"
ROOT = Path(__file__).parents[1]


def new_project(path: Path) -> Path:
    """A throw-away copy of the Kedro project at ``path`` (conf and metadata; the package itself is
    installed): own data folder and own MLflow store, so a test never touches the developer's runs."""
    import shutil

    shutil.copytree(ROOT / "conf", path / "conf")
    shutil.copy(ROOT / "pyproject.toml", path / "pyproject.toml")
    (path / "src").mkdir()  # Kedro requires the source folder to exist inside the project
    return path


def run(project: Path, runtime_params: dict | None = None, pipeline: str = "full", **options) -> None:
    """``kedro run --env test --pipelines=<pipeline> --params ...`` in-process; ``options`` as ``session.run``'s."""
    params = {"llm": {"model": os.environ["GLTA_TEST_LLM"]}, **(runtime_params or {})}
    with KedroSession.create(project_path=project, env="test", runtime_params=params) as session:
        session.run(pipeline_names=[pipeline], **options)


def runs(project: Path):
    """The project's MLflow client (its store for runs and registry alike, whatever registry this
    process set globally) and its runs, newest first (none before the first run)."""
    uri = f"sqlite:///{project / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("glta-pipelines")
    if experiment is None:
        return client, []
    return client, client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])


def clone_state(source: Path, dest: Path) -> None:
    """Copy a project's run state (data, MLflow store and artifacts) into another project copy, with
    the store's absolute paths (artifact locations, model sources) re-pointed at ``dest``."""
    import shutil
    import sqlite3

    for entry in source.iterdir():
        if entry.name not in ("conf", "src", "pyproject.toml"):
            copy = shutil.copytree if entry.is_dir() else shutil.copy2
            copy(entry, dest / entry.name)
    with sqlite3.connect(dest / "mlflow.db") as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for column in db.execute(f"PRAGMA table_info('{table}')").fetchall():
                if "CHAR" in column[2].upper() or "TEXT" in column[2].upper():
                    db.execute(f'UPDATE "{table}" SET "{column[1]}" = replace("{column[1]}", ?, ?) '
                               f'WHERE "{column[1]}" LIKE ?', (str(source), str(dest), f"%{source}%"))
