"""What a Kedro run adds around the pipelines: checks, lineage, tracking, commands.

Map of the package (the package root keeps Kedro's entry points: ``settings.py``,
``pipeline_registry.py``, ``cli.py``):

- ``hooks/``: one hook per concern, registered in ``settings.HOOKS`` (its ``__init__.py`` maps them).
- ``parameters.py``: the parameter schema (every key, its type, its allowed values), checked
  before any node; the seed parameters ``kedro seeds`` varies.
- ``lineage.py``: each versioned output's ``lineage.json`` and the refusal to mix generations.
- ``save_versions.py``: save versions two runs started at once never share.
- ``tracking.py``: the logging API of nodes and hooks (MLflow through an explicit run id).
- ``reports.py``: the method table and the run description shown in the MLflow UI.
- ``seeds.py``: ``kedro seeds``, one pipeline over several seeds, one verdict.
- ``child_runs.py``: the ``kedro run`` child processes of ``kedro seeds`` and ``kedro tune``.
- ``tune.py``: ``kedro tune``, an Optuna study as one MLflow parent run, a nested run per trial.
"""
