"""Atomic file writes: a crash mid-write leaves the previous file intact, never a half-written one; and
how a file on any fsspec filesystem is named to a user."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _process_umask() -> int:
    mask = os.umask(0o022)  # read once, at import: os.umask can only be read by setting it
    os.umask(mask)
    return mask


UMASK = _process_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it replaces ``path`` in one rename.

    The file gets the permissions of any new file (0666 less the umask), not the 0600 that
    ``mkstemp`` gives, so outputs are as readable as the Parquet files beside them.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def user_url(protocol: str, path: str) -> str:
    """``path`` on fsspec filesystem ``protocol`` as a user writes it: with its protocol (``s3://...``,
    ``memory://...``), except on the local disk."""
    return path if protocol == "file" else f"{protocol}://{path}"
