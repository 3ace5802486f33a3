"""The serving scheduler: batches waiting requests and picks, per batch, the setting that meets the
latency target with the most accuracy the profile promises.

For a batch it predicts the completion from the profile (encoder seconds per audio second at that
batch size, times the batch's audio); a setting qualifies when the batch's oldest request finishes
within the latency target and the requests still waiting behind it can still finish in time at the
cheapest setting. The most accurate qualifying setting runs; if none qualifies, the cheapest runs and
the answers say they are late. A request that would wait longer than the target even at the cheapest
setting is refused at the door (503 with a Retry-After), so the queue never grows without bound.

No threads, sockets or clocks of its own: the server calls it under a lock and passes the time, so
tests drive it with a fake clock.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..compute.budget import Profile, SettingCost
from ..compute.compression import Compression
from ..errors import Stochw2vError


class Overloaded(Stochw2vError):
    """Even the cheapest setting cannot serve this request in time (HTTP 503)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Job:
    """One request as the scheduler sees it; `payload` is whatever the server needs back."""

    seconds: float  # audio seconds
    arrival: float
    fixed: Compression | None = None  # the request named its setting
    budget: float | None = None  # the request's RTF budget
    payload: Any = None
    setting: Compression | None = field(default=None, init=False)
    late: bool = field(default=False, init=False)  # predicted to miss the latency target
    budget_met: bool = field(default=True, init=False)


@dataclass
class Batch:
    jobs: list[Job]
    setting: Compression
    predicted_seconds: float  # the profile's seconds times the scheduler's measured slow-down
    profile_seconds: float = 0.0  # what the profile alone says (0: a setting it does not list)


class Scheduler:
    def __init__(self, profile: Profile, latency_target: float, max_batch: int = 8, max_queue: int = 64,
                 overhead: float = 0.0, smoothing: float = 0.3) -> None:
        if not (math.isfinite(latency_target) and latency_target > 0):
            raise Stochw2vError(f"--latency-target must be a finite number of seconds > 0, got {latency_target}")
        self.profile, self.target = profile, latency_target
        self.max_batch, self.max_queue, self.overhead = max_batch, max_queue, overhead
        self.smoothing = smoothing  # weight of the newest batch in the measured slow-down
        self.slowdown = 1.0  # measured batch seconds over the profile's, smoothed
        self.queue: deque[Job] = deque()
        self.busy_until = 0.0  # when the batch now running is predicted to end

    # --------------------------------------------------------------- costs
    def profile_seconds(self, jobs: list[Job], cost: SettingCost) -> float:
        """The profile's seconds to run `jobs` as one batch at `cost`'s setting (padded to the longest)."""
        if not jobs:
            return 0.0
        return self.overhead + cost.rtf_at(len(jobs)) * max(j.seconds for j in jobs) * len(jobs)

    def predict(self, jobs: list[Job], cost: SettingCost) -> float:
        """Predicted seconds to run `jobs` as one batch, on this machine as it has been running."""
        return self.slowdown * self.profile_seconds(jobs, cost)

    def observe(self, batch: Batch, seconds: float, now: float) -> None:
        """A batch took `seconds`: update the measured slow-down (bounded, so that one stall or one
        lucky batch cannot swing it far) and mark the server free."""
        if batch.profile_seconds > 0 and math.isfinite(seconds) and seconds > 0:
            ratio = min(20.0, max(0.25, seconds / batch.profile_seconds))
            self.slowdown += self.smoothing * (ratio - self.slowdown)
        self.busy_until = now

    def _backlog(self, jobs: list[Job]) -> float:
        """Predicted seconds to serve `jobs` in batches at the cheapest setting."""
        cheapest = self.profile.cheapest(self.max_batch)
        return sum(self.predict(jobs[i:i + self.max_batch], cheapest) for i in range(0, len(jobs), self.max_batch))

    # --------------------------------------------------------------- admit
    def admit(self, job: Job, now: float) -> None:
        """Queue `job`, or refuse it (Overloaded) when it cannot be served within the target."""
        if len(self.queue) >= self.max_queue:
            raise Overloaded(f"the queue is full ({self.max_queue} requests)", self._retry_after(now))
        start = max(now, self.busy_until)
        finish = start + self._backlog(list(self.queue) + [job])
        if finish - now > self.target:
            raise Overloaded(f"even the cheapest setting would answer in {finish - now:.2f} s, over the "
                             f"latency target of {self.target:g} s", self._retry_after(now))
        self.queue.append(job)

    def _retry_after(self, now: float) -> float:
        return max(1.0, math.ceil(max(now, self.busy_until) - now + self._backlog(list(self.queue))))

    # -------------------------------------------------------------- batches
    def next_batch(self, now: float) -> Batch | None:
        """The next batch to run and its setting (None when nothing waits)."""
        if not self.queue:
            return None
        first = self.queue[0]
        group = [j for j in self.queue if j.fixed == first.fixed][: self.max_batch]
        for job in group:
            self.queue.remove(job)
        if first.fixed is not None:
            cost = next((c for c in self.profile.settings if c.setting == str(first.fixed)), None)
            return self._finish(self._batch(group, first.fixed, cost), now)
        return self._finish(self._adaptive(group, now), now)

    def _batch(self, jobs: list[Job], setting: Compression, cost: SettingCost | None) -> Batch:
        if cost is None:
            return Batch(jobs, setting, 0.0)
        return Batch(jobs, setting, self.predict(jobs, cost), self.profile_seconds(jobs, cost))

    def _adaptive(self, group: list[Job], now: float) -> Batch:
        budgets = [j.budget for j in group if j.budget is not None]
        candidates = [c for c in self.profile.by_accuracy() if not budgets or c.rtf_at(1) <= min(budgets)]
        behind = self._backlog(list(self.queue))
        deadline = min(j.arrival for j in group) + self.target
        waiting_deadline = min((j.arrival for j in self.queue), default=math.inf) + self.target
        for cost in candidates:
            end = now + self.predict(group, cost)
            if end <= deadline and end + behind <= waiting_deadline:
                return self._batch(group, Compression.parse(cost.setting), cost)
        cheapest = self.profile.cheapest(len(group))
        if budgets and not candidates:
            for job in group:
                job.budget_met = False
        return self._batch(group, Compression.parse(cheapest.setting), cheapest)

    def _finish(self, batch: Batch, now: float) -> Batch:
        end = now + batch.predicted_seconds
        self.busy_until = end
        for job in batch.jobs:
            job.setting = batch.setting
            job.late = end - job.arrival > self.target
        return batch


__all__ = ["Batch", "Job", "Overloaded", "Scheduler"]
