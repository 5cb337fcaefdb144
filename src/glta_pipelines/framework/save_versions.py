"""Save versions that two runs started at once never share.

Kedro names a run's versions after the millisecond its session is created; ``kedro run`` and
``kedro seeds`` draw it here instead, under a per-user, per-machine file lock.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock
from kedro.io.core import generate_timestamp

VERSION_LOCK = Path(tempfile.gettempdir()) / f"glta-pipelines-{getattr(os, 'getuid', lambda: 0)()}.versions.lock"


def distinct_save_version() -> str:
    """A Kedro save version (the millisecond it was drawn) that no other process of this user on this
    machine draws: the lock is held until the clock has moved past it."""
    with FileLock(VERSION_LOCK, timeout=60):
        version = generate_timestamp()
        while generate_timestamp() == version:
            time.sleep(0.0002)
    return version


@contextlib.contextmanager
def distinct_save_versions() -> Iterator[None]:
    """Sessions created inside this block get distinct save versions.

    Kedro names a run's versions after the millisecond its session is created; two runs started in the
    same millisecond (a script's ``&``, an orchestrator's parallel tasks) would write one version folder,
    and the second run's first save would fail with "must not exist if versioning is enabled". Runs on
    different machines that share a data root are not covered: their clocks share no lock.
    """
    import kedro.framework.session.session as kedro_session

    kedro_default = kedro_session.generate_timestamp
    kedro_session.generate_timestamp = distinct_save_version
    try:
        yield
    finally:
        kedro_session.generate_timestamp = kedro_default
