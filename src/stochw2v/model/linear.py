"""`Linear`: nn.Linear whose CPU float32 inference runs on oneDNN instead of MKL.

Measured on the 2-core AMD EPYC machine (one thread, [500, 768] x [768, 3072]): torch's default
fp32 matrix product (MKL sgemm) ran at 41-46 GFLOP/s, oneDNN's at 50-55, OpenBLAS at 53-59 and
ONNX Runtime's MLAS at 55: MKL does not take its fast path on this CPU, and the linears are half
of the encoder's time. Training (gradients), other dtypes and devices, export tracing and any
active dispatch mode (FLOP counting, fake tensors) keep `F.linear`. Same parameters and state-dict
keys as nn.Linear.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

from .pooling import exporting

ONEDNN_LINEAR = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """F.linear; on oneDNN for CPU float32 inference."""
    if (ONEDNN_LINEAR and x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and not torch.is_grad_enabled() and not exporting() and _get_current_dispatch_mode() is None):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    return F.linear(x, weight, bias)


class Linear(nn.Linear):
    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)


__all__ = ["ONEDNN_LINEAR", "Linear", "linear"]
