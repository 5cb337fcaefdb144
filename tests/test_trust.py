"""Trustworthy runs, tried as a user would (Kedro sessions and the CLI, `test` environment, tiny LLM):
mixed generations are refused, typos and bad types fail before any node, every runner logs into
the MLflow run, known errors end in one line, files are named when corrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from kedro.framework.cli.cli import KedroCLI

from glta_pipelines.core.errors import InputError
from glta_pipelines.framework.lineage import SIDECAR, LineageError
from glta_pipelines.framework.save_versions import distinct_save_version, distinct_save_versions
from tests.sessions import run, runs

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("tiny_llm")]

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"
LIGHTGCN_NODE = "evaluate.evaluate_lightgcn"


def versions(project: Path, relative: str) -> list[str]:
    return sorted(p.name for p in (project / relative).iterdir() if p.is_dir())


def files(project: Path) -> set[Path]:
    return {p for p in (project / "data").rglob("*") if p.is_file()} if (project / "data").exists() else set()


def test_mixed_generations_are_refused_naming_the_inputs(project_after_full, monkeypatch):
    project = project_after_full  # after a `full` run
    # run from a subfolder: every relative path (catalog, checkpoints, LLM cache) resolves against the project root
    (project / "notebooks").mkdir()
    monkeypatch.chdir(project / "notebooks")
    (project / "data/06_models/gllm_checkpoints").rename(project / "data/06_models/old_checkpoints")
    run(project, pipeline="gllm_finetune")
    assert list((project / "data/06_models/gllm_checkpoints").glob("gllm-*.pt"))
    assert not (project / "notebooks/data").exists()
    # every output records what it was built from
    embeddings = project / "data/06_models/lightgcn_embeddings.safetensors"
    (first,) = versions(project, "data/06_models/lightgcn_embeddings.safetensors")
    lineage = json.loads((embeddings / first / SIDECAR).read_text())
    assert lineage["produced_by"] == "pretrain_gnn.pretrain_lightgcn" and lineage["source"] == "movielens-100k"
    assert lineage["built_from"]["graph.split_interactions"] == first
    # outputs are as readable as the Parquet files beside them (the umask, not mkstemp's 0600)
    parquet = next((project / "data/05_model_input/train.parquet").rglob("*.parquet"))
    assert (embeddings / first / "lightgcn_embeddings.safetensors").stat().st_mode & 0o777 == parquet.stat().st_mode & 0o777

    # 1. a new split, then evaluate: the old LightGCN would be scored on its own training pairs
    run(project, {"graph": {"split": {"seed": 7}}}, pipeline="graph")
    before = files(project)
    with pytest.raises(LineageError, match=r"two generations of graph\.\w+: \S+ was built from its run .*, graph\.\w+ "
                                           r"from its run .*kedro run --pipelines=pretrain_gnn,baselines,"
                                           r"align_tokens,gllm_finetune,evaluate`"):
        run(project, pipeline="evaluate")
    assert files(project) == before  # refused before any node: nothing written, no MLflow run
    assert len(runs(project)[1]) == 3  # full (the template's), gllm_finetune, graph

    # 2. --load-versions: a mix is refused, one generation is accepted
    second = versions(project, "data/05_model_input/train.parquet")[-1]
    split = {f"graph.{name}": first for name in ("train", "valid", "test", "user_map", "item_map", "cold_history")}
    with pytest.raises(LineageError, match=r"pretrain_gnn\.embeddings.*graph"):
        run(project, pipeline="evaluate", load_versions={"graph.train": second, **{k: v for k, v in split.items()
                                                                                   if k != "graph.train"}},
            node_names=[LIGHTGCN_NODE])
    run(project, pipeline="evaluate", load_versions=split, node_names=[LIGHTGCN_NODE])
    assert second != first

    # 3. another dataset ingested, then evaluate: titles would come from the other dataset
    run(project, {"dataset": {"name": "goodreads", "path": str(FIXTURES / "goodreads")}}, pipeline="ingest")
    with pytest.raises(LineageError, match=r"two generations of ingest\.read_dataset: .*ingest\.items from its run"):
        run(project, {"dataset": {"name": "goodreads"}}, pipeline="evaluate", load_versions=split)
    # ... and the dataset parameter must name the dataset the inputs came from
    with pytest.raises(LineageError, match=r"parameter dataset: found movielens-100k; expected goodreads"):
        run(project, pipeline="graph")

    # 4. a truncated artifact names its version folder and what to do
    run(project, pipeline="ingest")
    run(project, pipeline="graph")
    run(project, pipeline="pretrain_gnn")
    latest = embeddings / versions(project, "data/06_models/lightgcn_embeddings.safetensors")[-1]
    weights = latest / "lightgcn_embeddings.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(Exception) as error:
        run(project, pipeline="evaluate", node_names=[LIGHTGCN_NODE])
    from glta_pipelines.cli import known_error

    message = str(known_error(error.value))
    assert str(weights) in message and "corrupted" in message and "--load-versions" in message


def test_gllm_resume_never_continues_a_checkpoint_of_other_inputs_and_names_a_corrupted_one(project_after_full):
    project = project_after_full
    checkpoints = project / "data/06_models/gllm_checkpoints"
    (old,) = checkpoints.glob("gllm-*.pt")
    # the same parameters on another split: the old checkpoint (same sizes) must not be resumed
    run(project, {"graph": {"split": {"seed": 7}}}, pipeline="graph")
    run(project, pipeline="pretrain_gnn")
    run(project, pipeline="align_tokens")
    run(project, {"gllm_finetune": {"gllm": {"resume": True}}}, pipeline="gllm_finetune")
    (new,) = set(checkpoints.glob("gllm-*.pt")) - {old}
    client, found = runs(project)
    # trained from the start: 2 end-to-end epochs, then the 4 head epochs
    assert [m.step for m in client.get_metric_history(found[0].info.run_id, "gllm.loss")] == [1, 2, 3, 4, 5, 6]
    # the MLflow run records which saved versions it read
    inputs = Path(client.download_artifacts(found[0].info.run_id, "lineage/inputs.json", str(project)))
    assert json.loads(inputs.read_text())["inputs"]["graph.train"] in versions(project, "data/05_model_input/train.parquet")
    # a cut-short checkpoint is named, with what to do
    new.write_bytes(new.read_bytes()[:1000])
    with pytest.raises(InputError, match=rf"checkpoint {new}: found a corrupted file.*resume=false"):
        run(project, {"gllm_finetune": {"gllm": {"resume": True}}}, pipeline="gllm_finetune")


def test_evaluate_on_a_fresh_project_names_the_stages_to_run_first(project):
    with pytest.raises(InputError, match=r"no saved ingest\.items \(written by stage ingest\); .*graph\.test.*"
                                         r"\(written by stage graph\).*pretrain_gnn\.embeddings.*kedro run "
                                         r"--pipelines=ingest,graph,pretrain_gnn,baselines,align_tokens,gllm_finetune` first"):
        run(project, pipeline="evaluate")
    assert not files(project)


@pytest.mark.parametrize(("params", "message"), [
    ({"pretrain_gnn": {"lightgcnn": {"embedding_dim": 32}}}, r"pretrain_gnn\.lightgcnn: .*did you mean pretrain_gnn\.lightgcn\?"),
    ({"grpah": {"k_core": 50}}, r"parameter grpah: .*did you mean graph\?"),
    ({"pretrain_gnn": {"lightgcn": {"learning_rate": "abc"}}}, r"learning_rate: found 'abc' \(text\); expected a number"),
    ({"pretrain_gnn": {"lightgcn": {"max_epochs": 2.5}}}, r"max_epochs: found 2\.5 \(number\); expected an integer"),
    ({"pretrain_gnn": {"lightgcn": {"selection_metric": "recal_at_20"}}}, r"selection_metric: found 'recal_at_20'"),
    ({"gllm_finetune": {"gllm": {"lora": {"rnak": 4}}}}, r"lora\.rnak.*did you mean gllm_finetune\.gllm\.lora\.rank\?"),
])
def test_typos_and_bad_types_fail_before_any_node(project, params, message):
    with pytest.raises(InputError, match=message):
        run(project, params)
    assert not files(project)
    assert runs(project)[1] == []  # refused before the MLflow run opens


def cli(project: Path, *args: str):
    result = CliRunner().invoke(KedroCLI(project), ["run", "--env", "test", *args])
    return result.exit_code, result.output


def test_cli_known_errors_are_one_line_and_lists_have_a_working_form(project, monkeypatch):
    code, output = cli(project, "--pipelines=ingest", "--params", "grpah.k_core=50")
    assert code == 1 and "Traceback" not in output
    assert "Error: parameter grpah: found an unknown key; expected a known key: did you mean graph?" in output
    code, output = cli(project, "--pipelines=ingest", "--params", "graph.split.ratios=[0.8 0.1 0.1]")
    assert code == 1 and "Traceback" not in output and "commas and no spaces: [0.8,0.1,0.1]" in output
    code, output = cli(project, "--pipelines=ingest,graph", "--params", "graph.split.ratios=[0.7,0.15,0.15],graph.split.seed=3")
    assert code == 0, output
    client, found = runs(project)
    assert found[0].data.params["graph.split.ratios"] == "[0.7, 0.15, 0.15]"
    metrics = found[0].data.metrics
    assert metrics["graph.n_test"] / metrics["graph.n_train"] == pytest.approx(0.15 / 0.7, rel=0.05)
    # GLTA_TRACEBACK=1 shows the traceback of a known error
    monkeypatch.setenv("GLTA_TRACEBACK", "1")
    result = CliRunner().invoke(KedroCLI(project), ["run", "--env", "test", "--params", "grpah.k_core=50"])
    assert isinstance(result.exception, InputError)


@pytest.mark.parametrize("runner", ["ThreadRunner", "ParallelRunner"])
def test_other_runners_log_what_a_sequential_run_logs(project_after_full, runner):
    """`kedro run --runner=ParallelRunner` in its own process, as a user runs it (it forks workers);
    the ThreadRunner in this one (its threads are what it tests)."""
    project = project_after_full
    run(project, pipeline="pretrain_gnn")
    if runner == "ParallelRunner":
        process = kedro_run_process(project, "--pipelines=pretrain_gnn", f"--runner={runner}")
        output = process.communicate(timeout=300)[0]
        assert process.returncode == 0, output[-3000:]
    else:
        from kedro.runner import ThreadRunner

        run(project, pipeline="pretrain_gnn", runner=ThreadRunner())
    client, (other, sequential, *_) = runs(project)
    assert other.info.status == "FINISHED" and other.data.tags["runner"] == runner and sequential.data.metrics
    def logged(run) -> set[str]:  # system/* metrics are sampled every 10 s: a shorter run may have none
        return {name for name in run.data.metrics if not name.startswith("system/")}

    assert logged(other) == logged(sequential)
    history = client.get_metric_history(other.info.run_id, "lightgcn.loss")
    assert [m.step for m in history] == [1, 2, 3, 4]
    artifacts = {a.path for a in client.list_artifacts(other.info.run_id, "pretrain_gnn")}
    assert "pretrain_gnn/training_history.csv" in artifacts
    # lineage is recorded whichever thread or process saved the output
    latest = versions(project, "data/06_models/lightgcn_embeddings.safetensors")[-1]
    assert (project / "data/06_models/lightgcn_embeddings.safetensors" / latest / SIDECAR).is_file()


def kedro_run_process(project: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    return subprocess.Popen([sys.executable, "-m", "kedro", "run", "--env", "test", *args], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_first_runs_at_once_both_finish(project):
    """Both create or migrate the fresh MLflow store: one waits for the other's lock."""
    (project / "mlflow.db").unlink()  # no store yet: both runs find none
    processes = [kedro_run_process(project, "--pipelines=ingest") for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    for warning in ("register_new_resolver", "dataset names contain '.'", "Traceback"):  # fixed or filtered
        assert warning not in outputs[0] + outputs[1]
    _, found = runs(project)
    assert sorted(r.info.status for r in found) == ["FINISHED", "FINISHED"]


def test_processes_drawing_save_versions_at_once_never_share_one():
    """Kedro's own version is the millisecond a session starts: the runs above could collide (and did)."""
    import multiprocessing

    # spawned, not forked: a fork of a test process with threads (a parallel test worker) can deadlock
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        drawn = pool.starmap(distinct_save_version, [()] * 300, chunksize=100)
    assert len(set(drawn)) == 300
    assert all(len(v) == len("2026-11-23T11.27.23.219Z") and v.endswith("Z") for v in drawn)
    import kedro.framework.session.session as kedro_session  # what `kedro run` and `kedro seeds` wrap

    kedro_default = kedro_session.generate_timestamp
    with distinct_save_versions():
        assert kedro_session.generate_timestamp is distinct_save_version
    assert kedro_session.generate_timestamp is kedro_default


def test_a_run_killed_with_sigkill_is_marked_killed_and_its_partial_outputs_refused(project_after_full):
    project = project_after_full
    process = kedro_run_process(project, "--pipelines=full", "--params",
                                "graph.split.seed=7,pretrain_gnn.lightgcn.max_epochs=100000,"
                                f"pretrain_gnn.lightgcn.patience=100000,llm.model={os.environ['GLTA_TEST_LLM']}")
    deadline = time.time() + 180
    while time.time() < deadline and len(versions(project, "data/05_model_input/train.parquet")) < 2:
        time.sleep(1)
    time.sleep(3)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    _, found = runs(project)
    assert [r.info.status for r in found] == ["RUNNING", "FINISHED"]  # nobody could close it
    # the killed run published a new split next to the older model: refused, not scored
    with pytest.raises(LineageError, match=r"two generations of graph\."):
        run(project, pipeline="evaluate")
    run(project, pipeline="ingest")
    _, found = runs(project)
    assert [r.info.status for r in found] == ["FINISHED", "KILLED", "FINISHED"]
