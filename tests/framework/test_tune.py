"""``kedro tune``: the search space is checked like any parameter, and a real study on fixture data
(one parent run, a nested run per trial, a summary that reproduces the best trial, resumption)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from glta_pipelines.core.errors import InputError
from glta_pipelines.framework.tune import StudyConfig, _within, check_space, nested


@pytest.mark.parametrize("space, message", [
    ({"pretrain_gnn.lightgcn.learnig_rate": {"low": 0.1, "high": 1}},
     "'pretrain_gnn.lightgcn.learnig_rate', which is not a parameter; expected a known key: did you mean "
     "pretrain_gnn.lightgcn.learning_rate?"),
    ({"pretrain_gnn.lightgcn": {"low": 1, "high": 2}}, "a single parameter (pretrain_gnn.lightgcn is a section)"),
    ({"pretrain_gnn.lightgcn.learning_rate": {"low": 0.1, "high": 0.01}}, "numbers low < high"),
    ({"pretrain_gnn.lightgcn.learning_rate": {"low": 0, "high": 0.1, "log": True}}, "a positive low bound"),
    ({"pretrain_gnn.lightgcn.num_layers": {"low": 1, "high": 2.5}}, "integer bounds (pretrain_gnn.lightgcn.num_layers"),
    ({"pretrain_gnn.lightgcn.num_layers": {"low": 1, "hihg": 3}}, "did you mean s.space.pretrain_gnn.lightgcn.num_layers.high"),
    ({"pretrain_gnn.lightgcn.embedding_dim": {"choices": []}}, "a non-empty list"),
    ({}, "an empty search space"),
])
def test_a_bad_space_is_refused_naming_the_key(space, message):
    with pytest.raises(InputError) as error:
        check_space(space, "s.space")
    assert message in str(error.value)


def test_a_good_space_knows_its_kinds_and_the_objective_must_be_a_validation_metric():
    kinds = check_space({"pretrain_gnn.lightgcn.num_layers": {"low": 1, "high": 4},
                         "pretrain_gnn.lightgcn.learning_rate": {"low": 0.001, "high": 0.1, "log": True},
                         "baselines.ease.lambdas": {"low": 10, "high": 1000, "log": True},
                         "pretrain_gnn.lightgcn.embedding_dim": {"choices": [16, 32]}}, "s")
    assert kinds["pretrain_gnn.lightgcn.num_layers"] is int and kinds["pretrain_gnn.lightgcn.learning_rate"] is float
    assert kinds["baselines.ease.lambdas:grid"] and kinds["pretrain_gnn.lightgcn.embedding_dim"] == "choices"
    assert nested({"a.b": 1, "a.c": 2, "d": 3}) == {"a": {"b": 1, "c": 2}, "d": 3}
    # the configured value starts the study only where it is a point of the space
    assert _within({"choices": [32, 64]}, 64) and not _within({"choices": [32, 64]}, 16)
    assert _within({"low": 0.001, "high": 0.05}, 0.01) and not _within({"low": 1, "high": 4}, 8)
    with pytest.raises(InputError, match="test metrics never select"):
        StudyConfig(objective="test.lightgcn.recall_at_20").validate()


def test_the_summary_command_gives_a_grid_its_list():
    import optuna

    from glta_pipelines.framework.tune import _summary

    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    trial.suggest_float("baselines.ease.lambdas", 10, 1000, log=True)
    trial.set_user_attr("values", {"baselines.ease.lambdas": [241.5]})  # as run_study records it
    study.tell(trial, 0.36)
    config = StudyConfig(pipeline="baselines", nodes=("baselines.train_ease",), objective="ease.valid_recall_at_20",
                         space={"baselines.ease.lambdas": {"low": 10, "high": 1000, "log": True}})
    summary = _summary(study, "ease", config, {}, "test")
    assert summary["command"] == ("kedro run --pipelines=baselines --nodes=baselines.train_ease "
                                  "--params=baselines.ease.lambdas=[241.5] --env=test")


@pytest.mark.slow
@pytest.mark.usefixtures("tiny_llm")
def test_tune_runs_nested_trials_summarises_them_and_resumes(project_after_full):
    import optuna
    from click.testing import CliRunner
    from kedro.framework.cli.cli import KedroCLI

    from tests.sessions import runs

    project = project_after_full
    params = f"llm.model={os.environ['GLTA_TEST_LLM']}"  # conf/test/tune.yml reads the curves every 0.5 s
    result = CliRunner().invoke(KedroCLI(project), ["tune", "--env", "test", "--study", "lightgcn", "--trials", "3",
                                                    "--params", params])
    assert result.exit_code == 0, result.output[-3000:]
    client, found = runs(project)
    parent = next(r for r in found if r.info.run_name == "tune:lightgcn")
    children = [r for r in found if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "FINISHED" and sorted(r.data.tags["trial"] for r in children) == ["0", "1", "2"]
    # trial 0 runs the configured values; the others what the sampler proposed
    first = next(r for r in children if r.data.tags["trial"] == "0")
    assert first.data.params["pretrain_gnn.lightgcn.learning_rate"] == "0.01"
    summary = json.loads(Path(client.download_artifacts(parent.info.run_id, "tune/summary.json")).read_text())
    values = [max(p.value for p in client.get_metric_history(r.info.run_id, "lightgcn.valid_recall_at_20"))
              for r in children]
    assert summary["best_value"] == pytest.approx(max(values))  # the best epoch of the best trial
    assert summary["command"].startswith("kedro run --pipelines=pretrain_gnn --params=")
    assert all(f"{k}=" in summary["command"] for k in summary["best_params"])
    assert "Reproduce: `kedro run" in result.output
    assert {"tune/summary.md", "tune/trials.csv", "tune/logs"} <= {a.path for a in client.list_artifacts(
        parent.info.run_id, "tune")}
    # an interrupted trial (left RUNNING) is closed as failed; the same command resumes the study
    storage = f"sqlite:///{project / 'data/09_tuning/lightgcn.db'}"
    optuna.load_study(study_name="lightgcn", storage=storage).ask()
    again = CliRunner().invoke(KedroCLI(project), ["tune", "--env", "test", "--study", "lightgcn", "--trials", "4",
                                                   "--params", params])
    assert again.exit_code == 0, again.output[-3000:]
    states = [t.state.name for t in optuna.load_study(study_name="lightgcn", storage=storage).get_trials()]
    assert states.count("FAIL") == 1 and len([s for s in states if s in ("COMPLETE", "PRUNED")]) == 4
    client, found = runs(project)
    assert len([r for r in found if r.info.run_name == "tune:lightgcn"]) == 1  # the same parent run, reopened
    assert len([r for r in found if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]) == 4
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"
    # a study is resumed only with what it started with
    changed = CliRunner().invoke(KedroCLI(project), ["tune", "--env", "test", "--study", "lightgcn", "--trials", "5",
                                                     "--params", params + ",pretrain_gnn.lightgcn.batch_size=4096"])
    assert changed.exit_code == 1 and "Traceback" not in changed.output
    assert "a study started with another pipeline, objective, space or --params" in changed.output


def test_tune_refuses_an_unknown_study_in_one_line(project):
    from click.testing import CliRunner
    from kedro.framework.cli.cli import KedroCLI

    result = CliRunner().invoke(KedroCLI(project), ["tune", "--env", "test", "--study", "lightgnc"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert ("option --study: found 'lightgnc'; expected one of the studies of conf/base/tune.yml "
            "(ease, glta_head, glta_head_mean, hccf, lightgcn)") in result.output
    (project / "conf/test/tune.yml").write_text("studies:\n  lightgcn:\n    objective: test.lightgcn.recall_at_20\n")
    result = CliRunner().invoke(KedroCLI(project), ["tune", "--env", "test"])
    assert result.exit_code == 1 and "tune.studies.lightgcn.objective" in result.output
    assert "test metrics never select" in result.output
    (project / "conf/test/tune.yml").write_text("studies:\n  lightgcn:\n    space:\n      graph.split.sed: {low: 1, high: 2}\n")
    result = CliRunner().invoke(KedroCLI(project), ["tune", "--env", "test"])
    assert result.exit_code == 1 and "did you mean graph.split.seed?" in result.output, result.output[-1500:]
