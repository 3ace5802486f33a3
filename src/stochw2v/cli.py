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
    from .train.distributed import shutdown_distributed
    from .train.pretrain import Pretrainer, TrainingError
    from .train.recipe import load_recipe

    recipe = load_recipe(args.config, _overrides(args))
    try:
        trainer = Pretrainer(recipe, Path(args.train), Path(args.valid), Path(args.out), resume=args.resume,
                             device=args.device)
        summary = trainer.train()
    except TrainingError as error:
        raise ValueError(str(error)) from None
    if trainer.info.is_main:
        print(f"{args.out}: {summary['updates']} updates; checkpoints in {Path(args.out) / 'checkpoints'}")
        results = trainer.validate()
        print("| setting | valid contrastive loss | valid accuracy | chance | code perplexity |\n|---|---|---|---|---|")
        for name, result in results.items():
            print(f"| {name} | {result['loss']:.3f} | {result['accuracy']:.3f} | {result['chance']:.3f} "
                  f"| {result['perplexity']:.1f} |")
    shutdown_distributed()
    return 0


def _overrides(args: argparse.Namespace) -> list[str]:
    overrides = list(args.set or [])
    if args.max_updates is not None:
        overrides.append(f"optim.max_updates={args.max_updates}")
    if args.seed is not None:
        overrides.append(f"run.seed={args.seed}")
    return overrides


def _finetune(args: argparse.Namespace) -> int:
    from .train.distributed import shutdown_distributed
    from .train.finetune import Finetuner
    from .train.recipe import FinetuneRecipe, load_recipe
    from .train.trainer import TrainingError

    recipe = load_recipe(args.config, _overrides(args), FinetuneRecipe)
    try:
        trainer = Finetuner(recipe, args.init, Path(args.train), Path(args.valid), Path(args.out),
                            resume=args.resume, device=args.device)
        summary = trainer.train()
    except TrainingError as error:
        raise ValueError(str(error)) from None
    if trainer.info.is_main:
        folder = trainer.export()
        print(f"{args.out}: {summary['updates']} updates; recogniser saved to {folder}")
        print("| setting | valid loss | valid WER | valid CER |\n|---|---|---|---|")
        for name, result in trainer.validate().items():
            print(f"| {name} | {result['loss']:.3f} | {result['wer']:.3f} | {result['cer']:.3f} |")
    shutdown_distributed()
    return 0


def _load_recogniser(path: str):
    from .model import load
    from .model.ctc import CTCModel

    model = load(path)
    if not isinstance(model, CTCModel):
        raise ValueError(f"{path}: holds an encoder without a CTC head; fine-tune it first (stochw2v finetune)")
    return model


def _beam_options(args: argparse.Namespace) -> dict | None:
    if not args.beam and not args.lm:
        return None
    return {"beam_width": args.beam or 50, "lm": args.lm, "lm_weight": args.lm_weight,
            "word_bonus": args.word_bonus}


