"""Project settings: hooks, config loader patterns. See https://docs.kedro.org."""

import os
import warnings

from kedro.config import OmegaConfigLoader

from glta_pipelines.framework.hooks import (
    LineageHook,
    MlflowTrackingHook,
    ModelRegistryHook,
    NodeTimingHook,
    ParameterCheckHook,
    ProjectPathsHook,
)

# Warnings every run printed first, none of them actionable by a user of this project:
# - Kedro 1.7 itself calls OmegaConf's deprecated register_new_resolver (kedro/config/omegaconf_config.py).
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated", category=UserWarning)
# - Kedro warns once per process about dataset names with '.', also for a namespaced stage reading
#   another stage's output (evaluate reading graph.test): that is the namespacing Kedro recommends.
warnings.filterwarnings("ignore", message=r"One or more dataset names contain '\.' characters", category=UserWarning)
# - MLflow's hints on inferring a model signature, when logging or loading the recommender: its
#   signature is given (serving/registry.py), and the model checks each field itself.
warnings.filterwarnings("ignore", message=r".*(Add type hints to the `predict` method|Hint: Inferred schema contains "
                        r"integer column)", category=UserWarning)

# One hook per concern. pluggy calls the last registered first: parameters are checked, then
# lineage, before the tracking hook opens an MLflow run (a refused run leaves none), and the
# timing hook logs the pipeline's total, and the registry hook logs the model, before the tracking
# hook closes the run.
HOOKS = (MlflowTrackingHook(), ModelRegistryHook(), NodeTimingHook(), LineageHook(), ProjectPathsHook(),
         ParameterCheckHook())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    # ${env:NAME,default}: environment variables in any config (conf/cluster: data root, tracking server)
    "custom_resolvers": {"env": lambda name, default=None: os.environ.get(name, default)},
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {"mlflow": ["mlflow*", "mlflow*/**"], "globals": ["globals*", "globals*/**"],
                        "tune": ["tune*", "tune*/**"]},
    # An environment (local, test) overrides single nested keys instead of whole stage blocks.
    "merge_strategy": {"parameters": "soft", "mlflow": "soft", "tune": "soft"},
}
