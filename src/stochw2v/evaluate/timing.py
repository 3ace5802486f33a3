"""One way to time things that are compared: warm each up fully, then interleave the repeats.

Interleaving spreads slow drifts of the machine (frequency, other load) over every candidate (the
order rotates between rounds, so no candidate always runs first or last), and
a full warm-up pass per candidate means no candidate pays another's first-use costs (allocator
growth, kernel selection for new shapes). The median of the repeats is reported.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Hashable, TypeVar

import torch

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
Clock = Callable[[], float]


def interleave(jobs: dict[K, Callable[[], T]], repeats: int, warmup: int = 1) -> dict[K, list[T]]:
    """Run every job `warmup` times (discarded), then `repeats` rounds of all jobs in turn, each
    round starting 1/repeats further along the list.

    Without it a drift within rounds (a round of 8 models x 7 settings over 300 utterances takes
    minutes) would always land on the same jobs; rotated, each job's repeats sit at different places
    in the round and the median favours none of them."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        for job in jobs.values():
            job()
    keys = list(jobs)
    results: dict[K, list[T]] = {key: [] for key in keys}
    for round_index in range(repeats):
        start = round_index * len(keys) // repeats
        for key in keys[start:] + keys[:start]:
            results[key].append(jobs[key]())
    return results


def timed(fn: Callable[[], object], clock: Clock = time.perf_counter) -> Callable[[], float]:
    """A job that runs `fn` and returns the seconds it took (CUDA work finished before the clock stops)."""

    def job() -> float:
        start = clock()
        fn()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        return clock() - start
    return job


def interleaved_medians(fns: dict[K, Callable[[], object]], repeats: int, warmup: int = 1,
                        clock: Clock = time.perf_counter) -> dict[K, float]:
    """Median seconds of each fn, timed by `interleave`."""
    times = interleave({key: timed(fn, clock) for key, fn in fns.items()}, repeats, warmup)
    return {key: statistics.median(values) for key, values in times.items()}


def thread_note() -> str:
    """What the timings ran on, for every table that reports them."""
    return f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads"


__all__ = ["interleave", "interleaved_medians", "thread_note", "timed"]
