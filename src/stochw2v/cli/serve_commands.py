"""`stochw2v serve`: the HTTP service (FastAPI on uvicorn)."""
from __future__ import annotations

import argparse

import torch
import uvicorn

from ..model.budget import Profile
from ..serve import ServeSettings, create_app
from .common import add_device, add_threads, load_recogniser, model_device_dtype, positive_float, positive_int


def run_serve(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    model = load_recogniser(args.model, *model_device_dtype(args))
    profile = Profile.load(args.profile)
    for cost in profile.settings:  # the profile must describe settings this model runs
        model.resolve(cost.setting)
    settings = ServeSettings(args.latency_target, args.max_batch, args.max_queue, int(args.max_body_mb * 1e6),
                             args.max_audio_seconds)
    app = create_app(model, profile, settings)
    print(f"stochw2v serve: {args.model} on http://{args.host}:{args.port} (latency target "
          f"{args.latency_target:g} s, settings {', '.join(c.setting for c in profile.by_accuracy())})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=60)
    return 0


def add_commands(commands) -> None:
    p = commands.add_parser("serve", help="HTTP transcription service choosing each batch's setting from load")
    p.add_argument("model")
    p.add_argument("--profile", required=True, help="PROFILE.json of this model on this machine (stochw2v profile "
                                                    "MODEL --out)")
    p.add_argument("--latency-target", type=positive_float, default=1.0, help="seconds from arrival to answer")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=positive_int, default=8000)
    p.add_argument("--max-batch", type=positive_int, default=8)
    p.add_argument("--max-queue", type=positive_int, default=64)
    p.add_argument("--max-body-mb", type=positive_float, default=20.0)
    p.add_argument("--max-audio-seconds", type=positive_float, default=60.0)
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    add_threads(p)
    add_device(p)
    p.set_defaults(run=run_serve)
