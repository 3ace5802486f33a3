"""Checks on what users pass to the encoder, so bad input fails with a sentence, not a torch trace."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError


def as_waveform_batch(waveforms: object, lengths: object, min_samples: int,
                      dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor | None]:
    """Return waveforms as [B, N] float and lengths as a long tensor (None when nothing is padded)."""
    if not isinstance(waveforms, Tensor):
        try:
            waveforms = torch.as_tensor(waveforms)
        except Exception as error:  # noqa: BLE001 - re-raised as a clear message
            raise ConfigError(f"waveforms must be a tensor or array of samples ({error})") from None
    if waveforms.is_meta:
        raise ConfigError("waveforms are a meta tensor (shape only, no data); pass real samples")
    if waveforms.dim() == 1:
        waveforms = waveforms[None]
    if waveforms.dim() != 2:
        raise ConfigError(
            f"waveforms must be 1-D [samples] or 2-D [batch, samples], got shape {tuple(waveforms.shape)}"
        )
    if not waveforms.is_floating_point():
        raise ConfigError(
            f"waveforms must be floating point samples in [-1, 1], got {waveforms.dtype} "
            "(divide 16-bit PCM by 32768)"
        )
    batch, samples = waveforms.shape
    if batch == 0 or samples == 0:
        raise ConfigError(f"waveforms are empty (shape {tuple(waveforms.shape)})")

    if lengths is not None:
        lengths = _as_lengths(lengths, batch, samples)
    shortest = samples if lengths is None else int(lengths.min())
    if shortest < min_samples:
        raise ConfigError(
            f"a waveform has {shortest} samples, shorter than the conv encoder's receptive field of "
            f"{min_samples} samples ({min_samples / 16:.0f} ms at 16 kHz)"
        )
    waveforms = waveforms.to(device=device, dtype=dtype)
    finite = torch.isfinite(waveforms)
    if lengths is not None:
        finite |= torch.arange(samples, device=device)[None] >= lengths.to(device)[:, None]
    if not bool(finite.all()):
        bad = (~finite).any(dim=1).nonzero().flatten().tolist()
        raise ConfigError(f"waveforms hold NaN or inf samples (batch items {bad[:10]})")
    if lengths is not None:
        if bool((lengths == samples).all()):
            lengths = None
        else:
            lengths = lengths.to(device)
    return waveforms, lengths


def _as_lengths(lengths: object, batch: int, samples: int) -> Tensor:
    if isinstance(lengths, Tensor):
        if lengths.is_meta:
            raise ConfigError("lengths are a meta tensor; pass real sample counts")
        if lengths.is_floating_point() or lengths.dtype == torch.bool:
            raise ConfigError(f"lengths must be integer sample counts, got {lengths.dtype}")
        tensor = lengths.long().flatten().cpu()
    else:
        values = list(lengths) if isinstance(lengths, Sequence) else [lengths]
        if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in values):
            raise ConfigError(f"lengths must be integer sample counts (a float would be truncated), got {lengths!r}")
        tensor = torch.as_tensor([int(v) for v in values], dtype=torch.long)
    if tensor.numel() != batch:
        raise ConfigError(f"lengths gives {tensor.numel()} values for a batch of {batch} waveforms")
    if bool((tensor < 1).any()) or bool((tensor > samples).any()):
        raise ConfigError(f"lengths must lie in [1, {samples}] (the padded length), got {tensor.tolist()}")
    return tensor
