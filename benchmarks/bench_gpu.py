"""Benchmark: the GLTA stages' speed and peak memory on one device (a GPU where there is one), issue 15.

For each LLM given with ``--llm`` (bfloat16 on CUDA, float32 on CPU), on the packed MovieLens-100K
inputs (``experiments/glta_levers.py pack``: the split, id maps, item titles, LightGCN's embeddings),
with the project's default settings (``conf/base/parameters_{align_tokens,gllm_finetune}.yml``):

1. ``align``: item-text alignment, objective ``generate``: examples (items) per second of the
   training step (:func:`alignment_loss` through the frozen LLM, backward into the projector,
   AdamW), one timed epoch over all 1,682 titles in the stage's length-bucketed batches of 32.
2. ``gllm_e2e``: end-to-end GLLM training (gradient through the frozen LLM into the projectors,
   soft tokens and head; :func:`gllm_step`), one timed epoch (one mask example per user, batch
   32), whole history (``history_length`` 1000) read as 8 chunk tokens, the project's default.
   ``gllm_e2e_items`` (``--items``): the same with one token per history item (prompts of up to
   ~490 tokens on MovieLens-100K), the issue-13 lever.
3. ``head_cache``: cache-then-train, the LLM's states of 4 draws of every user's prompt
   (:func:`cache_hidden_states`, batch ``scoring_batch_size`` 64), examples per second; and
   ``head_train``: the GLLM layer's training on those cached states (batch 128), examples per second.
4. ``scoring``: :func:`history_scorer` over all 943 users, full-catalogue (1,682) scores, batch
   ``scoring_batch_size`` 64, users per second (a fresh hidden-state cache: every prompt goes through
   the LLM). ``scoring_items``: the same with one token per history item.

Each phase is warmed up first (kernels, allocator), timed between ``torch.cuda.synchronize()``
calls, and its peak memory is ``torch.cuda.max_memory_allocated()`` reset at the phase's start
(it includes the LLM's weights; ``allocated_before_mib`` is what was allocated at the phase's
start). On CPU the peak is the process's peak resident set (not reset between phases).
Training runs in the project's deterministic mode, as the pipelines do.

``--llm`` takes a GGUF file (dequantised on load), a Hugging Face checkpoint folder,
``random-1b`` (a randomly initialised Llama of ~1.07 B parameters built in code: hidden 2048, 16
layers, 32 heads, 8 KV heads, MLP 8192, vocabulary 49,152, tied embeddings: speed and memory
only) or ``random-smollm2`` (SmolLM2-135M's shape, random weights). Random LLMs take their
tokenizer from ``--tokenizer`` (a GGUF or folder; SmolLM2's vocabulary is 49,152), else a crude
built-in word/digit tokenizer (then prompt lengths only approximate the real ones).

Imports only the Kedro-free library (no Kedro, no MLflow). The command run on the lent H100, with
the bundled GGUF reassembled under /tmp/glta and transformers 5.23 + gguf 0.19 installed from
wheels (results in ``benchmarks/measured/bench_gpu_h100.json``):

    PYTHONPATH=src python3 benchmarks/bench_gpu.py --inputs .dev/p3/inputs \
        --llm /tmp/glta/SmolLM2-135M-Instruct.Q4_1.gguf --llm random-1b \
        --tokenizer /tmp/glta/SmolLM2-135M-Instruct.Q4_1.gguf --items --out $OUT/bench_gpu.json

``--quick``: a few batches of each phase on a subset of users and items (checks the code paths).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import platform
import re
import sys
import time
import traceback
import zlib
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS (the stages ask for it)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from glta_pipelines.core.glta import (  # noqa: E402
    AlignConfig,
    GLLMConfig,
    GLLMData,
    Projector,
    alignment_loss,
    build_gllm,
    epoch_examples,
    gllm_loss,
    gllm_step,
    history_scorer,
    item_texts,
    length_bucketed_batches,
    target_ids,
    token_norm,
    user_histories,
)
from glta_pipelines.core.glta.training import cache_hidden_states, head_parameters  # noqa: E402
from glta_pipelines.core.llm.prompts import Template  # noqa: E402
from glta_pipelines.core.reproducibility import deterministic  # noqa: E402

TABLES = ("train", "valid", "test", "user_map", "item_map", "items")

# The project's defaults (conf/base/parameters_align_tokens.yml, parameters_gllm_finetune.yml).
ALIGN = {"learning_rate": 3e-3, "batch_size": 32, "objective": "generate", "epochs": 1, "projector_kind": "linear"}
GLLM = {"history_length": 1000, "history_tokens": "chunks", "history_chunks": 8, "target_scheme": "mask",
        "mask_fraction": 0.2, "residual": False, "blend_grid": (0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0),
        "learning_rate": 3e-4, "batch_size": 32, "epochs": 1, "head_epochs": 300, "cache_draws": 4,
        "head_learning_rate": 1e-3, "head_batch_size": 128, "scoring_batch_size": 64}

RANDOM_LLMS = {
    # ~1.07 B parameters (tied embeddings), Llama-3.2-1B-like widths with SmolLM2's vocabulary
    "random-1b": {"vocab_size": 49152, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                  "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 8192,
                  "tie_word_embeddings": True},
    # SmolLM2-135M's shape (its config.json), random weights
    "random-smollm2": {"vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                       "num_attention_heads": 9, "num_key_value_heads": 3, "max_position_embeddings": 8192,
                       "tie_word_embeddings": True},
}


# --------------------------------------------------------------------------- device helpers
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> float:
    """Reset the peak counter; returns MiB allocated now (the weights and whatever else is live)."""
    if device.type != "cuda":
        return float("nan")
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    return torch.cuda.memory_allocated(device) / 2**20


def peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        sync(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_reserved_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_reserved(device) / 2**20 if device.type == "cuda" else None


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


class Timer:
    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self) -> "Timer":
        sync(self.device)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        sync(self.device)
        self.seconds = time.perf_counter() - self.start


# --------------------------------------------------------------------------- LLMs
class WordTokenizer:
    """A crude stand-in tokenizer (words, punctuation, single digits hashed into the vocabulary)."""

    eos_token, pad_token = "<eos>", "<eos>"
    eos_token_id = pad_token_id = 0

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        pieces = re.findall(r" ?[A-Za-z]+| ?\d|[^\sA-Za-z\d]| ", text)
        return {"input_ids": [1 + zlib.crc32(p.encode()) % (self.vocab_size - 1) for p in pieces]}

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return " ".join(str(int(i)) for i in ids)


def load_tokenizer(spec: str):
    from transformers import AutoTokenizer

    source = Path(spec)
    if source.suffix == ".gguf":
        tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    else:
        tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=True)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    return tokenizer


def load_llm(spec: str, tokenizer_spec: str | None, device: torch.device, dtype: torch.dtype):
    """(model, tokenizer, description): frozen, in eval mode, on ``device`` in ``dtype``."""
    import transformers

    if spec in RANDOM_LLMS:
        config = transformers.LlamaConfig(**RANDOM_LLMS[spec], attn_implementation="sdpa")
        previous = torch.get_default_dtype()
        torch.manual_seed(0)
        torch.set_default_dtype(dtype)
        try:
            with torch.device(device):  # initialised in place on the device, in its dtype
                model = transformers.LlamaForCausalLM(config)
        finally:
            torch.set_default_dtype(previous)
        tokenizer = load_tokenizer(tokenizer_spec) if tokenizer_spec else WordTokenizer(config.vocab_size)
        source = {"kind": "random", "config": RANDOM_LLMS[spec],
                  "tokenizer": tokenizer_spec or "built-in word/digit stand-in"}
    else:
        path = Path(spec)
        kwargs = {"gguf_file": path.name} if path.suffix == ".gguf" else {}
        folder = str(path.parent if path.suffix == ".gguf" else path)
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **kwargs)
        tokenizer = load_tokenizer(spec)
        source = {"kind": "gguf (dequantised)" if kwargs else "checkpoint folder", "path": spec}
    model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
    decoder = model.get_decoder()
    embedding = model.get_input_embeddings().weight.numel()
    info = {**source, "architecture": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters()),
            "parameters_without_embeddings": sum(p.numel() for p in model.parameters()) - embedding,
            "layers": len(decoder.layers), "hidden_size": model.config.hidden_size,
            "vocab_size": model.config.vocab_size, "dtype": str(dtype).replace("torch.", ""),
            "attention": getattr(model.config, "_attn_implementation", None),
            "weights_mib": sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20}
    return model, tokenizer, info


# --------------------------------------------------------------------------- phases
def bench_align(llm, tokenizer, item_emb, texts, device, quick: bool) -> dict:
    """One timed epoch of the alignment step (generate objective), after a warm-up of 3 batches."""
    config = AlignConfig(**ALIGN)
    template = Template.parse(config.prompt_template, tokenizer, ("item",), "align")
    projector = Projector(item_emb.shape[1], llm.config.hidden_size, config.projector_kind)
    projector.fit_scales(item_emb, token_norm(llm)).to(device)
    optimizer = torch.optim.AdamW(projector.parameters(), lr=config.learning_rate, weight_decay=0.0)
    targets = target_ids(tokenizer, texts, config.max_target_tokens)
    lengths = np.array([len(t) for t in targets])
    rng = np.random.default_rng(config.seed)

    def step(batch: np.ndarray) -> float:
        tokens = projector(item_emb[torch.from_numpy(batch)].to(device))
        loss = alignment_loss(llm, template, tokens, [targets[i] for i in batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    with deterministic():
        for batch in length_bucketed_batches(lengths, config.batch_size, rng)[:3]:
            step(batch)
        weights = reset_peak(device)
        batches = length_bucketed_batches(lengths, config.batch_size, rng)
        with Timer(device) as timer:
            losses = [step(batch) for batch in batches]
    n = sum(len(b) for b in batches)
    return {"examples": n, "batches": len(batches), "batch_size": config.batch_size, "seconds": timer.seconds,
            "examples_per_second": n / timer.seconds, "peak_mib": peak_mib(device),
            "allocated_before_mib": weights, "peak_reserved_mib": peak_reserved_mib(device),
            "mean_target_tokens": float(lengths.mean()), "loss_first": losses[0], "loss_last": losses[-1],
            "settings": {k: config.__dict__[k] for k in ("objective", "batch_size", "learning_rate",
                                                         "projector_kind", "max_target_tokens", "prompt_template")}}


def make_model(llm, tokenizer, user_emb, item_emb, device, overrides: dict):
    config = GLLMConfig(**{**GLLM, **overrides})
    torch.manual_seed(config.seed)
    projector = Projector(item_emb.shape[1], llm.config.hidden_size).fit_scales(item_emb, token_norm(llm))
    model = build_gllm(llm, tokenizer, projector, user_emb, item_emb, config).to(device)
    return model, config


def prompt_text_tokens(model) -> int:
    return int(sum(len(p) for p in model.template.pieces if isinstance(p, torch.Tensor)))


def bench_e2e(model, config: GLLMConfig, data: GLLMData, device, quick: bool) -> dict:
    """One timed epoch of end-to-end GLLM training (gllm_step), after 2 warm-up batches."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    bs = config.batch_size
    with deterministic():
        model.train()
        warm = epoch_examples(data, config, rng)
        # warm up on the longest prompts: the allocator sees the epoch's largest batch first
        warm = sorted(warm, key=lambda e: -len(e[1]))
        for lo in range(0, min(2 * bs, len(warm)), bs):
            gllm_step(model, optimizer, warm[lo : lo + bs])
        weights = reset_peak(device)
        examples = epoch_examples(data, config, rng)
        if quick:
            examples = examples[: 2 * bs]
        with Timer(device) as timer:
            losses = [gllm_step(model, optimizer, examples[lo : lo + bs]) for lo in range(0, len(examples), bs)]
    shown = np.array([len(e[1]) for e in examples])
    slots = shown if config.history_tokens == "items" else np.minimum(shown, config.history_chunks)
    return {"examples": len(examples), "batch_size": bs, "seconds": timer.seconds,
            "examples_per_second": len(examples) / timer.seconds, "peak_mib": peak_mib(device),
            "allocated_before_mib": weights, "peak_reserved_mib": peak_reserved_mib(device),
            "mean_prompt_tokens": float(prompt_text_tokens(model) + 3 + slots.mean()),
            "max_prompt_tokens": int(prompt_text_tokens(model) + 3 + slots.max()),
            "loss_first": losses[0], "loss_last": losses[-1]}


