"""Bit-reproducible training: the same seed and inputs give the same weights on the same machine.

PyTorch picks some CPU kernels that accumulate in a thread-dependent order (the index backward
behind ``emb[batch]`` is one: LightGCN's embeddings drifted by about 2e-7 between two runs, and
GLTA, trained on them, by up to 4 points of Recall@20). In deterministic mode PyTorch takes the
sorted, order-stable variants; on this CPU that costs nothing measurable (benchmarks/).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def deterministic(enabled: bool = True) -> Iterator[None]:
    """Run the block with ``torch.use_deterministic_algorithms`` on, then restore the caller's setting.

    ``warn_only``: an op with no deterministic variant warns instead of failing the run.
    """
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
