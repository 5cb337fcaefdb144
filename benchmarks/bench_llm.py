"""Benchmark: the bundled LLM's decoder throughput against a bare FP32 matmul of the same widths.

What bounds the GLTA stages on a CPU: tokens per second through the 30-layer decoder, forward
(scoring) and forward + backward to the inputs (alignment and GLLM training, LLM frozen), for
the batch shapes the stages use. The reference, measured in the same run, is a dense
``(tokens x 576) @ (576 x 1536)`` matmul: the GFLOP/s the decoder's own matmuls could reach.

Usage: ``python benchmarks/bench_llm.py [--out benchmarks/results/bench_llm.json]`` (needs the
converted bundled model: run ``make run`` once, or it is converted here, about 40 s).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from report import write_report
from glta_pipelines.core.llm.backbone import LLMConfig, load_llm


def seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/bench_llm.json")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    llm, _ = load_llm(LLMConfig(device="cpu", dtype="float32"))
    decoder, width = llm.get_decoder(), llm.config.hidden_size
    flops_per_token = 2 * sum(p.numel() for n, p in decoder.named_parameters() if "embed_tokens" not in n)
    shapes = []
    for batch, length in ((32, 24), (64, 24), (8, 12)):
        x = torch.randn(batch, length, width) * 0.05
        with torch.no_grad():
            forward = seconds(lambda: decoder(inputs_embeds=x), args.repeats)
        grad_x = x.clone().requires_grad_(True)
        both = seconds(lambda: decoder(inputs_embeds=grad_x).last_hidden_state[:, -1].sum().backward(), args.repeats)
        tokens = batch * length
        shapes.append({"batch": batch, "tokens_per_row": length,
                       "forward_tokens_per_second": tokens / forward,
                       "forward_gflops": flops_per_token * tokens / forward / 1e9,
                       "forward_backward_tokens_per_second": tokens / both})
    reference = {}
    for rows in (96, 768, 1536):
        a, b = torch.randn(rows, width), torch.randn(width, 1536)
        reference[f"matmul_{rows}x{width}x1536_gflops"] = 2 * rows * width * 1536 / seconds(lambda: a @ b, 20) / 1e9
    report = {"model": "bundled:smollm2-135m-instruct", "decoder_flops_per_token": flops_per_token,
              "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()},
              "decoder": shapes, "reference_fp32_matmul": reference}
    write_report(report, Path(args.out))


if __name__ == "__main__":
    main()
