import copy
import json

import pytest
import torch
from kedro.io import MemoryDataset
from kedro.io.core import DatasetError, Version
from safetensors import safe_open
from safetensors.torch import save_file

from glta_pipelines.core.artifacts import TensorArtifact
from glta_pipelines.core.errors import InputError
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


def test_an_fsspec_filesystem_keeps_versions_configs_and_the_staged_write():
    """memory:// (any fsspec URL): versions, the config in the metadata, no staging file left behind."""
    import fsspec

    root = "memory:///safetensors-test/weights.safetensors"
    artifact = TensorArtifact({"w": torch.arange(6.0).reshape(2, 3)}, {"kind": "test", "sizes": [2, 3]})
    first = SafetensorsDataset(filepath=root, version=Version(None, "2026-01-01T00.00.00.000Z"))
    assert first.atomic  # memory's rename is one step, as the local disk's
    first.save(artifact)
    SafetensorsDataset(filepath=root, version=Version(None, "2026-01-02T00.00.00.000Z")).save({"w": torch.zeros(1)})
    old = SafetensorsDataset(filepath=root, version=Version("2026-01-01T00.00.00.000Z", None)).load()
    assert torch.equal(old["w"], artifact["w"]) and old.config == {"kind": "test", "sizes": [2, 3]}
    assert torch.equal(SafetensorsDataset(filepath=root, version=Version(None, None)).load()["w"], torch.zeros(1))
    memory = fsspec.filesystem("memory")
    assert not [p for p in memory.find("/safetensors-test") if p.endswith(".tmp")]
    memory.pipe_file("/safetensors-test/broken.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(DatasetError) as error:  # Kedro wraps what a load raises
        SafetensorsDataset(filepath="memory:///safetensors-test/broken.safetensors").load()
    assert isinstance(error.value.__cause__, InputError)
    assert str(error.value.__cause__).startswith("file memory:///safetensors-test/broken.safetensors: found a corrupted")
    memory.rm("/safetensors-test", recursive=True)
