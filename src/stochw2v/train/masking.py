"""Span masks over time or channels (W2V2 pre-training and fine-tuning, SpecAugment-like)."""
from __future__ import annotations

import torch
from torch import Tensor


def sample_span_mask(lengths: list[int], max_len: int, prob: float, span: int, min_spans: int,
                     generator: torch.Generator) -> Tensor:
    """fairseq-style span mask: about prob*L/span random span starts per item, spans may overlap."""
    mask = torch.zeros(len(lengths), max_len, dtype=torch.bool)
    for row, length in enumerate(lengths):
        span_here = min(span, max(1, length - 1))
        count = int(prob * length / span_here + torch.rand((), generator=generator).item())
        count = max(min_spans, count)
        starts_available = length - span_here + 1
        count = min(count, starts_available)
        starts = torch.randperm(starts_available, generator=generator)[:count]
        for start in starts.tolist():
            mask[row, start:start + span_here] = True
    return mask


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
