import pytest
import torch
from kedro.io.core import DatasetError, Version

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
