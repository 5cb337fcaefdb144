"""GLTA from artifact to evaluation through the nodes, on the tiny random Llama (speed)."""

import inspect

import pandas as pd
import pytest
import torch

from glta_pipelines.core.errors import InputError
from glta_pipelines.core.glta import AlignConfig, Projector, projector_artifact
from glta_pipelines.core.data.interactions import SplitConfig, build_id_map, encode_ids, split_per_user
from glta_pipelines.core.llm.backbone import LLMConfig
from glta_pipelines.pipelines.evaluate.nodes import evaluate_glta
from glta_pipelines.pipelines.gllm_finetune.nodes import finetune_gllm

EVALUATION = {"ks": [10, 20], "chunk_size": 64, "recommendations_k": 5}


@pytest.fixture
def run(interactions, tiny_llm_dir, tmp_path):
    """Upstream outputs as the catalog holds them: split tables, graph embeddings, an MLP item projector."""
    user_map, item_map = build_id_map(interactions["user_id"], "user_idx"), build_id_map(interactions["item_id"], "item_idx")
    splits = split_per_user(encode_ids(interactions, user_map, item_map), SplitConfig(seed=1))
    torch.manual_seed(0)
    backbone = {"user": torch.randn(len(user_map), 8), "item": torch.randn(len(item_map), 8)}
    lightgcn = {"user": torch.randn(len(user_map), 8), "item": torch.randn(len(item_map), 8)}
    llm = {"model": str(tiny_llm_dir), "dtype": "float32", "device": "cpu"}
    projector = Projector(8, 32, "mlp").fit_scales(backbone["item"], 1.0)
    artifact = projector_artifact(projector, AlignConfig(projector_kind="mlp"), LLMConfig(**llm))
    return {"splits": splits, "user_map": user_map, "item_map": item_map, "backbone": backbone, "lightgcn": lightgcn,
            "llm": llm, "projector": artifact, "checkpoints": str(tmp_path / "ckpt")}


def _finetune(run, llm=None):
    splits = run["splits"]
    return finetune_gllm(run["backbone"], run["lightgcn"], run["projector"], splits["train"], splits["train"].head(0),
                         splits["train"], splits["valid"], run["item_map"], llm or run["llm"],
                         {"epochs": 1, "head_epochs": 0, "residual": True, "blend_grid": [], "batch_size": 32},
                         run["checkpoints"], {},
                         {"name": "movielens-100k"})


def test_an_mlp_projector_is_finetuned_and_evaluated_from_artifacts_alone(run, items):
    # no alignment parameters anywhere: the projector's kind comes from its artifact
    weights, history = _finetune(run)
    assert list(history["epoch"]) == [1]
    assert weights.config["item_projector"]["kind"] == "mlp" and "item_projector.net.2.weight" in weights
    splits = run["splits"]
    table, per_user, recommendations = evaluate_glta(
        weights, run["backbone"], run["lightgcn"], splits["train"], splits["valid"], splits["test"], run["user_map"],
        run["item_map"], splits["train"].iloc[:0], items, EVALUATION)
    assert set(table["method"]) == {"glta"} and set(table["split"]) == {"valid", "test"}
    assert len(recommendations) == 5 * len(run["user_map"])
    known = pd.concat([splits["train"], splits["valid"], splits["test"]])
    assert not recommendations.merge(known, on=["user_idx", "item_idx"]).shape[0]  # nothing known is recommended


def test_evaluation_reads_no_glta_parameters():
    for node in (evaluate_glta,):
        assert not {"llm", "alignment", "gllm"} & set(inspect.signature(node).parameters)


def test_finetuning_on_another_llm_than_the_projector_fails_before_training(run):
    with pytest.raises(InputError, match=r"llm.model: found 'bundled:smollm2-135m-instruct'.*aligned with"):
        _finetune(run, {"model": "bundled:smollm2-135m-instruct"})
