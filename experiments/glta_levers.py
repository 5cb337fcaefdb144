"""Issue 13's levers, each next to its no-LLM control, on one finished run's split and LightGCN.

``pack`` copies what the experiments read (the split, id maps, item titles, LightGCN's
embeddings: the latest versions in the Kedro catalog) into one folder, so ``run`` needs only the
Kedro-free library and can go to another machine (a GPU) with its LLM. ``run`` trains each named
configuration of the GLLM (``EXPERIMENTS`` below; each with ``encoder: llm`` and, as its
control, ``encoder: mean``, trained the same way) on that data and writes one JSON row per
(configuration, encoder): validation and test Recall@20 / NDCG@20, their ratio to LightGCN's,
the best epoch and the wall time. Selection is on validation only; test is reported.

    python experiments/glta_levers.py pack --out .dev/inputs
    python experiments/glta_levers.py run --inputs .dev/inputs --llm data/06_models/llm/<folder> \
        --only whole_items_head,whole_mean_head --out data/08_reporting/glta_levers.json

``--llm`` takes a Hugging Face checkpoint folder or a GGUF file (dequantised on load).
Exploration code, not a pipeline: nothing here is used by ``kedro run``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

import pandas as pd
import torch

from glta_pipelines.core.glta import (
    AlignConfig,
    GLLMConfig,
    GLLMData,
    Projector,
    build_gllm,
    history_scorer,
    item_texts,
    token_norm,
    train_gllm,
    train_item_alignment,
    user_histories,
)
from glta_pipelines.core.models.lightgcn import dot_product_scorer
from glta_pipelines.core.llm.backbone import keep_first_layers
from glta_pipelines.core.evaluation.ranking import ranking_metrics

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("train", "valid", "test", "user_map", "item_map", "items")

# Each: GLLM settings over GLLMConfig's defaults, the item alignment ("none": projector at its
# initial scales; or AlignConfig settings) and the LLM's layers (None: all).
WHOLE = {"history_length": 1000, "target_scheme": "multinomial", "epochs": 0, "head_epochs": 300,
         "cache_draws": 4, "head_eval_every": 10, "head_patience": 4}
BLEND = {**WHOLE, "target_scheme": "mask", "residual": False, "blend_grid": (0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0)}
EXPERIMENTS: dict[str, dict] = {
    # today's default prompt (10 latest items), trained end to end as `make run` does
    "default": {"gllm": {"history_length": 10, "learning_rate": 3e-4, "epochs": 2, "eval_every": 2}},
    # lever 1 + 2: the whole history, cache-then-train of the head
    "whole_items_head": {"gllm": WHOLE},
    "whole_items_mask_head": {"gllm": {**WHOLE, "target_scheme": "mask"}},
    "whole_mean_head": {"gllm": {**WHOLE, "history_tokens": "mean"}},
    "whole_chunks_head": {"gllm": {**WHOLE, "history_tokens": "chunks", "history_chunks": 8}},
    "whole_items_head_cosine": {"gllm": {**WHOLE, "logits": "cosine"}},
    "whole_items_head_free": {"gllm": {**WHOLE, "scoring_space": "free", "weight_decay": 1e-2}},
    "whole_items_head_8draws": {"gllm": {**WHOLE, "cache_draws": 8}},
    "recent50_items_head": {"gllm": {**WHOLE, "history_length": 50}},
    # lever 1: whole history trained end to end (one epoch), then the head
    "whole_items_e2e_head": {"gllm": {**WHOLE, "epochs": 1, "learning_rate": 3e-4, "batch_size": 16}},
    # lever 3: item alignment objectives
    "whole_items_head_regress": {"gllm": WHOLE, "align": {"objective": "regress", "epochs": 0,
                                                          "projector_kind": "mlp"}},
    "whole_items_head_contrast": {"gllm": WHOLE, "align": {"objective": "contrast", "epochs": 0,
                                                           "projector_kind": "mlp"}},
    "whole_items_head_contrast_generate": {"gllm": WHOLE, "align": {"objective": "contrast", "epochs": 2,
                                                                    "projector_kind": "mlp", "learning_rate": 3e-3}},
    # The residual head above never beat its start (LightGCN) on validation: LightGCN has fitted
    # the very items the head is trained to predict. So the GLLM trains alone (denoising: hidden
    # items from shown ones), then its z-scored scores are blended with LightGCN's at the weight
    # that validates best.
    "whole_items_blend": {"gllm": BLEND},
    "whole_items_blend_multinomial": {"gllm": {**BLEND, "target_scheme": "multinomial"}},
    "whole_mean_blend": {"gllm": {**BLEND, "history_tokens": "mean"}},
    "whole_chunks_blend": {"gllm": {**BLEND, "history_tokens": "chunks", "history_chunks": 8}},
    "whole_items_blend_free": {"gllm": {**BLEND, "scoring_space": "free", "weight_decay": 1e-2}},
    "whole_items_blend_cosine": {"gllm": {**BLEND, "logits": "cosine", "temperature": 0.15}},
    "whole_items_blend_token": {"gllm": {**BLEND, "scoring_space": "token"}},
    "whole_items_blend_contrast": {"gllm": BLEND, "align": {"objective": "contrast", "epochs": 0,
                                                            "projector_kind": "mlp"}},
    "whole_items_blend_8layers": {"gllm": BLEND, "llm_layers": 8},
    "recent50_items_blend": {"gllm": {**BLEND, "history_length": 50}},
    "recent10_items_blend": {"gllm": {**BLEND, "history_length": 10}},
    # lever 4: fewer LLM layers
    "whole_items_head_8layers": {"gllm": WHOLE, "llm_layers": 8},
    "whole_items_head_16layers": {"gllm": WHOLE, "llm_layers": 16},
}


def pack(out: Path) -> None:
    """Copy the latest split, maps, items and LightGCN embeddings out of the catalog into ``out``."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project
    from safetensors.torch import save_file

    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT) as session:
        catalog = session.load_context().catalog
        out.mkdir(parents=True, exist_ok=True)
        for name, entry in zip(TABLES, ("graph.train", "graph.valid", "graph.test", "graph.user_map", "graph.item_map",
                                        "ingest.items")):
            catalog.load(entry).to_parquet(out / f"{name}.parquet")
        embeddings = catalog.load("pretrain_gnn.embeddings")
        save_file({k: v.contiguous() for k, v in embeddings.items()}, out / "lightgcn.safetensors")
    print("packed", sorted(p.name for p in out.iterdir()))


