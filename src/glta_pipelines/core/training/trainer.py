"""One training loop for every model (as RecBole has one trainer): epochs, validation every few
epochs, early stopping on a validation metric with a snapshot of the best weights, one history
row per epoch, a progress bar, a log line and a callback per epoch, and a hook after each epoch
(checkpoints). The models supply what differs: one epoch of training, validation, a snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

log = logging.getLogger(__name__)

Row = dict[str, Any]
EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainingState:
    """Where training stands: what a checkpoint carries besides the weights and the optimiser."""

    rows: list[Row] = field(default_factory=list)  # one per finished epoch
    epoch: int = 0  # last finished epoch
    best_score: float = -1.0
    best_epoch: int = 0
    best_state: dict | None = None  # snapshot of the best validation epoch's weights
    evals_since_best: int = 0


@dataclass(frozen=True)
class Schedule:
    """How long to train and when to stop."""

    max_epochs: int
    eval_every: int
    patience: int  # evaluations without a better score before stopping
    selection_metric: str = "recall_at_20"  # key of the validation metrics, without the valid_ prefix


def fit(
    name: str,
    schedule: Schedule,
    train_epoch: Callable[[int], Row],
    validate: Callable[[], Row],
    snapshot: Callable[[], dict],
    state: TrainingState | None = None,
    on_epoch_end: EpochCallback | None = None,
    after_epoch: Callable[[TrainingState], None] | None = None,
    show_progress: bool | None = None,
) -> TrainingState:
    """Train epoch by epoch from ``state`` (a resumed run) or from scratch; returns the final state.

    ``train_epoch(epoch)`` returns the epoch's row (loss, seconds, ...). ``validate()`` returns
    row entries including ``valid_<selection_metric>``; it runs every ``eval_every`` epochs and
    after the last. ``snapshot()`` copies the weights when validation improves. ``after_epoch``
    runs at the end of each epoch (e.g. a checkpoint), before ``on_epoch_end``. ``show_progress=None``: a bar only on a terminal.
    """
    state = state or TrainingState()
    bar = tqdm(range(state.epoch + 1, schedule.max_epochs + 1), desc=name, unit="epoch",
               disable=None if show_progress is None else not show_progress)
    for epoch in bar:
        if state.evals_since_best >= schedule.patience:  # a resumed run that had already stopped
            break
        row = {"epoch": epoch, **train_epoch(epoch)}
        if epoch % schedule.eval_every == 0 or epoch == schedule.max_epochs:
            row.update(validate())
            _track_best(state, epoch, float(row[f"valid_{schedule.selection_metric}"]), snapshot)
        state.rows.append(row)
        state.epoch = epoch
        bar.set_postfix(loss=f"{row.get('loss', float('nan')):.4f}", best=f"{max(state.best_score, 0):.4f}")
        log.info("%s epoch %d: %s", name, epoch, ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                                         for k, v in row.items() if k != "epoch"))
        if after_epoch is not None:  # first: an epoch that has been reported is checkpointed
            after_epoch(state)
        if on_epoch_end is not None:
            on_epoch_end(epoch, {k: v for k, v in row.items() if k != "epoch"})
        if state.evals_since_best >= schedule.patience:
            log.info("%s early stop at epoch %d; best epoch %d (%s=%.4f)", name, epoch, state.best_epoch,
                     schedule.selection_metric, state.best_score)
            break
    bar.close()
    return state


def _track_best(state: TrainingState, epoch: int, score: float, snapshot: Callable[[], dict]) -> None:
    if score > state.best_score:
        state.best_score, state.best_epoch, state.evals_since_best = score, epoch, 0
        state.best_state = snapshot()
    else:
        state.evals_since_best += 1
