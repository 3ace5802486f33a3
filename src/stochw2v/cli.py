"""The `stochw2v` command line: one subcommand per stage of the pipeline."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence


def _profile(args: argparse.Namespace) -> int:
    import torch

    from .evaluate.profile import format_table, parse_settings, preset, profile
    from .model import Encoder, count_parameters, load

    torch.set_num_threads(args.threads)
    model = load(args.model) if args.model else Encoder(preset(args.size))
    settings = parse_settings(args.compression)
    source = args.model or f"random-weight {args.size} encoder"
    print(f"{source}: {count_parameters(model) / 1e6:.1f}M parameters, {args.seconds:g} s of audio, "
          f"batch 1, {args.threads} threads, median of {args.repeats}")
    rows = profile(model, settings, args.seconds, args.repeats)
    print(format_table(rows, args.seconds))
    return 0


def _export_hf(args: argparse.Namespace) -> int:
    from .model import export_hf, load

    out = export_hf(load(args.model), args.out, args.compression)
    print(f"wrote a HF transformers model to {out}")
    return 0


def _synth(args: argparse.Namespace) -> int:
    import os

    from .data.synth import SynthError, make_corpus

    workers = args.workers or os.cpu_count() or 1
    try:
        summary = make_corpus(args.out, args.hours, args.seed, workers,
                              [Path(p) for p in args.text] if args.text else None)
    except SynthError as error:
        raise ValueError(str(error)) from None
    print(f"{args.out}: {summary['audio_seconds'] / 3600:.2f} h of speech in {summary['wall_seconds']} s "
          f"({summary['audio_seconds_per_second']} audio s/s, {workers} processes)")
    for split, info in summary["splits"].items():
        print(f"  {split:5s}: {info['utterances']:5d} utterances, {info['seconds'] / 60:6.1f} min, "
              f"{info['sentences']} sentences, {len(summary['voices'][split])} voices")
    return 0


def _manifest(args: argparse.Namespace) -> int:
    from .data.librispeech import folder_manifest, librispeech_manifest

    out = Path(args.out)
    if args.layout == "librispeech":
        if not args.splits:
            raise ValueError("name at least one split, e.g. train-clean-100")
        for split in args.splits:
            manifest = librispeech_manifest(args.root, split)
            tsv = manifest.write(out / f"{split}.tsv")
            print(f"{tsv}: {len(manifest)} utterances, {manifest.total_seconds / 3600:.2f} h, with .wrd/.ltr")
    else:
        manifest = folder_manifest(args.root)
        name = args.name or "train"
        tsv = manifest.write(out / f"{name}.tsv")
        print(f"{tsv}: {len(manifest)} unlabelled files, {manifest.total_seconds / 3600:.2f} h")
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from .train.pretrain import Pretrainer, TrainingError
    from .train.recipe import load_recipe

    overrides = list(args.set or [])
    if args.max_updates is not None:
        overrides.append(f"optim.max_updates={args.max_updates}")
    if args.seed is not None:
        overrides.append(f"run.seed={args.seed}")
    recipe = load_recipe(args.config, overrides)
    try:
        trainer = Pretrainer(recipe, Path(args.train), Path(args.valid), Path(args.out), resume=args.resume,
                             device=args.device)
        summary = trainer.train()
    except TrainingError as error:
        raise ValueError(str(error)) from None
    if trainer.info.is_main:
        print(f"{args.out}: {summary['updates']} updates; checkpoints in {Path(args.out) / 'checkpoints'}")
        results = trainer.validate()
        print("| setting | valid contrastive loss | valid accuracy |\n|---|---|---|")
        for name, result in results.items():
            print(f"| {name} | {result['loss']:.3f} | {result['accuracy']:.3f} |")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stochw2v", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("profile", help="MACs and measured time of each compression setting")
    p.add_argument("--model", help="model folder (ours or HF); default: random weights of --size")
    p.add_argument("--size", default="base", help="base, large or tiny (default: base)")
    p.add_argument("--compression", default="s=1;s=2;s=3;s=4;s=2,kv=2;s=2,q7=2;s=4,q7=2",
                   help="settings separated by ';' (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(run=_profile)

    p = commands.add_parser("synth", help="generate a synthetic English speech corpus with espeak-ng")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--hours", type=float, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    p.add_argument("--text", nargs="*", help="English text files to take sentences from (default: fortunes)")
    p.set_defaults(run=_synth)

    p = commands.add_parser("manifest", help="write fairseq manifests (.tsv/.wrd/.ltr)")
    p.add_argument("layout", choices=["librispeech", "folder"])
    p.add_argument("root", help="LibriSpeech root (holding the split folders) or a folder of audio")
    p.add_argument("splits", nargs="*", help="LibriSpeech splits, e.g. train-clean-100 dev-clean")
    p.add_argument("--out", required=True)
    p.add_argument("--name", help="manifest name for 'folder' (default: train)")
    p.set_defaults(run=_manifest)

    p = commands.add_parser("pretrain", help="stochastic wav2vec 2.0 pre-training (torchrun for several ranks)")
    p.add_argument("--config", help="recipe YAML (configs/pretrain_tiny.yaml, configs/pretrain_base.yaml)")
    p.add_argument("--train", required=True, help="training manifest (.tsv)")
    p.add_argument("--valid", required=True, help="validation manifest (.tsv)")
    p.add_argument("--out", required=True, help="run folder: recipe.yaml, checkpoints/, tensorboard/")
    p.add_argument("--max-updates", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--set", action="append", metavar="KEY.PATH=VALUE", help="override any recipe field")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.set_defaults(run=_pretrain)

    p = commands.add_parser("export-hf", help="write one fixed setting as a HF Wav2Vec2/SEW folder")
    p.add_argument("model")
    p.add_argument("--out", required=True)
    p.add_argument("--compression", default=None, help="fixed setting to export (default: the model's)")
    p.set_defaults(run=_export_hf)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"stochw2v {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
