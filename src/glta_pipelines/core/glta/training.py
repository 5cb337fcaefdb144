"""Stage 2's training: softmax over all items, early stopping on validation, resumable checkpoints."""

from __future__ import annotations

import json
import logging
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from glta_pipelines.core.training.distributed import SINGLE, Group, mean_loss, shared_step
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.files import atomic_path
from glta_pipelines.core.glta.configuration import GLLMConfig
from glta_pipelines.core.glta.examples import Example, GLLMData, epoch_examples, user_histories
from glta_pipelines.core.glta.model import GLLM
from glta_pipelines.core.glta.scoring import HiddenCache, make_scorer, shared_hidden
from glta_pipelines.core.glta.weights import load_trainable_state, trainable_state
from glta_pipelines.core.evaluation.ranking import ranking_metrics
from glta_pipelines.core.reproducibility import deterministic
from glta_pipelines.core.training.trainer import EpochCallback, Schedule, TrainingState, fit

log = logging.getLogger(__name__)

def gllm_loss(logits: torch.Tensor, targets: list[np.ndarray], masked: list[np.ndarray]) -> torch.Tensor:
    """Multi-positive softmax cross-entropy over all items; known (non-target) positives masked."""
    device = logits.device
    rows = torch.repeat_interleave(torch.arange(len(masked)), torch.tensor([len(m) for m in masked])).to(device)
    logits = logits.clone()
    if len(rows):
        logits[rows, torch.from_numpy(np.concatenate(masked)).to(device)] = float("-inf")
    log_probs = torch.log_softmax(logits, dim=1)
    counts = torch.tensor([len(t) for t in targets])
    target_rows = torch.repeat_interleave(torch.arange(len(targets)), counts).to(device)
    picked = log_probs[target_rows, torch.from_numpy(np.concatenate(targets)).to(device)]
    per_row = torch.zeros(len(targets), dtype=picked.dtype, device=device).index_add_(0, target_rows, picked)
    return -(per_row / counts.to(device, picked.dtype)).mean()  # each row's mean over its targets, then the batch's


def example_loss(model: nn.Module, batch: Sequence[Example]) -> torch.Tensor:
    """The GLLM loss of (user, prompt items, target items, masked items) examples.

    ``model`` is the GLLM or its DDP wrapper: its ``forward`` scores the residual against the
    backbone graph embeddings the prompt tokens come from.
    """
    logits = model(torch.tensor([b[0] for b in batch]), [b[1] for b in batch])
    return gllm_loss(logits, [b[2] for b in batch], [b[3] for b in batch])


def gllm_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: list[Example], group: Group = SINGLE) -> float:
    """One optimisation step on a batch of examples shared out over ``group`` (:func:`shared_step`);
    returns this rank's part of the batch's loss (in one process: the loss)."""
    return shared_step(optimizer, batch, group, lambda share: example_loss(model, share), check=_finite("GLLM"))


class Replica(nn.Module):
    """What DDP wraps: the GLLM, and the LLM too when LoRA adapts it (the LLM is outside the GLLM's parameters)."""

    def __init__(self, model: GLLM) -> None:
        super().__init__()
        self.model = model
        if model.llm is not None and any(p.requires_grad for p in model.llm.parameters()):
            self.llm = model.llm

    def forward(self, *args, **kwargs) -> torch.Tensor:
        return self.model(*args, **kwargs)


def _finite(stage: str) -> Callable[[torch.Tensor], None]:
    return lambda loss: check_finite(loss, stage)


def check_finite(loss: torch.Tensor, stage: str) -> None:
    """Stop at the first non-finite loss, instead of training (and selecting) a broken model."""
    if not torch.isfinite(loss):
        raise InputError(f"{stage} training loss", f"{loss.item()} (the weights have diverged)",
                         "a finite loss: lower gllm_finetune.gllm.learning_rate, or use llm.dtype: float32 "
                         "(bfloat16 on CUDA can overflow on long prompts)")


@dataclass
class GLLMResult:
    model: GLLM
    history: pd.DataFrame
    best_epoch: int


