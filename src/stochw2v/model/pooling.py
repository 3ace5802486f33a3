"""Time pooling of [batch, time, dim] sequences that keeps per-item lengths right.

Two flavours, both independent of how much padding follows an item, so an item's result
in a padded batch equals its result alone:

* `pool_floor`: SEW's average pooling (whole windows only; a partial tail window is dropped).
  Used for the squeeze and for query pooling, whose output length sets the upsampling.
* `pool_ceil`: averages every window, the last one over the valid frames it holds. Used for
  keys and values, which lose nothing this way.
"""
from __future__ import annotations

import torch
from torch import Tensor


def exporting() -> bool:
    """True while torch.export traces the model (ONNX export): data-dependent Python (per-item
    loops, checks that read tensor values, caches keyed on storage) must step aside then."""
    return torch.compiler.is_compiling()


def padding_mask(lengths: Tensor | None, max_len: int) -> Tensor | None:
    """Bool [B, max_len], True at valid frames; None when nothing is padded."""
    if lengths is None:
        return None
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def pool_floor(x: Tensor, lengths: Tensor | None, factor: int) -> tuple[Tensor, Tensor | None]:
    """Average non-overlapping windows of `factor` frames; lengths become lengths // factor."""
    if factor == 1:
        return x, lengths
    batch, time, dim = x.shape
    out_len = time // factor
    pooled = x[:, : out_len * factor].reshape(batch, out_len, factor, dim).mean(dim=2)
    return pooled, (None if lengths is None else lengths // factor)


def pool_ceil(x: Tensor, lengths: Tensor | None, factor: int) -> tuple[Tensor, Tensor | None]:
    """Average windows of `factor` frames, counting only valid frames; lengths are rounded up."""
    if factor == 1:
        return x, lengths
    batch, time, dim = x.shape
    out_len = (time + factor - 1) // factor  # ceil; no negative floor division (ONNX truncates it)
    extra = out_len * factor - time
    if lengths is None and extra == 0:
        return x.reshape(batch, out_len, factor, dim).mean(dim=2), None
    valid = torch.ones(batch, time, device=x.device, dtype=x.dtype)
    if lengths is not None:
        valid = padding_mask(lengths, time).to(x.dtype)
    x = torch.nn.functional.pad(x * valid[..., None], (0, 0, 0, extra))  # extra may be 0
    valid = torch.nn.functional.pad(valid, (0, extra))
    sums = x.reshape(batch, out_len, factor, dim).sum(dim=2)
    counts = valid.reshape(batch, out_len, factor).sum(dim=2).clamp_min(1.0)
    new_lengths = None if lengths is None else (lengths + factor - 1) // factor
    return sums / counts[..., None], new_lengths
