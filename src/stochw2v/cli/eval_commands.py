"""`stochw2v transcribe` and `stochw2v evaluate`: recognisers at work."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from ..audio import SAMPLE_RATE, load_audio
from ..data import read_manifest
from ..errors import Stochw2vError
from ..evaluate.decoding import BeamDecoder, greedy_decode
from ..evaluate.report import check_output_folder, write_results
from ..evaluate.tradeoff import evaluate_models, markdown_table
from ..model import Compression, CTCModel
from .common import (
    add_decoding,
    add_device,
    add_threads,
    beam_options,
    load_recogniser,
    one_setting,
    positive_int,
    resolve_device,
    settings_list,
)

WARMUP_SAMPLES = SAMPLE_RATE  # one second: enough to set up the kernels, cheap on any file


def transcribe_file(model: CTCModel, path: str, setting: Compression, decoder) -> dict:
    """One file through the encoder exactly once; the text and the seconds the encoder and decoder took."""
    samples = load_audio(path)
    wave = torch.from_numpy(samples).to(next(model.parameters()).device)
    with torch.inference_mode():
        start = time.perf_counter()
        out = model(wave, compression=setting)
        middle = time.perf_counter()
        text = decoder(out.logits, out.lengths)[0] if decoder else greedy_decode(out.logits, out.lengths,
                                                                                  model.vocabulary)[0]
        end = time.perf_counter()
    audio_seconds = len(samples) / SAMPLE_RATE
    return {"file": path, "text": text, "compression": str(setting), "audio_seconds": round(audio_seconds, 3),
            "encoder_seconds": round(middle - start, 4), "decode_seconds": round(end - middle, 4),
            "rtf": round((middle - start) / audio_seconds, 4)}


def run_transcribe(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    model = load_recogniser(args.model, resolve_device(args.device))
    setting = model.resolve(args.compression)
    beam = beam_options(args)
    decoder = BeamDecoder(model.vocabulary, **beam) if beam else None
    with torch.inference_mode():  # warm-up on one second, so the first file's timing is not the allocator's
        model(torch.zeros(WARMUP_SAMPLES, device=next(model.parameters()).device), compression=setting)
    failed = []
    for path in args.audio:
        try:
            result = transcribe_file(model, path, setting, decoder)
        except Stochw2vError as error:  # one bad file does not stop the others
            print(f"stochw2v transcribe: error: {error}", file=sys.stderr)
            failed.append(path)
            continue
        print(json.dumps(result) if args.json else f"{path}\t{result['text']}", flush=True)
    if failed:
        print(f"stochw2v transcribe: {len(failed)} of {len(args.audio)} files could not be transcribed",
              file=sys.stderr)
        return 1
    return 0


def _model_names(paths: list[str]) -> list[str]:
    names = [Path(p).name if Path(p).name != "model" else Path(p).parent.name for p in paths]
    return names if len(set(names)) == len(names) else paths


def run_evaluate(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    out = check_output_folder(Path(args.out))  # before any work: a bad --out fails now, not after
    manifest = read_manifest(args.manifest, labels=True, check_lengths=True)
    device = resolve_device(args.device)
    models = {name: load_recogniser(p, device) for name, p in zip(_model_names(args.models), args.models)}
    evaluation = evaluate_models(models, manifest, args.settings, args.repeats, beam=beam_options(args))
    write_results(evaluation, out, {"manifest": str(args.manifest), "threads": args.threads,
                                    "models": dict(zip(models, args.models))})
    print(markdown_table(evaluation.rows))
    print(f"\n{evaluation.protocol}")
    print(f"\nwrote {out / 'results.json'}, {out / 'results.md'} and {out / 'tradeoff.png'}")
    return 0


def add_commands(commands) -> None:
    p = commands.add_parser("transcribe", help="transcribe audio files")
    p.add_argument("model", help="recogniser folder or fine-tuning run")
    p.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg, ...)")
    p.add_argument("--compression", type=one_setting, default=None, help="one setting, e.g. s=2 (default: the model's)")
    p.add_argument("--json", action="store_true", help="JSON lines with timing")
    add_threads(p)
    add_device(p)
    add_decoding(p)
    p.set_defaults(run=run_transcribe)

    p = commands.add_parser("evaluate", help="WER / CER (95%% CI) / time / MACs per setting, table and plot")
    p.add_argument("models", nargs="+", metavar="MODEL", help="one or more recognisers")
    p.add_argument("--manifest", required=True, help="labelled manifest (.tsv with .wrd) to score on")
    p.add_argument("--settings", type=settings_list, default=None,
                   help="settings separated by ';' (default: the ones each model was trained on)")
    p.add_argument("--out", required=True, help="folder for results.json, results.md, tradeoff.png")
    p.add_argument("--repeats", type=positive_int, default=3, help="timed passes per setting, interleaved")
    add_threads(p)
    add_device(p)
    add_decoding(p)
    p.set_defaults(run=run_evaluate)
