"""Which compression setting each training update runs at: stochastic wav2vec 2.0's sampler.

Per update, identically on every rank (the draw depends only on the seed and the update):

1. the squeeze factor, uniformly from `squeeze` (the paper), or in proportion to `squeeze_weights`
   (e.g. [2, 1, 1, 1]: half the updates at s=1, to fine-tune a stochastic model towards its most accurate
   setting while it keeps serving the others);
2. query pooling: each layer of `query.layers` pools its queries with probability
   `query.prob`, at a factor drawn from `query.factors`, unless that would take the total
   factor (squeeze x query factors) past `max_total_factor`;
3. key-value pooling: with probability `kv.all_prob` every layer pools its keys and values at
   one shared factor (`kv=2`, the setting users pick at inference); otherwise each layer of
   `kv.layers` pools with probability `kv.prob` at its own factor (`kv3=2`).

`patterns` replaces all of that with a list of settings drawn uniformly; `fixed()` is the
one-pattern case (a W2V2 run is `fixed("s=1")`, a SEW run `fixed("s=2")`).

The policy is also what a trained model remembers about its training (config.json), so that
`covers(setting)` can say whether a setting was ever trained: exactly when the policy draws
it with non-zero probability.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..errors import ConfigError
from .compression import Compression, CompressionLike


def _ints(values: Iterable[Any], key: str, allow_empty: bool = False) -> tuple[int, ...]:
    values = tuple(values)
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int)]
    if bad:
        raise ConfigError(f"policy {key} must hold integers, got {list(values)!r}")
    if not values and not allow_empty:
        raise ConfigError(f"policy {key} must hold at least one value")
    if any(v < 1 for v in values):
        raise ConfigError(f"policy {key} values must be >= 1, got {list(values)}")
    return tuple(sorted(set(values)))


def _probability(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"policy {key} must be a probability in [0, 1], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class LayerPooling:
    """How one kind of pooling (queries, or keys and values) is drawn, layer by layer."""

    layers: tuple[int, ...] = ()  # layers (counted from 1) that may pool
    factors: tuple[int, ...] = (2,)  # drawn uniformly when a layer pools
    prob: float = 0.0  # each listed layer pools with this probability, independently
    all_prob: float = 0.0  # every layer pools at one shared factor (key-value pooling only)

    def validated(self, name: str) -> "LayerPooling":
        layers = _ints(self.layers, f"{name}.layers", allow_empty=True)
        factors = tuple(f for f in _ints(self.factors, f"{name}.factors"))
        if any(f < 2 for f in factors):
            raise ConfigError(f"policy {name}.factors must be >= 2 (1 is no pooling), got {list(factors)}")
        prob = _probability(self.prob, f"{name}.prob")
        all_prob = _probability(self.all_prob, f"{name}.all_prob")
        if prob > 0 and not layers:
            raise ConfigError(f"policy {name}.prob is {prob} but {name}.layers is empty")
        return LayerPooling(layers, factors, prob, all_prob)

    @property
    def per_layer(self) -> bool:
        return self.prob > 0 and bool(self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {"layers": list(self.layers), "factors": list(self.factors), "prob": self.prob,
                "all_prob": self.all_prob}


@dataclass(frozen=True)
class StochasticPolicy:
    """A distribution over compression settings, sampled once per update."""

    squeeze: tuple[int, ...] = (1, 2, 3, 4)
    query: LayerPooling = field(default_factory=LayerPooling)
    kv: LayerPooling = field(default_factory=LayerPooling)
    max_total_factor: int = 0  # cap on squeeze x query factors; 0: max(squeeze) x max(query factor)
    patterns: tuple[str, ...] = ()  # if given: one of these settings per update, uniformly
    seed: int = 0
    squeeze_weights: tuple[float, ...] = ()  # one per squeeze factor in ascending order; () = uniform

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "squeeze", _ints(self.squeeze, "squeeze"))
        set_(self, "squeeze_weights", self._checked_weights(self.squeeze_weights))
        query = self.query if isinstance(self.query, LayerPooling) else LayerPooling(**self.query)
        kv = self.kv if isinstance(self.kv, LayerPooling) else LayerPooling(**self.kv)
        set_(self, "query", query.validated("query"))
        set_(self, "kv", kv.validated("kv"))
        if self.query.all_prob:
            raise ConfigError("policy query.all_prob must be 0: pooling the queries of every layer would shrink "
                              "the sequence by factor**layers; list layers with query.prob instead")
        if isinstance(self.max_total_factor, bool) or not isinstance(self.max_total_factor, int) \
                or self.max_total_factor < 0:
            raise ConfigError(f"policy max_total_factor must be an integer >= 0, got {self.max_total_factor!r}")
        patterns = tuple(str(Compression.parse(p)) for p in self.patterns)
        if len(set(patterns)) != len(patterns):
            raise ConfigError(f"policy patterns repeat a setting: {list(self.patterns)}")
        set_(self, "patterns", patterns)
        if self.max_total_factor and self.max_total_factor < max(self.squeeze):
            raise ConfigError(f"policy max_total_factor={self.max_total_factor} is below the largest squeeze "
                              f"{max(self.squeeze)}")

    def _checked_weights(self, weights: Iterable[Any]) -> tuple[float, ...]:
        weights = tuple(weights)
        if not weights:
            return ()
        if len(weights) != len(self.squeeze) or any(
                isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0
                for w in weights):
            raise ConfigError(f"policy squeeze_weights must be {len(self.squeeze)} numbers > 0, one per squeeze "
                              f"factor {list(self.squeeze)} (ascending), got {list(weights)!r}")
        if len(set(weights)) == 1:
            return ()  # equal weights are the uniform draw, and sample the same stream
        return tuple(float(w) for w in weights)

    # ------------------------------------------------------------ builders
    @classmethod
    def fixed(cls, compression: CompressionLike, seed: int = 0) -> "StochasticPolicy":
        """Always `compression`: a W2V2 run is fixed("s=1"), a SEW run fixed("s=2")."""
        setting = Compression.parse(compression)
        return cls(squeeze=(setting.squeeze,), patterns=(str(setting),), seed=seed)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StochasticPolicy":
        known = {"squeeze", "query", "kv", "max_total_factor", "patterns", "seed", "squeeze_weights"}
        if not isinstance(data, dict) or set(data) - known:
            raise ConfigError(f"not a policy description: {data!r}")
        values = dict(data)
        for key in ("query", "kv"):
            if key in values:
                if not isinstance(values[key], dict) or set(values[key]) - {"layers", "factors", "prob", "all_prob"}:
                    raise ConfigError(f"policy {key} must be a mapping of layers/factors/prob/all_prob")
                values[key] = LayerPooling(**values[key])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        data = {"squeeze": list(self.squeeze), "query": self.query.to_dict(), "kv": self.kv.to_dict(),
                "max_total_factor": self.cap, "patterns": list(self.patterns), "seed": self.seed}
        if self.squeeze_weights:  # only when used, so that uniform policies read as they always did
            data["squeeze_weights"] = list(self.squeeze_weights)
        return data

    # -------------------------------------------------------------- facts
    @property
    def cap(self) -> int:
        """The largest total factor (squeeze x query factors) a draw may have."""
        if self.patterns:
            return max(Compression.parse(p).total_factor for p in self.patterns)
        if self.max_total_factor:
            return self.max_total_factor
        return max(self.squeeze) * (max(self.query.factors) if self.query.per_layer else 1)

    def total_factors(self) -> list[int]:
        """Every total factor a draw can have, ascending (the upsampler must cover the largest)."""
        if self.patterns:
            return sorted({Compression.parse(p).total_factor for p in self.patterns})
        totals = set(self.squeeze)
        if self.query.per_layer:
            frontier = set(totals)
            for _ in self.query.layers:
                frontier = {t * f for t in frontier for f in self.query.factors if t * f <= self.cap}
                totals |= frontier
        return sorted(t for t in totals if t <= self.cap)

    def upsampler_size(self) -> int:
        """`max_upsample` a model needs to train this policy: 0 (no upsampler) for plain W2V2 runs."""
        largest = max(self.total_factors())
        return 0 if largest == 1 and self.squeeze == (1,) else largest

    def check(self, num_layers: int, max_upsample: int) -> None:
        """Refuse, before training, what this model cannot train; the message names the key."""
        for name, pooling in (("query", self.query), ("kv", self.kv)):
            beyond = [layer for layer in pooling.layers if layer > num_layers]
            if beyond:
                raise ConfigError(f"policy {name}.layers names layer {beyond[0]} but the model has "
                                  f"{num_layers} layers")
        for pattern in self.patterns:
            try:
                Compression.parse(pattern).check(num_layers, max_upsample)
            except ConfigError as error:
                raise ConfigError(f"policy patterns: {error}") from None
        largest = max(self.total_factors())
        if largest > max(1, max_upsample):
            covered = f"up to {max_upsample}" if max_upsample else "none (a plain wav2vec 2.0 model runs s=1 only)"
            raise ConfigError(f"policy draws total factor {largest} (squeeze x query pooling) but the model's "
                              f"upsampler covers total factors {covered}; key policy.squeeze / policy.query")

    def plainest(self) -> Compression:
        """The cheapest-to-learn setting the policy draws: its smallest squeeze without pooling (or,
        for patterns, the one with the smallest total factor)."""
        if self.patterns:
            return min((Compression.parse(p) for p in self.patterns), key=lambda c: (c.total_factor, str(c)))
        return Compression(min(self.squeeze))

    @property
    def draws_only_full(self) -> bool:
        """True when every draw is s=1 without pooling (a W2V2 run): nothing to distil into."""
        if self.patterns:
            return all(Compression.parse(p) == Compression() for p in self.patterns)
        pools_queries = bool(self.query.layers) and self.query.prob > 0 and max(self.query.factors) > 1
        pools_kv = max(self.kv.factors) > 1 and (self.kv.all_prob > 0 or (bool(self.kv.layers) and self.kv.prob > 0))
        return self.squeeze == (1,) and not pools_queries and not pools_kv

    # ------------------------------------------------------------ sampling
    def sample(self, update: int) -> Compression:
        """The setting for `update`: the same on every process for the same seed."""
        rng = random.Random(f"stochw2v-policy:{self.seed}:{int(update)}")
        if self.patterns:
            return Compression.parse(self.patterns[rng.randrange(len(self.patterns))])
        if self.squeeze_weights:
            squeeze = rng.choices(self.squeeze, weights=self.squeeze_weights)[0]
        else:
            squeeze = rng.choice(self.squeeze)
        total, queries = squeeze, []
        for layer in self.query.layers:  # every draw is made, so streams stay aligned across settings
            pools, factor = rng.random() < self.query.prob, rng.choice(self.query.factors)
            if pools and total * factor <= self.cap:
                queries.append((layer, factor))
                total *= factor
        all_pools, shared = rng.random() < self.kv.all_prob, rng.choice(self.kv.factors)
        per_layer = []
        for layer in self.kv.layers:
            pools, factor = rng.random() < self.kv.prob, rng.choice(self.kv.factors)
            if pools:
                per_layer.append((layer, factor))
        if all_pools:
            return Compression(squeeze, tuple(queries), shared)
        return Compression(squeeze, tuple(queries), 1, tuple(per_layer))

    # ------------------------------------------------------------ coverage
    def covers(self, compression: CompressionLike, num_layers: int) -> bool:
        """True when the policy draws this setting with non-zero probability (it was trained)."""
        setting = Compression.parse(compression)
        if self.patterns:
            return str(setting) in self.patterns
        return (setting.squeeze in self.squeeze and self._covers_queries(setting)
                and self._covers_kv(setting, num_layers))

    def _covers_queries(self, setting: Compression) -> bool:
        pooled = dict(setting.query_pool)
        if any(layer not in self.query.layers for layer in pooled):
            return False
        total = setting.squeeze
        for layer in self.query.layers:
            factor = pooled.get(layer, 1)
            if factor > 1:
                if self.query.prob == 0 or factor not in self.query.factors or total * factor > self.cap:
                    return False
                total *= factor
            elif self.query.prob == 1.0 and total * min(self.query.factors) <= self.cap:
                return False  # this layer always pools when it may
        return True

    def _covers_kv(self, setting: Compression, num_layers: int) -> bool:
        factors = {layer: setting.kv_factor(layer) for layer in range(1, num_layers + 1)}
        pooled = {layer: f for layer, f in factors.items() if f > 1}
        shared = set(factors.values())
        if len(shared) == 1 and pooled and self.kv.all_prob > 0 and shared.pop() in self.kv.factors:
            return True
        if self.kv.all_prob == 1.0:
            return False
        for layer in range(1, num_layers + 1):
            listed, factor = layer in self.kv.layers, factors[layer]
            if factor > 1 and not (listed and self.kv.prob > 0 and factor in self.kv.factors):
                return False
            if factor == 1 and listed and self.kv.prob == 1.0:
                return False
        return True

    def validation_settings(self, num_layers: int) -> list[Compression]:
        """A few settings that stand for the policy: every squeeze alone, then one of each pooling."""
        if self.patterns:
            return [Compression.parse(p) for p in self.patterns]
        settings = [Compression(s) for s in self.squeeze]
        middle = self.squeeze[(len(self.squeeze) - 1) // 2]
        if self.kv.all_prob > 0:
            settings.append(Compression(middle, (), self.kv.factors[0]))
        elif self.kv.per_layer:
            settings.append(Compression(middle, (), 1, ((self.kv.layers[0], self.kv.factors[0]),)))
        if self.query.per_layer:
            layer = self.query.layers[len(self.query.layers) // 2]
            for s in (min(self.squeeze), max(self.squeeze)):
                candidate = Compression(s, ((layer, self.query.factors[0]),))
                if candidate.total_factor <= self.cap:
                    settings.append(candidate)
        unique = list(dict.fromkeys(settings))
        return [s for s in unique if self.covers(s, num_layers)]

    def describe(self) -> str:
        """One line for logs and model cards."""
        if self.patterns:
            return "fixed " + " | ".join(self.patterns) if len(self.patterns) == 1 else \
                "uniform over " + " | ".join(self.patterns)
        if self.squeeze_weights:
            total = sum(self.squeeze_weights)
            shares = (f"s={s} ({w / total:.0%})" for s, w in zip(self.squeeze, self.squeeze_weights))
            parts = ["s drawn " + ", ".join(shares)]
        else:
            parts = [f"s uniform over {list(self.squeeze)}"]
        if self.query.per_layer:
            parts.append(f"query pooling x{list(self.query.factors)} at layers {list(self.query.layers)} "
                         f"with p={self.query.prob:g} each")
        if self.kv.all_prob > 0:
            parts.append(f"kv pooling x{list(self.kv.factors)} in every layer with p={self.kv.all_prob:g}")
        if self.kv.per_layer:
            parts.append(f"else per layer {list(self.kv.layers)} with p={self.kv.prob:g}")
        parts.append(f"total factor <= {self.cap}")
        return "; ".join(parts)


__all__ = ["LayerPooling", "StochasticPolicy"]
