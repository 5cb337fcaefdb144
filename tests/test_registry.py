"""The registry's champion choice on a real MLflow store: two runs that register at the same moment
leave the better-validating version champion."""

from __future__ import annotations

import multiprocessing
import time

import mlflow

from glta_pipelines.serving import registry

NAME = "glta-race"


def _register_slowly(uri: str, version: str, score: float, pause: float, start: float) -> None:
    """Promote ``version`` as a run would, with a store that answers slowly between reading the
    champion and moving the alias (where an unguarded compare-and-set loses the race)."""
    compare = registry.promote

    def slow_promote(*args, **kwargs):
        decision = compare(*args, **kwargs)
        time.sleep(pause)
        return decision

    registry.promote = slow_promote
    time.sleep(max(0.0, start - time.time()))
    registry.promote_version(uri, NAME, version, score, "auto")


def test_two_registrations_at_once_leave_the_better_one_champion(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(NAME)
    source = tmp_path / "model"
    source.mkdir()
    versions = {}
    for score in (0.20, 0.30, 0.35):  # the champion of an earlier run, then two runs finishing together
        version = client.create_model_version(NAME, str(source), tags={registry.SCORE_TAG: f"{score:.6f}"}).version
        versions[score] = str(version)
    client.set_registered_model_alias(NAME, registry.CHAMPION, versions[0.20])
    start = time.time() + 5  # both past their imports
    context = multiprocessing.get_context("spawn")
    # the better run decides fast, the worse one slowly: unguarded, the worse would move the alias last
    workers = [context.Process(target=_register_slowly, args=(uri, versions[0.35], 0.35, 0.2, start)),
               context.Process(target=_register_slowly, args=(uri, versions[0.30], 0.30, 2.0, start))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    champion = client.get_model_version_by_alias(NAME, registry.CHAMPION)
    assert str(champion.version) == versions[0.35]