def train_gllm(
    model: GLLM, data: GLLMData, config: GLLMConfig, checkpoint_path: Path | None = None,
    on_epoch_end: EpochCallback | None = None, show_progress: bool | None = None, group: Group = SINGLE,
) -> GLLMResult:
    """Train the GLLM's trainable parts; early-stop on validation Recall@20; checkpoint each epoch.

    With ``config.resume`` and an existing checkpoint, training continues after its last epoch.
    Bit-reproducible for a seed (:func:`deterministic`). In a data-parallel ``group`` (one call
    per rank, see :mod:`~glta_pipelines.core.glta.data_parallel`) each batch is shared out over
    the ranks and DDP averages the gradients; every rank validates on all scores and so stops
    at the same epoch; rank 0 alone writes checkpoints and calls ``on_epoch_end``.
    """
    with deterministic():
        return _train_gllm(model, data, config, checkpoint_path, on_epoch_end, show_progress, group)


def _train_gllm(model: GLLM, data: GLLMData, config: GLLMConfig, checkpoint_path: Path | None,
                on_epoch_end: EpochCallback | None, show_progress: bool | None, group: Group) -> GLLMResult:
    config.validate()
    params = [p for p in model.parameters() if p.requires_grad]
    if model.llm is not None:
        params += [p for p in model.llm.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)  # the same on every rank: every rank draws the whole batch
    torch.manual_seed(config.seed + group.rank)  # dropout (LoRA) differs between ranks' rows
    state = TrainingState()
    if config.resume and checkpoint_path is not None and checkpoint_path.is_file():
        state = load_checkpoint(checkpoint_path, model, optimizer, rng)
    module = group.wrap(Replica(model)) if group.distributed else model
    full_histories = user_histories(data.train, len(data.visible))
    if not group.is_main:
        on_epoch_end, show_progress, checkpoint_path = None, False, None
    if config.epochs:
        state = fit(
            "GLLM", Schedule(config.epochs, config.eval_every, config.patience, "recall_at_20"),
            train_epoch=lambda epoch: _train_epoch(model, module, optimizer, data, config, rng, epoch, show_progress,
                                                   group),
            validate=lambda: _validate(model, data, config, full_histories, group=group),
            snapshot=lambda: trainable_state(model), state=state, on_epoch_end=on_epoch_end,
            after_epoch=None if checkpoint_path is None else lambda s: save_checkpoint(checkpoint_path, model, optimizer,
                                                                                      rng, s),
            show_progress=show_progress)
        if state.best_state is not None:
            load_trainable_state(model, state.best_state)
    if config.head_epochs:
        state = _train_head(model, module, data, config, rng, full_histories, state, on_epoch_end, show_progress, group)
        if state.best_state is not None:
            load_trainable_state(model, state.best_state)
    rows = state.rows
    if config.blend_grid:
        rows = rows + choose_blend_weight(model, data, config, full_histories, group)
    model.eval()
    return GLLMResult(model, pd.DataFrame(rows), state.best_epoch)


def choose_blend_weight(model: GLLM, data: GLLMData, config: GLLMConfig,
                        full_histories: list[np.ndarray], group: Group = SINGLE) -> list[dict[str, Any]]:
    """Set ``model.blend_weight`` to the weight of ``config.blend_grid`` (or 0) that validates best.

    Returns one history row per weight (``phase: blend``). 0 is always a candidate: if no blend
    beats the graph alone, the model ranks as the graph does.
    """
    cache: HiddenCache = {}
    rows, best = [], (-1.0, 0.0)
    for weight in sorted({0.0, *config.blend_grid}):
        model.blend_weight.fill_(weight)
        metrics = _validate(model, data, config, full_histories, cache, group)
        rows.append({"phase": "blend", "blend_weight": weight, **metrics})
        best = max(best, (metrics["valid_recall_at_20"], weight))
    model.blend_weight.fill_(best[1])
    log.info("GLLM blend weight %.2f (validation Recall@20 %.4f)", best[1], best[0])
    return rows


HEAD_PARAMETERS = ("norm", "head", "item_bias", "graph_scale", "log_temperature", "cosine_gate")  # after the LLM


def head_parameters(model: GLLM) -> list[torch.nn.Parameter]:
    """The trainable parameters after the LLM: the GLLM layer (norm, head, item bias, scales)."""
    return [p for name, p in model.named_parameters() if name.split(".")[0] in HEAD_PARAMETERS and p.requires_grad]


