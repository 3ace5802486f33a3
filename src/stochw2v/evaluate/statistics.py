"""Bootstrap confidence intervals for corpus error rates, resampling utterances.

A corpus WER is a ratio (edits / reference words) over utterances, so the interval resamples
whole utterances with replacement and recomputes the ratio (Bisani & Ney 2004). With paired
resampling (the same draws for two systems) it also gives an interval for their difference.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..data.error_rates import ErrorCounts

LEVEL = 0.95


def _draws(count: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, count, size=(resamples, count))


def _ratio_samples(counts: Sequence[ErrorCounts], metric: str, draws: np.ndarray) -> np.ndarray:
    errors = np.array([c.word_errors if metric == "wer" else c.char_errors for c in counts], dtype=np.float64)
    totals = np.array([c.words if metric == "wer" else c.chars for c in counts], dtype=np.float64)
    return errors[draws].sum(1) / np.maximum(totals[draws].sum(1), 1.0)


def bootstrap_interval(counts: Sequence[ErrorCounts], metric: str = "wer", resamples: int = 1000,
                       seed: int = 0, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of the corpus `metric` ('wer' or 'cer') over utterance resamples."""
    if not counts:
        return (float("nan"), float("nan"))
    samples = _ratio_samples(counts, metric, _draws(len(counts), resamples, seed))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def mean_paired_difference_interval(pairs: Sequence[tuple[Sequence[ErrorCounts], Sequence[ErrorCounts]]],
                                    metric: str = "wer", resamples: int = 1000, seed: int = 0,
                                    level: float = LEVEL) -> tuple[float, float]:
    """Interval of the mean over pairs of metric(b) - metric(a), every pair on the same utterances and
    resampled with the same draws (e.g. one pair per training seed). It holds the utterance noise;
    the seed-to-seed noise is only in the spread of the pairs' own differences."""
    if not pairs or any(len(a) != len(b) or len(a) != len(pairs[0][0]) for a, b in pairs):
        raise ValueError("paired intervals need the same utterances on both sides")
    draws = _draws(len(pairs[0][0]), resamples, seed)
    samples = np.mean([_ratio_samples(b, metric, draws) - _ratio_samples(a, metric, draws) for a, b in pairs], axis=0)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


__all__ = ["LEVEL", "bootstrap_interval", "mean_paired_difference_interval"]
