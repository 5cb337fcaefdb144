"""Benchmark: the bundled LLM in float32, bfloat16 and int8, next to bare matmuls of each precision.

What bounds the GLTA stages on a CPU is tokens per second through the 30-layer decoder: forward
only (the GLLM's cached states, evaluation, serving) and forward + backward to the inputs
(alignment and end-to-end GLLM training, LLM frozen). In one run, for the batch shapes the stages
use, each precision the product offers (``llm.dtype``, ``llm.quantize``):

- ``float32``: the reference;
- ``bfloat16``: the weights and activations in bfloat16 (``llm.dtype: bfloat16``);
- ``int8``: ``llm.quantize: int8``, int8 weights with per-token dynamic activation scales
  (forward only: int8 kernels have no backward).

Beside them, the limit each precision can reach on this CPU: a bare ``(rows x 576) @ (576 x 1536)``
matmul in float32, bfloat16 and int8 (``torch._int_mm``), GFLOP/s, measured in the same process.
The CPU's native bfloat16 support (AVX512-BF16 or AMX), which ``llm.dtype: auto`` reads, is reported.

Usage: ``python benchmarks/bench_llm.py [--out benchmarks/results/bench_llm.json]`` (needs the
converted bundled model: run ``make run`` once, or it is converted here, about 40 s).
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch

from report import write_report
from glta_pipelines.core.devices import cpu_has_native_bf16
from glta_pipelines.core.llm.backbone import LLMConfig, load_llm

PRECISIONS = {"float32": {"dtype": "float32"}, "bfloat16": {"dtype": "bfloat16"},
              "int8": {"dtype": "float32", "quantize": "int8"}}


def seconds(fn, repeats: int) -> float:
    """Mean seconds of ``repeats`` calls after a warm-up call (0 repeats: the warm-up call itself)."""
    start = time.perf_counter()
    fn()  # warm-up
    if repeats == 0:
        return time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def decoder_rates(config: LLMConfig, shapes, repeats: int, flops_per_token: int) -> list[dict]:
    native_bf16 = cpu_has_native_bf16()
    llm, _ = load_llm(config)
    decoder, width = llm.get_decoder(), llm.config.hidden_size
    dtype = next(p.dtype for p in llm.parameters() if p.is_floating_point())
    rows = []
    for batch, length in shapes:
        generator = torch.Generator().manual_seed(0)
        x = (torch.randn(batch, length, width, generator=generator) * 0.05).to(dtype)
        with torch.no_grad():
            forward = seconds(lambda: decoder(inputs_embeds=x), repeats)
        tokens = batch * length
        row = {"batch": batch, "tokens_per_row": length, "forward_tokens_per_second": tokens / forward,
               "forward_gflops": flops_per_token * tokens / forward / 1e9}
        if config.quantize == "none" and (dtype == torch.float32 or native_bf16):  # emulated bfloat16's
            # backward takes minutes a shape: its forward says enough
            grad_x = x.clone().requires_grad_(True)
            both = seconds(lambda: decoder(inputs_embeds=grad_x).last_hidden_state[:, -1].float().sum().backward(),
                           repeats)
            row["forward_backward_tokens_per_second"] = tokens / both
        rows.append(row)
        print(config.dtype, config.quantize, row, flush=True)
    return rows


def matmul_limits(width: int, repeats: int = 20) -> dict:
    limits = {}
    for rows in (96, 768, 1536):
        a, b = torch.randn(rows, width), torch.randn(width, 1536)
        flops = 2 * rows * width * 1536
        limits[f"float32_{rows}x{width}x1536_gflops"] = flops / seconds(lambda: a @ b, repeats) / 1e9
        a16, b16 = a.bfloat16(), b.bfloat16()
        limits[f"bfloat16_{rows}x{width}x1536_gflops"] = flops / seconds(lambda: a16 @ b16, 2) / 1e9
        a8 = torch.randint(-127, 128, (rows, width), dtype=torch.int8)
        b8 = torch.randint(-127, 128, (width, 1536), dtype=torch.int8)
        limits[f"int8_{rows}x{width}x1536_gops"] = flops / seconds(lambda: torch._int_mm(a8, b8), repeats) / 1e9
    print(limits, flush=True)
    return limits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/bench_llm.json")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    base = LLMConfig(device="cpu")
    llm, _ = load_llm(replace(base, dtype="float32"))
    decoder, width = llm.get_decoder(), llm.config.hidden_size
    flops_per_token = 2 * sum(p.numel() for n, p in decoder.named_parameters() if "embed_tokens" not in n)
    shapes = ((32, 24), (64, 24), (8, 12))
    report = {"model": base.model, "decoder_flops_per_token": flops_per_token,
              "machine": {"platform": platform.platform(), "processor": platform.processor(), "torch": torch.__version__,
                          "threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                          "native_bf16": cpu_has_native_bf16()},
              "limits": matmul_limits(width),
              "decoder": {}}
    limits = report["limits"]
    slow = {"bfloat16": limits["bfloat16_768x576x1536_gflops"] < limits["float32_768x576x1536_gflops"],
            "int8": limits["int8_768x576x1536_gops"] < limits["float32_768x576x1536_gflops"]}
    report["slower_than_float32_matmul"] = slow
    for name, settings in PRECISIONS.items():
        emulated = slow.get(name, False)
        # a precision whose bare matmul is slower than float32's (no native kernel on this CPU: seen
        # at 1/25 to 1/40 of float32) would take many minutes a shape: its smallest, once, says enough
        report["decoder"][name] = decoder_rates(replace(base, **settings), shapes[-1:] if emulated else shapes,
                                                0 if emulated else args.repeats, flops_per_token)
    reference = {(r["batch"], r["tokens_per_row"]): r["forward_tokens_per_second"] for r in report["decoder"]["float32"]}
    report["forward_speedup_over_float32"] = {
        name: {f"{r['batch']}x{r['tokens_per_row']}": r["forward_tokens_per_second"] / reference[r["batch"], r["tokens_per_row"]]
               for r in rows} for name, rows in report["decoder"].items()}
    write_report(report, Path(args.out))


if __name__ == "__main__":
    main()
