"""A versioned Kedro dataset for tensors (state_dicts, embeddings) stored as safetensors.

Weights are saved as plain tensors, never as a pickled module, so loading runs no code.
A :class:`~glta_pipelines.core.artifacts.TensorArtifact`'s ``config`` is stored as JSON in the
file's metadata (key ``config``) and comes back on load, so weights describe themselves.
Saving writes to a temporary file in the same folder and renames it, so an interrupted save
never leaves a half-written file and earlier versions stay intact.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from kedro.io.core import AbstractVersionedDataset, DatasetError, Version
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from glta_pipelines.core.artifacts import TensorArtifact, artifact_config
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.files import atomic_path

CONFIG_KEY = "config"


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
    ) -> None:
        self.metadata = metadata
        super().__init__(filepath=PurePosixPath(Path(filepath).as_posix()), version=version)

    def load(self) -> TensorArtifact:
        path = str(self._get_load_path())
        try:
            with safe_open(path, framework="pt") as handle:
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}
                stored = (handle.metadata() or {}).get(CONFIG_KEY)
        except SafetensorError as error:  # truncated or overwritten: say which version and what to do
            raise InputError(
                f"file {path}", f"a corrupted safetensors file ({error})",
                "a complete file: re-run the stage that writes it, or load an intact version with "
                f"--load-versions=<dataset>:<version> (versions are the folders in {Path(path).parent.parent})",
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
        with atomic_path(str(self._get_save_path())) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)

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
            return Path(str(self._get_load_path())).is_file()
        except DatasetError:
            return False

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "version": self._version}
