"""`stochw2v serve`: the HTTP service (FastAPI on a guarded uvicorn, serve/http_server.py)."""
from __future__ import annotations

import argparse

import torch

from ..audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from ..compute.budget import Profile
from ..serve import ServeSettings, create_app
from ..serve.http_server import bind_socket, build_server
from .common import (
    add_device,
    add_threads,
    bounded_int,
    model_profile,
    positive_float,
    positive_int,
    recogniser_from_args,
)

DEFAULTS = ServeSettings()


def run_serve(args: argparse.Namespace) -> int:
    sock = bind_socket(args.host, args.port)  # first: a port it cannot have is one line, before the model loads
    torch.set_num_threads(args.threads)
    model = recogniser_from_args(args.model, args)
    profile_path = model_profile(args.model, args.profile, "serve")
    profile = Profile.load(profile_path)
    profile.check_runs_on(model, profile_path)
    settings = ServeSettings(args.latency_target, args.max_batch, args.max_queue, int(args.max_body_mb * 1e6),
                             args.max_audio_seconds, args.max_sample_rate, args.body_timeout, args.header_timeout,
                             args.max_connections)
    app = create_app(model, profile, settings)
    server = build_server(app, settings.max_connections, settings.header_timeout, args.log_level)
    host, port = sock.getsockname()[:2]
    print(f"stochw2v serve: {args.model} on http://{host}:{port} (latency target {args.latency_target:g} s, "
          f"settings {', '.join(c.setting for c in profile.by_accuracy())}, profile {profile_path})", flush=True)
    server.run(sockets=[sock])
    return 0


def add_commands(commands) -> None:
    p = commands.add_parser("serve", help="HTTP transcription service choosing each batch's setting from load")
    p.add_argument("model")
    p.add_argument("--profile", help="PROFILE.json of this model on this machine (stochw2v profile MODEL --out; "
                                     "default: the model folder's profile.json)")
    p.add_argument("--latency-target", type=positive_float, default=DEFAULTS.latency_target,
                   help="seconds from arrival to answer")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=bounded_int(1, 65535), default=8000)
    p.add_argument("--max-batch", type=bounded_int(1, 1024), default=DEFAULTS.max_batch)
    p.add_argument("--max-queue", type=bounded_int(1, 100_000), default=DEFAULTS.max_queue)
    p.add_argument("--max-body-mb", type=positive_float, default=DEFAULTS.max_body_bytes / 1e6)
    p.add_argument("--max-audio-seconds", type=positive_float, default=DEFAULTS.max_audio_seconds,
                   help="longest decoded audio, read from the header before decoding")
    p.add_argument("--max-sample-rate", type=bounded_int(MIN_SAMPLE_RATE, MAX_SAMPLE_RATE),
                   default=DEFAULTS.max_sample_rate, help="highest sample rate accepted (Hz, from the header)")
    p.add_argument("--body-timeout", type=positive_float, default=DEFAULTS.body_timeout,
                   help="seconds a client may take to send its body (then 408)")
    p.add_argument("--header-timeout", type=positive_float, default=DEFAULTS.header_timeout,
                   help="seconds a connection may take to send its request headers (then it is closed)")
    p.add_argument("--max-connections", type=positive_int, default=DEFAULTS.max_connections,
                   help="open connections held at once (kept below the open-file limit; over it the oldest "
                        "idle one is closed, or the new one gets 503)")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    add_threads(p)
    add_device(p)
    p.set_defaults(run=run_serve)
