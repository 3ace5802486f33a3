"""`stochw2v pretrain`, `finetune` and `demo`: the training stages."""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..demo import DEMO_MINUTES
from ..demo import run_demo as demo
from ..experiment import ARMS, BUDGETS, CORE, ExperimentPlan, run_experiment
from ..train.distributed import shutdown_distributed
from ..train.finetune import Finetuner
from ..train.pretrain import Pretrainer
from ..train.recipe import FinetuneRecipe, PretrainRecipe, load_recipe
from .common import load_model, positive_float, positive_int, resolve_device


def _overrides(args: argparse.Namespace) -> list[str]:
    overrides = list(args.set or [])
    if args.max_updates is not None:
        overrides.append(f"optim.max_updates={args.max_updates}")
    if args.seed is not None:
        overrides.append(f"run.seed={args.seed}")
    return overrides


def _device(args: argparse.Namespace) -> str | None:
    """The device to train on; on a GPU the main process only feeds it, so unless --threads says
    otherwise it keeps 2 CPU threads and leaves the cores to the data-loader workers (with all
    cores, its small CPU tensor operations contended with the workers and ran 3-5x slower)."""
    device = resolve_device(args.device)
    if device.type == "cuda" and not args.threads:
        torch.set_num_threads(2)
    return None if args.device is None else str(device)


