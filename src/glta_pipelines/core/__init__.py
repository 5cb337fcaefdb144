"""Model, data and math code of glta-pipelines.

Nothing in this package imports Kedro: it can be reused and tested on its own. The Kedro
pipelines in ``glta_pipelines.pipelines`` are thin wiring around these functions.
"""
