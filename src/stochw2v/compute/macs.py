"""Multiply-accumulates of one forward pass, computed from the config (no model run needed)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from ..audio import SAMPLE_RATE
from ..errors import ConfigError
from .compression import CompressionLike

RELATIVE_GATE_OUTPUTS = 8  # WavLM's gate projects each head's slice to 8 values (model/relative_position.py)

if TYPE_CHECKING:  # a type only: the network imports compute/, never the other way
    from ..model.config import EncoderConfig


@dataclass(frozen=True)
class MacCount:
    """MACs by part. `attention` (scores and weighted sums) is included in `transformer`."""

    conv_encoder: int
    transformer: int
    rest: int  # feature projection and upsampling
    attention: int

    @property
    def total(self) -> int:
        return self.conv_encoder + self.transformer + self.rest


def count_macs(model_or_config: nn.Module | EncoderConfig, compression: CompressionLike = None,
               seconds: float = 10.0, sample_rate: int = SAMPLE_RATE) -> MacCount:
    """MACs of encoding `seconds` of audio (batch 1) at `compression` (None: config default).

    Counts every matrix product and convolution the encoder runs, as torch computes them
    (norms, activations and pooling are not MACs and are left out).
    """
    config: EncoderConfig = getattr(model_or_config, "config", model_or_config)
    if not callable(getattr(config, "resolve", None)):
        raise ConfigError(f"count_macs takes an Encoder, a CTCModel or an EncoderConfig, not "
                          f"{type(model_or_config).__name__}")
    setting = config.resolve(compression)
    for name, value in (("seconds", seconds), ("sample_rate", sample_rate)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ConfigError(f"count_macs: {name} must be a finite number > 0, got {value!r}")

    samples = int(round(seconds * sample_rate))
    conv = 0
    length, in_channels = samples, 1
    for channels, kernel, stride in config.conv_layers:
        length = (length - kernel) // stride + 1
        if length < 1:
            raise ConfigError(f"{seconds} s of audio is shorter than the conv encoder's receptive field")
        conv += length * channels * in_channels * kernel
        in_channels = channels
    frames = length
    setting.check(config.num_layers, config.max_upsample, num_frames=frames)

    dim, kernel = config.dim, config.pos_conv_kernel
    rest = frames * config.conv_dim * dim if config.feature_projection else 0
    pos_positions = (frames + 2 * (kernel // 2) - kernel) // setting.squeeze + 1
    transformer = pos_positions * dim * (dim // config.pos_conv_groups) * kernel * max(1, config.pos_conv_depth)
    attention = 0
    time = frames // setting.squeeze
    for layer in range(1, config.num_layers + 1):
        queries = time // setting.query_factor(layer)
        kv = setting.kv_factor(layer)
        keys = -(-time // kv) if kv > 1 else time
        layer_attention = 2 * queries * keys * dim  # scores and weighted sum
        projections = 2 * queries * dim * dim + 2 * keys * dim * dim  # q, out; k, v
        # WavLM's gate: per query and head, a Linear(head_dim, 8): queries * dim * 8 in all
        gate = queries * dim * RELATIVE_GATE_OUTPUTS if config.relative_position_buckets else 0
        transformer += projections + layer_attention + 2 * queries * dim * config.ffn_dim + gate
        attention += layer_attention
        time = queries
    if config.max_upsample > 0:
        rest += time * dim * dim * setting.total_factor
    return MacCount(conv, transformer, rest, attention)
