"""`kedro viz build` renders the project and shows every stage."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from glta_pipelines.pipeline_registry import STAGES


@pytest.mark.slow
def test_kedro_viz_build_names_every_stage(project_copy):
    tmp_path = project_copy
    kedro = Path(sys.executable).parent / "kedro"
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    result = subprocess.run([str(kedro), "viz", "build"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    main = json.loads((tmp_path / "build" / "api" / "main").read_text())
    names = {n.get("name") for n in main["nodes"]} | {n.get("id") for n in main["nodes"]}
    for stage in STAGES:
        assert stage in names, f"stage {stage} missing from the viz graph"
