"""The convolutional feature encoder: raw 16 kHz samples to 20 ms frames."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .activations import activation
from .config import EncoderConfig
from .pooling import exporting, padding_mask


def conv_output_lengths(lengths: Tensor, layers: tuple[tuple[int, int, int], ...]) -> Tensor:
    """Frames each layer stack makes from `lengths` samples (torch.nn.Conv1d's formula, no padding)."""
    for _, kernel, stride in layers:
        lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
    return lengths


def standardize_over_valid(x: Tensor, lengths: Tensor | None, eps: float) -> Tensor:
    """Zero mean, unit variance along the last (time) axis, over each item's first `lengths` steps.

    Padding does not move the statistics and comes out zero. Used for the input waveform
    (HF's do_normalize). Statistics are taken in float32 whatever the input's precision; items are
    handled one by one (a few per batch), which is much cheaper than masked sums over the padding.
    """
    work = x.float()
    if lengths is None:
        mean = work.mean(-1, keepdim=True)
        return ((work - mean) * torch.rsqrt(work.var(-1, unbiased=False, keepdim=True) + eps)).to(x.dtype)
    if exporting():
        return _masked_standardize(work, lengths, eps).to(x.dtype)
    out = torch.zeros_like(work)
    for row, length in enumerate(lengths.tolist()):
        item = work[row, ..., :length]
        mean = item.mean(-1, keepdim=True)
        out[row, ..., :length] = (item - mean) * torch.rsqrt(item.var(-1, unbiased=False, keepdim=True) + eps)
    return out.to(x.dtype)


def _masked_standardize(x: Tensor, lengths: Tensor, eps: float) -> Tensor:
    """`standardize_over_valid` without a per-item loop (for export): masked sums over the padding."""
    shape = (x.shape[0],) + (1,) * (x.ndim - 2)
    valid = padding_mask(lengths, x.shape[-1]).to(x.dtype).view(*shape, x.shape[-1])
    count = lengths.to(x.dtype).view(*shape, 1)
    mean = (x * valid).sum(-1, keepdim=True) / count
    centred = (x - mean) * valid
    return centred * torch.rsqrt(centred.square().sum(-1, keepdim=True) / count + eps)


class ValidFrameGroupNorm(nn.Module):
    """W2V2's GroupNorm(C, C) over time, with statistics taken over each item's valid frames.

    Without padding this is exactly nn.GroupNorm. With padding, nn.GroupNorm would let the
    padding shift an item's statistics; here an item normalises the same in a batch as alone.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor, lengths: Tensor | None) -> Tensor:  # x: [B, C, T]
        if lengths is None:
            return F.group_norm(x, x.shape[1], self.weight, self.bias, self.eps)
        if exporting():
            x = _masked_standardize(x, lengths, self.eps)
            return x * self.weight[None, :, None] + self.bias[None, :, None]
        # each item over its own valid frames; without autograd the conv output is normalised in place
        # (no zero-filled copy of a [B, 512, frames] tensor: 0.1 s of a 7 s batch of 8, measured)
        out = x if not x.requires_grad else torch.empty_like(x)
        for row, length in enumerate(lengths.tolist()):
            out[row, :, :length] = F.group_norm(x[row:row + 1, :, :length], x.shape[1], self.weight, self.bias,
                                                self.eps)[0]
            out[row, :, length:] = 0.0
        return out


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of a [B, C, T] tensor (W2V2's "layer_norm" conv variant)."""

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:  # noqa: ARG002
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class ConvBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int,
                 bias: bool, norm: nn.Module | None, act: str) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride=stride, bias=bias)
        self.norm = norm
        self.activation = activation(act)

    def forward(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        x = self._conv(x)
        if self.norm is not None:
            x = self.norm(x, lengths)
        return self.activation(x)


    def _conv(self, x: Tensor) -> Tensor:
        """The convolution; on the one-channel waveform as frames times kernel (a matrix product):
        oneDNN's convolution runs a 1-channel input about 3.5x slower (104 ms against 28 ms for
        10 s of audio into 512 channels, 1 thread, measured), and this layer is W2V2's costliest."""
        conv = self.conv
        if conv.in_channels != 1:
            return conv(x)
        frames = x[:, 0].unfold(-1, conv.kernel_size[0], conv.stride[0]).contiguous()  # [B, T, kernel]
        weight = conv.weight[:, 0].expand(x.shape[0], -1, -1)
        # bmm of [B, channels, kernel] by the frames' transpose writes [B, channels, T] directly; matmul
        # would compute [B, T, channels] and copy it across (measured 0.8 ms against 4 ms)
        y = torch.bmm(weight, frames.transpose(1, 2))
        return y if conv.bias is None else y + conv.bias[:, None]


class ConvFeatureEncoder(nn.Module):
    """Stack of strided 1-D convolutions (W2V2 section 2, SEW's compact variant via config)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.layer_specs = config.conv_layers
        blocks = []
        in_channels = 1
        for i, (channels, kernel, stride) in enumerate(config.conv_layers):
            norm: nn.Module | None = None
            if config.conv_norm == "layer":
                norm = ChannelLayerNorm(channels)
            elif i == 0:
                norm = ValidFrameGroupNorm(channels)
            blocks.append(ConvBlock(in_channels, channels, kernel, stride, config.conv_bias, norm,
                                    config.conv_activation))
            in_channels = channels
        self.layers = nn.ModuleList(blocks)

    def forward(self, waveforms: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """[B, samples] -> features [B, frames, channels] and frame lengths (None: no padding)."""
        x = waveforms[:, None, :]
        for block, spec in zip(self.layers, self.layer_specs):
            if lengths is not None:
                lengths = conv_output_lengths(lengths, (spec,))
            x = block(x, lengths)
        return x.transpose(1, 2), lengths
