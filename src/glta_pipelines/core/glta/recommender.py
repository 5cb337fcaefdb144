"""Recommendations on request, for known users and for users the graph has never seen.

One contract for Python, REST (the MLflow model, ``serving/``) and batch (the ``recommend``
pipeline). A request is a mapping:

- a known user: ``{"user_id": 7, "k": 10}``; the prompt shows the user's known items;
- a new user: ``{"history": [50, 172, 181], "k": 10}``; the user's graph embeddings are
  *folded in* from the history (below) and the history goes into the prompt as for any user;
- optional ``exclude``: items never to recommend. Known items, the history and ``exclude`` never
  appear in the answer. ``k`` defaults to 10; a request whose exclusions leave fewer than ``k``
  items gets fewer rows (none when nothing is left).

Every answer row says whether its item was ``added_by_text`` (placed from its text after
training, by the ``add_items`` pipeline) rather than learned from interactions.

Ids are the source data's own ids; ``7``, ``7.0`` and ``"7"`` name the same id. Unknown item ids
in a history or in ``exclude`` are ignored: the answer's ``ignored_count`` counts them and the
request's first row lists the first few in ``ignored_items``; a history with no known item gets
the most popular items, flagged ``fallback: popularity``. Anything else that is wrong (an unknown
``user_id``, ``k`` out of range, a history that is not a list of ids, both or neither of
``user_id`` and ``history``, a request over the model's :class:`RequestLimits`) raises
:class:`RequestError` naming the request and the field, with long values cut short.

**Fold-in of a new user.** LightGCN's first propagation step gives a user the (normalised) sum of
its items' embeddings; a new user's vector is the mean of its history items' final embeddings,
mapped by a linear map fitted by ridge regression on the known users (their mean item embedding
-> their trained embedding). This is done for both embedding sets the model reads: the backbone
(user token) and LightGCN (the base the GLLM blends with).
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from glta_pipelines.core.errors import InputError
from glta_pipelines.core.glta.examples import user_histories
from glta_pipelines.core.glta.model import GLLM, Base
from glta_pipelines.core.models.lightgcn import fold_in_map  # noqa: F401  (the fold-in's one home; re-exported)

DEFAULT_K = 10
FIELDS = ("user_id", "history", "k", "exclude")
ANSWER_COLUMNS = ["request", "user_id", "rank", "item_id", "title", "score", "fallback", "ignored_items",
                  "ignored_count", "added_by_text"]
ECHO_CHARACTERS = 80  # a value quoted back in an error or an answer is cut to this length


@dataclass(frozen=True)
class RequestLimits:
    """How much one call may ask of a served model (``registry.limits``, stored with the model).

    They bound the work and the answer of a call: at most ``max_rows`` x ``max_k`` answer rows,
    and prompts no longer than the model reads. A call over a limit gets an error naming the
    field and the limit. The ``recommend`` pipeline reads its requests in chunks of ``max_rows``.
    """

    max_rows: int = 100  # requests per call
    max_k: int = 100  # items per request (and at most the catalogue)
    max_history: int = 1000  # items in a new user's history (the prompt reads the latest history_length)
    max_exclude: int = 1000  # items in exclude
    max_ignored_listed: int = 10  # unknown ids listed in ignored_items (all are counted)

    def validate(self) -> None:
        for name in ("max_rows", "max_k", "max_history", "max_exclude", "max_ignored_listed"):
            if getattr(self, name) < 1:
                raise InputError(f"parameter registry.limits.{name}", getattr(self, name), "a positive integer")


_ECHO = reprlib.Repr()  # (keyword arguments from Python 3.12 on)
_ECHO.maxstring = _ECHO.maxother = ECHO_CHARACTERS
_ECHO.maxlong, _ECHO.maxlist, _ECHO.maxtuple, _ECHO.maxdict, _ECHO.maxlevel = 40, 5, 5, 5, 2


def echo(value: object) -> str:
    """``repr(value)`` bounded (long strings and numbers cut, lists and nesting shortened): how a
    request's value is quoted back, however large or deep it was."""
    return _ECHO.repr(value)


