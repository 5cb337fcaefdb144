"""Data-parallel training with PyTorch DDP: a process group seen from one rank, and the launcher.

A Kedro node stays one process: it writes its job to a folder and launches the training through
``torchrun`` (:func:`launch`). Every rank rebuilds the same model from the job, trains on its
share of each batch, and DistributedDataParallel averages the gradients; rank 0 writes the
checkpoints, one JSON row per epoch (relayed to the node's callback while training runs, e.g. to
MLflow) and the result. The catalog and the MLflow run never leave the node's process.

One process (``processes: 1``) never touches this module's launcher: the same training code runs
with :data:`SINGLE`, whose shares are the whole batch and whose gathers are no-ops.
"""

from __future__ import annotations

import collections
import ctypes
import inspect
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
from torch import nn

from glta_pipelines.core.devices import resolve_device
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.files import atomic_path

log = logging.getLogger(__name__)
T = TypeVar("T")

BACKENDS = ("auto", "gloo", "nccl")
JOB, PROGRESS, RESULT = "job.pt", "epochs.jsonl", "result.pt"


@dataclass(frozen=True)
class DataParallelConfig:
    """How many processes train a stage, on this machine (one per GPU on a GPU machine), and how
    they talk: ``backend`` auto is NCCL on CUDA, gloo on the CPU."""

    # training processes (torchrun) of align_tokens and gllm_finetune; 1: one process, no DDP
    processes: int = 1
    backend: str = "auto"

    def validate(self) -> None:
        if self.processes < 1:
            raise InputError("parameter data_parallel.processes", self.processes, "a positive number of processes "
                             "(1: no DDP)")
        if self.backend not in BACKENDS:
            raise InputError("parameter data_parallel.backend", repr(self.backend), f"one of {BACKENDS}")


@dataclass(frozen=True)
class Group:
    """This process's place in a data-parallel group: rank, world size and the rank's device.

    Batches are shared out in contiguous slices, as ``numpy.array_split`` cuts them, so the
    gathered rows come back in batch order and the result does not depend on the group's size.
    """

    rank: int = 0
    world_size: int = 1
    device: torch.device | None = None  # the rank's own device; None: wherever the model is

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def bounds(self, n: int, rank: int | None = None) -> tuple[int, int]:
        """[lo, hi) of the rows of ``n`` that ``rank`` (default: this one) takes."""
        rank = self.rank if rank is None else rank
        base, extra = divmod(n, self.world_size)
        lo = rank * base + min(rank, extra)
        return lo, lo + base + (rank < extra)

    def share(self, rows: Sequence[T]) -> Sequence[T]:
        lo, hi = self.bounds(len(rows))
        return rows[lo:hi]

    def gather(self, local: torch.Tensor, n: int) -> torch.Tensor:
        """Every rank's :meth:`share` rows of an ``n``-row result, on every rank, in order."""
        if not self.distributed:
            return local
        import torch.distributed as dist

        sizes = [hi - lo for lo, hi in (self.bounds(n, r) for r in range(self.world_size))]
        padded = local.new_zeros((max(sizes), *local.shape[1:]))
        padded[: len(local)] = local
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
        return torch.cat([part[:size] for part, size in zip(parts, sizes)])

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` (any picklable object) on every rank."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0, device=self.device if self.device and self.device.type == "cuda" else None)
        return box[0]

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Elementwise sum over the ranks (a copy; the input is untouched)."""
        if not self.distributed:
            return values.clone()
        import torch.distributed as dist

        total = values.detach().clone().to(self.device or values.device)
        dist.all_reduce(total)
        return total.to(values.device)

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` under DistributedDataParallel (gradients averaged over the ranks), or itself alone."""
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device] if self.device is not None and self.device.type == "cuda" else None
        # unused: each phase trains part of the model (the head alone on cached states);
        # buffers are the same inputs on every rank, so they are not re-broadcast at each step
        # (torch 2.13 renamed broadcast_buffers; older versions know only that name)
        quiet = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                 else {"broadcast_buffers": False})
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True, **quiet)


SINGLE = Group()


def plan(config: DataParallelConfig, device: str) -> tuple[str, str]:
    """(device type, backend) of the ranks of a stage whose models go on ``device`` (``llm.device``).

    On CUDA each rank takes the GPU of its local rank (one process per GPU), NCCL unless told gloo;
    on the CPU, gloo. Settings that cannot work are refused here, before any process starts.
    """
    config.validate()
    kind = resolve_device(device).type
    if kind == "cuda":
        visible = torch.cuda.device_count()
        if config.processes > visible:
            raise InputError("parameter data_parallel.processes", config.processes,
                             f"at most the {visible} visible GPUs (one process per GPU), or llm.device: cpu")
        return kind, "nccl" if config.backend == "auto" else config.backend
    if config.backend == "nccl":
        raise InputError("parameter data_parallel.backend", "'nccl'", "gloo or auto: llm.device resolves to the CPU, "
                         "and NCCL needs GPUs")
    return kind, "gloo"


def join_group(device: str, backend: str) -> Group:
    """Join the process group torchrun set up (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) on :func:`plan`'s terms."""
    import torch.distributed as dist

    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    place = torch.device("cuda", local) if device == "cuda" else torch.device("cpu")
    if place.type == "cuda":
        torch.cuda.set_device(place)
    dist.init_process_group(backend, rank=rank, world_size=world)
    return Group(rank, world, place)


