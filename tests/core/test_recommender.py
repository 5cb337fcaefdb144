"""The request contract of ``core.recommender``: known users, new users, exclusions, bad requests."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from glta_pipelines.core.errors import InputError
from glta_pipelines.core.glta import GLLMConfig, Projector, build_gllm, token_norm
from glta_pipelines.core.glta.recommender import (
    RequestError,
    RequestLimits,
    build_recommender,
    fold_in_map,
    normalise_id,
    requests_from_table,
)


@pytest.fixture(scope="module")
def recommender(tiny_llm_dir):
    """A GLTA recommender of the tiny LLM on the synthetic graph (untrained head: the contract, not quality)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from glta_pipelines.core.data.interactions import SplitConfig, build_id_map, encode_ids, split_per_user
    from tests.conftest import make_interactions, make_items

    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    llm = AutoModelForCausalLM.from_pretrained(tiny_llm_dir).eval().requires_grad_(False)
    interactions = make_interactions()
    user_map = build_id_map(interactions["user_id"], "user_idx")
    item_map = build_id_map(interactions["item_id"], "item_idx")
    splits = split_per_user(encode_ids(interactions, user_map, item_map), SplitConfig(seed=1))
    torch.manual_seed(0)
    users, items = torch.randn(len(user_map), 8), torch.randn(len(item_map), 8)
    projector = Projector(8, llm.config.hidden_size).fit_scales(items, token_norm(llm))
    config = GLLMConfig(history_length=1000, history_tokens="chunks", history_chunks=4, scoring_batch_size=4)
    model = build_gllm(llm, tokenizer, projector, users, items, config)
    known = pd.concat([splits["train"], splits["valid"], splits["test"]], ignore_index=True)
    return build_recommender(model, (users, items), user_map, item_map, make_items(), known, splits["train"])


def test_known_user_gets_k_new_items_with_titles(recommender):
    answer = recommender.recommend([{"user_id": "u3", "k": 5}])
    assert list(answer["rank"]) == [1, 2, 3, 4, 5]
    assert answer["score"].is_monotonic_decreasing
    known = {recommender.item_ids[i] for i in recommender.known[recommender.user_index["u3"]]}
    assert not known & set(answer["item_id"])  # nothing the user already has
    assert all(title == f"Item {item[1:]}" for item, title in zip(answer["item_id"], answer["title"]))
    assert set(answer["fallback"]) == {""}


def test_the_known_users_answer_is_the_evaluators_score(recommender):
    """The served score of a known user is the GLLM's logits for its prompt, as evaluation computes them."""
    user = recommender.user_index["u4"]
    with torch.no_grad():
        hidden = recommender.model.hidden(torch.tensor([user]), [recommender.known[user]])
        expected = recommender.model.logits(torch.tensor([user]), hidden, recommender.base)[0]
    answer = recommender.recommend([{"user_id": "u4", "k": 3}])
    top = [recommender.item_index[i] for i in answer["item_id"]]
    np.testing.assert_allclose(answer["score"], expected[top].numpy(), rtol=1e-5)


def test_ids_as_numbers_or_strings_name_the_same_item(recommender):
    history = [recommender.item_ids[i] for i in recommender.known[0][:4]]  # "i3", ...: string ids
    as_given = recommender.recommend([{"history": history, "k": 4}])
    assert normalise_id(7) == normalise_id(7.0) == normalise_id("7") == normalise_id(np.int64(7)) == "7"
    assert normalise_id(pd.NA) is None and normalise_id(float("nan")) is None and normalise_id(None) is None
    again = recommender.recommend([{"history": list(history), "k": np.int64(4)}])
    pd.testing.assert_frame_equal(as_given, again)


def test_new_user_from_a_history_excludes_the_history_and_exclude(recommender):
    history = ["i1", "i2", "i3", "i1"]
    answer = recommender.recommend([{"history": history, "k": 10, "exclude": ["i4", "i5"]}])
    assert len(answer) == 10 and answer["user_id"].isna().all()
    assert not {"i1", "i2", "i3", "i4", "i5"} & set(answer["item_id"])
    assert answer["ignored_items"].iloc[0] == []


def test_fold_in_maps_a_users_mean_item_to_its_embedding():
    """Users whose embedding is a linear map of their mean item: the ridge fit recovers it."""
    torch.manual_seed(0)
    items = torch.randn(30, 8)
    rng = np.random.default_rng(0)
    histories = [rng.choice(30, 6, replace=False) for _ in range(20)]
    users = torch.stack([items[torch.from_numpy(h)].mean(0) for h in histories]) @ torch.randn(8, 8)
    mapping = fold_in_map(items, users, histories)
    means = torch.stack([items[torch.from_numpy(h)].double().mean(0) for h in histories])
    assert torch.allclose((means @ mapping).float(), users, atol=1e-2)


def test_unknown_items_are_ignored_and_reported_and_an_empty_history_falls_back(recommender):
    answer = recommender.recommend([{"history": ["i1", "nope", 12345], "k": 3}])
    assert answer["ignored_items"].iloc[0] == ["nope", "12345"] and set(answer["fallback"]) == {""}
    empty = recommender.recommend([{"history": [], "k": 3}, {"history": ["unknown"], "k": 2}])
    assert list(empty["fallback"]) == ["popularity"] * 5
    counts = recommender.popularity
    assert list(empty["item_id"][:3]) == [recommender.item_ids[i] for i in np.argsort(-counts, kind="stable")[:3]]


