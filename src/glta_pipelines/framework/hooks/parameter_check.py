"""Parameters: the whole tree is checked before anything runs or is written."""

from __future__ import annotations

import logging
from typing import Any

from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.llm.text_encoder import TextEncoderConfig, check_available
from glta_pipelines.framework.parameters import HOOK_PARAMETERS, validate_parameters
from glta_pipelines.framework.tracking import (
    flatten,
)
from kedro.framework.hooks import hook_impl

log = logging.getLogger(__name__)


class ParameterCheckHook:
    """Validates the whole parameter tree before anything runs or is written (``framework/parameters.py``)."""

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}

    @hook_impl
    def after_context_created(self, context) -> None:
        self._params = context.params

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        validate_parameters(self._params)
        if "params:baselines.text_encoder" in pipeline.inputs():  # a text encoder that is not installed
            check_available(config_from_params(TextEncoderConfig, self._params["baselines"]["text_encoder"],
                                               "baselines.text_encoder"))
        read = [name[len("params:"):] for name in pipeline.inputs() if name.startswith("params:")] + list(HOOK_PARAMETERS)
        for key in flatten(run_params.get("runtime_params") or {}):
            if not any(key == r or key.startswith(f"{r}.") or r.startswith(f"{key}.") for r in read):
                log.warning("--params %s has no effect: no node of this run reads it (it belongs to a stage "
                            "that does not run; its inputs were built with the value of their own run)", key)