def load_llm_from(path: str, device: torch.device, layers: int | None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    source = Path(path)
    kwargs = {"gguf_file": source.name} if source.suffix == ".gguf" else {}
    folder = str(source.parent if source.suffix == ".gguf" else source)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **kwargs)
    if layers is not None:
        keep_first_layers(model, layers)
    tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    return model.to(device).eval().requires_grad_(False), tokenizer


def metrics_of(scorer_valid, scorer_test, data) -> dict[str, float]:
    train, valid, test, n_users, n_items = data
    seen = pd.concat([train, valid], ignore_index=True)
    v = ranking_metrics(scorer_valid, train, valid, n_users, n_items, [20])
    t = ranking_metrics(scorer_test, seen, test, n_users, n_items, [20])
    return {"valid_recall_at_20": v["recall_at_20"], "valid_ndcg_at_20": v["ndcg_at_20"],
            "test_recall_at_20": t["recall_at_20"], "test_ndcg_at_20": t["ndcg_at_20"]}


def quick(spec: dict) -> dict:
    """A smoke-test version of an experiment: the same code paths, a few steps each."""
    gllm = {**spec["gllm"], "cache_draws": 1, "head_eval_every": 1}
    gllm["epochs"] = min(gllm.get("epochs", 3), 1)
    if gllm.get("head_epochs"):
        gllm["head_epochs"] = 2
    align = None if spec.get("align") is None else {**spec["align"], "fit_epochs": 3,
                                                    "epochs": min(spec["align"].get("epochs", 3), 1)}
    return {**spec, "gllm": gllm, "align": align}