def _transcribe(args: argparse.Namespace) -> int:
    import json
    import time

    import torch

    from .audio import load_audio
    from .evaluate.decoding import BeamDecoder

    torch.set_num_threads(args.threads)
    model = _load_recogniser(args.model)
    setting = model.encoder.resolve(args.compression)
    beam = _beam_options(args)
    decoder = BeamDecoder(model.vocabulary, **beam) if beam else None
    audio = {path: load_audio(path) for path in args.audio}  # every file is checked before any work
    with torch.inference_mode():  # warm-up, so that the first file's timing is not the allocator's
        model(torch.from_numpy(next(iter(audio.values()))), compression=setting)
    for path, samples in audio.items():
        wave = torch.from_numpy(samples)
        start = time.perf_counter()
        with torch.inference_mode():
            out = model(wave, compression=setting)
            text = decoder(out.logits, out.lengths)[0] if decoder else model.transcribe(wave, compression=setting)[0]
        seconds = time.perf_counter() - start
        if args.json:
            print(json.dumps({"file": path, "text": text, "compression": str(setting), "seconds": round(seconds, 4),
                              "audio_seconds": round(len(samples) / 16000, 3),
                              "rtf": round(seconds / (len(samples) / 16000), 4)}))
        else:
            print(f"{path}\t{text}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import torch

    from .data import read_manifest
    from .evaluate.profile import parse_settings
    from .evaluate.tradeoff import evaluate_models, markdown_table, write_results

    torch.set_num_threads(args.threads)
    *model_paths, manifest_path = args.paths
    if not model_paths:
        raise ValueError("give at least one model before the manifest: stochw2v evaluate MODEL... MANIFEST")
    manifest = read_manifest(manifest_path, labels=True)
    names = [Path(p).name if Path(p).name != "model" else Path(p).parent.name for p in model_paths]
    if len(set(names)) != len(names):
        names = model_paths
    models = {name: _load_recogniser(p) for name, p in zip(names, model_paths)}
    settings = parse_settings(args.compression) if args.compression else None
    rows, hypotheses = evaluate_models(models, manifest, settings, args.repeats, beam=_beam_options(args))
    out = Path(args.out)
    write_results(rows, hypotheses, out, {"manifest": str(manifest_path), "threads": args.threads})
    print(markdown_table(rows))
    print(f"\nwrote {out / 'results.json'}, {out / 'results.md'} and {out / 'tradeoff.png'}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(Path(args.out), hours=args.hours, pretrain_updates=args.pretrain_updates,
                    finetune_updates=args.finetune_updates)


def _add_beam_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--beam", type=int, default=0, help="beam width (default: greedy decoding)")
    p.add_argument("--lm", help="KenLM n-gram model (ARPA or binary) for beam search")
    p.add_argument("--lm-weight", type=float, default=0.5)
    p.add_argument("--word-bonus", type=float, default=1.0)


def _add_training_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-updates", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--set", action="extend", nargs="+", metavar="KEY.PATH=VALUE",
                   help="override recipe fields: --set optim.lr=1e-3 task.mask_prob=0.5")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")


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
    p.add_argument("--out", required=True, help="run folder: recipe.yaml, checkpoints/, log.jsonl, tensorboard/")
    _add_training_arguments(p)
    p.set_defaults(run=_pretrain)

    p = commands.add_parser("finetune", help="CTC fine-tuning (torchrun for several ranks)")
    p.add_argument("--init", required=True, help="pre-training run, model folder, or HF Wav2Vec2/SEW folder")
    p.add_argument("--config", help="recipe YAML (configs/finetune_tiny.yaml, configs/finetune_base_10h.yaml)")
    p.add_argument("--train", required=True, help="labelled training manifest (.tsv with .wrd)")
    p.add_argument("--valid", required=True, help="labelled validation manifest")
    p.add_argument("--out", required=True, help="run folder; the recogniser is written to OUT/model")
    _add_training_arguments(p)
    p.set_defaults(run=_finetune)

    p = commands.add_parser("transcribe", help="transcribe audio files")
    p.add_argument("model", help="recogniser folder or fine-tuning run")
    p.add_argument("audio", nargs="+")
    p.add_argument("--compression", default=None, help="setting, e.g. s=2 (default: the model's)")
    p.add_argument("--json", action="store_true", help="JSON lines with timing")
    p.add_argument("--threads", type=int, default=2)
    _add_beam_arguments(p)
    p.set_defaults(run=_transcribe)

    p = commands.add_parser("evaluate", help="WER / CER / time / MACs per setting, table and plot")
    p.add_argument("paths", nargs="+", metavar="MODEL... MANIFEST", help="one or more models, then a manifest")
    p.add_argument("--compression", help="settings separated by ';' (default: s=1..4 and the trained ones)")
    p.add_argument("--out", required=True)
    p.add_argument("--repeats", type=int, default=1, help="timed passes per setting, interleaved")
    p.add_argument("--threads", type=int, default=2)
    _add_beam_arguments(p)
    p.set_defaults(run=_evaluate)

    p = commands.add_parser("demo", help="synthesise, pre-train, fine-tune and evaluate, all on the CPU")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--hours", type=float, default=1.0, help="synthetic speech to make")
    p.add_argument("--pretrain-updates", type=int, default=600)
    p.add_argument("--finetune-updates", type=int, default=1800)
    p.set_defaults(run=_demo)

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
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"stochw2v {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
