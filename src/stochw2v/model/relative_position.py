"""WavLM's gated relative position bias, and how it follows the sequence when frames are pooled.

WavLM adds to every attention score a learned bias of the distance between query and key, looked up
in log-spaced buckets (T5's scheme) and gated per head by the query's own content. The bias is made
once, at the first layer, and shared by all of them.

Pooling keeps each bias with the frames it belongs to: it is built at the frame rate of the conv
features, and where frames are averaged (the squeeze, query pooling, key-value pooling) the bias is
averaged over the same windows, so a pooled query or key sees the mean bias of the frames it stands
for. Key-value pooling averages the last window of each item over its valid frames only, as
`pool_ceil` does for the keys themselves, so an item's result does not depend on its batch.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .pooling import pool_ceil

GATE_PROJECTION = 8  # WavLM's gate: a Linear(head_dim, 8) whose outputs sum in two groups of 4


def relative_position_buckets(relative: Tensor, num_buckets: int, max_distance: int) -> Tensor:
    """Bucket of each (key - query) distance: half the buckets per direction, exact below a quarter
    of `num_buckets`, log-spaced above up to `max_distance` (the last bucket holds all beyond)."""
    per_direction = num_buckets // 2
    buckets = (relative > 0).long() * per_direction
    distance = relative.abs()
    exact = per_direction // 2
    scaled = torch.log(distance.float() / exact) / math.log(max_distance / exact) * (per_direction - exact)
    far = torch.clamp((exact + scaled).long(), max=per_direction - 1)
    return buckets + torch.where(distance < exact, distance, far)


class RelativePositionBias(nn.Module):
    """The shared table: one bias per bucket and head."""

    def __init__(self, num_buckets: int, max_distance: int, num_heads: int) -> None:
        super().__init__()
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.embedding = nn.Embedding(num_buckets, num_heads)

    def forward(self, time: int) -> Tensor:
        """[1, heads, time, time] for a sequence of `time` frames at the conv features' rate."""
        positions = torch.arange(time, device=self.embedding.weight.device)
        buckets = relative_position_buckets(positions[None, :] - positions[:, None], self.num_buckets,
                                            self.max_distance)
        return self.embedding(buckets).permute(2, 0, 1)[None]


def pool_bias_windows(bias: Tensor, factor: int) -> Tensor:
    """Average both axes over whole windows of `factor` (as `pool_floor` pools the frames): the bias of
    the shorter sequence after the squeeze or a layer's query pooling."""
    if factor == 1:
        return bias
    batch, heads, queries, keys = bias.shape
    q, k = queries // factor, keys // factor
    windows = bias[:, :, : q * factor, : k * factor].reshape(batch, heads, q, factor, k, factor)
    return windows.mean(dim=(3, 5))


def pool_bias_queries(bias: Tensor, factor: int) -> Tensor:
    """Average the query axis over whole windows of `factor` (a layer's query pooling)."""
    if factor == 1:
        return bias
    batch, heads, queries, keys = bias.shape
    q = queries // factor
    return bias[:, :, : q * factor].reshape(batch, heads, q, factor, keys).mean(dim=3)


def pool_bias_keys(bias: Tensor, lengths: Tensor | None, factor: int) -> Tensor:
    """Average the key axis as `pool_ceil` averages the keys: every window, each item's last one over
    its valid frames (so the bias becomes per item when lengths are given)."""
    if factor == 1:
        return bias
    batch = bias.shape[0] if lengths is None else lengths.shape[0]
    bias = bias.expand(batch, -1, -1, -1)
    _, heads, queries, keys = bias.shape
    flat = bias.permute(0, 3, 1, 2).reshape(batch, keys, heads * queries)
    pooled, _ = pool_ceil(flat, lengths, factor)
    return pooled.reshape(batch, -1, heads, queries).permute(0, 2, 3, 1)


class PositionGate(nn.Module):
    """Per head, how much of the bias a query takes: a * (b * c - 1) + 2, with a and b sigmoids of the
    query's own head slice and c a learned constant per head (WavLM's 'gated' relative bias)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.linear = nn.Linear(dim // num_heads, GATE_PROJECTION)
        self.const = nn.Parameter(torch.ones(1, num_heads, 1, 1))

    def forward(self, queries: Tensor, bias: Tensor) -> Tensor:
        """queries [B, Tq, D] (the attention's input), bias [b, H, Tq, Tk] -> gated bias [B, H, Tq, Tk]."""
        heads = queries.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)
        projected = self.linear(heads).unflatten(-1, (2, GATE_PROJECTION // 2)).sum(-1)
        gate_a, gate_b = torch.sigmoid(projected).chunk(2, dim=-1)
        return (gate_a * (gate_b * self.const - 1.0) + 2.0) * bias


__all__ = ["PositionGate", "RelativePositionBias", "pool_bias_keys", "pool_bias_queries", "pool_bias_windows",
           "relative_position_buckets"]
