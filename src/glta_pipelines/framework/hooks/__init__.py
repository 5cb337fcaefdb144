"""Project hooks, one per concern (registered in order in ``settings.HOOKS``).

- ``parameter_check.py``: :class:`ParameterCheckHook`, the whole parameter tree is checked before
  anything runs.
- ``lineage.py``: :class:`LineageHook`, inputs of one generation, or a refusal naming the
  mismatch; every output records what it was built from.
- ``paths.py``: :class:`ProjectPathsHook`, folder parameters resolve against the project root.
- ``tracking.py``: :class:`MlflowTrackingHook`, every ``kedro run`` is one MLflow run
  (``conf/<env>/mlflow.yml``), logged through its run id so any runner's threads and processes log
  into it; a failing run is FAILED, an interrupted one KILLED.
- ``timing.py``: :class:`NodeTimingHook`, every node's wall time.
- ``registry.py``: :class:`ModelRegistryHook`, a run that trained and evaluated GLTA logs the
  recommender as an MLflow model and registers it (``serving/registry.py``).
"""

from glta_pipelines.framework.hooks.lineage import LineageHook
from glta_pipelines.framework.hooks.parameter_check import ParameterCheckHook
from glta_pipelines.framework.hooks.paths import ProjectPathsHook
from glta_pipelines.framework.hooks.registry import ModelRegistryHook
from glta_pipelines.framework.hooks.timing import NodeTimingHook
from glta_pipelines.framework.hooks.tracking import MlflowTrackingHook

__all__ = ["LineageHook", "MlflowTrackingHook", "ModelRegistryHook", "NodeTimingHook", "ParameterCheckHook",
           "ProjectPathsHook"]