def leave_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


# --------------------------------------------------------------------------- one step, shared out
def shared_step(optimizer: torch.optim.Optimizer, batch: Sequence, group: Group,
                loss_of: Callable[[Sequence], torch.Tensor], size: Callable[[Sequence], int] = len,
                check: Callable[[torch.Tensor], None] | None = None) -> float:
    """One step on ``batch`` shared out over ``group``; returns this rank's part of the batch's loss.

    ``loss_of(rows)`` is a mean over ``size(rows)`` terms (rows, or target tokens). Each rank's
    loss is weighted by its share of the batch's terms, so DDP's gradient average is the gradient
    of the whole batch's mean, whatever the shares; a rank with no rows still joins the average,
    with weight 0. The parts sum over the ranks to the batch's loss (:meth:`Group.sum`). One
    process: the plain step on the whole batch. ``check(loss)`` runs before the backward pass.
    """
    share = group.share(batch)
    weight = size(share) * group.world_size / max(size(batch), 1)
    if len(share) == 0:
        share, weight = batch[:1], 0.0
    loss = loss_of(share)
    if check is not None:
        check(loss)
    optimizer.zero_grad()
    (loss if weight == 1.0 else loss * weight).backward()
    optimizer.step()
    return loss.item() * weight / group.world_size


def mean_loss(parts: list[float], group: Group) -> float:
    """The mean batch loss of an epoch from this rank's :func:`shared_step` parts (summed over the ranks)."""
    if not group.distributed:
        return float(np.mean(parts))
    return float(group.sum(torch.tensor(parts, dtype=torch.float64)).mean())


# --------------------------------------------------------------------------- the node's side
class Job(Protocol):
    """What one data-parallel training needs, picklable: every rank loads it and runs its part."""

    def run_rank(self, group: Group, on_epoch_end: Callable[[int, dict[str, Any]], None] | None) -> dict | None:
        """Train this rank's part; rank 0 returns what goes back to the node (others: None)."""


def run_data_parallel(job: Job, config: DataParallelConfig, device: str,
                      on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None) -> dict:
    """Run ``job`` on ``config.processes`` torchrun ranks; returns what its rank 0 returned.

    ``device`` is where the job's models go (``llm.device``): ranks on CUDA take a GPU each. The
    job goes to a fresh temporary folder, removed afterwards. ``on_epoch_end`` gets rank 0's rows
    while training runs.
    """
    kind, backend = plan(config, device)
    with tempfile.TemporaryDirectory(prefix="glta-ddp-") as folder:
        job_dir = Path(folder)
        torch.save(job, job_dir / JOB)
        launch(job_dir, config.processes, kind, backend,
               None if on_epoch_end is None else lambda row: on_epoch_end(row["epoch"], row["metrics"]))
        return torch.load(job_dir / RESULT, map_location="cpu", weights_only=False)


