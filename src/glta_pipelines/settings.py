"""Project settings: hooks, config loader patterns. See https://docs.kedro.org."""

import warnings

from kedro.config import OmegaConfigLoader

from glta_pipelines.hooks import LineageHook, MlflowTrackingHook, NodeTimingHook, ParameterCheckHook, ProjectPathsHook

# Warnings every run printed first, none of them actionable by a user of this project:
# - Kedro 1.7 itself calls OmegaConf's deprecated register_new_resolver (kedro/config/omegaconf_config.py).
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated", category=UserWarning)
# - Kedro warns once per process about dataset names with '.', also for a namespaced stage reading
#   another stage's output (evaluate reading graph.test): that is the namespacing Kedro recommends.
warnings.filterwarnings("ignore", message=r"One or more dataset names contain '\.' characters", category=UserWarning)

# One hook per concern. pluggy calls the last registered first: parameters are checked, then
# lineage, before the tracking hook opens an MLflow run (a refused run leaves none), and the
# timing hook logs the pipeline's total before the tracking hook closes the run.
HOOKS = (MlflowTrackingHook(), NodeTimingHook(), LineageHook(), ProjectPathsHook(), ParameterCheckHook())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {"mlflow": ["mlflow*", "mlflow*/**"]},
    # An environment (local, test) overrides single nested keys instead of whole stage blocks.
    "merge_strategy": {"parameters": "soft", "mlflow": "soft"},
}