def run_pretrain(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = load_recipe(args.config, _overrides(args), PretrainRecipe)
    trainer = Pretrainer(recipe, Path(args.train), Path(args.valid), Path(args.out), resume=args.resume,
                         device=_device(args))
    summary = trainer.train()
    if trainer.info.is_main:
        print(f"{args.out}: {summary['updates']} updates; checkpoints in {Path(args.out) / 'checkpoints'}")
        print("| setting | valid contrastive loss | valid accuracy | chance | code perplexity |\n|---|---|---|---|---|")
        for name, result in (trainer.last_validation or trainer.validate()).items():
            print(f"| {name} | {result['loss']:.3f} | {result['accuracy']:.3f} | {result['chance']:.3f} "
                  f"| {result['perplexity']:.1f} |")
    shutdown_distributed()
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = load_recipe(args.config, _overrides(args), FinetuneRecipe)
    init = load_model(args.init)
    trainer = Finetuner(recipe, init, Path(args.train), Path(args.valid), Path(args.out),
                        init_source=str(Path(args.init).resolve()), resume=args.resume, device=_device(args))
    summary = trainer.train()
    if trainer.info.is_main:
        folder = trainer.export()
        print(f"{args.out}: {summary['updates']} updates; best-WER recogniser saved to {folder}")
        print("| setting | valid loss | valid WER | valid CER |\n|---|---|---|---|")
        for name, result in (trainer.last_validation or trainer.validate()).items():
            print(f"| {name} | {result['loss']:.3f} | {result['wer']:.3f} | {result['cer']:.3f} |")
    shutdown_distributed()
    return 0


def run_demo(args: argparse.Namespace) -> int:
    return demo(Path(args.out), hours=args.hours, pretrain_updates=args.pretrain_updates,
                finetune_updates=args.finetune_updates, minutes=args.minutes)


BUDGET_FLAGS = ("pretrain_updates", "warm_updates", "finetune_updates", "long_updates", "max_updates", "curve_every")


def run_experiment_command(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    overrides = {key: getattr(args, key) for key in BUDGET_FLAGS if getattr(args, key) is not None}
    plan = ExperimentPlan(Path(args.out), args.budget, tuple(args.seeds), tuple(args.arms), args.hours,
                          args.test_utterances, args.valid_utterances, str(device), args.parallel, args.train_only,
                          overrides)
    report = run_experiment(plan)
    if report is None:
        print(f"trained the planned stages in {plan.out}; run it again without --train-only for the report")
        return 0
    print(report.read_text())
    print(f"wrote {report}")
    return 0


def _add_training_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-updates", type=positive_int)
    p.add_argument("--seed", type=int)
    p.add_argument("--set", action="extend", nargs="+", metavar="KEY.PATH=VALUE",
                   help="override recipe fields: --set optim.lr=1e-3 task.mask_prob=0.5")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--threads", type=positive_int, help="torch intra-op threads (default: torch's)")


def add_commands(commands) -> None:
    p = commands.add_parser("pretrain", help="stochastic wav2vec 2.0 pre-training (torchrun for several ranks)")
    p.add_argument("--config", help="recipe YAML, or a packaged one by name: pretrain_tiny, pretrain_base")
    p.add_argument("--train", required=True, help="training manifest (.tsv)")
    p.add_argument("--valid", required=True, help="validation manifest (.tsv)")
    p.add_argument("--out", required=True, help="run folder: recipe.yaml, checkpoints/, log.jsonl, tensorboard/")
    _add_training_arguments(p)
    p.set_defaults(run=run_pretrain)

    p = commands.add_parser("finetune", help="CTC fine-tuning (torchrun for several ranks)")
    p.add_argument("--init", required=True, help="pre-training run, model folder, or HF Wav2Vec2/HuBERT/SEW folder")
    p.add_argument("--config", help="recipe YAML, or a packaged one by name: finetune_tiny, finetune_base_10h")
    p.add_argument("--train", required=True, help="labelled training manifest (.tsv with .wrd)")
    p.add_argument("--valid", required=True, help="labelled validation manifest")
    p.add_argument("--out", required=True, help="run folder; the best-WER recogniser is written to OUT/model")
    _add_training_arguments(p)
    p.set_defaults(run=run_finetune)

    p = commands.add_parser("experiment", help="the paper's claims on learning curves in miniature: shared warm "
                                               "starts, every arm, 3 seeds, EXPERIMENT.md")
    p.add_argument("--out", default="runs/experiment")
    p.add_argument("--budget", default="short", choices=list(BUDGETS),
                   help="short: every arm to 600 updates (make experiment, core arms, < 2 h on 2 cores); long: the "
                        "core arms on until their curves flatten, continuing a short run's stages")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--arms", nargs="+", default=list(CORE), choices=[a.name for a in ARMS],
                   help="default: the core arms %(default)s; the others: w2v2, sew2, w2v2>stoch, scratch")
    p.add_argument("--hours", type=positive_float, default=2.0, help="synthetic speech to make")
    p.add_argument("--test-utterances", type=positive_int, default=300)
    p.add_argument("--valid-utterances", type=positive_int, default=100)
    for flag in BUDGET_FLAGS:
        p.add_argument(f"--{flag.replace('_', '-')}", type=positive_int, help="override the budget's value")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=positive_int, default=2)
    p.add_argument("--parallel", type=positive_int, default=2,
                   help="training processes that split --threads between them, each stage logging to OUT/logs/ "
                        "(make experiment: 2 processes of 1 thread on 2 cores)")
    p.add_argument("--train-only", action="store_true",
                   help="train the planned stages, skip the report: several invocations can share one --out")
    p.set_defaults(run=run_experiment_command)

    p = commands.add_parser("demo", help="synthesise, pre-train, fine-tune and evaluate, all on the CPU")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--hours", type=float, default=1.0, help="synthetic speech to make")
    # sized for 15 minutes on 2 cores with set-up (600 + 1,800 updates took 20 min, 300 + 1,400 15.7): the
    # model it trains is weak (valid CER 0.5-0.7 at s=1) but off CTC's blank plateau; the shipped one is the good one
    p.add_argument("--pretrain-updates", type=positive_int, default=300)
    p.add_argument("--finetune-updates", type=positive_int, default=1300)
    p.add_argument("--minutes", type=positive_float, default=DEMO_MINUTES,
                   help="time for the whole demo: on a slow machine fine-tuning stops early to keep it (the "
                        "schedule shortened to fit, as run.max_minutes does); on ours it does not bind")
    p.set_defaults(run=run_demo)
