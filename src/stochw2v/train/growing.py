"""Bigger models from trained ones: new transformer layers that start as the identity, and an
upsampler for factors a model was never built for.

A pre-LN layer adds its attention and feed-forward outputs to the residual stream, so with both
output projections at zero it passes its input through unchanged. Appending such layers gives a
model that computes exactly what the trained one did, with more capacity to fine-tune (the
"function-preserving" growth of Net2Net, Chen et al. 2016). The old layers keep their indices, so
every compression setting keeps its meaning (q3=2 still pools from the same layer on).
"""
from __future__ import annotations

import dataclasses

import torch

from ..errors import ConfigError
from ..model.ctc import CTCModel
from ..model.encoder import Encoder


def grow_depth(model: Encoder | CTCModel, new_layers: int) -> Encoder | CTCModel:
    """A copy of `model` with `new_layers` identity layers appended after its last transformer layer."""
    if new_layers < 1:
        raise ConfigError(f"grow_depth: new_layers must be at least 1, got {new_layers}")
    encoder = model.encoder if isinstance(model, CTCModel) else model
    config = encoder.config
    if not config.layer_norm_first:
        raise ConfigError("grow_depth needs a pre-LN model (layer_norm_first): a post-LN layer normalises its "
                          "output, so no choice of weights makes it the identity")
    grown_config = dataclasses.replace(config, num_layers=config.num_layers + new_layers)
    grown = Encoder(grown_config).to(next(encoder.parameters()).dtype)
    missing, unexpected = grown.load_state_dict(encoder.state_dict(), strict=False)
    if unexpected or any(not key.startswith("context.layers.") for key in missing):
        raise ConfigError(f"grow_depth: weights that do not fit the grown encoder: {unexpected or missing}")
    with torch.no_grad():
        for layer in grown.context.layers[config.num_layers:]:
            for projection in (layer.attention.out_proj, layer.ffn.output):
                projection.weight.zero_()
                projection.bias.zero_()
    if isinstance(model, Encoder):
        return grown
    recogniser = CTCModel(grown, model.vocabulary, model.dropout.p)
    recogniser.head.load_state_dict(model.head.state_dict())  # load_state_dict copies
    return recogniser


def grow_upsampler(encoder: Encoder, max_factor: int) -> Encoder:
    """A copy of `encoder` whose upsampler covers total factors up to `max_factor`: the blocks it had
    keep their weights, the new ones start as in a fresh model. A plain wav2vec 2.0 encoder (no
    upsampler) gains one, which also runs at s=1, so its s=1 output changes until fine-tuning
    trains the new block; a SEW encoder at s=2 keeps its s=1 and s=2 outputs exactly."""
    config = encoder.config
    if max_factor <= config.max_upsample:
        return encoder
    grown = Encoder(dataclasses.replace(config, max_upsample=max_factor)).to(next(encoder.parameters()).dtype)
    missing, unexpected = grown.load_state_dict(encoder.state_dict(), strict=False)
    if unexpected or any(not key.startswith("context.upsample.") for key in missing):
        raise ConfigError(f"grow_upsampler: weights that do not fit the grown encoder: {unexpected or missing}")
    return grown


__all__ = ["grow_depth", "grow_upsampler"]
