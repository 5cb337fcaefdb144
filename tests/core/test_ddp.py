"""Data-parallel GLLM training: real torchrun processes, DDP on the gloo backend, on the CPU (`pytest -k ddp`)."""

import dataclasses
import time

import pytest
import torch

from glta_pipelines.core.training.distributed import SINGLE, DataParallelConfig, Group, plan
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.glta import (
    AlignConfig,
    GLLMConfig,
    Projector,
    item_texts,
    projector_artifact,
    token_norm,
    trainable_state,
)
from glta_pipelines.core.glta.data_parallel import AlignJob, GLLMJob, align_data_parallel, train_data_parallel
from tests.core.gllm import END_TO_END

pytestmark = pytest.mark.slow  # real torchrun processes
TWO = DataParallelConfig(processes=2, backend="gloo")


def _job(tiny, graph, llm_config, checkpoint=None, **overrides) -> GLLMJob:
    llm, _ = tiny
    splits, users, items, item_map = graph
    torch.manual_seed(0)
    projector = projector_artifact(Projector(8, llm.config.hidden_size).fit_scales(items, token_norm(llm)),
                                   AlignConfig(), llm_config)
    # not residual: the head starts away from zero, so every trainable part gets a gradient at the first step
    config = GLLMConfig(**{**END_TO_END, "epochs": 1, "head_epochs": 0, "residual": False, "learning_rate": 1e-2,
                           "target_scheme": "mask", **overrides})
    torch.manual_seed(1)
    lightgcn = {"user": torch.randn_like(users), "item": torch.randn_like(items)}
    return GLLMJob(llm_config, projector, {"user": users, "item": items}, lightgcn, splits["train"],
                   splits["train"].iloc[:0], splits["train"], splits["valid"], len(item_map), config, checkpoint)


def _assert_same_state(found: dict, expected: dict, atol: float = 1e-6) -> None:
    assert found.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(found[key], expected[key], atol=atol, rtol=1e-5, msg=key)


def test_ddp_step_of_two_ranks_at_half_batch_equals_one_full_batch_step(tiny, graph, tiny_llm_config):
    """One step: two gloo ranks with 30 examples each give the parameters of one process with all 60."""
    n_examples = graph[0]["train"]["user_idx"].nunique()  # mask scheme: one example per user
    job = _job(tiny, graph, tiny_llm_config, batch_size=n_examples)
    start = trainable_state(job.build()[0])
    single = job.run(show_progress=False)
    rows = []
    state, history = train_data_parallel(job, TWO, on_epoch_end=lambda epoch, metrics: rows.append((epoch, metrics)))

    expected = trainable_state(single.model)
    _assert_same_state(state, expected)
    moved = [key for key in expected if not torch.equal(expected[key], start[key])]
    assert {"profile", "prediction", "head.weight", "user_projector.net.weight"} <= set(moved)
    assert history["loss"].tolist() == pytest.approx(single.history["loss"].tolist(), rel=1e-5)
    assert history["valid_recall_at_20"].tolist() == pytest.approx(single.history["valid_recall_at_20"].tolist(),
                                                                   abs=1e-6)
    assert [epoch for epoch, _ in rows] == [1]  # rank 0's curve reached the node while it trained


def test_ddp_alignment_step_of_two_ranks_equals_one_full_batch_step(graph, items, tiny_llm_config):
    """Item alignment: one batch of all items, two ranks with 20 titles each (weighted by their title tokens)."""
    _, _, item_embedding, item_map = graph
    config = AlignConfig(epochs=1, batch_size=len(item_map), learning_rate=1e-2, n_examples=2)
    job = AlignJob(tiny_llm_config, item_embedding, item_texts(items, item_map, config.target_template), config)
    single = job.run(show_progress=False)
    steps = []
    parallel = align_data_parallel(job, TWO, on_step=lambda step, metrics: steps.append(step))

    _assert_same_state(parallel.projector.state_dict(), single.projector.state_dict())
    assert parallel.history["loss"].tolist() == pytest.approx(single.history["loss"].tolist(), rel=1e-6)
    assert steps == [1] and parallel.examples == single.examples  # rank 0 decoded the same check items


class Stop(Exception):
    pass


def test_ddp_run_killed_mid_training_resumes_to_the_weights_of_one_process(tiny, graph, tiny_llm_config, tmp_path):
    """Six epochs of uneven batches (17 = 9 + 8, and a last batch of 9), checkpoints from rank 0 alone. The node
    is stopped after epoch 1 (torchrun and its workers killed); resume=true continues from the last checkpoint
    and ends where one process trained without a stop ends."""
    settings = {"epochs": 6, "batch_size": 17, "patience": 10}
    straight = _job(tiny, graph, tiny_llm_config, **settings).run(show_progress=False)  # one process, not stopped

    def stop(epoch, metrics):
        raise Stop

    checkpoint = tmp_path / "b.pt"
    started = time.monotonic()
    with pytest.raises(Stop):
        train_data_parallel(_job(tiny, graph, tiny_llm_config, checkpoint, **settings), TWO, on_epoch_end=stop)
    saved = torch.load(checkpoint, weights_only=False)
    assert 1 <= saved["epoch"] < settings["epochs"], "the run was not stopped mid-training"
    assert time.monotonic() - started < 60
    resumed, history = train_data_parallel(_job(tiny, graph, tiny_llm_config, checkpoint, resume=True, **settings),
                                           TWO)

    assert history["epoch"].tolist() == list(range(1, settings["epochs"] + 1))
    assert history["loss"].tolist() == pytest.approx(straight.history["loss"].tolist(), rel=1e-5)
    expected = trainable_state(straight.model)
    _assert_same_state(resumed, expected)


def test_ddp_worker_errors_reach_the_node_as_the_message_raised_there(tiny, graph, tiny_llm_config):
    job = _job(tiny, graph, tiny_llm_config)
    job.config = dataclasses.replace(job.config, learning_rate=float("inf"))  # diverges at the first step
    with pytest.raises(InputError, match="GLLM training loss"):
        train_data_parallel(job, TWO)


def test_ddp_group_shares_are_contiguous_and_cover_every_row():
    groups = [Group(rank, 3) for rank in range(3)]
    for n in (0, 1, 2, 7, 9):
        shares = [list(group.share(list(range(n)))) for group in groups]
        assert sum(shares, []) == list(range(n))
        assert max(map(len, shares)) - min(map(len, shares)) <= 1
    assert list(SINGLE.share([1, 2, 3])) == [1, 2, 3] and not SINGLE.distributed


@pytest.mark.parametrize("params, field", [({"processes": 0}, "processes"), ({"backend": "mpi"}, "backend")])
def test_ddp_parameters_are_checked_by_name(params, field):
    from glta_pipelines.core.config import config_from_params

    with pytest.raises(InputError, match=f"parameter data_parallel.{field}"):
        config_from_params(DataParallelConfig, params, "data_parallel")



def test_ddp_plan_puts_cpu_ranks_on_gloo_and_refuses_nccl_without_gpus():
    assert plan(DataParallelConfig(processes=2), "cpu") == ("cpu", "gloo")
    with pytest.raises(InputError, match="parameter data_parallel.backend: found 'nccl'"):
        plan(DataParallelConfig(processes=2, backend="nccl"), "cpu")