def cache_hidden_states(model: GLLM, data: GLLMData, config: GLLMConfig, rng: np.random.Generator,
                        show_progress: bool | None = None,
                        group: Group = SINGLE) -> tuple[torch.Tensor, torch.Tensor, list[Example]]:
    """The LLM's state at the prediction token for ``config.cache_draws`` epochs' examples.

    Returns (users, hidden states, examples) row-aligned; what feeds the LLM is frozen, so each
    prompt goes through it once, and the head then trains on these rows as long as it needs.
    """
    examples = [example for _ in range(config.cache_draws) for example in epoch_examples(data, config, rng)]
    model.eval()
    # prompts of similar length share a batch: a batch is padded to its longest prompt
    order = np.argsort([len(e[1]) for e in examples], kind="stable")
    hidden = []
    with torch.no_grad():
        for lo in tqdm(range(0, len(order), config.scoring_batch_size), desc="cache LLM states", unit="batch",
                       disable=None if show_progress is None else not show_progress):
            batch = [examples[i] for i in order[lo : lo + config.scoring_batch_size]]
            hidden.append(shared_hidden(model, torch.tensor([b[0] for b in batch]), [b[1] for b in batch], group))
    states = torch.empty_like(torch.cat(hidden)) if hidden else torch.zeros(0)
    if hidden:
        states[torch.from_numpy(order).to(states.device)] = torch.cat(hidden)
    return torch.tensor([e[0] for e in examples]), states, examples


def _train_head(model: GLLM, module: nn.Module, data: GLLMData, config: GLLMConfig, rng: np.random.Generator,
                full_histories: list[np.ndarray], before: TrainingState, on_epoch_end: EpochCallback | None,
                show_progress: bool | None, group: Group) -> TrainingState:
    """Cache-then-train: the GLLM layer alone, many epochs on cached LLM states; early-stopped on validation.

    Starts from the end-to-end phase's best (its score is the one to beat); epochs number on
    from the end-to-end ones, and each history row says its ``phase``.
    """
    start = time.perf_counter()
    users, hidden, examples = cache_hidden_states(model, data, config, rng, show_progress, group)
    cache_seconds = time.perf_counter() - start
    log.info("Cached %d LLM states (%d draws) in %.1f s", len(examples), config.cache_draws, cache_seconds)
    optimizer = torch.optim.AdamW(head_parameters(model), lr=config.head_learning_rate, weight_decay=config.weight_decay)
    validation_cache: HiddenCache = {}
    offset = before.epoch

    def train_epoch(epoch: int) -> dict[str, Any]:
        model.train()
        t0, losses = time.perf_counter(), []
        order = rng.permutation(len(examples))

        def loss_of(rows: np.ndarray) -> torch.Tensor:
            logits = module(users[rows], hidden=hidden[rows])
            return gllm_loss(logits, [examples[r][2] for r in rows], [examples[r][3] for r in rows])

        for lo in range(0, len(order), config.head_batch_size):
            losses.append(shared_step(optimizer, order[lo : lo + config.head_batch_size], group, loss_of,
                                      check=_finite("GLLM head")))
        return {"phase": "head", "loss": mean_loss(losses, group), "seconds": time.perf_counter() - t0,
                "cache_seconds": cache_seconds if epoch == 1 else 0.0, "graph_scale": model.graph_scale.item(),
                "head_norm": float(model.head.weight.detach().norm())}

    if before.best_state is None:  # no end-to-end phase: the starting model (the graph's ranking) is the one to beat
        start_score = _validate(model, data, config, full_histories, validation_cache, group)["valid_recall_at_20"]
        before = TrainingState(before.rows, before.epoch, start_score, before.epoch, trainable_state(model))
    state = TrainingState(best_score=before.best_score, best_epoch=before.best_epoch, best_state=before.best_state)
    state = fit("GLLM head", Schedule(config.head_epochs, config.head_eval_every, config.head_patience, "recall_at_20"),
                train_epoch=train_epoch,
                validate=lambda: _validate(model, data, config, full_histories, validation_cache, group),
                snapshot=lambda: trainable_state(model), state=state,
                on_epoch_end=None if on_epoch_end is None else lambda e, m: on_epoch_end(offset + e, m),
                show_progress=show_progress)
    for row in state.rows:
        row["epoch"] += offset
    best_epoch = state.best_epoch + offset if state.best_state is not before.best_state else before.best_epoch
    return TrainingState(before.rows + state.rows, offset + state.epoch, state.best_score, best_epoch,
                         state.best_state, state.evals_since_best)


