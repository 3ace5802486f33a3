"""The encoder: waveform -> conv features -> projection -> context network, at any compression."""
from __future__ import annotations

import warnings
from typing import Callable, NamedTuple

import torch
from torch import Tensor, nn

from ..compute.compression import FP32, Compression, CompressionLike, precision_of, without_precision
from ..errors import ConfigError
from .config import EncoderConfig
from .feature_encoder import ConvFeatureEncoder, standardize_over_valid
from .inputs import as_waveform_batch
from .linear import Linear
from .transformer import ContextNetwork

PRECISION_OF_DTYPE = {torch.float32: FP32, torch.bfloat16: "bf16"}
FeatureHook = Callable[[Tensor, "Tensor | None"], Tensor]


class UntrainedSettingWarning(UserWarning):
    """A compression setting outside the distribution the weights were trained on."""


class EncoderOutput(NamedTuple):
    hidden_states: Tensor  # [B, frames, dim], zero past each item's valid frames
    lengths: Tensor  # [B] valid frames per item (the conv encoder's frame count)


class Features(NamedTuple):
    """What the encoder holds before the transformer; pre-training quantizes `normalized`."""

    raw: Tensor  # [B, T, conv channels], conv output (W2V2's feature penalty is taken here)
    normalized: Tensor  # [B, T, conv channels], layer-normed conv output
    projected: Tensor  # [B, T, dim], transformer input
    lengths: Tensor | None  # [B] valid frames, None when no item is padded


