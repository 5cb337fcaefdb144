import copy
import json

import pytest
import torch
from kedro.io import MemoryDataset
from kedro.io.core import DatasetError, Version
from safetensors import safe_open
from safetensors.torch import save_file

from glta_pipelines.core.artifacts import TensorArtifact
from glta_pipelines.datasets import SafetensorsDataset


def test_round_trip_and_versions_stay_intact(tmp_path):
    path = str(tmp_path / "weights.safetensors")
    first = SafetensorsDataset(filepath=path, version=Version(None, "2026-01-01T00.00.00.000Z"))
    first.save({"w": torch.ones(2, 3)})
    second = SafetensorsDataset(filepath=path, version=Version(None, "2026-01-02T00.00.00.000Z"))
    second.save({"w": torch.zeros(2, 3)})
    latest = SafetensorsDataset(filepath=path, version=Version(None, None)).load()
    assert torch.equal(latest["w"], torch.zeros(2, 3))
    old = SafetensorsDataset(filepath=path, version=Version("2026-01-01T00.00.00.000Z", None)).load()
    assert torch.equal(old["w"], torch.ones(2, 3))
    assert not list(tmp_path.rglob("*.tmp"))


def test_refuses_anything_but_tensors_and_writes_nothing(tmp_path):
    dataset = SafetensorsDataset(filepath=str(tmp_path / "m.safetensors"))
    with pytest.raises(DatasetError, match=r"expected a dict of str -> torch.Tensor"):
        dataset.save(torch.nn.Linear(2, 2))
    assert not dataset.exists() and not list(tmp_path.iterdir())


def test_config_round_trips_through_the_file_metadata(tmp_path):
    config = {"kind": "glta", "graph": {"n_users": 3, "n_items": 2}, "lora": {"target_modules": ["q_proj"]}}
    dataset = SafetensorsDataset(filepath=str(tmp_path / "w.safetensors"))
    dataset.save(TensorArtifact({"w": torch.ones(2)}, config))
    loaded = dataset.load()
    assert isinstance(loaded, TensorArtifact) and loaded.config == config
    assert torch.equal(loaded["w"], torch.ones(2))
    with safe_open(str(tmp_path / "w.safetensors"), framework="pt") as handle:
        assert json.loads(handle.metadata()["config"]) == config


def test_old_file_without_metadata_loads_with_an_empty_config(tmp_path):
    path = tmp_path / "embeddings.safetensors"
    save_file({"user": torch.zeros(3, 2), "item": torch.ones(4, 2)}, str(path))  # as written before configs
    loaded = SafetensorsDataset(filepath=str(path)).load()
    assert loaded.config == {} and set(loaded) == {"user", "item"}


def test_a_plain_dict_is_saved_without_metadata(tmp_path):
    dataset = SafetensorsDataset(filepath=str(tmp_path / "e.safetensors"))
    dataset.save({"item": torch.ones(4, 2)})
    with safe_open(str(tmp_path / "e.safetensors"), framework="pt") as handle:
        assert not handle.metadata()
    assert dataset.load().config == {}


def test_config_that_is_not_json_is_refused_and_nothing_written(tmp_path):
    dataset = SafetensorsDataset(filepath=str(tmp_path / "w.safetensors"))
    with pytest.raises(DatasetError, match="not JSON-serialisable"):
        dataset.save(TensorArtifact({"w": torch.ones(1)}, {"dtype": torch.float32}))
    assert not list(tmp_path.iterdir())


def test_deepcopy_keeps_the_config():
    artifact = TensorArtifact({"w": torch.ones(2)}, {"kind": "glta", "graph": {"n_items": 2}})
    copied = copy.deepcopy(artifact)
    assert isinstance(copied, TensorArtifact) and copied.config == artifact.config
    assert copied.config is not artifact.config and torch.equal(copied["w"], artifact["w"])
    memory = MemoryDataset()  # deep-copies node outputs between nodes
    memory.save(artifact)
    assert memory.load().config == artifact.config
