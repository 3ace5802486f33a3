"""Compression settings as values: what one forward pass of the encoder costs.

A `Compression` says how hard one call squeezes the encoder:

* ``s=2``      squeeze (SEW): the transformer runs on a sequence average-pooled by 2;
* ``q7=2``     query pooling at layer 7 (layers counted from 1): that layer's queries and
               residual are pooled by 2, so it and every later layer run on half the frames;
* ``kv=2``     key-value pooling in every layer: keys and values come from a sequence pooled
               by 2, the layer's output length is unchanged;
* ``kv5=3``    key-value pooling in layer 5 only (overrides ``kv=`` for that layer).

Parts are joined by commas (``s=2,q7=2,kv=2``); the empty string and ``s=1`` are plain W2V2.
`policy.StochasticPolicy` draws one setting per training update.

At inference a setting may also name the precision it runs at, after an ``@``: ``s=2,kv=2@int8``
(an `OperatingPoint`). ``fp32`` is the default and is not written; ``bf16`` runs the torch model in
bfloat16 (fast where the CPU has AMX or AVX512-BF16, and on GPUs); ``int8`` runs the setting's ONNX
graph with dynamically quantized linear layers on ONNX Runtime. `runtime.PrecisionDial` runs them all
from one set of weights; a plain model runs only its own precision.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Union

from ..errors import ConfigError

_PART = re.compile(r"^(s|q|kv)(\d*)=(\d+)$")
FRAME_MS = 20  # one conv frame (the 320-sample hop at 16 kHz)
FRAMES_PER_SECOND = 1000 // FRAME_MS
MAX_FACTOR = 4096  # 82 s of 20 ms frames in one pooled position: anything larger is a typo, not a setting
FP32 = "fp32"
PRECISIONS = (FP32, "bf16", "int8")  # what an operating point may run at
PRECISION_ALIASES = {"float32": FP32, "bfloat16": "bf16", "qint8": "int8"}


@dataclass(frozen=True)
class Compression:
    """One compression setting. Hashable, comparable, and printed in canonical form."""

    squeeze: int = 1
    query_pool: tuple[tuple[int, int], ...] = ()  # (layer counted from 1, factor), sorted, factors > 1
    kv_pool: int = 1  # key-value pooling factor for every layer
    kv_pool_layers: tuple[tuple[int, int], ...] = ()  # per-layer overrides, sorted

    def __post_init__(self) -> None:
        for name, value in (("squeeze", self.squeeze), ("kv", self.kv_pool)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"compression {name} factor must be an integer >= 1, got {value!r}")
        largest = max([self.squeeze, self.kv_pool] + [f for _, f in self.query_pool + self.kv_pool_layers])
        if largest > MAX_FACTOR:
            raise ConfigError(f"compression factor {largest} is larger than {MAX_FACTOR}: one pooled position "
                              f"would span over {MAX_FACTOR // FRAMES_PER_SECOND} s of audio")
        for name, pairs in (("query pooling", self.query_pool), ("kv pooling", self.kv_pool_layers)):
            layers = [layer for layer, _ in pairs]
            if len(set(layers)) != len(layers):
                raise ConfigError(f"compression names {name} twice for one layer: {pairs}")
            for layer, factor in pairs:
                if layer < 1:
                    raise ConfigError(f"compression {name} layer must be >= 1 (layers count from 1), got {layer}")
                if factor < 1:
                    raise ConfigError(f"compression {name} factor must be >= 1, got {factor} at layer {layer}")
        object.__setattr__(self, "query_pool", tuple(sorted((layer, f) for layer, f in self.query_pool if f > 1)))
        object.__setattr__(self, "kv_pool_layers", tuple(sorted(self.kv_pool_layers)))

    # ---------------------------------------------------------------- parsing
    @classmethod
    def parse(cls, text: Union[str, "Compression", None]) -> "Compression":
        """Parse ``"s=2,q7=2,kv=2"``; a `Compression` or None passes through (None is plain W2V2)."""
        if text is None:
            return cls()
        if isinstance(text, Compression):
            return text
        if not isinstance(text, str):
            raise ConfigError(f"compression must be a string like 's=2,q7=2', got {type(text).__name__}")
        if "@" in text:
            return OperatingPoint.parse(text)
        squeeze, kv_all = 1, 1
        queries: dict[int, int] = {}
        kv_layers: dict[int, int] = {}
        seen: set[str] = set()
        for raw in text.replace(" ", "").split(","):
            if not raw:
                continue
            match = _PART.match(raw)
            if not match:
                raise ConfigError(
                    f"invalid compression part {raw!r} in {text!r}: expected s=N, qL=N, kv=N or kvL=N "
                    "(L a layer counted from 1, N an integer factor >= 1)"
                )
            kind, layer_text, factor_text = match.groups()
            key = kind + layer_text
            if key in seen:
                raise ConfigError(f"compression {text!r} gives {key} twice")
            seen.add(key)
            factor = int(factor_text)
            if factor < 1:
                raise ConfigError(f"compression factor must be >= 1, got {raw!r} in {text!r}")
            if kind == "s":
                if layer_text:
                    raise ConfigError(f"squeeze takes no layer: {raw!r} in {text!r} (write s=N)")
                squeeze = factor
            elif kind == "q":
                if not layer_text:
                    raise ConfigError(f"query pooling needs a layer: {raw!r} in {text!r} (write e.g. q7=2)")
                queries[int(layer_text)] = factor
            elif layer_text:
                kv_layers[int(layer_text)] = factor
            else:
                kv_all = factor
        return cls(squeeze, tuple(queries.items()), kv_all, tuple(kv_layers.items()))

    @classmethod
    def parse_list(cls, text: str) -> list["Compression"]:
        """'s=1;s=2,kv=2' -> settings in order, duplicates removed (the CLI's --settings)."""
        if not isinstance(text, str):
            raise ConfigError(f"settings must be a string like 's=1;s=2', got {type(text).__name__}")
        settings = [cls.parse(part) for part in text.split(";") if part.strip()]
        if not settings:
            raise ConfigError("no compression settings given (write them as 's=1;s=2,kv=2')")
        return list(dict.fromkeys(settings))

    def __str__(self) -> str:
        parts = [f"s={self.squeeze}"]
        parts += [f"q{layer}={factor}" for layer, factor in self.query_pool]
        if self.kv_pool > 1:
            parts.append(f"kv={self.kv_pool}")
        parts += [f"kv{layer}={factor}" for layer, factor in self.kv_pool_layers if factor != self.kv_pool]
        return ",".join(parts)

    # ------------------------------------------------------------ per layer
    def query_factor(self, layer: int) -> int:
        """Query pooling factor of `layer` (counted from 1)."""
        return dict(self.query_pool).get(layer, 1)

    def kv_factor(self, layer: int) -> int:
        """Key-value pooling factor of `layer` (counted from 1)."""
        return dict(self.kv_pool_layers).get(layer, self.kv_pool)

    @property
    def total_factor(self) -> int:
        """How many 20 ms frames one output position of the last layer stands for."""
        return self.squeeze * math.prod(f for _, f in self.query_pool)

    @property
    def has_pooling(self) -> bool:
        """True if any layer pools its queries or its keys and values."""
        return bool(self.query_pool) or self.kv_pool > 1 or any(f > 1 for _, f in self.kv_pool_layers)

    def check(self, num_layers: int, max_upsample: int, num_frames: int | None = None) -> None:
        """Raise ValueError if a model with these sizes cannot run this setting."""
        for name, pairs in (("query pooling", self.query_pool), ("kv pooling", self.kv_pool_layers)):
            for layer, _ in pairs:
                if layer > num_layers:
                    raise ConfigError(
                        f"compression {self}: {name} at layer {layer}, but the model has {num_layers} layers"
                    )
        limit = max(1, max_upsample)
        if self.total_factor > limit:
            if max_upsample == 0:
                detail = ("this model has no upsampler (a plain wav2vec 2.0 checkpoint runs s=1 without query "
                          "pooling only)")
            else:
                detail = f"the model's upsampler covers total factors up to {max_upsample}"
            raise ConfigError(
                f"compression {self} pools the sequence by {self.total_factor} in total, but {detail}"
            )
        if num_frames is not None and num_frames < self.min_frames:
            needed = self.min_frames
            raise ConfigError(
                f"compression {self} needs at least {needed} frames "
                f"({needed * FRAME_MS} ms of audio) but an input has only {num_frames}"
            )

    @property
    def min_frames(self) -> int:
        """The fewest 20 ms frames an input needs at this setting (one pooled position of each kind)."""
        return max(self.total_factor, self.largest_kv_factor)

    @property
    def largest_kv_factor(self) -> int:
        return max([self.kv_pool] + [f for _, f in self.kv_pool_layers])


@dataclass(frozen=True)
class OperatingPoint(Compression):
    """A compression setting at a precision other than fp32 (``s=2@int8``): one point of the dial.
    `Compression.parse` returns a plain `Compression` for fp32, so fp32 settings compare as before."""

    precision: str = FP32

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")

    @classmethod
    def parse(cls, text: str) -> Compression:
        setting, _, precision = text.rpartition("@")
        if "@" in setting:
            raise ConfigError(f"setting {text!r} names a precision twice (write e.g. s=2@int8)")
        name = PRECISION_ALIASES.get(precision.strip().lower(), precision.strip().lower())
        if name not in PRECISIONS:
            raise ConfigError(f"setting {text!r}: precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        return at_precision(Compression.parse(setting), name)

    def __str__(self) -> str:
        return f"{super().__str__()}@{self.precision}"


def precision_of(setting: Compression) -> str:
    return getattr(setting, "precision", FP32)


def without_precision(setting: Compression) -> Compression:
    """The compression part of an operating point (a plain setting passes through)."""
    if not isinstance(setting, OperatingPoint):
        return setting
    return Compression(setting.squeeze, setting.query_pool, setting.kv_pool, setting.kv_pool_layers)


def at_precision(setting: Compression, precision: str) -> Compression:
    """`setting` at `precision`: a plain `Compression` for fp32, an `OperatingPoint` otherwise."""
    plain = without_precision(setting)
    if precision == FP32:
        return plain
    return OperatingPoint(plain.squeeze, plain.query_pool, plain.kv_pool, plain.kv_pool_layers, precision)


CompressionLike = Union[str, Compression, None]


__all__ = ["FP32", "PRECISIONS", "Compression", "CompressionLike", "OperatingPoint", "at_precision", "precision_of",
           "without_precision"]
