"""Benchmark: wall time of every node of a pipeline run, next to this machine's FP32 matmul rate.

Runs ``kedro run --pipelines=<name>`` in-process (a real Kedro session with the project's hooks,
so the run is also in MLflow with its ``time.*`` metrics) and writes the per-node and per-stage
seconds to JSON. The reference, measured in the same run, is the sustained FP32 rate of a dense
matmul on this CPU, the ceiling of the LLM stages' forward and backward passes.

Usage: ``python benchmarks/bench_pipeline.py [--pipeline full] [--params k=v,...] [--out ...]``
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from report import write_report

ROOT = Path(__file__).resolve().parents[1]


def matmul_gflops(size: int = 1024, seconds: float = 3.0) -> float:
    """Sustained FP32 GFLOP/s of ``size x size`` matmuls (the reference)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        count += 1
    return 2 * size**3 * count / (time.perf_counter() - start) / 1e9


def run_pipeline(pipeline: str, params: str | None) -> tuple[dict[str, float], str | None]:
    """(node -> seconds, MLflow run id) of one Kedro run of ``pipeline``."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project
    from omegaconf import OmegaConf

    from glta_pipelines.framework.hooks import MlflowTrackingHook, NodeTimingHook

    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
    bootstrap_project(ROOT)
    # as `kedro run --params` reads them: dotted keys nest, values are typed by OmegaConf
    runtime = OmegaConf.to_container(OmegaConf.from_dotlist(params.split(","))) if params else None
    with KedroSession.create(project_path=ROOT, runtime_params=runtime) as session:
        session.run(pipeline_name=pipeline)
    from glta_pipelines.settings import HOOKS

    timing = next(h for h in HOOKS if isinstance(h, NodeTimingHook))
    tracking = next(h for h in HOOKS if isinstance(h, MlflowTrackingHook))
    return dict(timing.seconds), tracking.run_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="full")
    parser.add_argument("--params", default=None, help="runtime parameters, as for kedro run --params")
    parser.add_argument("--out", default="benchmarks/results/bench_pipeline.json")
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    reference = matmul_gflops()
    seconds, run_id = run_pipeline(args.pipeline, args.params)
    stages: dict[str, float] = {}
    for node, value in seconds.items():
        if node != "pipeline":
            stages[node.split(".", 1)[0]] = stages.get(node.split(".", 1)[0], 0.0) + value
    report = {
        "pipeline": args.pipeline, "params": args.params, "mlflow_run_id": run_id,
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "cpu_count": os.cpu_count()},
        "reference_fp32_matmul_gflops": reference,
        "pipeline_seconds": seconds.get("pipeline"),
        "stage_seconds": stages,
        "node_seconds": {k: v for k, v in seconds.items() if k != "pipeline"},
    }
    write_report(report, ROOT / args.out)


if __name__ == "__main__":
    main()
