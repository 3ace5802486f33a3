"""The context network: positional conv, transformer layers with pooling, upsampling.

Shapes are [batch, time, dim] throughout. `lengths` holds each item's valid frame count,
or is None when no item is padded (the fast path: attention runs without a mask).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..compute.compression import Compression
from ..errors import ConfigError
from .activations import activation
from .config import EncoderConfig
from .linear import Linear, linear
from .pooling import exporting, padding_mask, pool_ceil, pool_floor
from .relative_position import (
    PositionGate,
    RelativePositionBias,
    pool_bias_keys,
    pool_bias_queries,
    pool_bias_windows,
)


class SelfAttention(nn.Module):
    """Multi-head attention whose queries and keys/values may come from different lengths."""

    def __init__(self, dim: int, num_heads: int, dropout: float, gated_bias: bool = False) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.q_proj = Linear(dim, dim)
        self.k_proj = Linear(dim, dim)
        self.v_proj = Linear(dim, dim)
        self.out_proj = Linear(dim, dim)
        self.gate = PositionGate(dim, num_heads) if gated_bias else None  # WavLM
        self._fused: tuple | None = None

    def _heads(self, x: Tensor) -> Tensor:
        batch, time, dim = x.shape
        return x.unflatten(-1, (self.num_heads, dim // self.num_heads)).transpose(1, 2)

    def _projections(self, queries: Tensor, keys_values: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if queries is not keys_values or torch.is_grad_enabled() or exporting():
            return self.q_proj(queries), self.k_proj(keys_values), self.v_proj(keys_values)
        # one matrix product for q, k and v when they read the same sequence (inference): a single
        # [T, D] x [D, 3D] product runs faster than three [T, D] x [D, D] ones on the CPU
        parts = (self.q_proj, self.k_proj, self.v_proj)
        key = tuple((p.weight._version, p.weight.data_ptr(), p.bias._version) for p in parts) + (queries.dtype,)
        if self._fused is None or self._fused[0] != key:
            with torch.no_grad():
                weight = torch.cat([p.weight for p in parts])
                bias = torch.cat([p.bias for p in parts])
            self._fused = (key, weight, bias)
        return linear(queries, self._fused[1], self._fused[2]).chunk(3, dim=-1)

    def forward(self, queries: Tensor, keys_values: Tensor, key_lengths: Tensor | None,
                position_bias: Tensor | None = None) -> Tensor:
        """position_bias [b, H, Tq, Tk]: added to the scores, gated by the queries (WavLM)."""
        q, k, v = (self._heads(t) for t in self._projections(queries, keys_values))
        mask = padding_mask(key_lengths, k.shape[2])
        if mask is not None:
            mask = mask[:, None, None, :]
        if position_bias is not None and self.gate is not None:
            bias = self.gate(queries, position_bias).to(q.dtype)
            mask = bias if mask is None else bias.masked_fill(~mask, float("-inf"))
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        batch, _, time, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(batch, time, -1))


class FeedForward(nn.Module):
    def __init__(self, dim: int, ffn_dim: int, act: str, activation_dropout: float, dropout: float) -> None:
        super().__init__()
        self.intermediate = Linear(dim, ffn_dim)
        self.output = Linear(ffn_dim, dim)
        self.activation = activation(act)
        self.activation_dropout = nn.Dropout(activation_dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.activation_dropout(self.activation(self.intermediate(x)))
        return self.dropout(self.output(x))


class TransformerLayer(nn.Module):
    """One W2V2 layer (post-LN or pre-LN) with optional query pooling and key-value pooling."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.layer_norm_first = config.layer_norm_first
        self.attention = SelfAttention(config.dim, config.num_heads, config.attention_dropout,
                                       gated_bias=config.relative_position_buckets > 0)
        self.attention_norm = nn.LayerNorm(config.dim, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.ffn = FeedForward(config.dim, config.ffn_dim, config.activation, config.activation_dropout,
                               config.dropout)
        self.ffn_norm = nn.LayerNorm(config.dim, eps=config.layer_norm_eps)

    def forward(self, x: Tensor, lengths: Tensor | None, query_factor: int = 1, kv_factor: int = 1,
                position_bias: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        residual, out_lengths = pool_floor(x, lengths, query_factor)
        if position_bias is not None:  # pooled with the queries and the keys it belongs to
            position_bias = pool_bias_keys(pool_bias_queries(position_bias, query_factor), lengths, kv_factor)
        if self.layer_norm_first:
            keys_values = self.attention_norm(x)
            queries = self.attention_norm(residual) if query_factor > 1 else keys_values
        else:
            keys_values, queries = x, residual
        keys_values, kv_lengths = pool_ceil(keys_values, lengths, kv_factor)
        x = residual + self.dropout(self.attention(queries, keys_values, kv_lengths, position_bias))
        if self.layer_norm_first:
            x = x + self.ffn(self.ffn_norm(x))
        else:
            x = self.attention_norm(x)
            x = self.ffn_norm(x + self.ffn(x))
        return x, out_lengths


class PositionalConv(nn.Module):
    """Weight-normed grouped conv positional embedding; run at stride s when squeezing (SEW)."""

    def __init__(self, dim: int, kernel: int, groups: int, act: str) -> None:
        super().__init__()
        self.kernel, self.groups = kernel, groups
        # weight = g * v / ||v||, the norm taken over all dims but the kernel position (dim=2)
        self.weight_v = nn.Parameter(torch.empty(dim, dim // groups, kernel))
        self.weight_g = nn.Parameter(torch.empty(1, 1, kernel))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.activation = activation(act)
        nn.init.normal_(self.weight_v, mean=0.0, std=math.sqrt(4.0 / (kernel * dim)))
        with torch.no_grad():
            self.weight_g.copy_(self.weight_v.norm(dim=(0, 1), keepdim=True))
        self._cache: tuple | None = None

    def weight(self) -> Tensor:
        """g * v / ||v|| (torch's fused kernel behind nn.utils.weight_norm); kept between calls when no
        gradient is wanted (10 ms of a base pass, measured) and renewed when g or v change."""
        if torch.is_grad_enabled() or exporting():
            return torch._weight_norm(self.weight_v, self.weight_g, 2)
        key = (self.weight_v._version, self.weight_g._version, self.weight_v.data_ptr(), self.weight_v.dtype)
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, torch._weight_norm(self.weight_v, self.weight_g, 2))
        return self._cache[1]

    def forward(self, x: Tensor, stride: int = 1, lengths: Tensor | None = None) -> Tensor:  # noqa: ARG002
        """x [B, T, D], zero past each item's end (so `lengths` is not needed by one conv)."""
        return self.activation(_positional_conv(x, self.weight(), self.bias, stride, self.groups)).transpose(1, 2)


def _positional_conv(x: Tensor, weight: Tensor, bias: Tensor, stride: int, groups: int) -> Tensor:
    """[B, T, D] -> [B, D, T'] grouped 'same' conv (the last frame dropped for even kernels, as fairseq)."""
    inputs = x.transpose(1, 2)
    if _bf16_conv_is_wrong(x, weight.shape[1]):
        weight, bias, inputs = weight.float(), bias.float(), inputs.float()
    kernel = weight.shape[-1]
    y = F.conv1d(inputs, weight, bias, stride=stride, padding=kernel // 2, groups=groups).to(x.dtype)
    return y[..., :-1] if kernel % 2 == 0 else y


def _bf16_conv_is_wrong(x: Tensor, channels_per_group: int) -> bool:
    """torch 2.13's CPU bf16 grouped conv1d returns garbage (relative error ~1) for 4 or 8 channels
    per group at kernels >= 16 (measured; 2, 16, 32, 48 are right): such layers run in float32.
    The presets (32 and 48 channels per group) keep the bf16 kernel."""
    return x.dtype == torch.bfloat16 and x.device.type == "cpu" and channels_per_group < 16


STACK_NORM_EPS = 1e-5  # data2vec-audio's parameter-free layer norm between its positional convs


class PositionalConvStack(nn.Module):
    """data2vec-audio's positional embedding: `depth` grouped convs, each followed by a layer norm without
    parameters and the activation. Squeezing runs the first at stride s (as SEW runs its one conv).

    Frames past each item's end are zeroed between the convs, so an item's output does not depend on
    the batch it is padded into (HF lets padding leak into the second conv onwards).
    """

    def __init__(self, dim: int, kernel: int, groups: int, depth: int, act: str) -> None:
        super().__init__()
        self.kernel, self.groups = kernel, groups
        self.layers = nn.ModuleList(nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups)
                                    for _ in range(depth))
        self.activation = activation(act)

    def forward(self, x: Tensor, stride: int = 1, lengths: Tensor | None = None) -> Tensor:
        valid = None if lengths is None else self.output_lengths(lengths, stride)
        for index, conv in enumerate(self.layers):
            y = _positional_conv(x, conv.weight, conv.bias, stride if index == 0 else 1, self.groups)
            x = self.activation(F.layer_norm(y.transpose(1, 2), (y.shape[1],), eps=STACK_NORM_EPS))
            if valid is not None:
                x = x.masked_fill(~padding_mask(valid, x.shape[1])[..., None], 0.0)
        return x

    def output_lengths(self, lengths: Tensor, stride: int) -> Tensor:
        """Frames the first conv gives an item of `lengths` frames run alone (the rest keep that length)."""
        even = int(self.kernel % 2 == 0)
        return torch.div(lengths + 2 * (self.kernel // 2) - self.kernel, stride, rounding_mode="floor") + 1 - even


class Upsampler(nn.Module):
    """SEW's upsampling, shared by every total factor f <= max_factor.

    Factor f applies a Linear(dim, f * dim) whose rows are the first f blocks of `dim` rows, so
    at a fixed squeeze s with max_factor == s this is exactly SEW's layer. Each block is its own
    parameter: an update at factor f leaves the blocks it does not use without a gradient, so
    AdamW's weight decay and stale moments do not move them either.
    """

    def __init__(self, dim: int, max_factor: int, act: str) -> None:
        super().__init__()
        self.dim, self.max_factor = dim, max_factor
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(dim, dim)) for _ in range(max_factor))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(dim)) for _ in range(max_factor))
        self.activation = activation(act)
        # variance-preserving (std dim**-0.5), not HF's 0.02: a 0.02 layer here followed by a CTC head
        # starts both with tiny gradients, and the tiny model sat on CTC's blank plateau for 450+
        # updates (300 with this init)
        for weight in self.weights:
            nn.init.normal_(weight, std=dim**-0.5)
        self._cache: dict[int, tuple] = {}

    def forward(self, x: Tensor, factor: int) -> Tensor:
        weight, bias = self._stacked(factor)
        y = self.activation(F.linear(x, weight, bias))
        batch, time, _ = y.shape
        return y.reshape(batch, time * factor, self.dim)

    def stacked(self, factor: int) -> tuple[Tensor, Tensor]:
        """Weight [factor * dim, dim] and bias of factor `factor` (SEW's single Linear)."""
        # indexed one by one: slicing a ParameterList builds a new one, which torch.export cannot trace
        return (torch.cat([self.weights[i] for i in range(factor)]),
                torch.cat([self.biases[i] for i in range(factor)]))

    def _stacked(self, factor: int) -> tuple[Tensor, Tensor]:
        """`stacked`, kept between calls when no gradient is wanted (inference concatenated the
        blocks anew on every call: 6 ms of a 400 ms base SEW pass at s=4, measured). The copy is
        renewed whenever a block changes (tensor versions count in-place updates)."""
        if factor == 1:
            return self.weights[0], self.biases[0]
        if torch.is_grad_enabled() or exporting():
            return self.stacked(factor)
        blocks = [self.weights[i] for i in range(factor)] + [self.biases[i] for i in range(factor)]
        key = (factor, tuple(b._version for b in blocks), tuple(b.data_ptr() for b in blocks), blocks[0].dtype)
        cached = self._cache.get(factor)
        if cached is None or cached[0] != key:
            with torch.no_grad():
                cached = (key, *self.stacked(factor))
            self._cache[factor] = cached
        return cached[1], cached[2]


def split_upsampler_weights(state: dict[str, Tensor], prefix: str, dim: int) -> dict[str, Tensor]:
    """Turn one stacked upsampler Linear ({prefix}weight [f*dim, dim], {prefix}bias) into blocks."""
    if f"{prefix}weight" not in state:
        return state
    out = {k: v for k, v in state.items() if k not in (f"{prefix}weight", f"{prefix}bias")}
    weight, bias = state[f"{prefix}weight"], state[f"{prefix}bias"]
    for index, block in enumerate(weight.split(dim)):
        out[f"{prefix}weights.{index}"] = block.contiguous()
    for index, block in enumerate(bias.split(dim)):
        out[f"{prefix}biases.{index}"] = block.contiguous()
    return out


class ContextNetwork(nn.Module):
    """Squeeze -> transformer layers (with query/kv pooling) -> upsample to the frame rate."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.pos_conv = PositionalConvStack(config.dim, config.pos_conv_kernel, config.pos_conv_groups,
                                            config.pos_conv_depth, config.conv_activation) if config.pos_conv_depth \
            else PositionalConv(config.dim, config.pos_conv_kernel, config.pos_conv_groups, config.conv_activation)
        self.layer_norm = nn.LayerNorm(config.dim, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(TransformerLayer(config) for _ in range(config.num_layers))
        self.relative_position = RelativePositionBias(
            config.relative_position_buckets, config.relative_position_max_distance, config.num_heads) \
            if config.relative_position_buckets else None
        self.upsample = Upsampler(config.dim, config.max_upsample, config.conv_activation) \
            if config.max_upsample > 0 else None

    def forward(self, x: Tensor, lengths: Tensor | None, compression: Compression) -> Tensor:
        """x: [B, T, D] projected features -> [B, T, D]; frames past an item's end come out zero."""
        num_frames = x.shape[1]
        if lengths is not None:
            x = x.masked_fill(~padding_mask(lengths, num_frames)[..., None], 0.0)
        squeeze = compression.squeeze
        positions = self.pos_conv(x, stride=squeeze, lengths=lengths)
        x, lengths = pool_floor(x, lengths, squeeze)
        time = min(x.shape[1], positions.shape[1])
        x = x[:, :time] + positions[:, :time]
        bias = None  # WavLM: built at the features' rate, pooled as the frames are
        if self.relative_position is not None:
            bias = pool_bias_windows(self.relative_position(num_frames), squeeze)[:, :, :time, :time]
        if not self.config.layer_norm_first:
            x = self.layer_norm(x)
        x = self.dropout(x)

        layerdrop = self.config.layerdrop if self.training else 0.0
        for index, layer in enumerate(self.layers, start=1):
            query_factor = compression.query_factor(index)
            if layerdrop > 0.0 and torch.rand(()) < layerdrop:
                x, lengths = pool_floor(x, lengths, query_factor)  # keep the sequence length right
            else:
                x, lengths = layer(x, lengths, query_factor, compression.kv_factor(index), bias)
            if bias is not None:
                bias = pool_bias_windows(bias, query_factor)
        if self.config.layer_norm_first:
            x = self.layer_norm(x)

        factor = compression.total_factor
        if self.upsample is not None:
            x = self.upsample(x, factor)
        elif factor != 1:
            raise ConfigError(f"compression {compression} needs an upsampler; this model has none")
        if lengths is not None:  # zero what lies past each item's last whole window
            x = x.masked_fill(~padding_mask(lengths * factor, x.shape[1])[..., None], 0.0)
        # upsampling gives (frames // factor) * factor frames: the last `frames mod factor` come out zero
        return F.pad(x, (0, 0, 0, num_frames - x.shape[1]))
