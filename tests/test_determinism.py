"""Two runs of `full` with the same parameters and seed give the same metrics and the same weights."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from tests.sessions import run, runs

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("tiny_llm")]


def _versions(project: Path, pattern: str) -> dict[str, list[Path]]:
    """Each versioned output matching ``pattern`` -> its saved versions, oldest first."""
    return {folder.name: sorted(p / folder.name for p in folder.iterdir())
            for folder in sorted(project.glob(pattern)) if folder.is_dir()}


def test_two_runs_of_full_are_identical(project_after_full):
    project = project_after_full  # the first run: the session's template run, copied
    run(project)
    _, found = runs(project)
    assert [r.info.status for r in found] == ["FINISHED", "FINISHED"]
    second, first = (r.data.metrics for r in found)
    quality = sorted(k for k in first if k.startswith(("valid.", "test.")))
    assert {k.split(".")[1] for k in quality} >= {"popularity", "lightgcn", "ease", "glta"}
    assert [second[k] for k in quality] == pytest.approx([first[k] for k in quality], abs=1e-6, rel=0)

    tables = _versions(project, "data/08_reporting/metrics.parquet")["metrics.parquet"]
    assert len(tables) == 2
    pd.testing.assert_frame_equal(pd.read_parquet(tables[0]), pd.read_parquet(tables[1]), check_exact=True)

    weights = _versions(project, "data/06_models/*.safetensors")
    assert len(weights) >= 6  # LightGCN, backbone, projector, GLLM: weights and embeddings
    for name, (old, new) in weights.items():
        a, b = load_file(str(old)), load_file(str(new))
        assert a.keys() == b.keys(), name
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}: {key} differs between two runs with the same seed"
