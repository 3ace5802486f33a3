"""Training-time audio augmentation: make clean synthetic speech look like speech from elsewhere.

Each utterance (with probability `prob`) gets an independent draw of: speed perturbation (tempo
and pitch together, as Kaldi's 0.9/1.0/1.1), reverberation (a synthetic exponentially decaying
room response), band-limiting (telephone-like or a lower bandwidth), additive noise of a random
colour at a random SNR, and a gain change. Everything is numpy on the CPU, in the data loader's
workers, and deterministic for the generator the dataset passes (seeded by seed, epoch, index).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError
from .io import SAMPLE_RATE, resample

NOISE_COLOURS = ("white", "pink", "brown")


def _range(values: Any, key: str, low: float, high: float) -> tuple[float, float]:
    if not isinstance(values, (list, tuple)) or len(values) != 2 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"augment {key} must be [low, high], got {values!r}")
    a, b = float(values[0]), float(values[1])
    if not low <= a <= b <= high:
        raise ConfigError(f"augment {key} must satisfy {low} <= low <= high <= {high}, got {values!r}")
    return a, b


@dataclass(frozen=True)
class AugmentConfig:
    prob: float = 0.8  # chance an utterance is augmented at all
    speed_prob: float = 0.3
    speed: tuple[float, float] = (0.9, 1.1)
    reverb_prob: float = 0.3
    rt60: tuple[float, float] = (0.15, 0.8)  # seconds for the response to fall by 60 dB
    bandlimit_prob: float = 0.3
    cutoff_hz: tuple[float, float] = (2800.0, 7000.0)  # upper band edge
    noise_prob: float = 0.5
    snr_db: tuple[float, float] = (5.0, 35.0)
    gain_db: tuple[float, float] = (-18.0, 6.0)
    colours: tuple[str, ...] = field(default=NOISE_COLOURS)

    def __post_init__(self) -> None:
        for name in ("prob", "speed_prob", "reverb_prob", "bandlimit_prob", "noise_prob"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ConfigError(f"augment {name} must be a probability in [0, 1], got {value!r}")
        set_ = object.__setattr__
        set_(self, "speed", _range(self.speed, "speed", 0.5, 2.0))
        set_(self, "rt60", _range(self.rt60, "rt60", 0.01, 3.0))
        set_(self, "cutoff_hz", _range(self.cutoff_hz, "cutoff_hz", 500.0, SAMPLE_RATE / 2))
        set_(self, "snr_db", _range(self.snr_db, "snr_db", -10.0, 100.0))
        set_(self, "gain_db", _range(self.gain_db, "gain_db", -60.0, 20.0))
        colours = tuple(self.colours)
        if not colours or any(c not in NOISE_COLOURS for c in colours):
            raise ConfigError(f"augment colours must be among {NOISE_COLOURS}, got {list(colours)}")
        set_(self, "colours", colours)

    @property
    def slowest_shrink(self) -> float:
        """Smallest length ratio out/in speed perturbation can give (for minimum-length checks)."""
        return 1.0 / self.speed[1] if self.speed_prob > 0 else 1.0


def _spectrum_filter(audio: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Multiply the spectrum by `gains` (sampled at `_frequencies(len(audio))`)."""
    n = len(audio)
    size = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(audio, size) * gains, size)[:n]


def _frequencies(n: int) -> np.ndarray:
    size = 1 << (n - 1).bit_length()
    return np.fft.rfftfreq(size, 1.0 / SAMPLE_RATE)


class Augmenter:
    """Callable: (audio float32 [samples], numpy Generator) -> augmented audio (length may change with speed)."""

    def __init__(self, config: AugmentConfig) -> None:
        self.config = config

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Augmenter":
        known = {f.name for f in dataclasses.fields(AugmentConfig)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown data.augment key(s) {unknown}; it takes {sorted(known)}")
        try:
            return cls(AugmentConfig(**data))
        except TypeError as error:
            raise ConfigError(f"data.augment: {error}") from None

    def __call__(self, audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        if rng.random() >= cfg.prob or len(audio) < 2:
            return audio
        x = audio.astype(np.float64)
        draws = rng.random(4)  # one draw per effect, always taken, so streams do not shift
        if draws[0] < cfg.speed_prob:
            x = self.speed(x, rng.uniform(*cfg.speed))
        if draws[1] < cfg.reverb_prob:
            x = self.reverb(x, rng.uniform(*cfg.rt60), rng)
        if draws[2] < cfg.bandlimit_prob:
            x = self.bandlimit(x, rng.uniform(*cfg.cutoff_hz), telephone=bool(rng.random() < 0.5))
        if draws[3] < cfg.noise_prob:
            x = self.noise(x, rng.uniform(*cfg.snr_db), cfg.colours[rng.integers(len(cfg.colours))], rng)
        x = x * 10 ** (rng.uniform(*cfg.gain_db) / 20)
        return np.clip(x, -1.0, 1.0).astype(np.float32)

    @staticmethod
    def speed(x: np.ndarray, factor: float) -> np.ndarray:
        """Play `factor` times faster: resample as if recorded at 16 kHz * factor."""
        return resample(x.astype(np.float32), round(SAMPLE_RATE * factor), SAMPLE_RATE).astype(np.float64)

    @staticmethod
    def reverb(x: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
        """Convolve with a synthetic room: direct path plus exponentially decaying noise."""
        n = max(2, int(rt60 * SAMPLE_RATE))
        t = np.arange(n) / SAMPLE_RATE
        response = rng.standard_normal(n) * np.exp(-6.908 * t / rt60)
        response[0] = 1.0
        response /= np.sqrt(np.sum(response**2))
        size = 1 << (len(x) + n - 2).bit_length()
        wet = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(response, size), size)[: len(x)]
        peak = np.max(np.abs(wet)) or 1.0
        return wet * (np.max(np.abs(x)) / peak)

    @staticmethod
    def bandlimit(x: np.ndarray, cutoff: float, telephone: bool) -> np.ndarray:
        """Low-pass at `cutoff` (a 200 Hz cosine edge); telephone also removes what is below 300 Hz."""
        f = _frequencies(len(x))
        gains = np.clip((cutoff + 100 - f) / 200, 0, 1)
        gains = 0.5 - 0.5 * np.cos(np.pi * gains)
        if telephone:
            gains *= np.clip((f - 200) / 200, 0, 1)
        return _spectrum_filter(x, gains)

    @staticmethod
    def noise(x: np.ndarray, snr_db: float, colour: str, rng: np.random.Generator) -> np.ndarray:
        """Add white, pink (1/f) or brown (1/f^2) noise at `snr_db` against the utterance's power."""
        noise = rng.standard_normal(len(x))
        if colour != "white":
            f = np.maximum(_frequencies(len(x)), 20.0)
            noise = _spectrum_filter(noise, f ** (-0.5 if colour == "pink" else -1.0))
        signal_power = np.mean(x**2)
        if signal_power <= 0:
            return x
        noise *= np.sqrt(signal_power / (np.mean(noise**2) * 10 ** (snr_db / 10)))
        return x + noise


__all__ = ["AugmentConfig", "Augmenter", "NOISE_COLOURS"]
