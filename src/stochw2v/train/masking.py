"""Span masks over time or channels (W2V2 pre-training and fine-tuning, SpecAugment-like)."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def numpy_rng(generator: torch.Generator) -> np.random.Generator:
    """A numpy generator seeded from `generator` (one draw), so masks stay seeded per update."""
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))


def sample_span_mask(lengths: list[int], max_len: int, prob: float, span: int, min_spans: int,
                     generator: torch.Generator) -> Tensor:
    """fairseq-style span mask: about prob*L/span random span starts per item, spans may overlap.

    Built with numpy (a handful of array operations per item, no per-span Python loop): on a
    GPU run the main process only feeds the device, and thousands of tiny CPU tensor operations
    per update were what limited its speed.
    """
    rng = numpy_rng(generator)
    mask = np.zeros((len(lengths), max_len + 1), dtype=np.int32)
    for row, length in enumerate(lengths):
        span_here = min(span, max(1, length - 1))
        starts_available = length - span_here + 1
        count = min(max(min_spans, int(prob * length / span_here + rng.random())), starts_available)
        starts = rng.choice(starts_available, size=count, replace=False)
        np.add.at(mask[row], starts, 1)
        np.add.at(mask[row], starts + span_here, -1)
    return torch.from_numpy(np.cumsum(mask, axis=1)[:, :max_len] > 0)


def mask_features(x: Tensor, lengths: list[int], time_prob: float, time_span: int, channel_prob: float,
                  channel_span: int, mask_embedding: Tensor, generator: torch.Generator,
                  time_min_spans: int = 2) -> Tensor:
    """Fine-tuning augmentation: time spans become the mask embedding, channel spans become zero.

    Time masks put at least `time_min_spans` spans in each item (fairseq's min_masks=2), so a
    short utterance is never left unmasked by rounding; channel masks have no minimum (fairseq).
    """
    batch, frames, dim = x.shape
    if time_prob > 0:
        time_mask = sample_span_mask(lengths, frames, time_prob, time_span, time_min_spans, generator).to(x.device)
        x = torch.where(time_mask[..., None], mask_embedding.to(x.dtype), x)
    if channel_prob > 0:
        channels = sample_span_mask([dim] * batch, dim, channel_prob, channel_span, 0, generator).to(x.device)
        x = x.masked_fill(channels[:, None, :], 0.0)
    return x
