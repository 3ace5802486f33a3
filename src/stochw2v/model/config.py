"""Encoder hyper-parameters as one dataclass, with the presets the papers use.

A config describes *weights*, never a compression setting: the same weights run at any
`Compression` the config allows (up to `max_upsample`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

from ..compute.compression import Compression, CompressionLike
from ..compute.policy import StochasticPolicy
from ..errors import ConfigError

ConvLayer = tuple[int, int, int]  # (channels, kernel, stride)

W2V2_CONV: tuple[ConvLayer, ...] = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
# SEW's compact conv encoder (SEW paper, "WFE-C"): same 400-sample receptive field and
# 320-sample hop as W2V2's, with far fewer multiply-accumulates in the early layers.
SEW_CONV: tuple[ConvLayer, ...] = tuple(
    (c, k, s)
    for c, k, s in zip(
        (64, 128, 128, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512),
        (10, 3, 1, 3, 1, 3, 1, 3, 1, 2, 1, 2, 1),
        (5, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1),
    )
)

ACTIVATIONS = ("gelu", "relu", "silu", "gelu_tanh")
MAX_LAYER_NORM_EPS = 0.1  # an epsilon this large already swamps the variance of normalised features
CONV_NORMS = ("group", "layer")
# checkpoint families our skeleton holds: wav2vec 2.0 (and SEW, told apart by the upsampler), HuBERT (wav2vec
# 2.0's encoder without the quantizer), data2vec-audio (a stack of positional convs: pos_conv_depth) and
# WavLM (a gated relative position bias in attention: relative_position_buckets);
# export-hf writes a model back as its family
FAMILIES = ("wav2vec2", "hubert", "data2vec-audio", "wavlm")


@dataclass
class EncoderConfig:
    """Shape and regularisation of a wav2vec 2.0 / SEW / stochastic encoder."""

    conv_layers: tuple[ConvLayer, ...] = W2V2_CONV
    conv_norm: str = "group"  # "group": GroupNorm after the first conv (W2V2 base); "layer": LN after each
    conv_bias: bool = False
    dim: int = 768
    num_layers: int = 12
    num_heads: int = 12
    ffn_dim: int = 3072
    activation: str = "gelu"  # feed-forward activation
    conv_activation: str = "gelu"  # conv encoder, positional conv and upsampling activation
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    # 0: one weight-normed positional conv (wav2vec 2.0, HuBERT, SEW); N: data2vec-audio's N plain convs,
    # each followed by a layer norm without parameters and the conv activation
    pos_conv_depth: int = 0
    # WavLM: a gated bias of the query-key distance in every attention, looked up in this many buckets
    # (log-spaced up to relative_position_max_distance frames); 0: none
    relative_position_buckets: int = 0
    relative_position_max_distance: int = 800
    layer_norm_first: bool = False  # False: post-LN (W2V2 base, SEW); True: pre-LN (W2V2 large)
    feature_projection: bool = True  # Linear from conv channels to dim; SEW omits it when they are equal
    max_upsample: int = 0  # largest total factor the upsampler covers; 0 = no upsampler (plain W2V2)
    layer_norm_eps: float = 1e-5
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    feature_dropout: float = 0.1
    layerdrop: float = 0.05
    # zero mean, unit variance per utterance over its valid samples, inside the model (HF's feature
    # extractor do_normalize); W2V2 large and layer-norm conv encoders are trained this way
    normalize_waveform: bool = False
    # the setting used when a call names none: "s=1" for W2V2, SEW checkpoints their own squeeze
    default_compression: str = "s=1"
    # what the weights were trained on (a StochasticPolicy as a dict); None: unknown (no warnings)
    trained_policy: dict | None = None
    family: str = "wav2vec2"  # the checkpoint family the weights came from (FAMILIES)

    def __post_init__(self) -> None:
        self.conv_layers = tuple(tuple(int(v) for v in layer) for layer in self.conv_layers)  # type: ignore[assignment]
        self.validate()

    # ----------------------------------------------------------------- checks
    def validate(self) -> None:
        problems = []
        if not self.conv_layers:
            problems.append("conv_layers is empty")
        for i, layer in enumerate(self.conv_layers):
            if len(layer) != 3 or min(layer) < 1:
                problems.append(f"conv_layers[{i}]={layer} must be (channels, kernel, stride), all >= 1")
        if self.family not in FAMILIES:
            problems.append(f"family={self.family!r} must be one of {FAMILIES}")
        if self.conv_norm not in CONV_NORMS:
            problems.append(f"conv_norm={self.conv_norm!r} must be one of {CONV_NORMS}")
        for name in ("activation", "conv_activation"):
            if getattr(self, name) not in ACTIVATIONS:
                problems.append(f"{name}={getattr(self, name)!r} must be one of {ACTIVATIONS}")
        for name in ("dim", "num_layers", "num_heads", "ffn_dim", "pos_conv_kernel", "pos_conv_groups"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1")
        if self.num_heads >= 1 and self.dim % self.num_heads:
            problems.append(f"dim={self.dim} is not divisible by num_heads={self.num_heads}")
        buckets, distance = self.relative_position_buckets, self.relative_position_max_distance
        if buckets < 0 or buckets in (1, 2, 3):
            problems.append(f"relative_position_buckets must be 0 (none) or >= 4, got {buckets}")
        elif buckets and distance <= buckets // 4:
            problems.append(f"relative_position_max_distance={distance} must exceed a quarter of "
                            f"relative_position_buckets={buckets}")
        if self.pos_conv_depth < 0:
            problems.append(f"pos_conv_depth must be >= 0, got {self.pos_conv_depth}")
        if self.pos_conv_groups >= 1 and self.dim % self.pos_conv_groups:
            problems.append(f"dim={self.dim} is not divisible by pos_conv_groups={self.pos_conv_groups}")
        if not self.feature_projection and self.conv_layers and self.conv_layers[-1][0] != self.dim:
            problems.append("feature_projection=False needs the last conv channel count to equal dim")
        if self.max_upsample < 0:
            problems.append("max_upsample must be >= 0")
        for name in ("dropout", "attention_dropout", "activation_dropout", "feature_dropout", "layerdrop"):
            if not 0.0 <= float(getattr(self, name)) < 1.0:
                problems.append(f"{name} must be in [0, 1)")
        if not 0.0 < float(self.layer_norm_eps) <= MAX_LAYER_NORM_EPS:  # NaN fails too
            problems.append(f"layer_norm_eps must be in (0, {MAX_LAYER_NORM_EPS:g}], got {self.layer_norm_eps}")
        try:
            Compression.parse(self.default_compression)
        except ConfigError as error:
            problems.append(f"default_compression: {error}")
        if self.trained_policy is not None:
            try:
                StochasticPolicy.from_dict(self.trained_policy)
            except (ConfigError, TypeError) as error:
                problems.append(f"trained_policy: {error}")
        if problems:
            raise ConfigError("invalid encoder config: " + "; ".join(problems))

    # ----------------------------------------------------------- settings
    def resolve(self, compression: CompressionLike) -> Compression:
        """Parse `compression` (None: this model's default) and check these weights can run it."""
        setting = Compression.parse(self.default_compression if compression is None else compression)
        setting.check(self.num_layers, self.max_upsample)
        return setting

    @property
    def training_distribution(self) -> StochasticPolicy | None:
        """The training distribution the weights remember (None when unknown)."""
        return None if self.trained_policy is None else StochasticPolicy.from_dict(self.trained_policy)

    def was_trained_on(self, setting: Compression) -> bool:
        """False only when the training distribution is known and never draws `setting`."""
        policy = self.training_distribution
        return policy is None or policy.covers(setting, self.num_layers)

    # ----------------------------------------------------------- derived sizes
    @property
    def conv_dim(self) -> int:
        return self.conv_layers[-1][0]

    @property
    def receptive_field(self) -> int:
        """Samples one output frame sees: the shortest waveform the encoder accepts."""
        field_ = 1
        for _, kernel, stride in reversed(self.conv_layers):
            field_ = (field_ - 1) * stride + kernel
        return field_

    @property
    def hop(self) -> int:
        hop = 1
        for _, _, stride in self.conv_layers:
            hop *= stride
        return hop

    def min_samples(self, frames: int = 1) -> int:
        """The fewest samples from which the conv encoder makes `frames` frames."""
        needed = max(1, int(frames))
        for _, kernel, stride in reversed(self.conv_layers):
            needed = (needed - 1) * stride + kernel
        return needed

    def num_frames(self, num_samples: int) -> int:
        """Frames the conv encoder makes from `num_samples` samples (0 if too short)."""
        n = int(num_samples)
        for _, kernel, stride in self.conv_layers:
            if n < kernel:
                return 0
            n = (n - kernel) // stride + 1
        return n

    # ---------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["conv_layers"] = [list(layer) for layer in self.conv_layers]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EncoderConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"an encoder config is a JSON object, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown encoder config keys: {unknown}")
        for f in dataclasses.fields(cls):
            if f.name in d:
                _check_field_type(f.name, d[f.name], f.default)
        try:
            return cls(**d)
        except ConfigError:
            raise
        except (TypeError, ValueError) as error:
            raise ConfigError(f"invalid encoder config: {error}") from None

    # ---------------------------------------------------------------- presets
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "EncoderConfig":
        """A named preset (see PRESETS) with fields overridden."""
        if name not in PRESETS:
            raise ConfigError(f"unknown model size {name!r}; choose from {sorted(PRESETS)}")
        return cls(**{**PRESETS[name](), **overrides})

    @classmethod
    def base(cls, **overrides: Any) -> "EncoderConfig":
        return cls.preset("base", **overrides)

    @classmethod
    def large(cls, **overrides: Any) -> "EncoderConfig":
        return cls.preset("large", **overrides)

    @classmethod
    def tiny(cls, **overrides: Any) -> "EncoderConfig":
        return cls.preset("tiny", **overrides)


def _check_field_type(name: str, value: Any, default: Any) -> None:
    """A JSON value of the field's own type: no truthy strings for booleans, no strings for numbers."""
    def wrong(expected: str) -> ConfigError:
        return ConfigError(f"encoder config {name} must be {expected}, got {value!r}")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise wrong("true or false")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("a whole number")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise wrong("a finite number")
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise wrong("a string")
    elif name == "conv_layers":
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(layer, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in layer)
                for layer in value):
            raise wrong("a list of [channels, kernel, stride] whole numbers")
    elif name == "trained_policy" and value is not None and not isinstance(value, dict):
        raise wrong("an object or null")


