"""Full-ranking evaluation: score every item for every user, mask seen items, compute top-K metrics
(accuracy here, beyond-accuracy from the same lists in ``beyond_accuracy.py``).

Users are processed in chunks, so memory is bounded by ``chunk_size x n_items`` whatever the
number of users. All methods (popularity, LightGCN, GLTA, ...) go through the same code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from glta_pipelines.core.data.interactions import trained_items
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.evaluation.beyond_accuracy import BEYOND_NAMES, Catalogue, list_metrics

METRIC_NAMES = ("recall", "ndcg", "precision", "hit_rate", "mrr", "map")  # accuracy: one value per user


def check_selection_metric(value: str, parameter: str) -> None:
    """Raise :class:`InputError` naming ``parameter`` unless ``value`` is ``<metric>_at_<k>`` (a
    validation metric this module computes, e.g. ``recall_at_20``)."""
    metric, _, k = value.rpartition("_at_")
    if metric not in METRIC_NAMES or not k.isdigit() or int(k) < 1:
        raise InputError(parameter, repr(value),
                         f"<metric>_at_<k> with <metric> one of {', '.join(METRIC_NAMES)} (e.g. recall_at_20)")


# Maps a LongTensor of user indices to a (len(users), n_items) float tensor of scores.
ScoreFn = Callable[[torch.Tensor], torch.Tensor]


def user_item_csr(users: np.ndarray, items: np.ndarray, n_users: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Compressed rows (``crow``, ``col``) of a user -> items relation, rows grouped by user."""
    users = torch.from_numpy(np.array(users, dtype=np.int64))  # a copy: pandas may hand read-only arrays
    items = torch.from_numpy(np.array(items, dtype=np.int64))
    crow = torch.zeros(n_users + 1, dtype=torch.long)
    crow[1:] = torch.cumsum(torch.bincount(users, minlength=n_users), 0)
    if len(users) > 1 and bool((users[1:] >= users[:-1]).all()):  # already grouped (split tables are)
        return crow, items
    return crow, items[torch.argsort(users, stable=True)]  # grouping is all the masking needs


def csr_row_entries(crow: torch.Tensor, col: torch.Tensor, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row in ``users``, item) of every entry of the given users' CSR rows."""
    starts, lengths = crow[users], crow[users + 1] - crow[users]
    rows = torch.repeat_interleave(torch.arange(len(users)), lengths)
    offsets = torch.arange(int(lengths.sum())) - torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
    return rows, col[torch.repeat_interleave(starts, lengths) + offsets]


