"""SASRec: causal reading of a sequence, training that learns an order, reproducibility, a
self-describing artifact and parameters named in errors."""

import numpy as np
import pandas as pd
import pytest
import torch

from glta_pipelines.core.errors import InputError
from glta_pipelines.core.evaluation.ranking import ranking_metrics
from glta_pipelines.core.models.sasrec import (
    SASRec,
    SASRecConfig,
    from_artifact,
    sequence_scorer,
    to_artifact,
    train_sasrec,
    training_windows,
)

SMALL = dict(hidden_size=16, inner_size=32, num_heads=2, max_length=8, hidden_dropout=0.1, attention_dropout=0.1,
             max_epochs=40, patience=40, eval_every=5, batch_size=16)


def _cycles(n_users=60, n_items=12, length=10, seed=0):
    """Each user walks the cycle 0 -> 1 -> ... -> n_items-1 -> 0 from a random start: the next item is
    fully determined by the last one, and every item is equally popular."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        start = int(rng.integers(n_items))
        for t in range(length):
            rows.append((user, (start + t) % n_items, t))
    frame = pd.DataFrame(rows, columns=["user_idx", "item_idx", "timestamp"])
    last = frame.groupby("user_idx")["timestamp"].transform("max")
    return frame[frame["timestamp"] < last - 1], frame[frame["timestamp"] == last - 1], frame[frame["timestamp"] == last]


def test_windows_cover_every_next_item_target_once_latest_first():
    inputs, targets = training_windows([np.arange(12), np.arange(1), np.arange(3)], max_length=5)
    real = targets[targets >= 0]
    assert sorted(real.tolist()) == sorted(list(range(1, 12)) + [1, 2])
    assert inputs[0].tolist() == [6, 7, 8, 9, 10] and targets[0].tolist() == [7, 8, 9, 10, 11]  # latest window first
    assert (inputs[targets >= 0] + 1 == targets[targets >= 0]).all()  # each target follows its input


def test_an_output_reads_only_the_items_before_it():
    torch.manual_seed(0)
    model = SASRec(10, SASRecConfig(**SMALL)).eval()
    a = torch.tensor([[1, 2, 3, 4]])
    b = torch.tensor([[1, 2, 3, 9]])
    with torch.no_grad():
        out_a, out_b = model.encode(a), model.encode(b)
    assert torch.allclose(out_a[0, :3], out_b[0, :3]) and not torch.allclose(out_a[0, 3], out_b[0, 3])
    # a user's vector is the output at its last item, padding after it changes nothing
    with torch.no_grad():
        assert torch.allclose(model.users([np.array([0, 1, 2])])[0], model.encode(torch.tensor([[1, 2, 3]]))[0, 2], atol=1e-6)
        assert torch.allclose(model.users([np.array([0, 1, 2]), np.arange(7)])[0], model.users([np.array([0, 1, 2])])[0],
                              atol=1e-6)
        assert model.users([np.zeros(0, dtype=np.int64)]).abs().sum() == 0


@pytest.mark.parametrize("loss", ["ce", "bpr"])
def test_sasrec_learns_an_order_that_popularity_cannot_see_and_is_reproducible(loss):
    train, valid, test = _cycles()
    config = SASRecConfig(**SMALL, loss=loss, seed=3)
    trained = train_sasrec(train, valid, 60, 12, config, show_progress=False)
    histories = [np.sort(g["item_idx"].to_numpy()) for _, g in train.groupby("user_idx")]
    ordered = [g.sort_values("timestamp")["item_idx"].to_numpy() for _, g in train.groupby("user_idx")]
    recall = ranking_metrics(sequence_scorer(trained.model, ordered), train, valid, 60, 12, [1])["recall_at_1"]
    assert recall > 0.8, trained.history.tail()  # the item after the last one, nearly always first
    # popularity ranks every item alike here (1/12 on average); sorted (order-free) histories lose the signal
    bag = ranking_metrics(sequence_scorer(trained.model, histories), train, valid, 60, 12, [1])["recall_at_1"]
    assert bag < recall
    again = train_sasrec(train, valid, 60, 12, config, show_progress=False)
    for name, tensor in trained.model.state_dict().items():
        assert torch.equal(tensor, again.model.state_dict()[name]), name
    rebuilt = from_artifact(to_artifact(trained, 12))
    users = torch.arange(5)
    assert torch.equal(sequence_scorer(rebuilt, ordered)(users), sequence_scorer(trained.model, ordered)(users))


@pytest.mark.parametrize("field, value, message", [
    ("hidden_size", 15, "multiple of baselines.sasrec.num_heads"), ("loss", "bce", "one of 'ce', 'bpr'"),
    ("hidden_dropout", 1.0, "probability"), ("max_length", 0, "at least 1"),
    ("selection_metric", "recall@20", "<metric>_at_<k>")])
def test_bad_sasrec_parameters_are_named(field, value, message):
    with pytest.raises(InputError, match=message) as error:
        SASRecConfig(**{field: value}).validate()
    assert f"baselines.sasrec.{field}" in str(error.value)
