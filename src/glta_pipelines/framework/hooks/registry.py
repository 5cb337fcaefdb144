"""Model registry: a run that trained and evaluated GLTA logs and registers the recommender."""

from __future__ import annotations

import logging
from typing import Any

from glta_pipelines.core.config import config_from_params
from glta_pipelines.framework.tracking import (
    METRICS_TABLE,
    client,
    current_run,
)
from kedro.framework.hooks import hook_impl

SCORE_KEY = "valid_recall_at_20"

log = logging.getLogger(__name__)


class ModelRegistryHook:
    """A run that trained GLTA and evaluated it logs the recommender as an MLflow model, registers it
    as ``glta-<dataset>`` and gives the version the alias ``champion`` or ``challenger``
    (parameters ``registry``; ``serving/registry.py``). Runs without GLTA's weights and metrics log none.

    Registered after :class:`MlflowTrackingHook`, so pluggy calls it first at the end of a run,
    while the run is still open.
    """

    NEEDED = {"glta_weights": "gllm_finetune.weights", "backbone_embeddings": "pretrain_gnn.backbone_embeddings",
              "lightgcn_embeddings": "pretrain_gnn.embeddings", "user_map": "graph.user_map",
              "item_map": "graph.item_map", "items": "ingest.items", "train": "graph.train", "valid": "graph.valid",
              "test": "graph.test"}

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}
        self._seen: dict[str, Any] = {}

    @hook_impl
    def after_context_created(self, context) -> None:
        self._params = context.params

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        self._seen = {}

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        if dataset_name in self.NEEDED.values() or dataset_name == METRICS_TABLE:
            self._seen[dataset_name] = data

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str, data: Any, node) -> None:
        if dataset_name in self.NEEDED.values():
            self._seen.setdefault(dataset_name, data)

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        run = current_run()
        # only runs that train GLTA (full, glta, gllm), not `evaluate` alone on the same weights
        if run is None or "gllm_finetune.weights" not in pipeline.all_outputs():
            return
        try:
            self._log_and_register(run, catalog)
        except Exception as error:  # the run's outputs stand: say so, keep the run's own closing intact
            log.error("The GLTA recommender was not logged or registered: %s: %s", type(error).__name__, error)
            client(run["tracking_uri"]).set_tag(run["run_id"], "registry_error", f"{type(error).__name__}: {error}"[:5000])

    def _log_and_register(self, run: dict[str, Any], catalog) -> None:
        # under ParallelRunner the outputs were saved in worker processes: read this run's versions back
        metrics = self._seen.get(METRICS_TABLE)
        if metrics is None and METRICS_TABLE in catalog:
            metrics = catalog[METRICS_TABLE].load()
        if metrics is None:
            return
        valid = metrics[(metrics["split"] == "valid") & (metrics["method"] == "glta") & (metrics["metric"] == "recall")]
        if valid.empty:
            return
        valid_recall = float(valid.loc[valid["k"] == 20, "value"].iloc[0] if (valid["k"] == 20).any()
                             else valid.sort_values("k")["value"].iloc[-1])
        from glta_pipelines.serving.registry import RegistryConfig, input_example, log_recommender, register

        config = config_from_params(RegistryConfig, self._params.get("registry") or {}, "registry")
        if not config.log_model:
            return
        files = {key: self._seen[name] if name in self._seen else catalog[name].load()
                 for key, name in self.NEEDED.items()}
        first_user = str(files["user_map"].sort_values("user_idx")["user_id"].iloc[0])
        example_history = files["item_map"].sort_values("item_idx")["item_id"].astype(str).head(3).tolist()
        dataset = self._params.get("dataset", {}).get("name", "unknown")
        info = log_recommender(run["tracking_uri"], run["run_id"], {**files, "limits": config.limits},
                               input_example(first_user, example_history),
                               {"dataset": dataset, SCORE_KEY: valid_recall})
        summary = f"logged model {info.model_uri}"
        if config.register:
            name = config.name_for(dataset)
            version, alias = register(run["tracking_uri"], info, run["run_id"], name, valid_recall, config.champion,
                                      description=f"GLTA recommender trained on {dataset} (glta-pipelines)")
            summary = f"registered as {name} version {version} ({alias})"
            client(run["tracking_uri"]).set_tag(run["run_id"], "registered_model", f"{name}/{version}@{alias}")
        log.info("GLTA recommender %s; valid Recall@20 %.4f", summary, valid_recall)
