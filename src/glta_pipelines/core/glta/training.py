"""Stage 2's training: softmax over all items, early stopping on validation, resumable checkpoints."""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from glta_pipelines.core.errors import InputError
from glta_pipelines.core.files import atomic_path
from glta_pipelines.core.glta.configuration import GLLMConfig
from glta_pipelines.core.glta.examples import Example, GLLMData, epoch_examples, user_histories
from glta_pipelines.core.glta.model import GLLM, Base
from glta_pipelines.core.glta.weights import load_trainable_state, trainable_state
from glta_pipelines.core.ranking import ranking_metrics
from glta_pipelines.core.reproducibility import deterministic
from glta_pipelines.core.trainer import EpochCallback, Schedule, TrainingState, fit

log = logging.getLogger(__name__)

Scorer = Callable[[torch.Tensor], torch.Tensor]


def gllm_loss(logits: torch.Tensor, targets: list[np.ndarray], masked: list[np.ndarray]) -> torch.Tensor:
    """Multi-positive softmax cross-entropy over all items; known (non-target) positives masked."""
    rows = torch.repeat_interleave(torch.arange(len(masked)), torch.tensor([len(m) for m in masked]))
    logits = logits.clone()
    if len(rows):
        logits[rows, torch.from_numpy(np.concatenate(masked))] = float("-inf")
    log_probs = torch.log_softmax(logits, dim=1)
    losses = [-log_probs[row, torch.from_numpy(t)].mean() for row, t in enumerate(targets)]
    return torch.stack(losses).mean()


def gllm_step(model: GLLM, optimizer: torch.optim.Optimizer, batch: list[Example]) -> float:
    """One optimisation step on (user, prompt items, target items, masked items) examples; returns the loss.

    Training scores the residual against the backbone graph embeddings the prompt tokens come from.
    """
    users = torch.tensor([b[0] for b in batch])
    logits = model.logits(users, model.hidden(users, [b[1] for b in batch]), model.graph_base)
    loss = gllm_loss(logits, [b[2] for b in batch], [b[3] for b in batch])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


HiddenCache = dict[tuple[int, bytes], torch.Tensor]


def make_scorer(model: GLLM, histories: list[np.ndarray], history_length: int, batch_size: int, base: Base,
                cache: HiddenCache | None = None) -> Scorer:
    """Score function for the ranking evaluator: users -> GLLM logits over all items, residual on ``base``.

    ``cache`` (shared between scorers of the same model) keeps each prompt's hidden state, keyed by
    user and shown items, so a prompt that validation, test and recommendations have in common
    goes through the LLM once.
    """
    cache = {} if cache is None else cache

    def score(users: torch.Tensor) -> torch.Tensor:
        model.eval()
        out = []
        with torch.no_grad():
            for lo in range(0, len(users), batch_size):
                chunk = users[lo : lo + batch_size]
                hist = [histories[int(u)][-history_length:] for u in chunk]
                keys = [(int(u), h.tobytes()) for u, h in zip(chunk, hist)]
                todo = [row for row, key in enumerate(keys) if key not in cache]
                if todo:
                    fresh = model.hidden(chunk[todo], [hist[row] for row in todo])
                    cache.update({keys[row]: h for row, h in zip(todo, fresh)})
                hidden = torch.stack([cache[key] for key in keys])
                out.append(model.logits(chunk, hidden, base).cpu())
        return torch.cat(out)
    return score


def history_scorer(model: GLLM, history: pd.DataFrame, n_users: int, base: Base,
                   cache: HiddenCache | None = None) -> Scorer:
    """Score function of a trained GLLM whose prompts show each user's latest ``history`` items."""
    return make_scorer(model, user_histories(history, n_users), model.config.history_length,
                       model.config.scoring_batch_size, base, cache)


@dataclass
class GLLMResult:
    model: GLLM
    history: pd.DataFrame
    best_epoch: int


def train_gllm(
    model: GLLM, data: GLLMData, config: GLLMConfig, checkpoint_path: Path | None = None,
    on_epoch_end: EpochCallback | None = None, show_progress: bool | None = None,
) -> GLLMResult:
    """Train the GLLM's trainable parts; early-stop on validation Recall@20; checkpoint each epoch.

    With ``config.resume`` and an existing checkpoint, training continues after its last epoch.
    Bit-reproducible for a seed (:func:`deterministic`).
    """
    with deterministic():
        return _train_gllm(model, data, config, checkpoint_path, on_epoch_end, show_progress)


