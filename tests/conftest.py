"""Shared fixtures: a small synthetic interaction log with known structure."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("KEDRO_LOGGING_CONFIG", os.path.join(os.path.dirname(__file__), "logging.yml"))
if os.environ.get("PYTEST_XDIST_WORKER"):
    # one worker per core (`make test` runs `-n auto`): each worker and the processes it starts
    # (torchrun ranks, seed runs, servers) use one thread, so workers never fight over a core
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(min(2, torch.get_num_threads()))


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` run only where a GPU is visible; tests marked ``slow`` start first, so
    parallel workers do not end the session waiting on one long test."""
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="no CUDA device visible")
        for item in items:
            if "cuda" in item.keywords:
                item.add_marker(skip)
    items.sort(key=lambda item: "slow" not in item.keywords)  # stable: file order within each group


def shared_once(tmp_path_factory, name: str, build) -> Path:
    """``build(folder)`` once per test session, in a folder every parallel worker of the session
    shares (the first to arrive builds it under a file lock; the others wait and reuse it)."""
    import shutil

    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session's folder above each worker's own
    folder, built = base / f"shared-{name}", base / f"shared-{name}.built"
    with FileLock(f"{folder}.lock"):
        if not built.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            build(folder)
            built.touch()
    return folder


def make_interactions(n_users: int = 60, n_items: int = 40, per_user: int = 12, seed: int = 0) -> pd.DataFrame:
    """Ratings where users in two communities prefer two halves of the catalogue."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        pool = np.arange(n_items // 2) if u % 2 == 0 else np.arange(n_items // 2, n_items)
        for i in rng.choice(pool, size=per_user, replace=False):
            rows.append((f"u{u}", f"i{i}", float(rng.integers(1, 6)), int(1_000_000 + rng.integers(0, 10_000))))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def make_items(n_items: int = 40) -> pd.DataFrame:
    return pd.DataFrame({
        "item_id": pd.array([f"i{i}" for i in range(n_items)], dtype="string"),
        "title": pd.array([f"Item {i}" for i in range(n_items)], dtype="string"),
        "year": pd.array([1990 + i % 10 for i in range(n_items)], dtype="Int64"),
        "genres": pd.array(["Drama|Comedy" if i % 2 else "Action" for i in range(n_items)], dtype="string"),
        "description": pd.array([""] * n_items, dtype="string"),
        "text": pd.array([f"Item {i}" for i in range(n_items)], dtype="string"),
    })


@pytest.fixture
def interactions() -> pd.DataFrame:
    return make_interactions()


@pytest.fixture
def items() -> pd.DataFrame:
    return make_items()


@pytest.fixture
def project_copy(tmp_path, monkeypatch):
    """A throw-away copy of the Kedro project (:func:`tests.sessions.new_project`), the working directory."""
    from tests.sessions import new_project

    monkeypatch.chdir(new_project(tmp_path))
    return tmp_path


@pytest.fixture(scope="session")
def bundled_model_dir(tmp_path_factory):
    """The real bundled SmolLM2, converted once per test session through the product's cache path."""
    from glta_pipelines.core.llm.backbone import LLMConfig, resolve_model

    cache = shared_once(tmp_path_factory, "llm_cache", lambda folder: resolve_model(LLMConfig(cache_dir=str(folder))))
    return resolve_model(LLMConfig(cache_dir=str(cache)))


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory):
    """A tiny randomly initialised Llama with the bundled tokenizer, for fast tests only.

    It is never the product's model: the product loads the real bundled SmolLM2. Only the
    tokenizer is read from the bundled GGUF (seconds; converting the whole model takes a minute).
    """
    def build(folder: Path) -> None:
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        from glta_pipelines.core.llm.backbone import LLMConfig, bundled_gguf

        gguf = bundled_gguf(LLMConfig().model)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                             bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    return shared_once(tmp_path_factory, "tiny_llama", build)


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory):
    """An MLflow sqlite store with its schema and nothing else: creating the schema takes about 3 s a
    store, so projects start from a copy of this one."""
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("empty_store")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # MLflow's Default experiment points its artifacts here; the project never uses it
        MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    return folder / "mlflow.db"


@pytest.fixture
def project(project_copy, empty_store):
    """The project copy, bootstrapped for in-process Kedro sessions, with an empty MLflow store (a
    test of the store's creation deletes it)."""
    import shutil

    from kedro.framework.startup import bootstrap_project

    shutil.copy2(empty_store, project_copy / "mlflow.db")
    bootstrap_project(project_copy)
    return project_copy


@pytest.fixture(scope="session")
def full_template(tmp_path_factory, tiny_llm_dir):
    """One `kedro run --env test --pipelines=full` (tiny LLM) per test session; tests that begin after
    such a run start from a copy of it (``project_after_full``) instead of training again."""
    from kedro.framework.startup import bootstrap_project

    from tests.sessions import new_project, run

    def build(template: Path) -> None:
        new_project(template)
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(template)
            patch.setenv("GLTA_TEST_LLM", str(tiny_llm_dir))
            bootstrap_project(template)
            run(template)

    return shared_once(tmp_path_factory, "full_template", build)


@pytest.fixture
def project_after_full(project, full_template):
    """The project copy in the state one `full` run leaves (data, MLflow store), copied from the template."""
    from tests.sessions import clone_state

    clone_state(full_template, project)
    return project


@pytest.fixture
def tiny_llm(tiny_llm_dir, monkeypatch):
    """Sessions use the tiny test LLM (``GLTA_TEST_LLM``), never a download; modules that run
    sessions ask for it with ``pytestmark = pytest.mark.usefixtures("tiny_llm")``."""
    monkeypatch.setenv("GLTA_TEST_LLM", str(tiny_llm_dir))
