"""A versioned Kedro dataset for tensors (state_dicts, embeddings) stored as safetensors.

Weights are saved as plain tensors, never as a pickled module, so loading runs no code.
Saving writes to a temporary file in the same folder and renames it, so an interrupted save
never leaves a half-written file and earlier versions stay intact.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from kedro.io.core import AbstractVersionedDataset, DatasetError, Version
from safetensors.torch import load_file, save_file


class SafetensorsDataset(AbstractVersionedDataset[dict[str, torch.Tensor], dict[str, torch.Tensor]]):
    """``dict[str, torch.Tensor]`` <-> one ``.safetensors`` file on the local filesystem.

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

    def load(self) -> dict[str, torch.Tensor]:
        return load_file(str(self._get_load_path()))

    def save(self, data: dict[str, torch.Tensor]) -> None:
        if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
            raise DatasetError(
                f"{self._filepath}: found {type(data).__name__}; expected a dict of str -> torch.Tensor "
                "(e.g. model.state_dict())"
            )
        path = Path(str(self._get_save_path()))
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in data.items()}
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
        try:
            save_file(tensors, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def _exists(self) -> bool:
        try:
            return Path(str(self._get_load_path())).is_file()
        except DatasetError:
            return False

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "version": self._version}
