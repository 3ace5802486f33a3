"""Compression settings as values: what one forward pass of the encoder costs.

A `Compression` says how hard one call squeezes the encoder:

* ``s=2``      squeeze (SEW): the transformer runs on a sequence average-pooled by 2;
* ``q7=2``     query pooling at layer 7 (layers counted from 1): that layer's queries and
               residual are pooled by 2, so it and every later layer run on half the frames;
* ``kv=2``     key-value pooling in every layer: keys and values come from a sequence pooled
               by 2, the layer's output length is unchanged;
* ``kv5=3``    key-value pooling in layer 5 only (overrides ``kv=`` for that layer).

Parts are joined by commas (``s=2,q7=2,kv=2``); the empty string and ``s=1`` are plain W2V2.
`StochasticPolicy` draws one setting per update, the same on every rank.
"""
from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Iterable, Union

_PART = re.compile(r"^(s|q|kv)(\d*)=(\d+)$")


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
                raise ValueError(f"compression {name} factor must be an integer >= 1, got {value!r}")
        for name, pairs in (("query pooling", self.query_pool), ("kv pooling", self.kv_pool_layers)):
            layers = [layer for layer, _ in pairs]
            if len(set(layers)) != len(layers):
                raise ValueError(f"compression names {name} twice for one layer: {pairs}")
            for layer, factor in pairs:
                if layer < 1:
                    raise ValueError(f"compression {name} layer must be >= 1 (layers count from 1), got {layer}")
                if factor < 1:
                    raise ValueError(f"compression {name} factor must be >= 1, got {factor} at layer {layer}")
        object.__setattr__(self, "query_pool", tuple(sorted((l, f) for l, f in self.query_pool if f > 1)))
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
            raise ValueError(f"compression must be a string like 's=2,q7=2', got {type(text).__name__}")
        squeeze, kv_all = 1, 1
        queries: dict[int, int] = {}
        kv_layers: dict[int, int] = {}
        seen: set[str] = set()
        for raw in text.replace(" ", "").split(","):
            if not raw:
                continue
            match = _PART.match(raw)
            if not match:
                raise ValueError(
                    f"invalid compression part {raw!r} in {text!r}: expected s=N, qL=N, kv=N or kvL=N "
                    "(L a layer counted from 1, N an integer factor >= 1)"
                )
            kind, layer_text, factor_text = match.groups()
            key = kind + layer_text
            if key in seen:
                raise ValueError(f"compression {text!r} gives {key} twice")
            seen.add(key)
            factor = int(factor_text)
            if factor < 1:
                raise ValueError(f"compression factor must be >= 1, got {raw!r} in {text!r}")
            if kind == "s":
                if layer_text:
                    raise ValueError(f"squeeze takes no layer: {raw!r} in {text!r} (write s=N)")
                squeeze = factor
            elif kind == "q":
                if not layer_text:
                    raise ValueError(f"query pooling needs a layer: {raw!r} in {text!r} (write e.g. q7=2)")
                queries[int(layer_text)] = factor
            elif layer_text:
                kv_layers[int(layer_text)] = factor
            else:
                kv_all = factor
        return cls(squeeze, tuple(queries.items()), kv_all, tuple(kv_layers.items()))

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
                    raise ValueError(
                        f"compression {self}: {name} at layer {layer}, but the model has {num_layers} layers"
                    )
        limit = max(1, max_upsample)
        if self.total_factor > limit:
            if max_upsample == 0:
                detail = "this model has no upsampler (a plain wav2vec 2.0 checkpoint runs s=1 without query pooling only)"
            else:
                detail = f"the model's upsampler covers total factors up to {max_upsample}"
            raise ValueError(
                f"compression {self} pools the sequence by {self.total_factor} in total, but {detail}"
            )
        if num_frames is not None and num_frames < self.total_factor:
            raise ValueError(
                f"compression {self} needs at least {self.total_factor} frames "
                f"({self.total_factor * 20} ms of audio) but an input has only {num_frames}"
            )


CompressionLike = Union[str, Compression, None]


@dataclass(frozen=True)
class StochasticPolicy:
    """Samples a compression setting uniformly from configured sets, once per update.

    Every part is drawn independently and uniformly: the squeeze factor from `squeeze`,
    a query pooling layer from `query_layers` (none if empty) with a factor from
    `query_factors`, and a key-value factor (for every layer) from `kv_factors`.
    The draw depends only on (`seed`, update number), so every rank of a distributed run
    gets the same setting for the same update without communicating.
    A fixed setting is the same policy with one-element sets.
    """

    squeeze: tuple[int, ...] = (1, 2, 3, 4)
    query_layers: tuple[int, ...] = ()
    query_factors: tuple[int, ...] = (1,)
    kv_factors: tuple[int, ...] = (1,)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("squeeze", "query_layers", "query_factors", "kv_factors"):
            values = tuple(int(v) for v in getattr(self, name))
            object.__setattr__(self, name, values)
            if name != "query_layers" and not values:
                raise ValueError(f"policy {name} must hold at least one factor")
            if any(v < 1 for v in values):
                raise ValueError(f"policy {name} values must be >= 1, got {values}")

    @classmethod
    def fixed(cls, compression: CompressionLike, seed: int = 0) -> "StochasticPolicy":
        """A policy that always returns `compression` (one query pooling layer at most)."""
        c = Compression.parse(compression)
        if len(c.query_pool) > 1 or c.kv_pool_layers:
            raise ValueError(f"a policy holds one query pooling layer and one kv factor; {c} does not fit")
        layers = tuple(layer for layer, _ in c.query_pool)
        factors = tuple(factor for _, factor in c.query_pool) or (1,)
        return cls((c.squeeze,), layers, factors, (c.kv_pool,), seed)

    def _make(self, squeeze: int, layer: int | None, q_factor: int, kv: int) -> Compression:
        query = ((layer, q_factor),) if layer is not None else ()
        return Compression(squeeze, query, kv)

    def sample(self, update: int) -> Compression:
        """The setting for `update`: the same on every process for the same seed."""
        rng = random.Random(f"stochw2v-policy:{self.seed}:{int(update)}")
        squeeze = rng.choice(self.squeeze)
        layer = rng.choice(self.query_layers) if self.query_layers else None
        q_factor = rng.choice(self.query_factors)
        kv = rng.choice(self.kv_factors)
        return self._make(squeeze, layer, q_factor, kv)

    def settings(self) -> list[Compression]:
        """Every distinct setting the policy can return, in a stable order."""
        layers: Iterable[int | None] = self.query_layers or (None,)
        seen: dict[Compression, None] = {}
        for s in self.squeeze:
            for layer in layers:
                for q in self.query_factors:
                    for kv in self.kv_factors:
                        seen.setdefault(self._make(s, layer, q, kv))
        return list(seen)

    def check(self, num_layers: int, max_upsample: int) -> None:
        for setting in self.settings():
            setting.check(num_layers, max_upsample)

    def to_dict(self) -> dict:
        return {
            "squeeze": list(self.squeeze),
            "query_layers": list(self.query_layers),
            "query_factors": list(self.query_factors),
            "kv_factors": list(self.kv_factors),
            "seed": self.seed,
        }


__all__ = ["Compression", "CompressionLike", "StochasticPolicy"]