def cut(text: str, limit: int = 2 * ECHO_CHARACTERS) -> str:
    """``text`` cut to ``limit`` characters, with its full length said."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


class RequestError(InputError):
    """A bad recommendation request: names the request (its row) and the field; quotes values cut short."""

    def __init__(self, row: int, field_name: str, found: object, expected: str) -> None:
        super().__init__(f"request {row}, field {echo(field_name)}", cut(str(found)), expected)
        self.row, self.field_name = row, field_name

    def __reduce__(self):
        return type(self), (self.row, self.field_name, self.found, self.expected)


@dataclass(frozen=True)
class Request:
    """A checked request in indices: ``user`` is None for a new user."""

    row: int
    user_id: Any
    user: int | None
    history: np.ndarray  # item indices shown in the prompt, oldest first
    exclude: np.ndarray  # item indices never recommended (history, known items, exclude)
    k: int
    ignored: list[str] = field(default_factory=list)


def normalise_id(value: Any) -> str | None:
    """The string form of an id: ``7``, ``7.0``, ``np.int64(7)`` and ``"7"`` are ``"7"``; None for missing."""
    if _missing(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value).strip()


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _as_list(value: Any, row: int, name: str, limit: int, limit_name: str) -> list | None:
    """A list-like request field as a list of at most ``limit`` ids; None when absent."""
    if _missing(value):
        return None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise RequestError(row, name, f"{type(value).__name__} {echo(value)}", "a list of item ids, e.g. [50, 172, 181]")
    if len(value) > limit:
        raise RequestError(row, name, f"{len(value):,} items", f"at most {limit:,} (the served model's limit {limit_name})")
    for position, item in enumerate(value):
        if not (isinstance(item, (str, int, float, np.integer, np.floating)) or _missing(item)):
            raise RequestError(row, f"{name}[{position}]", f"{type(item).__name__} {echo(item)}",
                               "an item id (a number or a string)")
    return list(value)


class Recommender:
    """A trained GLTA model with what it needs to answer requests: id maps, titles, known histories.

    ``known`` holds every known interaction (user_idx, item_idx, timestamp); the fold-in maps are
    fitted on ``fit_histories`` (the training split), so held-out items never shape them.
    """

    def __init__(self, model: GLLM, base: Base, user_ids: Sequence[str], item_ids: Sequence[str],
                 titles: Sequence[str | None], known: list[np.ndarray], fit_histories: list[np.ndarray],
                 popularity: np.ndarray, added: Sequence[bool] | None = None,
                 limits: RequestLimits | None = None) -> None:
        self.model, self.base = model.eval(), base
        self.limits = limits or RequestLimits()
        self.user_ids, self.item_ids = [str(u) for u in user_ids], [str(i) for i in item_ids]
        self.user_index = {u: i for i, u in enumerate(self.user_ids)}
        self.item_index = {item: i for i, item in enumerate(self.item_ids)}
        self.titles = list(titles)
        # items placed from their text after training (the add_items pipeline): flagged in every answer
        self.added = np.zeros(len(self.item_ids), dtype=bool) if added is None else np.asarray(added, dtype=bool)
        self.known = known
        self.popularity = np.asarray(popularity, dtype=np.float64)
        self.fold_graph = fold_in_map(model.graph_item.cpu(), model.graph_user.cpu(), fit_histories)
        self.fold_base = fold_in_map(base[1].cpu(), base[0].cpu(), fit_histories)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    # ------------------------------------------------------------------ parsing
    def parse(self, requests: Sequence[Mapping[str, Any]], row_offset: int = 0) -> list[Request]:
        """Check every request and translate its ids; the first bad one raises :class:`RequestError`
        (rows numbered from ``row_offset``: a chunk of a longer table names its own rows)."""
        if len(requests) > self.limits.max_rows:
            raise InputError("request", f"{len(requests):,} rows",
                             f"at most {self.limits.max_rows:,} rows per call (the served model's limit max_rows)")
        return [self._parse(row_offset + row, request) for row, request in enumerate(requests)]

    def _parse(self, row: int, request: Mapping[str, Any]) -> Request:
        if not isinstance(request, Mapping):
            raise RequestError(row, "request", type(request).__name__, f"a mapping with the fields {list(FIELDS)}")
        unknown = sorted(set(request) - set(FIELDS))
        if unknown:
            raise RequestError(row, unknown[0], "an unknown field", f"only the fields {list(FIELDS)}")
        k = self._k(row, request.get("k"))
        user_id = request.get("user_id")
        if not (_missing(user_id) or isinstance(user_id, (str, int, float, np.integer, np.floating))):
            raise RequestError(row, "user_id", f"{type(user_id).__name__} {echo(user_id)}", "a user id (a number or a string)")
        user_id = normalise_id(user_id)
        history = _as_list(request.get("history"), row, "history", self.limits.max_history, "max_history")
        exclude = _as_list(request.get("exclude"), row, "exclude", self.limits.max_exclude, "max_exclude") or []
        if (user_id is None) == (history is None):
            raise RequestError(row, "user_id" if user_id is None else "history",
                               "both user_id and history" if user_id is not None else "neither user_id nor history",
                               "either a known user's user_id or a new user's history (a list of item ids)")
        ignored: list[str] = []
        excluded = self._items(exclude, ignored)
        if user_id is not None:
            if user_id not in self.user_index:
                raise RequestError(row, "user_id", echo(request.get("user_id")),
                                   f"the id of one of the {len(self.user_ids):,} known users "
                                   "(or a history, for a new user)")
            user = self.user_index[user_id]
            shown = self.known[user]
            return Request(row, user_id, user, shown, np.union1d(shown, excluded), k, ignored)
        shown = self._items(history, ignored)
        _, first = np.unique(shown, return_index=True)
        shown = shown[np.sort(first)]  # each item once, in the order given
        return Request(row, None, None, shown, np.union1d(shown, excluded), k, ignored)

    def _k(self, row: int, value: Any) -> int:
        if _missing(value):
            return min(DEFAULT_K, self.n_items, self.limits.max_k)
        top = min(self.n_items, self.limits.max_k)
        expected = f"an integer from 1 to {top:,} (" + (
            "the catalogue size)" if top == self.n_items else f"the served model's limit max_k; {self.n_items:,} items)")
        if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
            value = int(value)  # JSON numbers may arrive as floats: 10.0 is 10
        if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or not 1 <= value <= top:
            raise RequestError(row, "k", echo(value), expected)  # integers compared exactly: no overflow
        return int(value)

    def _items(self, ids: list, ignored: list[str]) -> np.ndarray:
        found = []
        for value in ids:
            key = normalise_id(value)
            if key in self.item_index:
                found.append(self.item_index[key])
            else:
                ignored.append(cut(str(value), ECHO_CHARACTERS))
        return np.array(found, dtype=np.int64)

    # ------------------------------------------------------------------ scoring
    def fold_in(self, histories: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """(graph, base) user vectors of new users from their histories (each non-empty)."""
        def mean(items: torch.Tensor) -> torch.Tensor:
            return torch.stack([items[torch.from_numpy(h)].double().mean(0) for h in histories])
        graph = (mean(self.model.graph_item.cpu()) @ self.fold_graph).float()
        base = (mean(self.base[1].cpu()) @ self.fold_base).float()
        return graph, base

    def scores(self, requests: Sequence[Request]) -> torch.Tensor:
        """(len(requests), n_items) GLTA scores of requests that have a history."""
        config = self.model.config
        out = []
        with torch.no_grad():
            for lo in range(0, len(requests), config.scoring_batch_size):
                batch = requests[lo:lo + config.scoring_batch_size]
                shown = [r.history[-config.history_length:] for r in batch]
                if all(r.user is not None for r in batch):
                    users = torch.tensor([r.user for r in batch])
                    hidden = self.model.hidden(users, shown)
                    out.append(self.model.logits(users, hidden, self.base).cpu())
                    continue
                # new users get folded-in vectors; known users in the same batch keep their trained ones
                graph, base = self.fold_in([r.history for r in batch])
                for row, r in enumerate(batch):
                    if r.user is not None:
                        graph[row], base[row] = self.model.graph_user[r.user].cpu(), self.base[0][r.user].cpu()
                hidden = self.model.hidden(None, shown, user_vectors=graph)
                out.append(self.model.logits(None, hidden, self.base, base_users=base).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.n_items)

    def recommend(self, requests: Sequence[Mapping[str, Any]], row_offset: int = 0) -> pd.DataFrame:
        """Ranked items for each request: columns :data:`ANSWER_COLUMNS`, ``rank`` from 1 (``request``:
        the request's row, from ``row_offset``)."""
        parsed = self.parse(requests, row_offset)
        personal = [r for r in parsed if len(r.history)]
        scores = dict(zip((r.row for r in personal), self.scores(personal))) if personal else {}
        frames = []
        popularity = torch.from_numpy(self.popularity).float()
        for r in parsed:
            row_scores = scores[r.row].clone() if r.row in scores else popularity.clone()
            row_scores[torch.from_numpy(r.exclude)] = -math.inf
            top = torch.topk(row_scores, max(0, min(r.k, self.n_items - len(r.exclude))))
            items = top.indices.numpy()
            frames.append(pd.DataFrame({
                "request": r.row, "user_id": r.user_id, "rank": np.arange(1, len(items) + 1),
                "item_id": [self.item_ids[i] for i in items], "title": [self.titles[i] for i in items],
                "score": top.values.numpy().astype(np.float64),
                "fallback": "" if r.row in scores else "popularity",
                # the request's first row lists the first unknown ids; every row counts them
                "ignored_items": [r.ignored[:self.limits.max_ignored_listed]] + [[]] * (len(items) - 1) if len(items) else [],
                "ignored_count": len(r.ignored),
                "added_by_text": self.added[items],
            }))
        if not frames:
            return pd.DataFrame(columns=ANSWER_COLUMNS)
        return pd.concat(frames, ignore_index=True)[ANSWER_COLUMNS]


def build_recommender(model: GLLM, base: Base, user_map: pd.DataFrame, item_map: pd.DataFrame,
                      items: pd.DataFrame, known: pd.DataFrame, train: pd.DataFrame,
                      limits: RequestLimits | None = None) -> Recommender:
    """A :class:`Recommender` from the run's tables: id maps, items (titles), every known interaction
    and the training split (fold-in fit, popularity fallback), answering within ``limits``."""
    n_users, n_items = len(user_map), len(item_map)
    user_ids = user_map.sort_values("user_idx")["user_id"].astype(str).tolist()
    item_order = item_map.sort_values("item_idx")
    # the items' titles and flags in item_idx order (models logged before the flag have none)
    described = item_order[["item_id"]].astype(str).merge(
        items[["item_id", "title", *(["added_by_text"] if "added_by_text" in items.columns else [])]].astype(
            {"item_id": str}), on="item_id", how="left")
    titles = described["title"]
    added = described["added_by_text"].fillna(False).astype(bool).to_numpy() if "added_by_text" in described else None
    popularity = np.bincount(train["item_idx"].to_numpy(), minlength=n_items)
    return Recommender(model, base, user_ids, item_order["item_id"].astype(str).tolist(),
                       [None if pd.isna(t) else str(t) for t in titles], user_histories(known, n_users),
                       user_histories(train, n_users), popularity, added, limits)


def requests_from_table(table: pd.DataFrame, where: str, default_k: int = DEFAULT_K) -> list[dict[str, Any]]:
    """Rows of a requests table (CSV or Parquet) as requests: empty cells are absent fields, ``k``
    defaults to ``default_k``; in a CSV a history is ``50 172 181`` (spaces, commas or semicolons) or
    a JSON list ``[50, 172, 181]``, in Parquet a list column."""
    unknown = [c for c in table.columns if c not in FIELDS]
    if unknown or not {"user_id", "history"} & set(table.columns):
        raise InputError(f"{where} columns", list(table.columns),
                         "user_id (known users) and/or history (new users), optionally k and exclude; no others"
                         + (f" (unknown: {unknown})" if unknown else ""))
    requests = []
    for record in table.to_dict("records"):
        request = {key: _cell(key, value) for key, value in record.items() if not _missing_cell(value)}
        request.setdefault("k", default_k)
        requests.append(request)
    return requests


def _missing_cell(value: Any) -> bool:
    if isinstance(value, (list, tuple, np.ndarray)):
        return False
    return _missing(value) or (isinstance(value, str) and not value.strip())


def _cell(key: str, value: Any) -> Any:
    """A table cell as a request field: a list field's text (``50 172 181`` or ``[50, 172, 181]``) or
    single number (a one-item CSV history) as a list; other values as they are."""
    if key == "k" and isinstance(value, str) and value.strip().lstrip("+-").isdigit() and len(value) < 19:
        return int(value)  # a CSV column with one bad k is read as text: the good ones stay numbers
    if key not in ("history", "exclude") or isinstance(value, (list, tuple, np.ndarray)):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return value  # reported as "not a list" with the request's row
        return [p for p in re.split(r"[\s,;]+", text) if p]
    return [value]
