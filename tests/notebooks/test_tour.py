"""The tour notebook runs top to bottom on a finished run, as a user opens it after `make run`."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

TOUR = Path(__file__).resolve().parents[2] / "notebooks" / "tour.ipynb"

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("tiny_llm")]


def test_the_tour_runs_on_a_finished_run_and_asks_the_champion(project_after_full, monkeypatch):
    monkeypatch.setenv("GLTA_PROJECT", str(project_after_full))
    monkeypatch.setenv("KEDRO_ENV", "test")
    notebook = nbformat.read(TOUR, as_version=4)
    NotebookClient(notebook, kernel_name="python3", timeout=300,
                   resources={"metadata": {"path": str(project_after_full)}}).execute()

    printed = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.get("outputs", []) if output.get("output_type") == "stream")
    assert "recommendations for 2 requests" in printed
    assert "dataset " in printed
    images = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
              if "image/png" in output.get("data", {})]
    assert len(images) == 2  # the metrics chart and the breakdown chart
