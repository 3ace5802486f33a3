"""`stochw2v transcribe` and `stochw2v evaluate`: recognisers at work."""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from ..audio import SAMPLE_RATE, audio_info, load_audio
from ..compute import Compression
from ..compute.budget import pick_setting
from ..data import read_manifest
from ..errors import Stochw2vError
from ..evaluate.cascade import Cascade, CascadeConfig, calibrate, measure
from ..evaluate.decoding import BeamDecoder
from ..evaluate.lm_tuning import tune_lm
from ..evaluate.long_audio import ctc_words, transcribe_long
from ..evaluate.ngram import read_sentences, read_vocabulary, write_lm
from ..evaluate.report import check_output_folder, write_results
from ..evaluate.tradeoff import evaluate_models, markdown_table
from ..model import CTCModel
from .common import (
    add_decode_workers,
    add_decoding,
    add_device,
    add_search_bounds,
    add_threads,
    beam_options,
    model_profile,
    one_setting,
    positive_float,
    positive_int,
    recogniser_from_args,
    settings_list,
)

WARMUP_SAMPLES = SAMPLE_RATE  # one second: enough to set up the kernels, cheap on any file


def transcribe_file(model: CTCModel, path: str, setting: Compression | Cascade, decoder, chunk_seconds: float,
                    progress: bool = True) -> dict:
    """One file: in one pass (the encoder runs exactly once; a cascade its stages), or in overlapping
    windows when it is longer than `chunk_seconds`. The text, word times and the seconds taken."""
    audio_seconds = audio_info_seconds(path)
    start = time.perf_counter()
    if audio_seconds > chunk_seconds:
        if isinstance(setting, Cascade):
            raise Stochw2vError(f"{path}: {audio_seconds:.0f} s is over --chunk-seconds; the cascade runs on "
                                "single passes only, give a fixed --compression for long files")
        long = transcribe_long(model, path, setting, chunk_seconds, keep_logits=decoder is not None,
                               progress=progress)
        middle = time.perf_counter()
        text, words = long.text, long.words
        if decoder is not None:
            text = decoder(torch.from_numpy(long.logits)[None], torch.tensor([len(long.logits)]))[0]
        used = str(setting)
    else:
        wave = torch.from_numpy(load_audio(path)).to(next(model.parameters()).device)
        with torch.inference_mode():
            out = setting(wave[None]) if isinstance(setting, Cascade) else model(wave, compression=setting)
        middle = time.perf_counter()
        best = out.logits[0, : int(out.lengths[0])].argmax(-1).cpu().numpy()
        words = ctc_words(best, model.vocabulary, model.config.hop / SAMPLE_RATE)
        text = decoder(out.logits, out.lengths)[0] if decoder else " ".join(w.word for w in words)
        used = setting.config.settings[int(out.stages[0])] if isinstance(setting, Cascade) else str(setting)
    end = time.perf_counter()
    return {"file": path, "text": text, "compression": used, "audio_seconds": round(audio_seconds, 3),
            "encoder_seconds": round(middle - start, 4), "decode_seconds": round(end - middle, 4),
            "rtf": round((middle - start) / max(audio_seconds, 1e-9), 4),
            "words": [{"word": w.word, "start": round(w.start, 2), "end": round(w.end, 2)} for w in words]}


def audio_info_seconds(path: str) -> float:
    frames, rate = audio_info(path)
    return frames / rate


def _transcriber(args: argparse.Namespace, model: CTCModel):
    """What runs one file: a setting (given, picked by a budget, or the model's) or the cascade."""
    if args.compression == "auto":
        if not args.cascade:
            raise Stochw2vError("--compression auto needs --cascade CASCADE.json (from `stochw2v calibrate`)")
        return Cascade(model, CascadeConfig.load(args.cascade))
    if args.budget is not None or args.budget_macs is not None:
        profile = model_profile(args.model, args.profile, "--budget")
        choice = pick_setting(model, profile, args.budget, args.budget_macs)
        note = "fits the budget" if choice.fits else "is the cheapest setting: none fits the budget"
        print(f"stochw2v transcribe: using {choice.setting} (RTF {choice.cost.rtf_at(1):.4f}, "
              f"{choice.cost.gmacs_per_audio_second:.3f} GMACs/s, from {profile}), which {note}", file=sys.stderr)
        return choice.setting
    return model.resolve(args.compression)


