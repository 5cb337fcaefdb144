"""Project settings: hooks, config loader patterns. See https://docs.kedro.org."""

from kedro.config import OmegaConfigLoader

from glta_pipelines.hooks import MlflowTrackingHook, NodeTimingHook

# One hook per concern; NodeTimingHook after the tracking hook (see its docstring).
HOOKS = (MlflowTrackingHook(), NodeTimingHook())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {"mlflow": ["mlflow*", "mlflow*/**"]},
    # An environment (local, test) overrides single nested keys instead of whole stage blocks.
    "merge_strategy": {"parameters": "soft", "mlflow": "soft"},
}
