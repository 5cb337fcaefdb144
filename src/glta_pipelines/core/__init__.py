"""The Kedro-free library of glta-pipelines: models, data and math.

Nothing in this package imports Kedro, MLflow or :mod:`glta_pipelines.framework` (a test checks
it): it can be reused and tested on its own. The Kedro pipelines in ``glta_pipelines.pipelines``
are thin wiring around these functions.

Map of the package (each sub-package's ``__init__.py`` maps it in turn):

- ``data/``: raw files to the graph: dataset adapters (``data/sources/``), filtering and splits.
- ``models/``: one recommender per file with its defaults, and ``models/registry.py``, the one
  list of methods.
- ``training/``: the one training loop, the BPR baselines' trainer, data parallelism.
- ``evaluation/``: the full-ranking evaluator, breakdowns, the seed summary, plots.
- ``llm/``: the frozen LLM, prompts with soft tokens, text encoders.
- ``glta/``: graph-language token alignment (projector, alignment, GLLM, scoring, recommender).

Foundation, used by all of the above:

- ``errors.py``: :class:`InputError`, the one error type for bad input.
- ``config.py``: typed configs from parameter dicts, with errors that name the parameter.
- ``devices.py``: the one device policy (``auto`` = CUDA when present).
- ``reproducibility.py``: deterministic kernels for bit-reproducible training.
- ``files.py``: atomic writes; ``artifacts.py``: self-describing weights.
"""
