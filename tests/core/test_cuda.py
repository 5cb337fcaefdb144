"""The GPU path (marked ``cuda``: skipped where no GPU is visible; run on a lent H100, see README)."""

import pandas as pd
import pytest
import torch

from glta_pipelines.core.data.interactions import SplitConfig, build_id_map, encode_ids, split_per_user
from glta_pipelines.core.models.lightgcn import LightGCNConfig, train_lightgcn
from glta_pipelines.core.evaluation.ranking import ranking_metrics

pytestmark = pytest.mark.cuda


def _split(interactions: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], int, int]:
    user_map, item_map = build_id_map(interactions["user_id"], "user_idx"), build_id_map(interactions["item_id"], "item_idx")
    return split_per_user(encode_ids(interactions, user_map, item_map), SplitConfig(seed=1)), len(user_map), len(item_map)


def test_lightgcn_on_cuda_trains_as_on_the_cpu(interactions):
    """Same seed, same data: the GPU's embeddings match the CPU's to float precision, and come back on the CPU."""
    splits, n_users, n_items = _split(interactions)
    results = {device: train_lightgcn(splits["train"], splits["valid"], n_users, n_items,
                                      LightGCNConfig(embedding_dim=16, max_epochs=6, eval_every=2, device=device),
                                      show_progress=False)
               for device in ("cpu", "cuda")}
    cpu, gpu = results["cpu"], results["cuda"]
    assert gpu.user_embedding.device.type == "cpu" and gpu.item_embedding.device.type == "cpu"
    torch.testing.assert_close(gpu.user_embedding, cpu.user_embedding, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(gpu.item_embedding, cpu.item_embedding, atol=1e-4, rtol=1e-3)
    assert list(gpu.history["valid_recall_at_20"].dropna()) == pytest.approx(
        list(cpu.history["valid_recall_at_20"].dropna()), abs=1e-3)


def test_the_evaluator_ranks_gpu_scores(interactions):
    """A scorer that computes on the GPU is ranked as the CPU's (the evaluator copies scores to the CPU)."""
    splits, n_users, n_items = _split(interactions)
    torch.manual_seed(0)
    users, items = torch.randn(n_users, 8), torch.randn(n_items, 8)
    on_cpu = ranking_metrics(lambda u: users[u] @ items.T, splits["train"], splits["test"], n_users, n_items)
    gpu_users, gpu_items = users.cuda(), items.cuda()
    on_gpu = ranking_metrics(lambda u: gpu_users[u.cuda()] @ gpu_items.T, splits["train"], splits["test"],
                             n_users, n_items)
    assert on_gpu == pytest.approx(on_cpu, abs=1e-6)
