"""`stochw2v serve`: an HTTP transcription service that spends compute on demand.

    POST /transcribe   audio (wav/flac/ogg) as the body or as a multipart `file` field;
                       optional query: setting=s=2 (fixed), budget=0.05 (RTF), budget_macs=0.1
                       -> {"text", "setting", "audio_seconds", "queue_seconds", "compute_seconds",
                           "latency_seconds", "batch_size", "late", "budget_met", "warning"}
    GET  /health       -> {"status": "ok", "queue": n, "settings": [...]}
    GET  /metrics      Prometheus text format

Bad requests get a 4xx JSON error {"error": ..., "status": ...}; an overloaded server answers 503
with Retry-After. Inference runs in the engine's worker thread, off the event loop.

Every request is checked alone before it joins a batch (its decoded length, duration and sample
rate, and that the model can run its setting on it), so one bad request fails alone: it gets its
400 and the others in its batch their answers. A setting the model runs but was never trained at
is served with a warning: the `warning` field of the answer and a `Warning: 299` header.
"""
from __future__ import annotations

import asyncio
import email.policy
import logging
import math
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from email.parser import BytesParser

import numpy as np
from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..audio import SAMPLE_RATE, decode_audio
from ..compute import Compression
from ..compute.budget import Profile
from ..errors import AudioError, ConfigError, Stochw2vError
from ..model import CTCModel
from .engine import Engine, Metrics
from .scheduler import Overloaded, Scheduler

LOG = logging.getLogger("stochw2v.serve")


@dataclass
class ServeSettings:
    latency_target: float = 1.0  # seconds from arrival to answer
    max_batch: int = 8
    max_queue: int = 64
    max_body_bytes: int = 20_000_000
    max_audio_seconds: float = 60.0  # decoded duration, read from the header before decoding
    max_sample_rate: int = 48_000  # header sample rate (with the duration, it bounds the decoded size)
    body_timeout: float = 30.0  # seconds to send the whole body (slow senders get 408)
    header_timeout: float = 10.0  # seconds to send the request headers (http_server.py)
    max_connections: int = 1000  # open connections, kept under the open-file limit (http_server.py)


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


