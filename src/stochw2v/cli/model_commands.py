"""`stochw2v profile`, `export`, `export-hf`, `export-onnx`, `import-fairseq`, `grow`: models as objects."""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..compute.compression import precision_of, without_precision
from ..errors import Stochw2vError
from ..evaluate.profile import format_profile, format_table, measure_profile, profile
from ..evaluate.timing import thread_note
from ..files import read_json
from ..formats import export_hf
from ..formats.load import load
from ..formats.model_folder import save
from ..formats.onnx import export_onnx
from ..model import PRESETS, CTCModel, Encoder, EncoderConfig, count_parameters
from ..runtime import PrecisionDial
from ..train.growing import grow_depth
from .common import (
    add_device,
    add_threads,
    bounded_float,
    bounded_int,
    load_model,
    model_device_dtype,
    one_setting,
    positive_int,
    settings_list,
)

PROFILE_SETTINGS = "s=1;s=2;s=3;s=4;s=2,kv=2;s=2,q7=2;s=4,q7=2"
# bounds on what one command may ask of the machine: past them it fails minutes later in an allocation
MAX_PROFILE_SECONDS = 120  # attention memory grows with the square of the frames
MAX_PROFILE_BATCH = 256
MAX_GROWN_LAYERS = 256


def run_profile(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    device, dtype = model_device_dtype(args)
    model = load_model(args.model, device, dtype) if args.model else \
        Encoder(EncoderConfig.preset(args.size)).to(device=device, dtype=dtype)
    encoder = model.encoder if isinstance(model, CTCModel) else model  # a recogniser is profiled by its encoder
    settings = args.settings or (None if args.model else settings_list(PROFILE_SETTINGS))
    if settings is None:
        policy = encoder.config.training_distribution
        settings = policy.validation_settings(encoder.config.num_layers) if policy else settings_list("s=1")
    source = args.model or f"random-weight {args.size} encoder"
    named = [str(s) for s in settings if precision_of(s) != "fp32"]
    if named and not (args.out and isinstance(model, CTCModel) and dtype == torch.float32):
        raise Stochw2vError(f"--settings {';'.join(named)}: settings at a precision are profiled on a float32 "
                            f"recogniser with --out PROFILE.json (--model a fine-tuned model, no --dtype)")
    if args.out:
        if isinstance(model, CTCModel) and dtype == torch.float32:  # rows may name a precision: s=2@int8
            model = PrecisionDial(model, args.backend, args.threads)
        elif args.backend == "onnxruntime":
            raise Stochw2vError(f"--backend {args.backend} profiles a float32 recogniser; give --model a "
                                f"fine-tuned model folder and drop --dtype")
        return _profile_to_file(args, model, settings, source)
    print(f"{source}: {count_parameters(encoder) / 1e6:.1f}M parameters, {args.seconds:g} s of audio, "
          f"batch {args.batch}, {thread_note()}, {device}, median of {args.repeats} interleaved runs")
    rows = profile(encoder, settings, args.seconds, args.repeats, batch=args.batch)
    print(format_table(rows, args.seconds))
    return 0


def _profile_to_file(args: argparse.Namespace, model, settings, source: str) -> int:
    results = read_json(Path(args.results), "evaluate results") if args.results else None
    sizes = sorted({1, args.serving_batch})
    measured = measure_profile(model, settings, sizes, args.seconds, args.repeats, results, args.results_model,
                               source)
    measured.save(Path(args.out))
    print(f"{source}: {thread_note()}, {args.seconds:g} s items, median of {args.repeats} interleaved runs")
    print(format_profile(measured))
    print(f"wrote {args.out}")
    return 0


def run_export_hf(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    out = export_hf(model, args.out, args.compression, source=Path(args.model))
    kind = "recogniser (ForCTC)" if isinstance(model, CTCModel) else "encoder"
    print(f"wrote a HF transformers {kind} to {out}")
    return 0


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def run_export(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    _check_not_inside(Path(args.model), Path(args.out))
    out = save(model, args.out, dtype=DTYPES[args.dtype])
    print(f"wrote {out} (stochw2v model folder, {args.dtype} weights)")
    return 0


def _check_not_inside(source: Path, out: Path) -> None:
    source, target = source.resolve(), out.resolve()
    if target == source or source in target.parents:
        raise Stochw2vError(f"{out}: is (inside) the model being exported ({source}); choose another --out")


def run_export_onnx(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    out = export_onnx(model, args.out, args.compression, args.opset)
    precision = "" if args.compression is None else precision_of(args.compression)
    setting = (model.encoder if isinstance(model, CTCModel) else model).resolve(
        None if args.compression is None else without_precision(args.compression))
    setting = f"{setting}@{precision}" if precision not in ("", "fp32") else setting
    print(f"wrote {out}: {setting}, inputs waveforms [batch, samples] float32 and lengths [batch] int64, "
          f"dynamic batch and length")
    return 0


def run_import_fairseq(args: argparse.Namespace) -> int:
    model = load(args.checkpoint, args.dict)
    out = save(model, args.out)
    kind = "recogniser" if isinstance(model, CTCModel) else "encoder"
    print(f"wrote {out}: the {kind} of {args.checkpoint} ({count_parameters(model) / 1e6:.1f}M parameters)")
    return 0


def run_grow(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    _check_not_inside(Path(args.model), Path(args.out))
    grown = grow_depth(model, args.layers)
    out = save(grown, args.out)
    print(f"wrote {out}: {args.model} with {args.layers} identity layers appended "
          f"({grown.config.num_layers} layers, {count_parameters(grown) / 1e6:.1f}M parameters, same outputs)")
    return 0


def add_commands(commands) -> None:
    p = commands.add_parser("export-onnx", help="write one setting as an ONNX graph (dynamic batch and length)")
    p.add_argument("model")
    p.add_argument("--out", required=True, help="the .onnx file")
    p.add_argument("--compression", type=one_setting, default=None, help="the setting (default: the model's)")
    p.add_argument("--opset", type=positive_int, default=18)
    p.set_defaults(run=run_export_onnx)

    p = commands.add_parser("import-fairseq", help="convert a fairseq wav2vec 2.0 / HuBERT / SEW checkpoint "
                                                   "(no fairseq needed, no pickled code run) to our model folder")
    p.add_argument("checkpoint", help="fairseq .pt file")
    p.add_argument("--out", required=True)
    p.add_argument("--dict", help="dict.ltr.txt of a fine-tuned checkpoint (default: the one beside it)")
    p.set_defaults(run=run_import_fairseq)

    p = commands.add_parser("export", help="write any loadable model (run folder, HF folder) as our model folder")
    p.add_argument("model")
    p.add_argument("--out", required=True)
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="stored weight precision")
    p.set_defaults(run=run_export)

    p = commands.add_parser("grow", help="append transformer layers that start as the identity (same outputs, "
                                         "more capacity to fine-tune; pre-LN models)")
    p.add_argument("model")
    p.add_argument("--layers", type=bounded_int(1, MAX_GROWN_LAYERS), required=True,
                   help="how many layers to append")
    p.add_argument("--out", required=True)
    p.set_defaults(run=run_grow)

    p = commands.add_parser("profile", help="MACs and measured time of each compression setting")
    p.add_argument("--model", help="model folder (ours or HF); default: random weights of --size")
    p.add_argument("--size", default="base", choices=sorted(PRESETS), help="preset for random weights")
    p.add_argument("--settings", type=settings_list, default=None,
                   help=f"settings separated by ';' (default: the model's trained ones, or {PROFILE_SETTINGS})")
    p.add_argument("--seconds", type=bounded_float(0, MAX_PROFILE_SECONDS), default=10.0,
                   help=f"audio per utterance (at most {MAX_PROFILE_SECONDS} s: attention grows with its square)")
    p.add_argument("--batch", type=bounded_int(1, MAX_PROFILE_BATCH), default=1)
    p.add_argument("--out", help="write a PROFILE.json (RTF per setting at batch 1 and --serving-batch) for "
                                 "budgets, the cascade and `serve`")
    p.add_argument("--serving-batch", type=bounded_int(1, MAX_PROFILE_BATCH), default=8,
                   help="second batch size profiled with --out")
    p.add_argument("--results", help="an evaluate results.json (or an earlier PROFILE.json of the model): WER/CER per "
                   "setting go into the profile")
    p.add_argument("--results-model", help="which model of --results (default: its only one)")
    p.add_argument("--repeats", type=bounded_int(1, 1000), default=3)
    add_threads(p)
    add_device(p)
    p.set_defaults(run=run_profile)

    p = commands.add_parser("export-hf",
                            help="write one fixed setting as a HF Wav2Vec2/HuBERT/SEW folder (ForCTC for recognisers)")
    p.add_argument("model")
    p.add_argument("--out", required=True)
    p.add_argument("--compression", type=one_setting, default=None,
                   help="fixed setting to export (default: the model's)")
    p.set_defaults(run=run_export_hf)