def bench_head(model, config: GLLMConfig, data: GLLMData, device, quick: bool) -> tuple[dict, dict]:
    """Cache-then-train: caching the LLM states of cache_draws draws, then head epochs on them."""
    rng = np.random.default_rng(config.seed + 1)
    small = GLLMData(data.visible[:64], data.targets, data.train, data.valid, data.n_items, data.eval_base)
    with deterministic():
        cache_hidden_states(model, small, dataclasses.replace(config, cache_draws=1), rng, False)  # warm-up
        weights = reset_peak(device)
        with Timer(device) as timer:
            users, hidden, examples = cache_hidden_states(model, data, config, rng, False)
        cache = {"examples": len(examples), "draws": config.cache_draws, "batch_size": config.scoring_batch_size,
                 "seconds": timer.seconds, "examples_per_second": len(examples) / timer.seconds,
                 "peak_mib": peak_mib(device), "allocated_before_mib": weights,
                 "peak_reserved_mib": peak_reserved_mib(device)}
        optimizer = torch.optim.AdamW(head_parameters(model), lr=config.head_learning_rate,
                                      weight_decay=config.weight_decay)
        model.train()

        def epoch() -> None:
            order = rng.permutation(len(examples))
            for lo in range(0, len(order), config.head_batch_size):
                rows = order[lo : lo + config.head_batch_size]
                logits = model.logits(users[rows], hidden[rows], model.graph_base)
                loss = gllm_loss(logits, [examples[r][2] for r in rows], [examples[r][3] for r in rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                loss.item()

        epoch()  # warm-up
        epochs = 1 if quick else 10
        weights = reset_peak(device)
        with Timer(device) as timer:
            for _ in range(epochs):
                epoch()
    head = {"examples": epochs * len(examples), "epochs": epochs, "batch_size": config.head_batch_size,
            "seconds": timer.seconds, "examples_per_second": epochs * len(examples) / timer.seconds,
            "seconds_per_epoch": timer.seconds / epochs, "peak_mib": peak_mib(device),
            "allocated_before_mib": weights, "peak_reserved_mib": peak_reserved_mib(device)}
    return cache, head


def bench_scoring(model, config: GLLMConfig, train: pd.DataFrame, n_users: int, base, device, quick: bool) -> dict:
    """history_scorer over every user, full-catalogue scores, a fresh hidden-state cache."""
    model.eval()
    if config.blend_grid:
        model.blend_weight.fill_(1.0)  # as after blending: the z-scored GLLM and graph scores are mixed
    history_scorer(model, train, n_users, base)(torch.arange(min(config.scoring_batch_size, n_users)))  # warm-up
    users = torch.arange(min(n_users, 2 * config.scoring_batch_size) if quick else n_users)
    scorer = history_scorer(model, train, n_users, base)  # its own (empty) cache
    weights = reset_peak(device)
    with Timer(device) as timer:
        scores = scorer(users)
    return {"users": len(users), "items_scored": int(scores.shape[1]), "batch_size": config.scoring_batch_size,
            "seconds": timer.seconds, "users_per_second": len(users) / timer.seconds, "peak_mib": peak_mib(device),
            "allocated_before_mib": weights, "peak_reserved_mib": peak_reserved_mib(device)}


# --------------------------------------------------------------------------- driver
def run_phase(results: dict, key: str, name: str, fn, write) -> object:
    print(f"[{key}] {name} ...", flush=True)
    try:
        value = fn()
    except Exception as error:  # one failing phase (say, out of memory) must not lose the others
        traceback.print_exc()
        results["llms"][key]["phases"][name] = {"error": f"{type(error).__name__}: {str(error)[:500]}"}
        write()
        return None
    values = value if isinstance(value, tuple) else (value,)
    names = name.split("+")
    for phase, row in zip(names, values):
        results["llms"][key]["phases"][phase] = row
        print(f"[{key}] {phase}: " + json.dumps({k: v for k, v in row.items() if not isinstance(v, dict)}), flush=True)
    write()
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm", action="append", required=True,
                        help="a GGUF file, a checkpoint folder, random-1b or random-smollm2 (repeatable)")
    parser.add_argument("--tokenizer", default=None, help="tokenizer of the random LLMs (a GGUF or folder)")
    parser.add_argument("--inputs", type=Path, required=True, help="packed inputs (experiments/glta_levers.py pack)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu/bench_gpu.json"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--items", action="store_true", help="also one token per history item (issue-13 lever)")
    parser.add_argument("--quick", action="store_true", help="a few batches of each phase (checks the code paths)")
    args = parser.parse_args()

    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    import transformers

    tables = {name: pd.read_parquet(args.inputs / f"{name}.parquet") for name in TABLES}
    from safetensors.torch import load_file

    graph = load_file(str(args.inputs / "lightgcn.safetensors"))
    user_emb, item_emb = graph["user"].float(), graph["item"].float()
    n_users, n_items = len(tables["user_map"]), len(tables["item_map"])
    train = tables["train"]
    texts = item_texts(tables["items"], tables["item_map"], AlignConfig().target_template)
    histories = user_histories(train, n_users)
    data = GLLMData(histories[:64] if args.quick else histories, [], train, tables["valid"], n_items,
                    eval_base=(user_emb, item_emb))
    align_items = item_emb[:128] if args.quick else item_emb
    align_texts = texts[:128] if args.quick else texts

    results = {
        "benchmark": "benchmarks/bench_gpu.py", "command": " ".join([Path(sys.executable).name] + sys.argv),
        "quick": args.quick, "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "gpu_memory_mib": (torch.cuda.get_device_properties(device).total_memory / 2**20
                           if device.type == "cuda" else None),
        "torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__,
        "python": platform.python_version(), "machine": platform.platform(),
        "data": {"users": n_users, "items": n_items, "train_interactions": len(train),
                 "mean_train_items_per_user": float(np.mean([len(h) for h in histories])),
                 "max_train_items_per_user": int(max(len(h) for h in histories)),
                 "graph_embedding_dim": int(item_emb.shape[1])},
        "settings": {"align": ALIGN, "gllm": {k: v for k, v in GLLM.items()}},
        "llms": {},
    }

    def write() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str))

    for spec in args.llm:
        key = Path(spec).name
        results["llms"][key] = {"phases": {}}
        start = time.perf_counter()
        try:
            llm, tokenizer, info = load_llm(spec, args.tokenizer, device, dtype)
        except Exception as error:
            traceback.print_exc()
            results["llms"][key]["error"] = f"{type(error).__name__}: {str(error)[:500]}"
            write()
            continue
        info["load_seconds"] = time.perf_counter() - start
        results["llms"][key].update(info)
        print(f"[{key}] loaded: {json.dumps(info)}", flush=True)
        write()
        run_phase(results, key, "align", lambda: bench_align(llm, tokenizer, align_items, align_texts, device,
                                                            args.quick), write)
        free(device)
        variants = [("", {})] + ([("_items", {"history_tokens": "items"})] if args.items else [])
        for suffix, overrides in variants:
            model, config = make_model(llm, tokenizer, user_emb, item_emb, device, overrides)
            results["llms"][key][f"gllm{suffix}_trainable_parameters"] = sum(
                p.numel() for p in model.parameters() if p.requires_grad)
            run_phase(results, key, f"gllm_e2e{suffix}", lambda: bench_e2e(model, config, data, device, args.quick),
                      write)
            free(device)
            if not suffix:
                run_phase(results, key, "head_cache+head_train",
                          lambda: bench_head(model, config, data, device, args.quick), write)
                free(device)
            run_phase(results, key, f"scoring{suffix}",
                      lambda: bench_scoring(model, config, train, n_users, (user_emb, item_emb), device, args.quick),
                      write)
            model = None
            free(device)
        llm = tokenizer = None
        free(device)
    results["finished"] = True
    write()
    print("wrote", args.out, flush=True)


if __name__ == "__main__":
    main()
