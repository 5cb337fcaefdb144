"""Lineage: inputs of one generation, or a refusal naming the mismatch; every output records what it was built from."""

from __future__ import annotations

import logging
from typing import Any

from glta_pipelines.framework.lineage import LineagePlan
from glta_pipelines.framework.parameters import dataset_source
from glta_pipelines.framework.tracking import (
    log_dict,
)
from kedro.framework.hooks import hook_impl

log = logging.getLogger(__name__)


class LineageHook:
    """Refuses runs whose inputs mix generations; records each output's lineage beside it (``framework/lineage.py``)."""

    def __init__(self) -> None:
        self._source: str | None = None
        self.plan: LineagePlan | None = None

    @hook_impl
    def after_context_created(self, context) -> None:
        self._source = dataset_source(context.params.get("dataset", {}))

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        from kedro.framework.project import pipelines

        self.plan = LineagePlan(pipeline, catalog, pipelines["paper"], self._source)  # paper: full and more
        self.plan.check_source(self._source)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        if self.plan is not None:
            self.plan.record(dataset_name)

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        if self.plan is not None:
            self.plan.record_all()
            # which saved versions this run read, in the MLflow run (runs before the tracking hook closes it)
            log_dict({"inputs": self.plan.inputs}, "lineage/inputs.json")

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params, pipeline, catalog) -> None:
        if self.plan is not None:
            self.plan.record_all()