def run(inputs: Path, llm_path: str, names: list[str], encoders: list[str], device: torch.device, seed: int,
        out: Path, smoke: bool = False) -> None:
    from safetensors.torch import load_file

    tables = {name: pd.read_parquet(inputs / f"{name}.parquet") for name in TABLES}
    train, valid, test = tables["train"], tables["valid"], tables["test"]
    n_users, n_items = len(tables["user_map"]), len(tables["item_map"])
    graph = load_file(inputs / "lightgcn.safetensors")
    user_emb, item_emb = graph["user"].float(), graph["item"].float()
    data = (train, valid, test, n_users, n_items)
    texts = item_texts(tables["items"], tables["item_map"], " {title}")
    lightgcn = dot_product_scorer(user_emb, item_emb)
    reference = metrics_of(lightgcn, lightgcn, data)
    print("LightGCN", reference, flush=True)
    rows = [{"name": "lightgcn", **reference}]
    llms: dict = {}
    for name in names:
        spec = quick(EXPERIMENTS[name]) if smoke else EXPERIMENTS[name]
        layers = spec.get("llm_layers")
        if layers not in llms:
            llms.clear()
            llms[layers] = load_llm_from(llm_path, device, layers)
        llm, tokenizer = llms[layers]
        start = time.perf_counter()
        torch.manual_seed(seed)
        align = spec.get("align")
        if align is None:
            projector = Projector(user_emb.shape[1], llm.config.hidden_size).fit_scales(item_emb, token_norm(llm))
            align_info = {}
        else:
            result = train_item_alignment(llm, tokenizer, item_emb, texts, AlignConfig(**{"seed": seed, **align}))
            projector = result.projector.cpu()
            fit = result.history
            align_info = {"align_seconds": time.perf_counter() - start, "title_hit_rate": result.title_hit_rate,
                          "align_loss_first": float(fit["loss"].iloc[0]) if len(fit) else None,
                          "align_loss_last": float(fit["loss"].iloc[-1]) if len(fit) else None}
            print(name, "alignment", align_info, flush=True)
        for encoder in encoders:
            t0 = time.perf_counter()
            config = GLLMConfig(**{"seed": seed, "learning_rate": 3e-4, **spec["gllm"], "encoder": encoder})
            model = build_gllm(llm, tokenizer, Projector(projector.d_in, projector.d_out, projector.kind,
                                                         projector.hidden), user_emb, item_emb, config)
            model.item_projector.load_state_dict(projector.state_dict())
            model.to(device)
            histories = GLLMData(user_histories(train, n_users), [], train, valid, n_items, eval_base=(user_emb, item_emb))
            result = train_gllm(model, histories, config, show_progress=False)
            cache: dict = {}
            scores = metrics_of(history_scorer(model, train, n_users, (user_emb, item_emb), cache),
                                history_scorer(model, pd.concat([train, valid], ignore_index=True), n_users,
                                               (user_emb, item_emb), cache), data)
            history = result.history
            curve = history.loc[history.get("phase", "") != "blend", "valid_recall_at_20"].dropna()
            blend = history[history["phase"] == "blend"] if "phase" in history else history.iloc[:0]
            row = {"name": name, "encoder": encoder, "seed": seed, **scores, "best_epoch": int(result.best_epoch),
                   "valid_curve": [round(float(v), 4) for v in curve],
                   "blend_curve": {float(w): round(float(v), 4) for w, v in zip(blend.get("blend_weight", []),
                                                                             blend.get("valid_recall_at_20", []))},
                   "blend_weight": float(model.blend_weight) if config.blend_grid else None,
                   "epochs_run": int(result.history["epoch"].max()), "seconds": time.perf_counter() - t0, **align_info,
                   **{f"{k}_vs_lightgcn": scores[k] / reference[k] for k in scores}}
            print(json.dumps(row), flush=True)
            rows.append(row)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({"device": str(device), "gpu": torch.cuda.get_device_name() if device.type == "cuda"
                                       else None, "torch": torch.__version__, "machine": platform.platform(),
                                       "seed": seed, "experiments": {n: EXPERIMENTS[n] for n in names}, "rows": rows},
                                      indent=2, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("run")
    r.add_argument("--inputs", type=Path, required=True)
    r.add_argument("--llm", required=True)
    r.add_argument("--only", default=",".join(EXPERIMENTS))
    r.add_argument("--encoders", default="llm,mean")
    r.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    r.add_argument("--seeds", default="2025", help="GLLM seeds, comma-separated (the split and LightGCN stay)")
    r.add_argument("--out", type=Path, default=ROOT / "data/08_reporting/glta_levers.json")
    r.add_argument("--smoke", action="store_true", help="a few steps of each experiment (checks the code paths)")
    args = parser.parse_args()
    if args.command == "pack":
        pack(args.out)
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS (train_gllm asks for it)
        for seed in (int(x) for x in args.seeds.split(",")):
            out = args.out if "," not in args.seeds else args.out.with_name(f"{args.out.stem}-seed{seed}.json")
            run(args.inputs, args.llm, args.only.split(","), args.encoders.split(","), torch.device(args.device),
                seed, out, args.smoke)


if __name__ == "__main__":
    main()