async def read_body(request: Request, limit: int, timeout: float = math.inf) -> bytes:
    """The request body, refused (413) as soon as it passes `limit` bytes, whatever Content-Length says,
    and (408) when it has not all arrived within `timeout` seconds (a slow sender holds a socket)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"body of {int(declared)} bytes is over the limit of {limit}")
    chunks, size = [], 0
    deadline = time.monotonic() + timeout
    stream = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), max(0.0, deadline - time.monotonic()))
        except StopAsyncIteration:
            return b"".join(chunks)
        except asyncio.TimeoutError:
            raise ApiError(408, f"the body did not arrive within {timeout:g} s", {"Connection": "close"}) from None
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"body is over the limit of {limit} bytes")
        chunks.append(chunk)


def audio_bytes(body: bytes, content_type: str) -> tuple[bytes, str]:
    """The audio file in the body: the body itself, or the `file` part of a multipart form."""
    if not content_type.startswith("multipart/form-data"):
        return body, "body"
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body)
    if not message.is_multipart():
        raise ApiError(400, "a multipart/form-data body that does not parse as one")
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file" or part.get_filename():
            return part.get_payload(decode=True) or b"", part.get_filename() or "file"
    raise ApiError(400, "the multipart form has no 'file' field")


def query_options(request: Request, model: CTCModel) -> tuple[Compression | None, float | None, float | None]:
    params = request.query_params
    unknown = sorted(set(params) - {"setting", "budget", "budget_macs"})
    if unknown:
        raise ApiError(400, f"unknown query parameters {unknown}; use setting, budget, budget_macs")
    fixed = None
    if "setting" in params:
        try:
            fixed = model.config.resolve(params["setting"])  # untrained: served with a warning
        except ConfigError as error:
            raise ApiError(400, f"setting: {error}") from None
    budgets = []
    for key in ("budget", "budget_macs"):
        value = None
        if key in params:
            try:
                value = float(params[key])
            except ValueError:
                raise ApiError(400, f"{key} must be a number, got {params[key]!r}") from None
            if not (value > 0 and value != float("inf")):
                raise ApiError(400, f"{key} must be a finite number > 0, got {params[key]!r}")
        budgets.append(value)
    if fixed is not None and any(b is not None for b in budgets):
        raise ApiError(400, "give a setting or a budget, not both")
    return fixed, budgets[0], budgets[1]


def create_app(model: CTCModel, profile: Profile, settings: ServeSettings) -> FastAPI:
    metrics = Metrics()
    engine = Engine(model.eval(), Scheduler(profile, settings.latency_target, settings.max_batch,
                                            settings.max_queue), metrics)
    engine.warm_up([cost.setting for cost in profile.settings])

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        await to_thread.run_sync(engine.drain)  # accepted requests finish before the worker stops

    app = FastAPI(title="stochw2v", lifespan=lifespan)
    app.state.engine = engine

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok" if engine.accepting else "stopping", "queue": len(engine.scheduler.queue),
                "settings": [c.setting for c in profile.by_accuracy()], "latency_target": settings.latency_target}

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/transcribe")
    async def transcribe(request: Request) -> JSONResponse:
        arrival = time.monotonic()
        try:
            answer = await transcribe_request(request, arrival, engine, settings)
        except ApiError as error:
            metrics.requests.labels(str(error.status)).inc()
            return JSONResponse({"error": error.message, "status": error.status}, error.status, error.headers)
        metrics.requests.labels("200").inc()
        metrics.latency.observe(time.monotonic() - arrival)
        headers = {"Warning": f'299 stochw2v "{answer["warning"]}"'} if answer["warning"] else None
        return JSONResponse(answer, headers=headers)

    return app


async def decoded_request(request: Request, settings: ServeSettings) -> np.ndarray:
    """The request's audio, decoded once its header passed the limits (duration, sample rate, channels)."""
    data, name = audio_bytes(await read_body(request, settings.max_body_bytes, settings.body_timeout),
                             request.headers.get("content-type", ""))
    try:
        return await to_thread.run_sync(decode_audio, data, name, SAMPLE_RATE, settings.max_audio_seconds,
                                        settings.max_sample_rate)
    except AudioError as error:
        text = str(error)
        status = 413 if "over the limit" in text else 415 if "not a readable audio file" in text else 400
        raise ApiError(status, text) from None


async def transcribe_request(request: Request, arrival: float, engine: Engine, settings: ServeSettings) -> dict:
    """One POST /transcribe: checked alone, then queued for a batch; its answer, or an ApiError."""
    model, profile = engine.model, engine.scheduler.profile
    fixed, budget, budget_macs = query_options(request, model)
    macs_met = True
    if budget_macs is not None:  # a compute budget is a fixed choice: the profile says what fits
        choice = profile.pick(gmacs=budget_macs)
        fixed, macs_met = choice.setting, choice.fits
    audio = await decoded_request(request, settings)
    try:
        engine.check_request(len(audio), fixed)
    except ConfigError as error:
        raise ApiError(400, str(error)) from None
    try:
        future = engine.submit(audio, fixed, budget, arrival)
    except Overloaded as error:
        raise ApiError(503, str(error), {"Retry-After": str(int(error.retry_after))}) from None
    try:
        answer = await asyncio.wrap_future(future)
    except Stochw2vError as error:  # this request alone failed in its batch (engine.py isolates it)
        raise ApiError(400, str(error)) from None
    except Exception as error:  # noqa: BLE001 - a bug, logged with its traceback; the client gets one line
        LOG.exception("a request failed in the model")
        raise ApiError(500, f"internal error while transcribing ({type(error).__name__})") from None
    answer.budget_met = answer.budget_met and macs_met
    return {**asdict(answer), "latency_seconds": round(time.monotonic() - arrival, 4),
            "warning": untrained_warning(model, fixed)}


def untrained_warning(model: CTCModel, setting: Compression | None) -> str | None:
    """A sentence when the request named a setting its weights never trained at (served all the same)."""
    if setting is None or model.config.was_trained_on(setting):
        return None
    trained = model.config.training_distribution.describe()
    return f"setting {setting} was never drawn in this model's training ({trained}); expect a higher error rate"


__all__ = ["ApiError", "ServeSettings", "create_app"]