def _train_gllm(model: GLLM, data: GLLMData, config: GLLMConfig, checkpoint_path: Path | None,
                on_epoch_end: EpochCallback | None, show_progress: bool | None) -> GLLMResult:
    config.validate()
    params = [p for p in model.parameters() if p.requires_grad]
    if model.llm is not None:
        params += [p for p in model.llm.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    state = TrainingState()
    if config.resume and checkpoint_path is not None and checkpoint_path.is_file():
        state = load_checkpoint(checkpoint_path, model, optimizer, rng)
    full_histories = user_histories(data.train, len(data.visible))
    state = fit(
        "GLLM", Schedule(config.epochs, config.eval_every, config.patience, "recall_at_20"),
        train_epoch=lambda epoch: _train_epoch(model, optimizer, data, config, rng, epoch, show_progress),
        validate=lambda: _validate(model, data, config, full_histories),
        snapshot=lambda: trainable_state(model), state=state, on_epoch_end=on_epoch_end,
        after_epoch=None if checkpoint_path is None else lambda s: save_checkpoint(checkpoint_path, model, optimizer, rng, s),
        show_progress=show_progress)
    if state.best_state is not None:
        load_trainable_state(model, state.best_state)
    model.eval()
    return GLLMResult(model, pd.DataFrame(state.rows), state.best_epoch)


def _train_epoch(model: GLLM, optimizer: torch.optim.Optimizer, data: GLLMData, config: GLLMConfig,
                 rng: np.random.Generator, epoch: int, show_progress: bool | None) -> dict[str, Any]:
    """One pass over this epoch's examples; returns the epoch's row of the training history."""
    model.train()
    examples = epoch_examples(data, config, rng)
    start, losses = time.perf_counter(), []
    bar = tqdm(range(0, len(examples), config.batch_size), desc=f"GLLM epoch {epoch}", unit="batch",
               disable=None if show_progress is None else not show_progress)
    for lo in bar:
        losses.append(gllm_step(model, optimizer, examples[lo : lo + config.batch_size]))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    seconds = time.perf_counter() - start
    return {"loss": float(np.mean(losses)), "seconds": seconds,
            "users_per_second": len(examples) / seconds, "graph_scale": model.graph_scale.item(),
            "head_norm": float(model.head.weight.detach().norm()), "peak_memory_mb": peak_memory_mb()}


def _validate(model: GLLM, data: GLLMData, config: GLLMConfig, histories: list[np.ndarray]) -> dict[str, float]:
    """Validation metrics (``valid_*``) with the residual on ``data.eval_base``, and the scoring speed."""
    base = data.eval_base if data.eval_base is not None else model.graph_base
    scorer = make_scorer(model, histories, config.history_length, config.scoring_batch_size, base)
    t0 = time.perf_counter()
    metrics = ranking_metrics(scorer, data.train, data.valid, len(data.visible), data.n_items, [10, 20])
    row = {"scoring_users_per_second": data.valid["user_idx"].nunique() / (time.perf_counter() - t0)}
    return {**row, **{f"valid_{k}": v for k, v in metrics.items()}}


def save_checkpoint(path: Path, model: GLLM, optimizer: torch.optim.Optimizer, rng: np.random.Generator,
                    progress: TrainingState) -> None:
    """Write atomically: a crash mid-save leaves the previous checkpoint intact."""
    state = {"model": trainable_state(model), "optimizer": optimizer.state_dict(), "rng": rng.bit_generator.state,
             "history": progress.rows, "epoch": progress.epoch, "best_score": progress.best_score,
             "best_epoch": progress.best_epoch, "best_state": progress.best_state,
             "evals_since_best": progress.evals_since_best}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, model: GLLM, optimizer: torch.optim.Optimizer, rng: np.random.Generator) -> TrainingState:
    """Restore model, optimiser and sampling RNG from ``path``; returns where training stood."""
    try:
        saved = torch.load(path, weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as error:  # truncated or not a checkpoint
        raise InputError(f"checkpoint {path}", f"a corrupted file ({str(error).splitlines()[0]})",
                         "a complete checkpoint: delete the file, or run with gllm_finetune.gllm.resume=false "
                         "to train from the start") from None
    load_trainable_state(model, saved["model"], where=f"checkpoint {path}")
    optimizer.load_state_dict(saved["optimizer"])
    rng.bit_generator.state = saved["rng"]
    log.info("Resuming GLLM training after epoch %d from %s", saved["epoch"], path)
    return TrainingState(saved["history"], saved["epoch"], saved["best_score"], saved["best_epoch"], saved["best_state"],
                     saved["evals_since_best"])


def peak_memory_mb() -> float:
    """Peak memory of this process: CUDA allocations when on GPU, else the peak resident set."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
