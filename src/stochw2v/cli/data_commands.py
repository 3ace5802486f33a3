"""`stochw2v synth` and `stochw2v manifest {librispeech,folder,combine,check}`: data in."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..data import audit_audio, combine_manifests, read_manifest
from ..data.librispeech import folder_manifest, librispeech_manifest
from ..data.synth import VOICE_SAMPLING, SynthError, check_formant_warp, make_corpus
from ..errors import ManifestError
from ..files import ensure_writable_folder
from .common import positive_float, positive_int


def warp_range(text: str) -> tuple[float, float]:
    """`--formant-warp LOW,HIGH`, checked the same way as from Python."""
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH such as 1.1,1.25, got {text!r}") from None
    try:
        check_formant_warp((low, high))
    except SynthError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return low, high


def run_synth(args: argparse.Namespace) -> int:
    workers = args.workers or os.cpu_count() or 1
    ensure_writable_folder(Path(args.out), "corpus folder")
    summary = make_corpus(args.out, args.hours, args.seed, workers, [Path(p) for p in args.text] if args.text else None,
                          engines=tuple(args.engines.split(",")), valid_count=args.valid_utterances,
                          test_count=args.test_utterances, sentence_file=args.sentences,
                          held_out_voices=tuple(args.held_out_voices.split(",")) if args.held_out_voices else None,
                          formant_warp=args.formant_warp, voice_sampling=args.voice_sampling)
    print(f"{args.out}: {summary['audio_seconds'] / 3600:.2f} h of speech in {summary['wall_seconds']} s "
          f"({summary['audio_seconds_per_second']} audio s/s, {workers} processes)")
    for split, info in summary["splits"].items():
        print(f"  {split:5s}: {info['utterances']:5d} utterances, {info['seconds'] / 60:6.1f} min, "
              f"{info['sentences']} sentences, {len(summary['voices'][split])} voices")
    return 0


def run_librispeech(args: argparse.Namespace) -> int:
    out = ensure_writable_folder(Path(args.out), "manifest folder")
    for split in args.splits:
        manifest = librispeech_manifest(args.root, split)
        tsv = manifest.write(out / f"{split}.tsv")
        print(f"{tsv}: {len(manifest)} utterances, {manifest.total_seconds / 3600:.2f} h, with .wrd/.ltr")
    return 0


def run_folder(args: argparse.Namespace) -> int:
    out = ensure_writable_folder(Path(args.out), "manifest folder")
    manifest = folder_manifest(args.root)
    tsv = out / f"{args.name}.tsv"
    manifest.write(tsv)
    print(f"{tsv}: {len(manifest)} unlabelled files, {manifest.total_seconds / 3600:.2f} h")
    return 0


def run_combine(args: argparse.Namespace) -> int:
    out = ensure_writable_folder(Path(args.out), "manifest folder")
    parts = [read_manifest(tsv, labels=None) for tsv in args.manifests]
    tsv = out / f"{args.name}.tsv"
    if any(Path(m).resolve() == tsv.resolve() for m in args.manifests):
        raise ManifestError(f"{tsv}: is one of the manifests being combined; choose another --name or --out")
    manifest = combine_manifests(parts)
    manifest.write(tsv)
    print(f"{tsv}: {len(manifest)} utterances ({' + '.join(str(len(m)) for m in parts)}), "
          f"{manifest.total_seconds / 3600:.2f} h{', with .wrd/.ltr' if manifest.has_labels else ''}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    manifest = read_manifest(args.manifest, labels=None)
    problems = audit_audio(manifest, progress=True)
    for problem in problems:
        print(problem.describe())
    if problems:
        raise ManifestError(f"{args.manifest}: {len(problems)} of {len(manifest)} entries cannot be used")
    print(f"{args.manifest}: all {len(manifest)} entries readable and of the length the manifest says")
    return 0


def add_commands(commands) -> None:
    p = commands.add_parser("synth", help="generate a synthetic English speech corpus (espeak-ng, flite, festival)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--hours", type=positive_float, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=positive_int, default=None, help="processes (default: all cores)")
    p.add_argument("--engines", default="espeak",
                   help="comma-separated: espeak, flite, festival (default: %(default)s)")
    p.add_argument("--text", nargs="+", help="English text files to take sentences from (default: fortunes)")
    p.add_argument("--sentences", help="one sentence per line, used as written (instead of --text/fortunes)")
    p.add_argument("--valid-utterances", type=positive_int, help="size of the valid split (default: 5%%)")
    p.add_argument("--test-utterances", type=positive_int, help="size of the test split (default: 5%%)")
    p.add_argument("--held-out-voices", help="comma-separated voices heard only in the test split, e.g. "
                   "flite:slt,en-gb+Mike (default: 4 espeak voices and 1 voice of each other engine, drawn by --seed)")
    p.add_argument("--formant-warp", type=warp_range, metavar="LOW,HIGH",
                   help="scale each utterance's formants by a factor drawn in [LOW, HIGH] at unchanged tempo and "
                   "F0, e.g. 1.1,1.25 for female-like versions of male voices (default: none)")
    p.add_argument("--voice-sampling", choices=VOICE_SAMPLING, default="engine",
                   help="engine: each engine speaks an equal share (default); voice: every voice is equally likely, "
                   "so espeak's ~570 outnumber flite's 4 (the plan before the equal shares: it remakes the shipped "
                   "model's first corpus)")
    p.set_defaults(run=run_synth)

    p = commands.add_parser("manifest", help="write fairseq manifests (.tsv/.wrd/.ltr)")
    layouts = p.add_subparsers(dest="layout", required=True)
    q = layouts.add_parser("librispeech", help="labelled manifests of LibriSpeech splits")
    q.add_argument("root", help="LibriSpeech root (holding the split folders)")
    q.add_argument("splits", nargs="+", help="splits, e.g. train-clean-100 dev-clean")
    q.add_argument("--out", required=True)
    q.set_defaults(run=run_librispeech)
    q = layouts.add_parser("folder", help="an unlabelled manifest of every audio file under a folder")
    q.add_argument("root", help="folder of audio files")
    q.add_argument("--out", required=True)
    q.add_argument("--name", default="train", help="manifest name (default: %(default)s)")
    q.set_defaults(run=run_folder)
    q = layouts.add_parser("combine", help="one manifest over several (train on two corpora at once)")
    q.add_argument("manifests", nargs="+", help="two or more .tsv manifests")
    q.add_argument("--out", required=True)
    q.add_argument("--name", default="train", help="manifest name (default: %(default)s)")
    q.set_defaults(run=run_combine)
    q = layouts.add_parser("check", help="read every header: unreadable files and wrong lengths, all listed")
    q.add_argument("manifest")
    q.set_defaults(run=run_check)
