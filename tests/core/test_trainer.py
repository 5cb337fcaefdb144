"""The one training loop: validation schedule, early stopping, best snapshot, resume, callbacks."""

from glta_pipelines.core.training.trainer import Schedule, TrainingState, fit


def _run(scores, schedule, state=None):
    """Train a fake model whose weight is the epoch number; validation returns the given scores."""
    weights = {"w": 0}
    calls = {"validated": [], "callbacks": [], "after": []}

    def train_epoch(epoch):
        weights["w"] = epoch
        return {"loss": 1.0 / epoch}

    def validate():
        calls["validated"].append(weights["w"])
        return {"valid_recall_at_20": scores[weights["w"]]}

    state = fit("fake", schedule, train_epoch, validate, lambda: dict(weights), state=state,
                on_epoch_end=lambda e, m: calls["callbacks"].append(e),
                after_epoch=lambda s: calls["after"].append(s.epoch), show_progress=False)
    return state, calls


def test_validates_on_schedule_and_after_the_last_epoch_and_keeps_the_best_snapshot():
    scores = {e: s for e, s in enumerate([0, 0.1, 0.3, 0.2, 0.25, 0.1], start=0)}
    state, calls = _run(scores, Schedule(max_epochs=5, eval_every=2, patience=5))
    assert calls["validated"] == [2, 4, 5]
    assert state.best_epoch == 2 and state.best_state == {"w": 2} and state.best_score == 0.3
    assert [r["epoch"] for r in state.rows] == [1, 2, 3, 4, 5] and "valid_recall_at_20" not in state.rows[0]
    assert calls["callbacks"] == calls["after"] == [1, 2, 3, 4, 5]


def test_stops_after_patience_evaluations_without_improvement():
    scores = {e: 1.0 / e for e in range(1, 20)}  # best at epoch 1, then worse
    state, calls = _run(scores, Schedule(max_epochs=19, eval_every=1, patience=3))
    assert state.epoch == 4 and calls["validated"] == [1, 2, 3, 4] and state.best_epoch == 1


def test_resumes_after_the_last_finished_epoch():
    scores = {e: e / 10 for e in range(1, 7)}
    full, _ = _run(scores, Schedule(max_epochs=6, eval_every=1, patience=2))
    half, _ = _run(scores, Schedule(max_epochs=3, eval_every=1, patience=2))
    resumed, calls = _run(scores, Schedule(max_epochs=6, eval_every=1, patience=2), state=half)
    assert calls["validated"] == [4, 5, 6]
    assert resumed.rows == full.rows and resumed.best_epoch == full.best_epoch == 6


def test_a_resumed_run_that_had_stopped_trains_no_further():
    stopped = TrainingState(epoch=3, best_epoch=1, best_score=0.5, evals_since_best=2)
    state, calls = _run({}, Schedule(max_epochs=6, eval_every=1, patience=2), state=stopped)
    assert state.epoch == 3 and calls["validated"] == []