def rank_top_k(
    score_fn: ScoreFn,
    exclude: pd.DataFrame,
    n_users: int,
    n_items: int,
    k: int,
    chunk_size: int = 1024,
    users: np.ndarray | None = None,
    tie_order: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` item indices and scores per user, never recommending the items in ``exclude``.

    ``exclude`` has columns user_idx, item_idx (typically the user's training items).
    Returns ``(indices, scores)``, each (len(users), k), best first. The excluded entries are
    overwritten in the score function's output in place (one ``chunk_size x n_items`` buffer
    per chunk); an output that is a view of other data is copied first. Equal scores keep
    ``torch.topk``'s own order (fixed, not random), or the order of the permutation ``tie_order``
    (:func:`random_tie_order`).
    """
    users = np.arange(n_users) if users is None else np.asarray(users)
    k = min(k, n_items)
    tops = [_top_k(scores, k, tie_order) for scores in _masked_scores(score_fn, exclude, n_users, n_items, chunk_size,
                                                                     users)]
    return torch.cat([top[0] for top in tops]), torch.cat([top[1] for top in tops])


def random_tie_order(n_items: int, seed: int) -> torch.Tensor:
    """A seeded random permutation of the items: where scores tie, the item earlier in it ranks first."""
    return torch.randperm(n_items, generator=torch.Generator().manual_seed(seed))


def _top_k(scores: torch.Tensor, k: int, tie_order: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices, values) of the ``k`` best scores per row; ties broken by ``tie_order`` when given."""
    if tie_order is None:
        top = torch.topk(scores, k, dim=1)
        return top.indices, top.values
    # a stable sort over the permuted columns: equal scores keep the permutation's order
    values, positions = torch.sort(scores[:, tie_order], dim=1, descending=True, stable=True)
    return tie_order[positions[:, :k]], values[:, :k]


def rank_top_k_per_task(
    score_fn: ScoreFn,
    exclude: pd.DataFrame,
    candidates: dict[str, torch.Tensor | None],
    n_users: int,
    n_items: int,
    k: int,
    chunk_size: int,
    users: np.ndarray,
    tie_order: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """:func:`rank_top_k`'s indices for several tasks at once, each ranking only its ``candidates``
    (a boolean mask over items; None: every item). Each chunk of users is scored once for all tasks."""
    k = min(k, n_items)
    found: dict[str, list[torch.Tensor]] = {name: [] for name in candidates}
    for scores in _masked_scores(score_fn, exclude, n_users, n_items, chunk_size, users):
        for name, mask in candidates.items():
            ranked = scores if mask is None else scores.masked_fill(~mask, float("-inf"))
            found[name].append(_top_k(ranked, k, tie_order)[0])
    return {name: torch.cat(parts) for name, parts in found.items()}


def _masked_scores(score_fn: ScoreFn, exclude: pd.DataFrame, n_users: int, n_items: int, chunk_size: int,
                   users: np.ndarray):
    """Each chunk's scores with the ``exclude`` pairs at -inf (one ``chunk_size x n_items`` buffer at a time)."""
    crow, col = user_item_csr(exclude["user_idx"].to_numpy(), exclude["item_idx"].to_numpy(), n_users)
    for start in range(0, len(users), chunk_size):
        chunk = torch.from_numpy(users[start : start + chunk_size]).long()
        scores = _writable(score_fn(chunk))
        _check_scores(scores, len(chunk), n_items)
        scores.index_put_(csr_row_entries(crow, col, chunk), torch.tensor(float("-inf")))
        yield scores


def _writable(scores: torch.Tensor) -> torch.Tensor:
    """Float32 CPU scores that may be overwritten: a fresh contiguous CPU tensor is used as it is,
    scores computed on a GPU are copied to the CPU (ranking and metrics run there)."""
    if scores.device.type != "cpu":
        return scores.detach().float().cpu().contiguous()
    if scores.dtype == torch.float32 and scores.is_contiguous() and scores._base is None and not scores.requires_grad:
        return scores
    return scores.detach().float().contiguous().clone()


def _check_scores(scores: torch.Tensor, n_rows: int, n_items: int) -> None:
    if scores.shape != (n_rows, n_items):
        raise InputError("score function output", f"shape {tuple(scores.shape)}", f"({n_rows}, {n_items}): every item scored")


def ranking_metrics(
    score_fn: ScoreFn,
    exclude: pd.DataFrame,
    truth: pd.DataFrame,
    n_users: int,
    n_items: int,
    ks: Sequence[int] = (10, 20),
    chunk_size: int = 1024,
) -> dict[str, float]:
    """Recall, NDCG, Precision, Hit rate and MRR at each K, averaged over users with a truth item.

    Keys are ``<metric>_at_<k>``. ``exclude`` items are masked before ranking; ``truth`` holds
    the held-out (user_idx, item_idx) pairs to find.
    """
    _, values = per_user_metrics(score_fn, exclude, truth, n_users, n_items, ks, chunk_size)
    return {name: float(v.mean()) for name, v in values.items()}


def per_user_metrics(
    score_fn: ScoreFn,
    exclude: pd.DataFrame,
    truth: pd.DataFrame,
    n_users: int,
    n_items: int,
    ks: Sequence[int] = (10, 20),
    chunk_size: int = 1024,
    tail_items: torch.Tensor | None = None,
    tie_order: torch.Tensor | None = None,
    catalogue: Catalogue | None = None,
) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
    """(users with a truth item, ``<metric>_at_<k>`` -> one value per such user), as :func:`ranking_metrics`.

    With ``tail_items`` (a boolean mask over items) each user also gets ``hits_at_<k>`` and
    ``tail_hits_at_<k>``: the hits in the top K, and those on tail items (``core.breakdowns``).
    With ``catalogue`` the lists' beyond-accuracy metrics are added (``beyond_accuracy.list_metrics``:
    coverage and gini as 0-d tensors, the others one value per user).
    """
    if not ks or any(int(k) < 1 for k in ks):
        raise InputError("parameter evaluate.ks", list(ks), "a non-empty list of positive integers")
    ks = sorted({int(k) for k in ks})
    users = np.flatnonzero(np.bincount(truth["user_idx"].to_numpy(), minlength=n_users))
    if len(users) == 0:
        raise InputError("evaluation split", "0 users with held-out items", "at least one user to evaluate")
    top_idx, _ = rank_top_k(score_fn, exclude, n_users, n_items, max(ks), chunk_size, users, tie_order)
    hits, n_truth = _hits(top_idx, users, truth, n_users, n_items)
    metrics = hit_metrics(hits, n_truth, ks)
    if catalogue is not None:
        metrics.update(list_metrics(top_idx, ks, catalogue))
    if tail_items is not None:
        on_tail = tail_items[top_idx].float()
        for k in ks:
            metrics[f"hits_at_{k}"] = hits[:, :k].sum(1)
            metrics[f"tail_hits_at_{k}"] = (hits[:, :k] * on_tail[:, :k]).sum(1)
    return users, metrics


def _hits(top_idx: torch.Tensor, users: np.ndarray, truth: pd.DataFrame, n_users: int, n_items: int,
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """(users x K 0/1 hits of the ranked lists, each user's number of distinct truth items)."""
    # A ranked item is a hit when (user, item) is a truth pair: look its key up among the sorted truth keys.
    truth_keys = np.sort(truth["user_idx"].to_numpy().astype(np.int64) * n_items + truth["item_idx"].to_numpy())
    truth_keys = truth_keys[np.r_[True, truth_keys[1:] != truth_keys[:-1]]]  # a repeated pair counts once
    n_truth = torch.from_numpy(np.bincount(truth_keys // n_items, minlength=n_users)[users])
    ranked_keys = (users.astype(np.int64)[:, None] * n_items + top_idx.numpy()).ravel()
    found = np.searchsorted(truth_keys, ranked_keys).clip(max=len(truth_keys) - 1)
    return torch.from_numpy((truth_keys[found] == ranked_keys).reshape(top_idx.shape)).float(), n_truth


def task_metrics(
    score_fn: ScoreFn,
    exclude: pd.DataFrame,
    tasks: dict[str, tuple[pd.DataFrame, torch.Tensor | None]],
    n_users: int,
    n_items: int,
    ks: Sequence[int] = (10, 20),
    chunk_size: int = 1024,
    tie_order: torch.Tensor | None = None,
    catalogue: Catalogue | None = None,
) -> dict[str, dict[str, float]]:
    """Mean metrics of several tasks on one split, scoring each user once: ``tasks`` maps a name to
    (its truth pairs, the items it ranks: a boolean mask, or None for all). A user counts in a task
    when it has a truth item there; a task without any user has no metrics (``n_users`` 0). With
    ``catalogue``, each task's lists also get their beyond-accuracy metrics."""
    ks = sorted({int(k) for k in ks})
    users_of = {name: np.flatnonzero(np.bincount(truth["user_idx"].to_numpy(), minlength=n_users))
                for name, (truth, _) in tasks.items()}
    everyone = np.unique(np.concatenate(list(users_of.values())))
    if len(everyone) == 0:
        return {name: {} for name in tasks}
    tops = rank_top_k_per_task(score_fn, exclude, {name: mask for name, (_, mask) in tasks.items()}, n_users, n_items,
                               max(ks), chunk_size, everyone, tie_order)
    out: dict[str, dict[str, float]] = {}
    for name, (truth, _) in tasks.items():
        users = users_of[name]
        if len(users) == 0:
            out[name] = {}
            continue
        top = tops[name][np.searchsorted(everyone, users)]
        hits, n_truth = _hits(top, users, truth, n_users, n_items)
        values = {**hit_metrics(hits, n_truth, ks), **(list_metrics(top, ks, catalogue) if catalogue else {})}
        out[name] = {metric: float(v.nanmean()) for metric, v in values.items()}  # diversity: lists with content
    return out


def item_tasks(train: pd.DataFrame, held_out: pd.DataFrame, n_items: int,
               ) -> dict[str, tuple[pd.DataFrame, torch.Tensor]]:
    """The new-item protocol's two extra tasks on a held-out split: ``cold`` ranks only the held-out
    items that training never saw, against the user's interactions with them; ``warm`` ranks only
    the items training saw, against the user's interactions with those."""
    warm = torch.from_numpy(trained_items(train, n_items))
    cold = torch.zeros(n_items, dtype=torch.bool)
    cold[torch.from_numpy(held_out["item_idx"].to_numpy())] = True
    cold &= ~warm
    on_cold = cold[torch.from_numpy(held_out["item_idx"].to_numpy())].numpy()
    return {"cold": (held_out[on_cold], cold), "warm": (held_out[~on_cold], warm)}


def user_tasks(history: pd.DataFrame, held_out: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, None]]:
    """The new-user protocol's two extra tasks on a held-out split: ``cold`` the targets of the users
    with a ``history`` (those training never saw), ``warm`` the other users'; every item is ranked."""
    cold = held_out["user_idx"].isin(history["user_idx"].unique()).to_numpy()
    return {"cold": (held_out[cold], None), "warm": (held_out[~cold], None)}


_BOOTSTRAP_BLOCK_ELEMENTS = 1 << 22  # resampled user indices held at once (32 MiB)


def paired_bootstrap(ours: torch.Tensor, reference: torch.Tensor, n_resamples: int = 2000, seed: int = 0,
                     ) -> dict[str, float]:
    """Difference of two methods' mean per-user metric (absolute and relative), with 95% bootstrap intervals.

    Users are resampled with replacement and both methods keep their pairing, so the interval
    reflects how much the difference depends on which users happen to be in the split. Relative
    values are NaN when the reference's mean is 0.
    """
    if ours.shape != reference.shape or ours.ndim != 1 or len(ours) == 0:
        raise InputError("paired_bootstrap inputs", f"shapes {tuple(ours.shape)} and {tuple(reference.shape)}",
                         "two equal-length, non-empty vectors of per-user values")
    ours, reference = ours.double(), reference.double()
    generator = torch.Generator().manual_seed(seed)
    # Resamples are drawn in blocks so memory stays bounded for millions of users; the generator
    # yields the same stream as one (n_resamples, n_users) draw.
    block = max(1, _BOOTSTRAP_BLOCK_ELEMENTS // len(ours))
    ours_means, reference_means = [], []
    for start in range(0, n_resamples, block):
        rows = torch.randint(len(ours), (min(block, n_resamples - start), len(ours)), generator=generator)
        ours_means.append(ours[rows].mean(1))
        reference_means.append(reference[rows].mean(1))
    ours_means, reference_means = torch.cat(ours_means), torch.cat(reference_means)
    quantiles = torch.tensor([0.025, 0.975], dtype=torch.float64)
    absolute = ours_means - reference_means
    out = {"absolute_difference": float(ours.mean() - reference.mean())}
    out["absolute_ci95_low"], out["absolute_ci95_high"] = torch.quantile(absolute, quantiles).tolist()
    out["share_of_resamples_above_zero"] = float((absolute > 0).double().mean())
    if float(reference.mean()) == 0.0:
        return {**out, "relative_difference": math.nan, "ci95_low": math.nan, "ci95_high": math.nan}
    relative = ours_means / reference_means - 1.0
    out["relative_difference"] = float(ours.mean() / reference.mean() - 1.0)
    out["ci95_low"], out["ci95_high"] = torch.quantile(relative, quantiles).tolist()
    return out


def hit_metrics(hits: torch.Tensor, n_truth: torch.Tensor, ks: Sequence[int]) -> dict[str, torch.Tensor]:
    """Per-user metrics from a (users, K) 0/1 hit matrix of ranked lists and each user's truth count."""
    out: dict[str, torch.Tensor] = {}
    positions = torch.arange(hits.shape[1], dtype=torch.float32)
    discounts = 1.0 / torch.log2(positions + 2.0)
    n_truth = n_truth.float()
    for k in ks:
        top = hits[:, :k]
        n_hit = top.sum(1)
        ideal = torch.cumsum(discounts[:k], 0)[(n_truth.clamp(max=k) - 1).clamp(min=0).long()]
        first = torch.where(top.any(1), top.argmax(1).float(), torch.full_like(n_hit, float("inf")))
        out[f"recall_at_{k}"] = n_hit / n_truth.clamp(min=1)
        out[f"ndcg_at_{k}"] = (top * discounts[:k]).sum(1) / ideal
        out[f"precision_at_{k}"] = n_hit / k
        out[f"hit_rate_at_{k}"] = (n_hit > 0).float()
        out[f"mrr_at_{k}"] = 1.0 / (first + 1.0)
        # average precision as RecBole's MAP: precision at each hit, over min(truth items, K)
        precision_at = torch.cumsum(top, 1) / torch.arange(1, top.shape[1] + 1, dtype=torch.float32)
        out[f"map_at_{k}"] = (precision_at * top).sum(1) / n_truth.clamp(min=1, max=k)
    return out


def metrics_table(method: str, split: str, metrics: dict[str, float]) -> pd.DataFrame:
    """Long-format rows (split, method, metric, k, value) from ``<metric>_at_<k>`` keys."""
    rows = []
    for key, value in metrics.items():
        metric, k = key.rsplit("_at_", 1)
        rows.append({"split": split, "method": method, "metric": metric, "k": int(k), "value": float(value)})
    return pd.DataFrame(rows, columns=["split", "method", "metric", "k", "value"])


HEAD_SHARE = 0.2  # the most popular 20% of items (by training interactions) are the head, the rest the long tail


def long_tail_items(train: pd.DataFrame, n_items: int, head_share: float = HEAD_SHARE) -> torch.Tensor:
    """Boolean mask of the items outside the top ``head_share`` by training popularity (ties by index)."""
    counts = np.bincount(train["item_idx"].to_numpy(), minlength=n_items)
    head = np.argsort(-counts, kind="stable")[: int(np.ceil(head_share * n_items))]
    tail = torch.ones(n_items, dtype=torch.bool)
    tail[torch.from_numpy(head)] = False
    return tail


def evaluate_splits(
    method: str,
    score_fn: ScoreFn,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    test: pd.DataFrame,
    n_users: int,
    n_items: int,
    ks: Sequence[int] = (10, 20),
    chunk_size: int = 1024,
    test_score_fn: ScoreFn | None = None,
    cold_and_warm: bool = False,
    tie_break_seed: int = 0,
    history: pd.DataFrame | None = None,
    content: torch.Tensor | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The shared protocol: valid ranks with train masked; test ranks with train and valid masked.

    Returns the metrics table (split, method, metric, k, value) and the test metrics of every
    user (``user_idx``, one column per metric, and ``hits_at_<k>`` / ``tail_hits_at_<k>`` for the
    long-tail breakdown). ``test_score_fn`` scores test when a method's
    input differs by split (e.g. a prompt history that includes validation items); by default
    ``score_fn`` scores both. ``cold_and_warm`` (the new-item protocol) adds the splits
    ``valid_cold``/``test_cold`` and ``valid_warm``/``test_warm`` (:func:`item_tasks`) from the
    same scores, and breaks ties in a random order of the items (``tie_break_seed``): a method
    that gives every cold item the same score (popularity: 0) then ranks them at random, not in
    ``torch.topk``'s fixed order. Without it ties keep that order, as every earlier result has.

    ``history`` (the new-user protocol: each cold user's first interactions, which the score
    function has folded in) is masked like training, and the extra splits are then by user:
    ``*_cold`` the cold users' targets, ``*_warm`` the other users', every item a candidate.

    Every split and task also gets the beyond-accuracy metrics of its lists (``beyond_accuracy.py``),
    with training popularity and, for intra-list diversity, the items' ``content`` rows when given.
    In the per-user table, the per-user ones are columns; coverage and gini, one value per list
    set, are in the metrics table only.
    """
    catalogue = Catalogue.from_train(train, n_items, content)
    new_users = history is not None and not history.empty
    seen_for_valid = pd.concat([train, history], ignore_index=True) if new_users else train
    seen_for_test = pd.concat([train, valid, *([history] if new_users else [])], ignore_index=True)
    order = random_tie_order(n_items, tie_break_seed) if cold_and_warm else None
    if cold_and_warm or new_users:
        def extra(held_out: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, torch.Tensor | None]]:
            return user_tasks(history, held_out) if new_users else item_tasks(train, held_out, n_items)

        tasks = {"": (valid, None), **{f"_{name}": task for name, task in extra(valid).items()}}
        found = task_metrics(score_fn, seen_for_valid, tasks, n_users, n_items, ks, chunk_size, order, catalogue)
        valid_tables = [metrics_table(method, f"valid{name}", values) for name, values in found.items()]
        test_tasks = {f"_{name}": task for name, task in extra(test).items()}
        found = task_metrics(test_score_fn or score_fn, seen_for_test, test_tasks, n_users, n_items, ks, chunk_size,
                             order, catalogue)
        extra_tables = [metrics_table(method, f"test{name}", values) for name, values in found.items()]
    else:
        _, found = per_user_metrics(score_fn, train, valid, n_users, n_items, ks, chunk_size, catalogue=catalogue)
        valid_tables = [metrics_table(method, "valid", {name: float(v.nanmean()) for name, v in found.items()})]
        extra_tables = []
    users, per_user = per_user_metrics(test_score_fn or score_fn, seen_for_test, test, n_users, n_items, ks, chunk_size,
                                       long_tail_items(train, n_items), order, catalogue)
    reported = (*METRIC_NAMES, *BEYOND_NAMES)
    means = {name: float(v.nanmean()) for name, v in per_user.items() if name.rpartition("_at_")[0] in reported}
    table = pd.concat([*valid_tables, metrics_table(method, "test", means), *extra_tables], ignore_index=True)
    return table, pd.DataFrame({"user_idx": users, **{name: v.numpy() for name, v in per_user.items() if v.ndim == 1}})
