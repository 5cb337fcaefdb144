"""Nodes of ``add_items``."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from glta_pipelines.core.cold_start.mapper import MapperConfig
from glta_pipelines.core.cold_start.new_items import AddItemsConfig, check_new_items, read_item_table
from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.data.sources.text import ItemTextConfig
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.llm.backbone import LLMConfig
from glta_pipelines.core.llm.text_encoder import TextEncoderConfig, encode_texts
from glta_pipelines.framework.tracking import client, current_run, log_history, log_metrics
from glta_pipelines.serving.bundle import read_bundle, write_bundle
from glta_pipelines.serving.catalogue import add_to_bundle, catalogue_texts, check_extendable
from glta_pipelines.serving.registry import download_registered, input_example, log_bundle, register_version

log = logging.getLogger(__name__)


def read_new_items(add_items: dict[str, Any]) -> pd.DataFrame:
    """The table of new items at ``add_items.path`` (CSV or Parquet), as given: checked against the
    model's catalogue in the next node."""
    config = config_from_params(AddItemsConfig, add_items, "add_items")
    return read_item_table(config.path, "parameter add_items.path")


def add_items(new_items: pd.DataFrame, add_items: dict[str, Any], dataset: dict[str, Any],
              text_encoder: dict[str, Any], llm: dict[str, Any], mapper: dict[str, Any]) -> pd.DataFrame:
    """Add ``new_items`` to the registered model ``add_items.model_name@source_alias`` by their text and
    register the result as a new version with the alias ``add_items.alias``; returns what was added.

    Each item's text is built as the ingest built the trained items' (``dataset.item_text``), encoded
    with ``add_items.encoder`` beside the catalogue's texts, and placed by a mapper fitted on the
    items training saw (``cold_start.mapper``). Every row is checked before anything is logged: a bad
    one stops the run and nothing is registered.
    """
    config = config_from_params(AddItemsConfig, add_items, "add_items")
    mapper_config = config_from_params(MapperConfig, mapper, "cold_start.mapper")
    text_config = config_from_params(ItemTextConfig, dataset.get("item_text") or {}, "dataset.item_text")
    settings = config_from_params(TextEncoderConfig, {**text_encoder, "name": config.encoder}, "baselines.text_encoder")
    llm_config = config_from_params(LLMConfig, llm, "llm") if config.encoder == "llm" else None
    run = current_run()
    if run is None:
        raise InputError("add_items", "a run without MLflow tracking", "a kedro run with tracking on (the model is "
                         "read from and registered in the run's store, conf/<env>/mlflow.yml)")
    name = config.model_name or f"glta-{dataset.get('name', 'unknown')}"
    with tempfile.TemporaryDirectory() as tmp:
        folder, source_version = download_registered(run["tracking_uri"], name, config.source_alias, Path(tmp) / "source",
                                                     "add_items")
        bundle = read_bundle(folder)
        where = f"registered model {name} version {source_version}"
        check_extendable(bundle, where)
        new = check_new_items(new_items, set(bundle.item_map["item_id"].astype(str)), text_config,
                              f"add_items.path ({config.path})")
        content = encode_texts(catalogue_texts(bundle, new), settings, llm_config)
        extended, added, losses = add_to_bundle(bundle, new, content, mapper_config, config.nearest)
        for table, epochs in {id(e): (t, e) for t, e in losses.items()}.values():  # a shared mapper once
            log_history(f"add_items.{table}_mapper", epochs)
        first_user = str(extended.user_map.sort_values("user_idx")["user_id"].iloc[0])
        info = log_bundle(run["tracking_uri"], run["run_id"], write_bundle(Path(tmp) / "recommender", extended),
                          input_example(first_user, new["item_id"].astype(str).head(3).tolist()),
                          {"dataset": dataset.get("name", "unknown"), "source_version": source_version,
                           "added_items": len(new)})
    version = register_version(run["tracking_uri"], info, run["run_id"], name,
                               {"source_version": source_version, "added_items": str(len(new)),
                                "encoder": config.encoder}, alias=config.alias)
    client(run["tracking_uri"]).set_tag(run["run_id"], "registered_model", f"{name}/{version}@{config.alias}")
    log_metrics({"n_added": len(new), "n_items": len(extended.item_map)}, prefix="add_items.")
    log.info("Added %d items by their text to %s version %s: registered as version %s (%s)", len(new), name,
             source_version, version, config.alias)
    return added.assign(version=version)
