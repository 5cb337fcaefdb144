"""int8 weights for a frozen LLM's forward passes (``llm.quantize: int8``).

Every ``nn.Linear`` of the decoder becomes an :class:`Int8Linear`: weights quantised once to int8
with one scale per output channel, activations quantised per token at run time (symmetric, the
scheme of torchao's ``Int8DynamicActivationInt8Weight``), multiplied with ``torch._int_mm`` (int32
accumulation, exact, so the result does not depend on the thread count) and scaled back to the
activations' dtype. Forward only: int8 kernels have no backward, so what trains through the LLM
(alignment, end-to-end GLLM epochs, LoRA) keeps the unquantised model.

Why not a library: ``torch.ao.quantization.quantize_dynamic`` prints a deprecation warning in
torch 2.13, and its fbgemm kernels quantise activations with one scale per *batch*, so a user's
scores would depend on who else is in the batch; torchao's CPU wheels follow each torch release's
ABI. Speed depends on the CPU's int8 kernels: measure with ``benchmarks/bench_llm.py`` before
choosing it (on a 2-core AVX2 CPU ``torch._int_mm`` ran at 1/25 of a float32 matmul).
"""

from __future__ import annotations

import torch
from torch import nn


class Int8Linear(nn.Module):
    """A frozen ``nn.Linear`` in int8: per-channel weight scales, per-token activation scales."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=1e-8) / 127.0
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight_int8", torch.round(weight / scale[:, None]).to(torch.int8).t().contiguous())
        self.register_buffer("weight_scale", scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and torch.is_grad_enabled():
            raise RuntimeError("an int8 LLM layer has no backward: train through the unquantised LLM "
                               "(LLMConfig.for_training), or call it under torch.no_grad()")
        rows = x.reshape(-1, self.in_features).float()
        scale = rows.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 127.0
        quantised = torch.round(rows / scale).to(torch.int8)
        out = torch._int_mm(quantised, self.weight_int8).float() * scale * self.weight_scale
        if self.bias is not None:
            out = out + self.bias
        return out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def quantize_int8(module: nn.Module) -> int:
    """Replace every ``nn.Linear`` under ``module`` by an :class:`Int8Linear` in place; returns how many."""
    replaced = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear):
            setattr(module, name, Int8Linear(child))
            replaced += 1
        else:
            replaced += quantize_int8(child)
    return replaced