def launch(job_dir: Path, processes: int, device: str, backend: str,
           on_row: Callable[[dict[str, Any]], None] | None = None, poll_seconds: float = 0.2) -> None:
    """Run the job in ``job_dir`` on ``config.processes`` ranks through torchrun, and wait.

    Rank 0's progress rows (``epochs.jsonl`` in ``job_dir``) go to ``on_row`` as they appear. The
    workers' output is passed through. If this process is interrupted (Ctrl-C, SIGTERM), or
    ``on_row`` raises, torchrun is stopped, and it stops its workers; if this process dies outright,
    torchrun gets SIGTERM, and workers whose torchrun dies get SIGKILL (Linux). A known error in a
    worker (:class:`InputError`, as ``error.json``) is raised here as it was raised there; any other
    failure names the command and ends with the workers' last lines.
    """
    # standalone: one machine, a rendezvous on a free local port
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               "-m", __name__, str(job_dir)]
    env = {**os.environ, "GLTA_DDP_DEVICE": device, "GLTA_DDP_BACKEND": backend}
    log.info("Data-parallel training on %d processes (%s, %s): %s", processes, device, backend, " ".join(command))
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True, text=True, encoding="utf-8", errors="replace", bufsize=1,
                               preexec_fn=lambda: die_with_parent(signal.SIGTERM))
    tail: collections.deque[str] = collections.deque(maxlen=30)
    reader = threading.Thread(target=_pass_through, args=(process.stdout, tail), daemon=True)
    reader.start()
    progress, read = job_dir / PROGRESS, 0
    try:
        while True:
            done = process.poll() is not None
            read = _relay(progress, read, on_row)
            if done:
                break
            time.sleep(poll_seconds)
    except BaseException:
        _kill(process)
        raise
    reader.join(timeout=5)
    if process.returncode != 0:
        error = job_dir / "error.json"
        if error.is_file():
            raise InputError(**json.loads(error.read_text()))
        raise RuntimeError(f"data-parallel training failed (exit {process.returncode}) in `{' '.join(command)}`; "
                           "last lines of its workers:\n" + "".join(tail))


def _prctl() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None


_PRCTL = _prctl()  # looked up here: between fork and exec (preexec_fn) nothing may import or load


def die_with_parent(sig: int) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies (elsewhere: nothing)."""
    if _PRCTL is not None:
        _PRCTL(1, sig)  # PR_SET_PDEATHSIG


def _pass_through(stream, tail: collections.deque[str]) -> None:
    for line in stream:
        tail.append(line)
        sys.stderr.write(line)


def _relay(progress: Path, read: int, on_row: Callable[[dict[str, Any]], None] | None) -> int:
    """Hand the complete progress rows after byte ``read`` to ``on_row``; returns the bytes handled."""
    if not progress.is_file():
        return read
    with progress.open("rb") as handle:
        handle.seek(read)
        fresh = handle.read()
    complete = fresh[: fresh.rfind(b"\n") + 1]  # a last line still being written waits for the next poll
    for line in complete.decode().splitlines():
        if on_row is not None:
            on_row(json.loads(line))
    return read + len(complete)


def _kill(process: subprocess.Popen) -> None:
    """Stop torchrun and its workers (one process group): SIGTERM, then SIGKILL after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


# --------------------------------------------------------------------------- the workers' side
def progress_writer(job_dir: Path, group: Group) -> Callable[[int, dict[str, Any]], None] | None:
    """On rank 0, an epoch callback that appends ``{"epoch", "metrics"}`` to the job's progress file."""
    if not group.is_main:
        return None

    def write(epoch: int, metrics: dict[str, Any]) -> None:
        with (job_dir / PROGRESS).open("a") as handle:
            handle.write(json.dumps({"epoch": epoch, "metrics": metrics}, default=float) + "\n")
    return write


def run_worker(job_dir: Path) -> int:
    """A worker's life: join the group, run the job's part, leave; rank 0 saves the job's result.

    A known error goes to ``error.json`` (the node raises it); the exit status is 1.
    """
    group = SINGLE
    die_with_parent(signal.SIGKILL)  # torchrun gone: nothing of this training may run on
    try:
        group = join_group(os.environ.get("GLTA_DDP_DEVICE", "cpu"), os.environ.get("GLTA_DDP_BACKEND", "gloo"))
        logging.basicConfig(level=logging.INFO if group.is_main else logging.WARNING,
                            format=f"[rank {group.rank}] %(levelname)s %(name)s: %(message)s")
        job = torch.load(job_dir / JOB, weights_only=False)  # written by run_data_parallel, in a private folder
        result = job.run_rank(group, progress_writer(job_dir, group))
        if group.is_main:
            with atomic_path(job_dir / RESULT) as tmp:
                torch.save(result, tmp)
        return 0
    except InputError as error:
        with atomic_path(job_dir / "error.json") as tmp:  # every rank may fail at once: one whole file wins
            tmp.write_text(json.dumps({"where": error.where, "found": str(error.found), "expected": error.expected}))
        print(f"[rank {group.rank}] {error}", file=sys.stderr)
        return 1
    finally:
        leave_group()


if __name__ == "__main__":  # one rank, started by torchrun (see launch)
    from glta_pipelines.core.training.distributed import run_worker as _run  # the importable module, not this __main__ copy

    sys.exit(_run(Path(sys.argv[1])))
