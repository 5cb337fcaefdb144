"""Node timing: every node's wall time and the whole run's, as MLflow metrics."""

from __future__ import annotations

import logging
import time
from typing import Any

from glta_pipelines.framework.tracking import (
    log_metrics,
)
from kedro.framework.hooks import hook_impl

log = logging.getLogger(__name__)


class NodeTimingHook:
    """Wall time of every node as MLflow metrics ``time.<node>`` (seconds), and ``time.pipeline``.

    Registered after :class:`MlflowTrackingHook`: pluggy calls the later hook first, so the
    pipeline's total is logged before the tracking hook closes the run.
    """

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self._pipeline_start = 0.0
        self.seconds: dict[str, float] = {}

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        self._pipeline_start, self.seconds = time.perf_counter(), {}

    @hook_impl
    def before_node_run(self, node, catalog, inputs, is_async, run_id) -> None:
        self._started[node.name] = time.perf_counter()

    @hook_impl
    def after_node_run(self, node, catalog, inputs, outputs, is_async, run_id) -> None:
        seconds = time.perf_counter() - self._started.pop(node.name, time.perf_counter())
        self.seconds[node.name] = seconds
        log_metrics({f"time.{node.name}": seconds})

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        self.seconds["pipeline"] = time.perf_counter() - self._pipeline_start
        log_metrics({"time.pipeline": self.seconds["pipeline"]})
