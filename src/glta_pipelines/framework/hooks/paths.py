"""Project paths: relative folder parameters resolve against the project root."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from glta_pipelines.core.llm.backbone import use_run_cache_dir

log = logging.getLogger(__name__)


class ProjectPathsHook:
    """Relative folder parameters resolve against the project root, as the catalog's paths and mlflow.db do;
    the run's ``llm.cache_dir`` is also where trained models loaded during the run find their LLM.

    Otherwise ``kedro run`` from a subfolder (or a session created from elsewhere) would convert the
    LLM again and keep GLLM checkpoints in another ``data/``.
    """

    PATHS = ("llm.cache_dir", "gllm_finetune.checkpoint_dir")

    def __init__(self) -> None:
        self._project_path = Path.cwd()

    @hook_impl
    def after_context_created(self, context) -> None:
        self._project_path = Path(context.project_path)

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        for name in pipeline.inputs():
            if name.startswith("params:"):
                key = name[len("params:"):]
                dataset = catalog[name]  # the dataset itself: the catalog would log each parameter's load
                value = dataset.load()
                resolved = self._resolved(key, value)
                if resolved != value:
                    dataset.save(resolved)
        # every trained model this run loads (evaluate, recommend, add_items) finds its LLM where
        # the run keeps it, whether or not the pipeline reads the llm parameters itself
        llm = catalog["params:llm"].load() if "params:llm" in catalog else None
        cache_dir = llm.get("cache_dir") if isinstance(llm, dict) else None
        use_run_cache_dir(self._absolute(cache_dir) if isinstance(cache_dir, str) else None)

    @hook_impl
    def after_pipeline_run(self) -> None:
        use_run_cache_dir(None)

    @hook_impl
    def on_pipeline_error(self) -> None:
        use_run_cache_dir(None)

    def _resolved(self, key: str, value: Any) -> Any:
        """``value`` of parameter ``key`` with the path parameters at or under it made absolute."""
        for path in self.PATHS:
            if path == key:
                value = self._absolute(value)
            elif path.startswith(f"{key}.") and isinstance(value, dict):
                field = path[len(key) + 1:]
                if "." not in field and field in value:
                    value = {**value, field: self._absolute(value[field])}
        return value

    def _absolute(self, value: Any) -> Any:
        return str(self._project_path / value) if isinstance(value, str) and not Path(value).is_absolute() else value
