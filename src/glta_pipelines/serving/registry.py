"""Log the trained recommender into a run as an MLflow model, register it, and move its aliases.

The model is a pyfunc logged from code (:mod:`glta_pipelines.serving.mlflow_model`): MLflow
stores that file and the recommender's files, not a pickle, so loading needs no class from the
training process, and the LLM is loaded from its spec (never copied into the model).

Registration: ``glta-<dataset>`` (``registry.model_name``); the version gets the alias
``champion`` when its validation Recall@20 beats the current champion's (``registry.champion:
auto``), always (``always``) or never (``never``); a version that is not champion is ``challenger``.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from filelock import FileLock
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types.schema import AnyType, ColSpec, DataType, Schema

from glta_pipelines.core.errors import InputError
from glta_pipelines.core.glta.recommender import RequestLimits

log = logging.getLogger(__name__)

MODEL_CODE = Path(__file__).with_name("mlflow_model.py")
MODEL_NAME = "recommender"  # the logged model's name in its run
CHAMPION, CHALLENGER = "champion", "challenger"
SCORE_TAG = "valid_recall_at_20"
# Ids may be numbers or strings and lists travel as JSON arrays: the fields are checked by the
# model itself (``core.recommender``), which says which request and field is wrong.
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec(AnyType(), name, required=False) for name in ("user_id", "history", "k", "exclude")]),
    outputs=Schema([ColSpec(DataType.long, "request"), ColSpec(AnyType(), "user_id", required=False),
                    ColSpec(DataType.long, "rank"), ColSpec(DataType.string, "item_id"),
                    ColSpec(DataType.string, "title", required=False), ColSpec(DataType.double, "score"),
                    ColSpec(DataType.string, "fallback"), ColSpec(AnyType(), "ignored_items"),
                    ColSpec(DataType.long, "ignored_count"),
                    ColSpec(DataType.boolean, "added_by_text")]),
)


@dataclass(frozen=True)
class RegistryConfig:
    """``registry``: where a run's recommender is registered, and when it becomes ``champion``."""

    log_model: bool = True  # false: no model at all (sweeps, tests of other parts)
    register: bool = True  # false: log the model in the run only
    model_name: str | None = None  # null: glta-<dataset name>
    champion: str = "auto"  # auto: only if its valid Recall@20 beats the champion's; always; never
    limits: RequestLimits = field(default_factory=RequestLimits)  # what one call may ask of the served model

    def validate(self) -> None:
        if self.champion not in ("auto", "always", "never"):
            raise InputError("parameter registry.champion", repr(self.champion), "auto, always or never")
        self.limits.validate()
        if self.model_name is not None and not self.model_name.strip():
            raise InputError("parameter registry.model_name", repr(self.model_name), "a name, or null (glta-<dataset>)")

    def name_for(self, dataset: str) -> str:
        return self.model_name or f"glta-{dataset}"


def pip_requirements() -> list[str]:
    """The serving environment: this project's pinned stack (``--env-manager local`` uses the current one)."""
    import importlib.metadata as metadata

    names = ("torch", "transformers", "peft", "safetensors", "pandas", "pyarrow", "mlflow", "kedro", "gguf")
    found = []
    for name in names:
        try:
            found.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return found


def input_example(user_id: str, history: list[str]) -> pd.DataFrame:
    """A known user and a new user, as the REST payload's ``dataframe_records`` carry them."""
    return pd.DataFrame([{"user_id": user_id, "k": 10}, {"history": history, "k": 10}])


def log_recommender(tracking_uri: str, run_id: str, files: dict[str, Any], example: pd.DataFrame,
                    metadata: dict[str, Any]) -> mlflow.models.model.ModelInfo:
    """Log the recommender (from :func:`glta_pipelines.serving.bundle.save_bundle`'s arguments) into ``run_id``."""
    from glta_pipelines.serving.bundle import save_bundle

    with tempfile.TemporaryDirectory() as tmp:
        return log_bundle(tracking_uri, run_id, save_bundle(Path(tmp) / "recommender", **files), example, metadata)


def log_bundle(tracking_uri: str, run_id: str, folder: Path, example: pd.DataFrame,
               metadata: dict[str, Any]) -> mlflow.models.model.ModelInfo:
    """Log a bundle folder (:mod:`glta_pipelines.serving.bundle`) into ``run_id`` as the recommender model."""
    from mlflow.models import Model

    mlflow.set_tracking_uri(tracking_uri)
    # What mlflow.pyfunc.log_model does, with the run given by id: no fluent run is resumed or
    # ended, so a run joined from an orchestrator (MLFLOW_RUN_ID) stays open. The model is
    # created in the run's experiment first (without an active run MLflow would use the default one).
    experiment_id = mlflow.MlflowClient(tracking_uri).get_run(run_id).info.experiment_id
    model = mlflow.initialize_logged_model(name=MODEL_NAME, source_run_id=run_id, experiment_id=experiment_id)
    return Model.log(artifact_path=None, name=MODEL_NAME, flavor=mlflow.pyfunc, run_id=run_id, model_id=model.model_id,
                     python_model=str(MODEL_CODE),
                     artifacts={"recommender": str(folder)}, signature=SIGNATURE, input_example=example,
                     pip_requirements=pip_requirements(), metadata=metadata, flavor_name="pyfunc.ModelFromCode")