def estimated_parameters(config: EncoderConfig) -> int:
    """Parameters a config implies, from its sizes alone (within a few percent): checked against a weights
    file before anything is allocated, so a config claiming 10^5 layers fails at once, not after minutes."""
    conv, channels = 0, 1
    for out, kernel, _ in config.conv_layers:
        conv += channels * out * kernel
        channels = out
    dim, layer = config.dim, 4 * config.dim * config.dim + 2 * config.dim * config.ffn_dim
    positional = dim * (dim // max(1, config.pos_conv_groups)) * config.pos_conv_kernel * max(1, config.pos_conv_depth)
    projection = config.conv_dim * dim if config.feature_projection else 0
    return conv + projection + positional + config.num_layers * layer


def _base() -> dict[str, Any]:
    """W2V2 base size (95M) with an upsampler, so it runs every setting up to total factor 8."""
    return dict(max_upsample=8)


def _large() -> dict[str, Any]:
    """W2V2 large (LV-60 style: layer-norm conv encoder, pre-LN transformer)."""
    return dict(conv_norm="layer", conv_bias=True, dim=1024, num_layers=24, num_heads=16, ffn_dim=4096,
                layer_norm_first=True, max_upsample=8, normalize_waveform=True)


def _tiny() -> dict[str, Any]:
    """A CPU-sized model: SEW's compact conv encoder at quarter width, d=256, 4 pre-LN layers.

    Pre-LN because a small post-LN model trained for minutes does not leave CTC's all-blank
    plateau (measured: loss stuck at 2.97 for 200 updates on 4 utterances; pre-LN reached 2.03).
    Normalised input because quiet synthetic speech (std ~0.1) under the conv biases gives
    near-identical frames: 8 of 128 codes in use at initialisation, against 40 normalised.
    """
    conv = tuple((max(16, c // 4), k, s) for c, k, s in SEW_CONV)
    return dict(conv_layers=conv, conv_norm="layer", conv_bias=True, dim=256, num_layers=4, num_heads=4,
                ffn_dim=1024, pos_conv_kernel=32, pos_conv_groups=8, max_upsample=8, layer_norm_first=True,
                normalize_waveform=True)


def _small() -> dict[str, Any]:
    """The shipped recogniser's shape: the tiny conv encoder, d=256, 8 pre-LN layers.

    Twice the tiny model's depth puts most of the compute in the transformer (where squeezing
    and pooling save it) while the weights stay under 16 MiB in half precision.
    """
    return {**_tiny(), "num_layers": 8}


# one home for the model sizes: recipes, `profile --size` and the benchmarks all read this
PRESETS: dict[str, Callable[[], dict[str, Any]]] = {"tiny": _tiny, "small": _small, "base": _base, "large": _large}


__all__ = ["EncoderConfig", "PRESETS", "estimated_parameters", "W2V2_CONV", "SEW_CONV", "ConvLayer"]
