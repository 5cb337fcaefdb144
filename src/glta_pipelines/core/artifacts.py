"""Self-describing weights: tensors plus the JSON config needed to rebuild what they belong to.

Like ``config.json`` beside Hugging Face weights, but in one file: the catalog's
``SafetensorsDataset`` writes :attr:`TensorArtifact.config` into the safetensors metadata and
reads it back, so a later stage can rebuild a model from the artifact alone instead of from
today's parameters (which may have changed since the weights were trained).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch


class TensorArtifact(dict[str, torch.Tensor]):
    """``dict[str, Tensor]`` with a JSON-serialisable :attr:`config` describing the tensors.

    A plain dict subclass, so it goes wherever a state dict goes (``load_state_dict``,
    ``copy.deepcopy`` in Kedro's ``MemoryDataset``, which keeps :attr:`config`).
    """

    def __init__(self, tensors: Mapping[str, torch.Tensor] | None = None, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(tensors or {})
        self.config: dict[str, Any] = dict(config or {})

    def __repr__(self) -> str:
        return f"TensorArtifact({len(self)} tensors, config keys {sorted(self.config)})"


def artifact_config(tensors: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The config of ``tensors``: empty for a plain dict (e.g. a file written before configs existed)."""
    return dict(getattr(tensors, "config", None) or {})


def json_ready(value: Any) -> Any:
    """``value`` as JSON reads it back (tuples become lists), so a config equals its loaded copy."""
    return json.loads(json.dumps(value, sort_keys=True))