@pytest.mark.parametrize("request_, field, message", [
    ({"user_id": "nobody", "k": 5}, "user_id", "known users"),
    ({"user_id": "u1", "k": 0}, "k", "from 1 to 40"),
    ({"user_id": "u1", "k": 41}, "k", "from 1 to 40"),
    ({"user_id": "u1", "k": 2.5}, "k", "an integer"),
    ({"user_id": "u1", "k": "ten"}, "k", "an integer"),
    ({"history": "i1 i2", "k": 5}, "history", "a list of item ids"),
    ({"history": 7, "k": 5}, "history", "a list of item ids"),
    ({"k": 5}, "user_id", "either a known user"),
    ({"user_id": "u1", "history": ["i1"]}, "history", "either a known user"),
    ({"user": "u1"}, "user", "only the fields"),
])
def test_bad_requests_name_the_request_and_field(recommender, request_, field, message):
    with pytest.raises(RequestError) as error:
        recommender.recommend([{"user_id": "u2", "k": 3}, request_])
    assert str(error.value).startswith(f"request 1, field '{field}': found") and message in str(error.value)
    assert isinstance(error.value, InputError)


def test_missing_k_defaults_to_10_and_mixed_batches_score_each_row_alone(recommender):
    alone = [recommender.recommend([r]) for r in ({"user_id": "u5"}, {"history": ["i1", "i9"]})]
    together = recommender.recommend([{"user_id": "u5"}, {"history": ["i1", "i9"]}])
    assert len(together) == 20
    for row, answer in enumerate(alone):
        mine = together[together["request"] == row].reset_index(drop=True)
        assert list(mine["item_id"]) == list(answer["item_id"])
        np.testing.assert_allclose(mine["score"], answer["score"], rtol=1e-4, atol=1e-5)


def test_a_requests_table_reads_csv_lists_and_empty_cells():
    table = pd.DataFrame({"user_id": ["7", None, None], "history": [None, "50 172 181", "[1, 2]"], "k": [5, None, 3]})
    assert requests_from_table(table, "recommend.requests", 10) == [
        {"user_id": "7", "k": 5}, {"history": ["50", "172", "181"], "k": 10}, {"history": [1, 2], "k": 3}]
    with pytest.raises(InputError, match="recommend.requests columns"):
        requests_from_table(pd.DataFrame({"user": [1]}), "recommend.requests")


def test_hostile_values_get_short_clear_errors(recommender):
    """What a careless or hostile client may send: each a RequestError naming the field, no other
    exception, and no echo longer than a line."""
    deep = []
    for _ in range(3000):
        deep = [deep]
    cases = [({"user_id": "u1", "k": 10 ** 400}, "k"), ({"user_id": "u1", "k": float("inf")}, "k"),
             ({"user_id": "u1", "k": True}, "k"), ({"user_id": "x" * 1_000_000}, "user_id"),
             ({"user_id": ["u1"]}, "user_id"), ({"history": [deep]}, "history[0]"),
             ({"history": ["i1", {"id": "i2"}]}, "history[1]")]
    for request_, field in cases:
        with pytest.raises(RequestError) as error:
            recommender.recommend([request_])
        assert f"field '{field}'" in str(error.value) and len(str(error.value)) < 400, str(error.value)[:500]


def test_requests_over_the_limits_are_refused_naming_the_limit(recommender):
    limits = RequestLimits(max_rows=3, max_k=5, max_history=4, max_exclude=2, max_ignored_listed=2)
    limited = copy.copy(recommender)
    limited.limits = limits
    with pytest.raises(InputError, match=r"request: found 4 rows.*at most 3 rows per call.*max_rows"):
        limited.recommend([{"user_id": "u1"}] * 4)
    for request_, field, limit in (({"user_id": "u1", "k": 6}, "k", "max_k"),
                                   ({"history": ["i1"] * 5}, "history", "max_history"),
                                   ({"user_id": "u1", "exclude": ["i1"] * 3}, "exclude", "max_exclude")):
        with pytest.raises(RequestError, match=rf"field '{field}'.*{limit}"):
            limited.recommend([request_])
    assert len(limited.recommend([{"user_id": "u1"}])) == 5  # the default k, within max_k
    # unknown ids: all counted on every row, the first few listed once, on the request's first row
    answer = limited.recommend([{"history": ["i1", "a", "b", "c"], "k": 3}])
    assert list(answer["ignored_count"]) == [3, 3, 3]
    assert answer["ignored_items"].tolist() == [["a", "b"], [], []]


def test_a_chunk_of_a_longer_table_names_the_tables_row(recommender):
    with pytest.raises(RequestError, match=r"^request 102, field 'k'"):
        recommender.parse([{"user_id": "u1", "k": 3}, {"user_id": "u1", "k": 3}, {"user_id": "u1", "k": "x"}],
                          row_offset=100)
    answer = recommender.recommend([{"user_id": "u1", "k": 2}], row_offset=7)
    assert set(answer["request"]) == {7}


def test_a_csv_column_with_one_bad_k_blames_that_row():
    table = pd.DataFrame({"user_id": ["1", "2", "3"], "k": ["5", "ten", "7"]})  # as read_csv gives it
    requests = requests_from_table(table, "requests.csv")
    assert [r["k"] for r in requests] == [5, "ten", 7]