class Encoder(nn.Module):
    """wav2vec 2.0 / SEW encoder whose compute is chosen per call by a `Compression`."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.feature_encoder = ConvFeatureEncoder(config)
        self.feature_norm = nn.LayerNorm(config.conv_dim, eps=config.layer_norm_eps)
        self.feature_projection = Linear(config.conv_dim, config.dim) if config.feature_projection \
            else nn.Identity()
        self.feature_dropout = nn.Dropout(config.feature_dropout)
        # replaces masked frames in pre-training and fine-tuning (W2V2's mask embedding)
        self.mask_embedding = nn.Parameter(torch.empty(config.dim).uniform_())
        self.context = ContextNetwork(config)
        self.apply(_init_linear)
        self._untrained_warned: set[Compression] = set()

    # ---------------------------------------------------------------- stages
    def extract_features(self, waveforms: Tensor, lengths: Tensor | None = None,
                         freeze_conv: bool = False) -> Features:
        """Conv encoder and projection on checked input ([B, samples], lengths None = unpadded).

        freeze_conv: run the conv stack without gradients (fine-tuning's frozen feature encoder,
        as fairseq's feature_grad_mult=0 and HF's freeze_feature_encoder); the feature layer norm
        and the projection still train.
        """
        if self.config.normalize_waveform:  # HF's do_normalize, in float32 whatever the model's precision
            waveforms = standardize_over_valid(waveforms, lengths, eps=1e-7)
        waveforms = waveforms.to(self.mask_embedding.dtype)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not freeze_conv):
            features, frame_lengths = self.feature_encoder(waveforms, lengths)
        normalized = self.feature_norm(features)
        projected = self.feature_dropout(self.feature_projection(normalized))
        return Features(features, normalized, projected, frame_lengths)

    def apply_mask(self, projected: Tensor, time_mask: Tensor) -> Tensor:
        """Replace frames where `time_mask` [B, T] is True by the learned mask embedding."""
        return torch.where(time_mask[..., None], self.mask_embedding.to(projected.dtype), projected)

    def resolve(self, compression: CompressionLike) -> Compression:
        """Parse `compression` (None: the config's default) and check this model can run it.

        Warns once per setting when the weights were never trained at it (the config records
        the training distribution): the model still runs, on weights that never saw it.
        """
        setting = self._own_precision(self.config.resolve(compression))
        if setting not in self._untrained_warned and not self.config.was_trained_on(setting):
            self._untrained_warned.add(setting)
            warnings.warn(f"compression {setting} was never drawn in this model's training "
                          f"({self.config.training_distribution.describe()}); expect a higher error rate",
                          UntrainedSettingWarning, stacklevel=3)
        return setting

    def _own_precision(self, setting: Compression) -> Compression:
        """The compression part of `setting`, if the precision it names is the one these weights hold: one
        model runs one precision; `runtime.PrecisionDial` holds a variant per precision."""
        precision = precision_of(setting)
        if precision == FP32:
            return setting
        own = PRECISION_OF_DTYPE.get(next(self.parameters()).dtype)
        if precision != own:
            raise ConfigError(f"setting {setting} runs at {precision}, but this model's weights are "
                              f"{own or next(self.parameters()).dtype}; run it through stochw2v.runtime.PrecisionDial "
                              f"(the CLI does), which holds a variant per precision")
        return without_precision(setting)

    # --------------------------------------------------------------- forward
    def forward(self, waveforms: Tensor, lengths: Tensor | None = None,
                compression: CompressionLike = None, augment: FeatureHook | None = None,
                freeze_features: bool = False) -> EncoderOutput:
        """Encode [B, samples] (or [samples]) audio at 16 kHz.

        lengths: valid samples per item of a zero-padded batch (None: all full length).
        compression: a `Compression` or its string ("s=2,q7=2"); None is the model default.
        augment: optional fn(projected [B, T, D], frame lengths or None) -> [B, T, D], applied
            before the transformer (fine-tuning's time and channel masking).
        freeze_features: run the conv stack without gradients (fine-tuning's frozen feature encoder).
        """
        setting = self.resolve(compression)
        features = self.front(waveforms, lengths, freeze_conv=freeze_features)
        return self.back(features, setting, augment)

    def front(self, waveforms: Tensor, lengths: Tensor | None = None, freeze_conv: bool = False) -> Features:
        """The part of the encoder no compression setting changes: checked input, conv features,
        projection. A confidence cascade computes it once and runs `back` at several settings."""
        waveforms, lengths = as_waveform_batch(waveforms, lengths, self.config.receptive_field,
                                               torch.float32, self.mask_embedding.device)
        return self.extract_features(waveforms, lengths, freeze_conv=freeze_conv)

    def back(self, features: Features, compression: CompressionLike = None,
             augment: FeatureHook | None = None) -> EncoderOutput:
        """The context network at `compression` on features from `front`."""
        setting = self.resolve(compression)
        frames = features.projected.shape[1]
        frame_lengths = features.lengths
        shortest = frames if frame_lengths is None else int(frame_lengths.min())
        setting.check(self.config.num_layers, self.config.max_upsample, num_frames=shortest)
        x = features.projected if augment is None else augment(features.projected, frame_lengths)
        hidden = self.context(x, frame_lengths, setting)
        if frame_lengths is None:
            frame_lengths = torch.full((hidden.shape[0],), frames, dtype=torch.long, device=hidden.device)
        return EncoderOutput(hidden, frame_lengths)

    def encode(self, waveforms: Tensor, lengths: Tensor | None = None,
               compression: CompressionLike = None) -> EncoderOutput:
        """Same as calling the model; the name reads better at call sites."""
        return self(waveforms, lengths, compression)

    def num_frames(self, num_samples: int) -> int:
        return self.config.num_frames(num_samples)


def _init_linear(module: nn.Module) -> None:
    """fairseq / HF initialisation: N(0, 0.02) linears, Kaiming convs with uniform biases, unit norms."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv1d):
        nn.init.kaiming_normal_(module.weight)
        if module.bias is not None:
            # uniform, not zero (as HF): with zero biases, digital silence makes every layer-normed
            # conv layer normalise a constant vector, and gradients grow ~300x per layer (1e31 measured)
            bound = (module.groups / (module.in_channels * module.kernel_size[0])) ** 0.5
            nn.init.uniform_(module.bias, -bound, bound)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