def register(tracking_uri: str, info: mlflow.models.model.ModelInfo, run_id: str, name: str, valid_recall: float,
             policy: str, description: str = "") -> tuple[str, str]:
    """Register the logged model as a new version of ``name``; returns (version, alias it got)."""
    version = register_version(tracking_uri, info, run_id, name, {SCORE_TAG: f"{valid_recall:.6f}"}, description)
    return version, promote_version(tracking_uri, name, version, valid_recall, policy)


def promote_version(tracking_uri: str, name: str, version: str, valid_recall: float, policy: str) -> str:
    """Give ``version`` its alias (``champion`` or ``challenger``, :func:`promote`); returns it.

    The comparison with the champion and the move of the alias happen under one lock, so two runs
    that finish together cannot both read the old champion and leave the worse one champion. The
    lock is beside a local sqlite store; for a remote tracking server it is per machine
    (runs on several machines that register at the same moment are not serialised).
    """
    client = _registry_client(tracking_uri)
    with _promotion_lock(tracking_uri):
        alias = CHAMPION if promote(client, name, valid_recall, policy) else CHALLENGER
        client.set_registered_model_alias(name, alias, version)
    return alias


def _promotion_lock(tracking_uri: str) -> FileLock:
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix):
        return FileLock(tracking_uri[len(prefix):] + ".registry.lock", timeout=600)
    digest = hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]
    return FileLock(Path(tempfile.gettempdir()) / f"glta-registry-{digest}.lock", timeout=600)


def register_version(tracking_uri: str, info: mlflow.models.model.ModelInfo, run_id: str, name: str,
                     tags: dict[str, str], description: str = "", alias: str | None = None) -> str:
    """A new version of ``name`` (created when missing) for the logged model, given ``alias`` if any."""
    client = _registry_client(tracking_uri)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=description)
    version = client.create_model_version(name, info.model_uri, run_id=run_id, model_id=info.model_id, tags=tags)
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def _registry_client(tracking_uri: str) -> mlflow.MlflowClient:
    # the registry resolves ``models:/<model id>`` through the global store: both URIs, so one set
    # earlier in the process (a notebook, another model) never sends a version to another store
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def promote(client: mlflow.MlflowClient, name: str, valid_recall: float, policy: str) -> bool:
    """Whether a version of validation Recall@20 ``valid_recall`` becomes ``champion`` under ``policy``."""
    if policy != "auto":
        return policy == "always"
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return True  # no champion yet
    current = champion.tags.get(SCORE_TAG)
    return current is None or valid_recall > float(current)


def model_uri(name: str, alias: str) -> str:
    return f"models:/{name}@{alias}"


def load_registered(tracking_uri: str, name: str, alias: str, where: str = "recommend"):
    """The pyfunc of ``name@alias``; a missing model or alias fails naming both and what exists."""
    _check_registered(tracking_uri, name, alias, where)
    return mlflow.pyfunc.load_model(model_uri(name, alias))


def download_registered(tracking_uri: str, name: str, alias: str, destination: Path, where: str) -> tuple[Path, str]:
    """(the bundle folder of ``name@alias`` downloaded under ``destination``, its version)."""
    version = _check_registered(tracking_uri, name, alias, where)
    root = mlflow.artifacts.download_artifacts(artifact_uri=model_uri(name, alias), dst_path=str(destination))
    return Path(root) / "artifacts" / "recommender", version


def _check_registered(tracking_uri: str, name: str, alias: str, where: str) -> str:
    """The version ``name@alias`` points at, or an error naming the parameters ``<where>.model_name``
    and ``<where>.alias`` with what exists; sets the global tracking and registry URIs."""
    client = _registry_client(tracking_uri)
    try:
        registered = client.get_registered_model(name)
    except MlflowException:
        names = [m.name for m in client.search_registered_models(max_results=50)]
        raise InputError(f"parameter {where}.model_name", repr(name),
                         f"a registered model in {tracking_uri} (found {names or 'none'}: run `make run` first)") from None
    if alias not in registered.aliases:
        raise InputError(f"parameter {where}.alias", repr(alias),
                         f"an alias of {name} (found {sorted(registered.aliases) or 'none'})")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return str(registered.aliases[alias])


@dataclass(frozen=True)
class RecommendConfig:
    """``recommend``: which registered model scores a cohort, and the default list length."""

    model_name: str | None = None  # null: glta-<dataset name>, as registered by `full`
    alias: str = CHAMPION
    k: int = 10  # for rows whose k is empty

    def validate(self) -> None:
        if self.k < 1:
            raise InputError("parameter recommend.k", self.k, "a positive integer")
        if not self.alias.strip():
            raise InputError("parameter recommend.alias", repr(self.alias), "an alias such as champion or challenger")