def _train_epoch(model: GLLM, module: nn.Module, optimizer: torch.optim.Optimizer, data: GLLMData,
                 config: GLLMConfig, rng: np.random.Generator, epoch: int, show_progress: bool | None,
                 group: Group) -> dict[str, Any]:
    """One pass over this epoch's examples (each batch shared out over ``group``); the epoch's history row."""
    model.train()
    examples = epoch_examples(data, config, rng)
    start, losses = time.perf_counter(), []
    bar = tqdm(range(0, len(examples), config.batch_size), desc=f"GLLM epoch {epoch}", unit="batch",
               disable=None if show_progress is None else not show_progress)
    for lo in bar:
        losses.append(gllm_step(module, optimizer, examples[lo : lo + config.batch_size], group))
        bar.set_postfix(loss=f"{losses[-1] * group.world_size:.3f}")
    seconds = time.perf_counter() - start
    return {"phase": "end_to_end", "loss": mean_loss(losses, group), "seconds": seconds,
            "users_per_second": len(examples) / seconds, "graph_scale": model.graph_scale.item(),
            "head_norm": float(model.head.weight.detach().norm()), "peak_memory_mb": peak_memory_mb()}


def _validate(model: GLLM, data: GLLMData, config: GLLMConfig, histories: list[np.ndarray],
              cache: HiddenCache | None = None, group: Group = SINGLE) -> dict[str, float]:
    """Validation metrics (``valid_*``) with the residual on ``data.eval_base``, and the scoring speed.

    ``cache``: hidden states kept between validations, while what feeds the LLM is frozen.
    """
    base = data.eval_base if data.eval_base is not None else model.graph_base
    scorer = make_scorer(model, histories, config.history_length, config.scoring_batch_size, base, cache, group)
    t0 = time.perf_counter()
    metrics = ranking_metrics(scorer, data.train, data.valid, len(data.visible), data.n_items, [10, 20])
    row = {"scoring_users_per_second": data.valid["user_idx"].nunique() / (time.perf_counter() - t0)}
    # rank 0's numbers decide for every rank: one stopping epoch and one blend weight, even if scores differ
    return group.broadcast({**row, **{f"valid_{k}": v for k, v in metrics.items()}})


def save_checkpoint(path: Path, model: GLLM, optimizer: torch.optim.Optimizer, rng: np.random.Generator,
                    progress: TrainingState) -> None:
    """Write atomically: a crash mid-save leaves the previous checkpoint intact."""
    # tensors, numbers and text only (the history as JSON): the checkpoint loads with weights_only=True
    state = {"model": trainable_state(model), "optimizer": optimizer.state_dict(), "rng": rng.bit_generator.state,
             "history": json.dumps(progress.rows, default=_plain), "epoch": progress.epoch, "best_score": progress.best_score,
             "best_epoch": progress.best_epoch, "best_state": progress.best_state,
             "evals_since_best": progress.evals_since_best}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, model: GLLM, optimizer: torch.optim.Optimizer, rng: np.random.Generator) -> TrainingState:
    """Restore model, optimiser and sampling RNG from ``path``; returns where training stood."""
    try:
        # no pickle: a checkpoint holds tensors, numbers and text (loading moves it to the model's device)
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as error:  # truncated, not a checkpoint, or pickled objects
        raise InputError(f"checkpoint {path}", f"a corrupted file or one of an older version ({str(error).splitlines()[0][:200]})",
                         "a complete checkpoint of tensors: delete the file, or run with "
                         "gllm_finetune.gllm.resume=false to train from the start") from None
    load_trainable_state(model, saved["model"], where=f"checkpoint {path}")
    optimizer.load_state_dict(saved["optimizer"])
    rng.bit_generator.state = saved["rng"]
    log.info("Resuming GLLM training after epoch %d from %s", saved["epoch"], path)
    return TrainingState(json.loads(saved["history"]), saved["epoch"], saved["best_score"], saved["best_epoch"], saved["best_state"],
                     saved["evals_since_best"])


def _plain(value: Any) -> Any:
    """A numpy or torch number in a history row, as JSON takes it."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} in a training history row")


def peak_memory_mb() -> float:
    """Peak memory of this process: CUDA allocations when on GPU, else the peak resident set."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