def run_transcribe(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    model = recogniser_from_args(args.model, args)
    setting = _transcriber(args, model)
    beam = beam_options(args)
    decoder = BeamDecoder(model.vocabulary, **beam) if beam else None
    with torch.inference_mode():  # warm-up on one second, so the first file's timing is not the allocator's
        warm = torch.zeros(1, WARMUP_SAMPLES, device=next(model.parameters()).device)
        setting(warm) if isinstance(setting, Cascade) else model(warm, compression=setting)
    failed = []
    for path in args.audio:
        try:
            result = transcribe_file(model, path, setting, decoder, args.chunk_seconds, not args.json)
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
    models = {name: recogniser_from_args(p, args) for name, p in zip(_model_names(args.models), args.models)}
    cascades = {name: CascadeConfig.load(args.cascade) for name in models} if args.cascade else None
    evaluation = evaluate_models(models, manifest, args.settings, args.repeats, beam=beam_options(args),
                                 cascades=cascades)
    differences = write_results(evaluation, out, {"manifest": str(args.manifest), "threads": args.threads,
                                                  "models": dict(zip(models, args.models))})
    print(markdown_table(evaluation.rows))
    print(f"\n{evaluation.protocol}")
    if differences:
        print(f"\nPaired differences to each model's first setting (same utterances):\n\n{differences}")
    print(f"\nwrote {out / 'results.json'}, {out / 'results.md'} and {out / 'tradeoff.png'}")
    return 0


def run_lm_build(args: argparse.Namespace) -> int:
    sentences = [s for path in args.text for s in read_sentences(Path(path))]
    extra = read_vocabulary(Path(args.vocabulary)) if args.vocabulary else set()
    arpa = write_lm(sentences, args.order, Path(args.out), " ".join(args.text), extra, args.vocabulary)
    added = len(extra - {w for s in sentences for w in s})
    print(f"{arpa}: {args.order}-gram interpolated modified Kneser-Ney LM of {len(sentences)} sentences"
          + (f", {added} more words from {args.vocabulary}" if args.vocabulary else ""))
    return 0


def float_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers separated by commas, got {text!r}")
    return values


def run_lm_tune(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    model = recogniser_from_args(args.model, args)
    manifest = read_manifest(args.manifest, labels=True, check_lengths=True)
    result = tune_lm(model, manifest, Path(args.lm), model.resolve(args.compression), args.beam, args.lm_weights,
                     args.word_scores, args.unknown_word_scores, args.token_min_logp, args.beam_prune_logp,
                     workers=args.decode_workers)
    print("| LM weight | word score | unknown-word score | valid WER | valid CER |\n|---|---|---|---|---|")
    for row in result["grid"]:
        print(f"| {row['lm_weight']:g} | {row['word_score']:g} | {row['unknown_word_score']:g} | {row['wer']:.3f} "
              f"| {row['cer']:.3f} |")
    print(f"best: --lm-weight {result['lm_weight']:g} --word-score {result['word_score']:g} --unknown-word-score "
          f"{result['unknown_word_score']:g} (valid WER {result['valid_wer']:.3f}); written to "
          f"{Path(args.lm) / 'decoding.json'}, used by --lm {args.lm}")
    return 0


def add_lm_commands(commands) -> None:
    p = commands.add_parser("lm", help="word n-gram language models for beam search: build and tune")
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("build", help="estimate an ARPA n-gram LM from transcripts (one sentence per line)")
    q.add_argument("--text", nargs="+", required=True, help="text files, e.g. the training manifest's .wrd")
    q.add_argument("--order", type=positive_int, default=4)
    q.add_argument("--out", required=True, help="folder for lm.arpa and lm.json")
    q.add_argument("--vocabulary", help="more words the LM should know (a word list, e.g. "
                   "/usr/share/dict/american-english): listed with the uniform share of unigram probability")
    q.set_defaults(run=run_lm_build)
    q = actions.add_parser("tune", help="grid-search the LM weight and word score on a valid split")
    q.add_argument("model")
    q.add_argument("--lm", required=True, help="LM folder from `stochw2v lm build`")
    q.add_argument("--manifest", required=True, help="labelled valid manifest")
    q.add_argument("--beam", type=positive_int, default=32)
    q.add_argument("--lm-weights", type=float_list, default=[0.25, 0.5, 0.75, 1.0, 1.5])
    q.add_argument("--word-scores", type=float_list, default=[-1.0, 0.0, 1.0, 2.0])
    q.add_argument("--unknown-word-scores", type=float_list, default=[-10.0, -20.0],
                   help="scores for words the LM does not list, written --unknown-word-scores=-10,-20 "
                   "(default: %(default)s; -10 is pyctcdecode's)")
    add_search_bounds(q, tuned=False)
    add_decode_workers(q)
    q.add_argument("--compression", type=one_setting, default=None, help="setting to tune at (default: the model's)")
    add_threads(q)
    add_device(q)
    q.set_defaults(run=run_lm_tune)


def setting_or_auto(text: str) -> Compression | str:
    return "auto" if text == "auto" else one_setting(text)


def run_calibrate(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    model = recogniser_from_args(args.model, args)
    manifest = read_manifest(args.manifest, labels=True, check_lengths=True)
    settings = [model.resolve(s) for s in args.settings]
    measured = measure(model, manifest, settings)
    words = max(measured.words.sum(), 1.0)
    fixed = [(measured.errors[:, k].sum() / words, measured.conv_gmacs + measured.gmacs[k])
             for k in range(len(settings))]  # each setting on its own
    target = args.target_wer if args.target_wer is not None else fixed[-1][0] + args.target_delta
    thresholds, wer, cost = calibrate(measured, target)
    config = CascadeConfig([str(s) for s in settings], [float(t) for t in thresholds], target,
                           {"wer": wer, "gmacs_per_audio_second": cost, "manifest": str(args.manifest),
                            "fixed": {str(s): {"wer": w, "gmacs_per_audio_second": c}
                                      for s, (w, c) in zip(settings, fixed)}})
    config.save(Path(args.out))
    print("| stage | setting | valid WER alone | GMACs / audio s alone |\n|---|---|---|---|")
    for k, (s, (w, c)) in enumerate(zip(settings, fixed)):
        print(f"| {k} | {s} | {w:.3f} | {c:.3f} |")
    print(f"cascade: thresholds {[round(t, 4) for t in thresholds]}, valid WER {wer:.3f} (target {target:.3f}) at "
          f"{cost:.3f} GMACs/s; wrote {args.out}")
    return 0


def add_commands(commands) -> None:
    add_lm_commands(commands)
    p = commands.add_parser("calibrate", help="choose confidence-cascade thresholds on a valid split")
    p.add_argument("model")
    p.add_argument("--manifest", required=True, help="labelled valid manifest")
    p.add_argument("--settings", type=settings_list, default=settings_list("s=4;s=1"),
                   help="stages, cheapest first (default: s=4;s=1)")
    p.add_argument("--target-wer", type=positive_float, help="WER the cascade must reach (default: the last "
                                                             "stage's valid WER + --target-delta)")
    p.add_argument("--target-delta", type=float, default=0.005)
    p.add_argument("--out", required=True, help="CASCADE.json to write")
    add_threads(p)
    add_device(p)
    p.set_defaults(run=run_calibrate)
    p = commands.add_parser("transcribe", help="transcribe audio files")
    p.add_argument("model", help="recogniser folder or fine-tuning run")
    p.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg, ...)")
    p.add_argument("--compression", type=setting_or_auto, default=None,
                   help="one setting, e.g. s=2, or auto (the confidence cascade of --cascade); default: the model's")
    p.add_argument("--cascade", help="CASCADE.json from `stochw2v calibrate`, for --compression auto")
    p.add_argument("--budget", type=positive_float, help="real-time factor the encoder may use (needs a profile)")
    p.add_argument("--budget-macs", type=positive_float, help="GMACs per audio second the encoder may use")
    p.add_argument("--profile", help="PROFILE.json from `stochw2v profile MODEL --out` (for --budget; default: "
                                     "the model folder's profile.json)")
    p.add_argument("--json", action="store_true", help="JSON lines with timing and word times")
    p.add_argument("--chunk-seconds", type=positive_float, default=30.0,
                   help="longer files are transcribed in overlapping windows of this length, in bounded memory")
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
    p.add_argument("--cascade", help="CASCADE.json from `stochw2v calibrate`: evaluate it as one more point")
    add_threads(p)
    add_device(p)
    add_decoding(p)
    add_decode_workers(p)
    p.set_defaults(run=run_evaluate)
