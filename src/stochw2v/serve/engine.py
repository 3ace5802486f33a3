"""The inference side of the server: one worker thread that takes batches from the scheduler and runs
the model, so the HTTP event loop (health, metrics, new requests) never waits for a forward pass.

A request is checked alone (`check_request`) before it may join a batch; should a batch fail all the
same, each of its requests is run alone, so only the one that fails gets the error."""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import torch
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..audio import SAMPLE_RATE
from ..compute import Compression
from ..errors import ConfigError
from ..model import CTCModel
from ..model.ctc import greedy_decode
from .scheduler import Batch, Job, Overloaded, Scheduler

LOG = logging.getLogger("stochw2v.serve")


@dataclass
class Answer:
    text: str
    setting: str
    audio_seconds: float
    queue_seconds: float
    compute_seconds: float
    batch_size: int
    late: bool
    budget_met: bool


class Metrics:
    """Prometheus metrics in a registry of the server's own (no process-global state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("stochw2v_requests", "HTTP requests by status code", ["status"],
                                registry=self.registry)
        self.latency = Histogram("stochw2v_request_latency_seconds", "time from arrival to answer",
                                 buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10), registry=self.registry)
        self.settings = Counter("stochw2v_setting_chosen", "batches run, by compression setting", ["setting"],
                                registry=self.registry)
        self.queue = Gauge("stochw2v_queue_length", "requests waiting for a batch", registry=self.registry)
        self.audio = Counter("stochw2v_audio_seconds", "seconds of audio transcribed", registry=self.registry)
        self.slowdown = Gauge("stochw2v_measured_slowdown", "batch seconds measured over the profile's "
                              "prediction, smoothed (scales the scheduler's predictions)", registry=self.registry)
        self.batch = Histogram("stochw2v_batch_size", "requests per batch", buckets=(1, 2, 4, 8, 16, 32),
                               registry=self.registry)


class Engine:
    def __init__(self, model: CTCModel, scheduler: Scheduler, metrics: Metrics) -> None:
        self.model, self.scheduler, self.metrics = model, scheduler, metrics
        self.device = next(model.parameters()).device
        self.condition = threading.Condition()
        self.accepting, self.running_batch = True, False
        self.thread = threading.Thread(target=self._loop, name="stochw2v-inference", daemon=True)
        self.thread.start()

    def warm_up(self, settings: list[str], seconds: float = 2.0) -> None:
        """One pass per setting before the first request: a setting's first pass builds its kernels
        and is several times slower, which would make the first batch at each setting miss its target."""
        audio = torch.zeros(1, int(seconds * SAMPLE_RATE), device=self.device)
        with torch.inference_mode():
            for setting in settings:
                self.model(audio, None, setting)

    def check_request(self, samples: int, fixed: Compression | None) -> None:
        """Refuse (ConfigError) audio too short for its setting: the one it named, else every setting
        the scheduler may choose for it. Checked before the request joins anyone else's batch."""
        config = self.model.config
        settings = [fixed] if fixed is not None else [Compression.parse(c.setting) for c in
                                                      self.scheduler.profile.settings]
        for setting in settings:
            setting.check(config.num_layers, config.max_upsample)
        needed = config.min_samples(max(s.min_frames for s in settings))
        if samples < needed:
            which = f"setting {fixed}" if fixed is not None else "the settings this server chooses from"
            raise ConfigError(f"audio of {samples} samples ({samples / SAMPLE_RATE * 1000:.0f} ms) is too short for "
                              f"{which}: it needs at least {needed} samples ({needed / SAMPLE_RATE * 1000:.0f} ms)")

    def submit(self, audio: np.ndarray, fixed: Compression | None, budget: float | None,
               arrival: float | None = None) -> Future:
        """Queue one utterance that arrived at `arrival` (time.monotonic(); default now: the time
        spent reading and decoding the request counts against its latency target). The future
        resolves to an `Answer`. Raises Overloaded (503)."""
        future: Future = Future()
        job = Job(len(audio) / SAMPLE_RATE, time.monotonic() if arrival is None else arrival, fixed, budget,
                  (audio, future))
        with self.condition:
            if not self.accepting:
                raise Overloaded("the server is shutting down", 5.0)
            self.scheduler.admit(job, time.monotonic())
            self.metrics.queue.set(len(self.scheduler.queue))
            self.condition.notify()
        return future

    def _loop(self) -> None:
        while True:
            with self.condition:
                while not self.scheduler.queue and self.accepting:
                    self.condition.wait()
                if not self.scheduler.queue and not self.accepting:
                    return
                batch = self.scheduler.next_batch(time.monotonic())
                self.running_batch = True
                self.metrics.queue.set(len(self.scheduler.queue))
            try:
                self._run_isolating(batch)
            finally:
                with self.condition:
                    self.running_batch = False
                    self.condition.notify_all()

    def _run_isolating(self, batch: Batch) -> None:
        """Run `batch`; if it fails, run each request alone, so that only a request that fails by itself
        gets an error (the loop goes on either way)."""
        try:
            self._run(batch)
            return
        except Exception as error:  # noqa: BLE001 - answered below, one request at a time
            if len(batch.jobs) == 1:
                batch.jobs[0].payload[1].set_exception(error)
                return
            LOG.warning("a batch of %d failed (%s); running its requests one by one", len(batch.jobs), error)
        for job in batch.jobs:
            try:
                self._run(Batch([job], batch.setting, 0.0))
            except Exception as error:  # noqa: BLE001 - this request's own failure, answered to it alone
                job.payload[1].set_exception(error)

    def _run(self, batch: Batch) -> None:
        started = time.monotonic()
        waves = [torch.from_numpy(job.payload[0]) for job in batch.jobs]
        lengths = torch.tensor([len(w) for w in waves])
        padded = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True).to(self.device)
        with torch.inference_mode():
            out = self.model(padded, lengths.to(self.device), batch.setting)
            texts = greedy_decode(out.logits, out.lengths, self.model.vocabulary)
        done = time.monotonic()
        with self.condition:
            self.scheduler.observe(batch, done - started, done)
        self.metrics.slowdown.set(self.scheduler.slowdown)
        self.metrics.settings.labels(str(batch.setting)).inc()
        self.metrics.batch.observe(len(batch.jobs))
        for job, text in zip(batch.jobs, texts):
            self.metrics.audio.inc(job.seconds)
            job.payload[1].set_result(Answer(text, str(batch.setting), job.seconds, started - job.arrival,
                                             done - started, len(batch.jobs), done - job.arrival >
                                             self.scheduler.target, job.budget_met))

    def drain(self, timeout: float = 60.0) -> None:
        """Stop taking requests, finish every accepted one, stop the worker."""
        with self.condition:
            self.accepting = False
            self.condition.notify_all()
        self.thread.join(timeout)


__all__ = ["Answer", "Engine", "Metrics"]
