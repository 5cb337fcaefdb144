"""A versioned Kedro dataset for tensors (state_dicts, embeddings) stored as safetensors.

Weights are saved as plain tensors, never as a pickled module, so loading runs no code.
A :class:`~glta_pipelines.core.artifacts.TensorArtifact`'s ``config`` is stored as JSON in the
file's metadata (key ``config``) and comes back on load, so weights describe themselves.
Saving writes to a temporary file in the same folder and renames it, so an interrupted save
never leaves a half-written file and earlier versions stay intact.

Paths may name any fsspec filesystem (``s3://``, ``gs://``, ``abfs://``, ``memory://``, ...). The
local disk and ``memory://`` keep the atomic write (a temporary file, then a rename); object stores
write an object in one PUT (a reader never sees half an object, but their "rename" is a copy), so
there the write is not staged: :attr:`SafetensorsDataset.atomic` says which applies.
"""

from __future__ import annotations

import json
import uuid
from pathlib import PurePosixPath
from typing import Any

import fsspec
import torch
from kedro.io.core import AbstractVersionedDataset, DatasetError, Version, get_filepath_str, get_protocol_and_path
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes
from safetensors.torch import save_file

from glta_pipelines.core.artifacts import TensorArtifact, artifact_config
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.files import atomic_path, user_url

CONFIG_KEY = "config"
RENAMING = ("file", "memory")  # filesystems whose rename is one atomic step


class SafetensorsDataset(AbstractVersionedDataset[dict[str, torch.Tensor], TensorArtifact]):
    """``dict[str, torch.Tensor]`` (or a :class:`TensorArtifact`) <-> one ``.safetensors`` file.

    Loading always returns a :class:`TensorArtifact`; its ``config`` is empty for a file saved
    without one (plain embeddings, or weights written before configs were stored).

    Example catalog entry::

        pretrain_gnn.model_weights:
          type: glta_pipelines.datasets.SafetensorsDataset
          filepath: data/06_models/lightgcn_weights.safetensors
          versioned: true
    """

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
    ) -> None:
        self.metadata = metadata
        protocol, path = get_protocol_and_path(filepath, version)
        self._protocol = protocol
        self._fs = fsspec.filesystem(protocol, **(fs_args or {}))
        super().__init__(filepath=PurePosixPath(path), version=version,
                         exists_function=self._fs.exists, glob_function=self._fs.glob)

    @property
    def atomic(self) -> bool:
        """Whether a save is staged and renamed into place (local disk, memory) or written in one go."""
        return self._protocol in RENAMING

    def _full(self, path: PurePosixPath) -> str:
        return get_filepath_str(path, self._protocol)

    def load(self) -> TensorArtifact:
        path = self._full(self._get_load_path())
        try:
            if self._protocol == "file":
                with safe_open(path, framework="pt") as handle:
                    tensors = {key: handle.get_tensor(key) for key in handle.keys()}
                    stored = (handle.metadata() or {}).get(CONFIG_KEY)
            else:
                with self._fs.open(path, "rb") as handle:
                    raw = handle.read()
                tensors, stored = load_bytes(raw), _metadata(raw).get(CONFIG_KEY)
        except (SafetensorError, ValueError) as error:  # truncated or overwritten: say which version and what to do
            raise InputError(
                f"file {user_url(self._protocol, path)}", f"a corrupted safetensors file ({error})",
                "a complete file: re-run the stage that writes it, or load an intact version with "
                f"--load-versions=<dataset>:<version> (versions are the folders in "
                f"{user_url(self._protocol, str(PurePosixPath(path).parent.parent))})",
            ) from None
        try:
            config = json.loads(stored) if stored is not None else {}
        except json.JSONDecodeError as error:
            raise DatasetError(f"{path}: the metadata '{CONFIG_KEY}' is not valid JSON ({error})") from None
        return TensorArtifact(tensors, config)

    def save(self, data: dict[str, torch.Tensor]) -> None:
        if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
            raise DatasetError(
                f"{self._filepath}: found {type(data).__name__}; expected a dict of str -> torch.Tensor "
                "(e.g. model.state_dict())"
            )
        metadata = self._metadata_of(data)
        tensors = {k: v.detach().cpu().contiguous() for k, v in data.items()}
        path = self._full(self._get_save_path())
        if self._protocol == "file":
            with atomic_path(path) as tmp:
                save_file(tensors, str(tmp), metadata=metadata)
            return
        raw = save_bytes(tensors, metadata=metadata)
        self._fs.makedirs(str(PurePosixPath(path).parent), exist_ok=True)
        if not self.atomic:
            with self._fs.open(path, "wb") as handle:  # one PUT: the object appears whole or not at all
                handle.write(raw)
            return
        staging = f"{PurePosixPath(path).parent}/.{PurePosixPath(path).name}.{uuid.uuid4().hex}.tmp"
        try:
            with self._fs.open(staging, "wb") as handle:
                handle.write(raw)
            self._fs.mv(staging, path)
        finally:
            if self._fs.exists(staging):
                self._fs.rm(staging)

    def _metadata_of(self, data: dict[str, torch.Tensor]) -> dict[str, str] | None:
        """The safetensors metadata holding ``data.config`` as JSON; None for a plain dict."""
        config = artifact_config(data)
        if not config:
            return None
        try:
            return {CONFIG_KEY: json.dumps(config, sort_keys=True)}
        except TypeError as error:
            raise DatasetError(f"{self._filepath}: found a config that is not JSON-serialisable ({error}); "
                               "expected plain dicts, lists, strings and numbers") from None

    def _exists(self) -> bool:
        try:
            return self._fs.isfile(self._full(self._get_load_path()))
        except DatasetError:
            return False

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol, "version": self._version}


def _metadata(raw: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file's bytes (its JSON header)."""
    size = int.from_bytes(raw[:8], "little")
    if size <= 0 or size > len(raw) - 8:
        raise ValueError(f"a header of {size} bytes in a file of {len(raw)}")
    return json.loads(raw[8:8 + size]).get("__metadata__") or {}
