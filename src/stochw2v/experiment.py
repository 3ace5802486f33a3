"""`make experiment`: the paper's three claims, tested in miniature on the synthetic corpus.

Arms (same architecture, corpus and number of updates in each stage):

    w2v2        pre-trained and fine-tuned at s=1 only (policy.fixed=s=1; no upsampler)
    sew2, sew4  pre-trained and fine-tuned at s=2 (s=4) only (policy.fixed=s=k)
    squeeze     stochastic squeeze in both stages, no pooling (policy.pooling=false)
    stochastic  stochastic squeeze and pooling in both stages (the recipe as written; its fine-tuning
                runs the first half of its updates at s=1, see Arm.plain_share)
    stoch>s2    the stochastic pre-trained model fine-tuned at s=2 only (and stoch>s4 at s=4)

Every model is evaluated on every setting of EVAL_SETTINGS it can run, on a test split with
voices and sentences never seen in training; WER/CER come with 95% bootstrap intervals and the
claims with paired intervals of their differences. Stages already finished in OUT are reused,
so an interrupted experiment continues where it stopped.
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import time
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path

import torch

from .data import read_manifest
from .data.synth import make_corpus
from .errors import TrainingError
from .evaluate.report import write_results
from .evaluate.tradeoff import (
    Evaluation,
    evaluate_models,
    find_row,
    markdown_table,
    mean_paired_difference,
    paired_difference,
)
from .files import write_json
from .model import Compression, CTCModel
from .sources import load
from .train.finetune import Finetuner
from .train.pretrain import Pretrainer
from .train.recipe import FinetuneRecipe, PretrainRecipe, load_recipe, packaged_recipe

HERE = Path(__file__).resolve().parent
EVAL_SETTINGS = ("s=1", "s=2", "s=3", "s=4", "s=1,kv=2", "s=2,kv=2", "s=1,q3=2", "s=2,q3=2", "s=4,q3=2")


@dataclass(frozen=True)
class Arm:
    name: str
    pretrain: tuple[str, ...]  # recipe overrides of the pre-training stage ("" = stochastic recipe as written)
    pretrain_name: str  # arms that share a pre-trained model share this name
    finetune: tuple[str, ...]
    # share of the fine-tuning updates run at the plainest setting before the draws start
    # (policy.plain_updates): drawn from update 1, the stochastic arms sat on CTC's blank plateau
    # for 1,100 of 1,500 updates at this scale while the fixed arms left it by ~350 (measured)
    plain_share: float = 0.0

    @property
    def folder(self) -> str:
        """The arm's name as a folder name a shell takes as it is ("stoch>s2" -> "stoch-to-s2")."""
        return self.name.replace(">", "-to-")


ARMS = (
    Arm("w2v2", ("policy.fixed=s=1",), "w2v2", ("policy.fixed=s=1",)),
    Arm("sew2", ("policy.fixed=s=2",), "sew2", ("policy.fixed=s=2",)),
    Arm("stochastic", (), "stochastic", (), plain_share=0.5),
    Arm("stoch>s2", (), "stochastic", ("policy.fixed=s=2",)),
    Arm("sew4", ("policy.fixed=s=4",), "sew4", ("policy.fixed=s=4",)),
    Arm("squeeze", ("policy.pooling=false",), "squeeze", ("policy.pooling=false",), plain_share=0.5),
    Arm("stoch>s4", (), "stochastic", ("policy.fixed=s=4",)),
)
CORE = ("w2v2", "sew2", "stochastic", "stoch>s2")  # the arms every seed runs; the others run seed 1 only


@dataclass
class ExperimentPlan:
    out: Path
    hours: float = 2.0
    test_utterances: int = 300
    valid_utterances: int = 100
    seeds: tuple[int, ...] = (1,)
    pretrain_updates: int = 500
    finetune_updates: int = 1500
    arms: tuple[str, ...] = CORE
    all_arms_every_seed: bool = False
    device: str | None = None
    repeats: int = 3
    train_only: bool = False  # train the planned stages and stop: several processes or nodes can split the arms
    parallel: int = 1  # training processes, each with torch's thread count divided among them

    def runs(self) -> list[tuple[Arm, int]]:
        chosen = [a for a in ARMS if a.name in self.arms]
        return [(arm, seed) for seed in self.seeds for arm in chosen
                if seed == self.seeds[0] or self.all_arms_every_seed or arm.name in CORE]


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=HERE, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _done(run: Path, updates: int) -> bool:
    """Whether the stage in `run` finished; one trained for another number of updates is refused,
    so that a changed plan never silently reuses it."""
    path = run / "summary.json"
    summary = json.loads(path.read_text()) if path.exists() else {}
    if summary.get("finished") and summary.get("updates") != updates:
        raise TrainingError(f"{run}: this stage was trained for {summary.get('updates')} updates, the plan asks for "
                            f"{updates}; use another --out")
    return bool(summary.get("finished"))


def _mark_done(run: Path, seconds: float) -> None:
    """Record the stage as finished, with its wall-clock time and the commit that trained it."""
    summary = json.loads((run / "summary.json").read_text())
    write_json(run / "summary.json", {**summary, "finished": True, "wall_seconds": seconds, "commit": _commit()})


def _pretrain(plan: ExperimentPlan, arm: Arm, seed: int, data: Path) -> Path:
    run = plan.out / "pretrain" / f"{arm.pretrain_name}-seed{seed}"
    if _done(run, plan.pretrain_updates):
        return run
    start = time.perf_counter()
    recipe = load_recipe(packaged_recipe("pretrain_tiny"), [*arm.pretrain, f"optim.max_updates={plan.pretrain_updates}",
                                                          f"run.validate_every={plan.pretrain_updates}",
                                                          f"run.seed={seed}"], PretrainRecipe)
    last = run / "checkpoints" / "checkpoint_last.safetensors"
    Pretrainer(recipe, data / "train.tsv", data / "valid.tsv", run, resume=last.exists(),
               device=plan.device).train()
    _mark_done(run, time.perf_counter() - start)
    return run


def _finetune(plan: ExperimentPlan, arm: Arm, seed: int, data: Path, init: Path) -> Path:
    run = plan.out / "finetune" / f"{arm.folder}-seed{seed}"
    if _done(run, plan.finetune_updates):
        return run / "model"
    start = time.perf_counter()
    plain = round(arm.plain_share * plan.finetune_updates)
    recipe = load_recipe(packaged_recipe("finetune_tiny"), [*arm.finetune, f"optim.max_updates={plan.finetune_updates}",
                                                          f"policy.plain_updates={plain}",
                                                          f"run.validate_every={plan.finetune_updates // 3}",
                                                          f"run.seed={seed}"], FinetuneRecipe)
    last = run / "checkpoints" / "checkpoint_last.safetensors"
    trainer = Finetuner(recipe, load(init), data / "train.tsv", data / "valid.tsv", run,
                        init_source=str(init.resolve()), resume=last.exists(), device=plan.device)
    trainer.train()
    trainer.export()
    _mark_done(run, time.perf_counter() - start)
    return run / "model"


def _runnable(model: CTCModel) -> list[Compression]:
    settings = []
    for text in EVAL_SETTINGS:
        try:
            settings.append(model.encoder.config.resolve(text))
        except ValueError:
            continue
    return settings


def _evaluate(plan: ExperimentPlan, models: dict[str, Path], data: Path) -> Evaluation:
    manifest = read_manifest(data / "test.tsv", labels=True)
    device = torch.device(plan.device) if plan.device else torch.device("cpu")
    loaded = {name: load(path).to(device) for name, path in models.items()}
    # one call: every model's passes interleaved, one time base (the first model's first setting). Timed
    # model by model, the first models of the 2026-12-02 run ran 5-25% faster than the same arms later on.
    return evaluate_models(loaded, manifest, {name: _runnable(model) for name, model in loaded.items()},
                           plan.repeats)


def _stage_cost(arm: Arm) -> float:
    """Rough relative cost of one training stage (measured at 1 thread: the plain s=1 arm's stages take
    ~1.5x the others', which run most of their updates on a squeezed sequence)."""
    return 1.5 if arm.name == "w2v2" else 1.0


def _parallel_groups(plan: ExperimentPlan, parts: int) -> list[list[tuple[Arm, int]]]:
    """The unfinished runs split into at most `parts` groups of about equal cost (longest first). Runs
    that share a pre-trained model (stochastic, stoch>s2 of one seed) stay in one group, in plan order,
    so that no two processes ever train one stage."""
    units: dict[tuple[str, int], list[tuple[Arm, int]]] = {}
    for arm, seed in plan.runs():
        units.setdefault((arm.pretrain_name, seed), []).append((arm, seed))
    costs = []
    for (pretrain_name, seed), runs in units.items():
        cost = 0.0 if _done(plan.out / "pretrain" / f"{pretrain_name}-seed{seed}", plan.pretrain_updates) else \
            _stage_cost(runs[0][0])
        cost += sum(_stage_cost(arm) for arm, seed in runs
                    if not _done(plan.out / "finetune" / f"{arm.folder}-seed{seed}", plan.finetune_updates))
        if cost:
            costs.append((cost, runs))
    totals = [0.0] * parts
    groups: list[list[tuple[Arm, int]]] = [[] for _ in range(parts)]
    for cost, runs in sorted(costs, key=lambda c: -c[0]):
        lightest = totals.index(min(totals))
        totals[lightest] += cost
        groups[lightest] += runs
    return [group for group in groups if group]


def _train_run(plan: ExperimentPlan, arm: Arm, seed: int) -> Path:
    """One arm and seed: its pre-training (unless shared and done) and fine-tuning; the model folder."""
    data = plan.out / "data"
    return _finetune(plan, arm, seed, data, _pretrain(plan, arm, seed, data))


def _train_group(plan: ExperimentPlan, runs: list[tuple[str, int]], threads: int, log: Path) -> None:
    """One training process: its runs' stages, its output in its own log (progress bars of several
    processes on one terminal would garble each other)."""
    torch.set_num_threads(threads)
    with open(log, "a", buffering=1) as stream:
        os.dup2(stream.fileno(), 1)
        os.dup2(stream.fileno(), 2)
        arms = {a.name: a for a in ARMS}
        for name, seed in runs:
            _train_run(plan, arms[name], seed)
            print(f"[experiment] {name} seed {seed} trained", flush=True)


def _train_in_parallel(plan: ExperimentPlan) -> None:
    """Train the unfinished stages in plan.parallel processes that split the threads between them (a
    tiny model's small matrices keep 2 threads of one process far from twice one thread's speed);
    the caller then finds every stage done and only evaluates."""
    groups = _parallel_groups(plan, plan.parallel)
    if not groups:
        return
    threads = max(1, torch.get_num_threads() // len(groups))
    logs = plan.out / "logs"
    logs.mkdir(exist_ok=True)
    context = get_context("spawn")
    processes = []
    for index, group in enumerate(groups, 1):
        log = logs / f"train-process{index}.log"
        runs = [(arm.name, seed) for arm, seed in group]
        process = context.Process(target=_train_group, args=(replace(plan, parallel=1), runs, threads, log))
        process.start()
        processes.append((process, log))
        print(f"[experiment] process {index}: " + ", ".join(f"{n} seed {s}" for n, s in runs)
              + f" ({threads} thread(s)); log {log}", flush=True)
    failed = []
    for process, log in processes:
        process.join()
        if process.exitcode != 0:
            failed.append(f"{log} (exit code {process.exitcode})")
    if failed:
        raise TrainingError("a training process failed, see " + "; ".join(failed) +
                            "; finished stages are kept: run the same command again to continue")


def run_experiment(plan: ExperimentPlan) -> Path | None:
    """Corpus, every arm's training, evaluation, claims; writes OUT/EXPERIMENT.md (+ results, plot).

    With plan.train_only it stops after training (returns None): processes that each train some of
    the arms in one OUT, then one invocation with every arm that reuses their stages and evaluates."""
    start = time.perf_counter()
    plan.out.mkdir(parents=True, exist_ok=True)
    data = plan.out / "data"
    if not (data / "corpus.json").exists():
        make_corpus(data, plan.hours, seed=0, workers=2, test_count=plan.test_utterances,
                    valid_count=plan.valid_utterances)
    if plan.parallel > 1:
        _train_in_parallel(plan)
    models: dict[str, Path] = {}
    for arm, seed in plan.runs():
        models[f"{arm.name} seed{seed}"] = _train_run(plan, arm, seed)
        print(f"[experiment] {arm.name} seed {seed} done ({(time.perf_counter() - start) / 60:.1f} min so far)",
              flush=True)
    if plan.train_only:
        return None
    evaluation = _evaluate(plan, models, data)
    write_results(evaluation, plan.out / "evaluate", {"manifest": str(data / "test.tsv")})
    report = experiment_report(plan, evaluation, time.perf_counter() - start)
    (plan.out / "EXPERIMENT.md").write_text(report)
    return plan.out / "EXPERIMENT.md"


def claims_table(evaluation: Evaluation, seeds: tuple[int, ...]) -> str:
    """The three claims as paired differences (stochastic minus specialist), per seed."""
    lines = ["| claim | comparison | seed | CER difference [95% CI] | WER difference [95% CI] |",
             "|---|---|---|---|---|"]
    comparisons = [
        ("2: small loss vs fixed", "stochastic @ s=1 vs w2v2 @ s=1", "w2v2", "stochastic", "s=1", "s=1"),
        ("2: small loss vs fixed", "stochastic @ s=2 vs sew2 @ s=2", "sew2", "stochastic", "s=2", "s=2"),
        ("2: small loss vs fixed", "stochastic @ s=4 vs sew4 @ s=4", "sew4", "stochastic", "s=4", "s=4"),
        ("3: fine-tuning recovers", "stoch>s2 @ s=2 vs sew2 @ s=2", "sew2", "stoch>s2", "s=2", "s=2"),
        ("3: fine-tuning recovers", "stoch>s2 @ s=2 vs stochastic @ s=2", "stochastic", "stoch>s2", "s=2", "s=2"),
        ("3: fine-tuning recovers", "stoch>s4 @ s=4 vs sew4 @ s=4", "sew4", "stoch>s4", "s=4", "s=4"),
        ("pooling", "stochastic @ s=2 vs squeeze @ s=2", "squeeze", "stochastic", "s=2", "s=2"),
    ]
    for claim, text, a, b, sa, sb in comparisons:
        known = evaluation.utterance_counts
        pairs = [(f"{a} seed{seed}", sa, f"{b} seed{seed}", sb) for seed in seeds
                 if f"{a} seed{seed}" in known and f"{b} seed{seed}" in known]
        for ma, _, mb, _ in pairs:
            lines.append(f"| {claim} | {text} | {ma.rsplit('seed', 1)[1]} | "
                         f"{paired_difference(evaluation, ma, sa, mb, sb, 'cer')} | "
                         f"{paired_difference(evaluation, ma, sa, mb, sb, 'wer')} |")
        if len(pairs) > 1:
            lines.append(f"| {claim} | {text} | mean of {len(pairs)} | "
                         f"{mean_paired_difference(evaluation, pairs, 'cer')} | "
                         f"{mean_paired_difference(evaluation, pairs, 'wer')} |")
    return "\n".join(lines)


def seed_noise_table(evaluation: Evaluation, seeds: tuple[int, ...]) -> str:
    """How much two training seeds of one arm differ at the settings it was trained for: the noise
    a single-seed claim cannot see (the claims' intervals hold only the utterances' noise)."""
    lines = ["| arm | setting | " + " | ".join(f"seed {s} CER" for s in seeds) + f" | CER seed {seeds[-1]} - seed "
             f"{seeds[0]} [95% CI] | WER seed {seeds[-1]} - seed {seeds[0]} [95% CI] |",
             "|---|---|" + "---|" * len(seeds) + "---|---|"]
    for arm in ARMS:
        first, last = f"{arm.name} seed{seeds[0]}", f"{arm.name} seed{seeds[-1]}"
        if first not in evaluation.utterance_counts or last not in evaluation.utterance_counts:
            continue
        for row in (r for r in evaluation.rows if r.model == first and r.trained):
            cells = []
            for seed in seeds:
                other = find_row(evaluation, f"{arm.name} seed{seed}", row.setting)
                cells.append("n/a" if other is None else f"{other.cer:.3f}")
            lines.append(f"| {arm.name} | {row.setting} | " + " | ".join(cells) + " | "
                         f"{paired_difference(evaluation, first, row.setting, last, row.setting, 'cer')} | "
                         f"{paired_difference(evaluation, first, row.setting, last, row.setting, 'wer')} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def smoothness_table(evaluation: Evaluation, seeds: tuple[int, ...]) -> str:
    """Claim 1: the stochastic model's error against compute, s=1..4."""
    lines = ["| seed | " + " | ".join(f"s={s} CER / GMACs" for s in range(1, 5)) + " |", "|---|---|---|---|---|"]
    for seed in seeds:
        cells = []
        for s in range(1, 5):
            row = find_row(evaluation, f"stochastic seed{seed}", f"s={s}")
            cells.append("n/a" if row is None else f"{row.cer:.3f} [{row.cer_low:.3f}, {row.cer_high:.3f}] / "
                                                   f"{row.gmacs_per_audio_second:.3f}")
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def stages_table(plan: ExperimentPlan) -> str:
    """Every training stage with its updates, wall-clock minutes and the commit that trained it."""
    lines = ["| stage | updates | wall-clock (min) | commit |", "|---|---|---|---|"]
    total = 0.0
    for stage in ("pretrain", "finetune"):
        for run in sorted((plan.out / stage).glob("*-seed*")):
            summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
            minutes = summary.get("wall_seconds", 0.0) / 60
            total += minutes
            lines.append(f"| {stage} {run.name} | {summary.get('updates', '?')} | {minutes:.1f} | "
                         f"{summary.get('commit', '?')} |")
    lines.append(f"| all training | | {total:.1f} | |")
    return "\n".join(lines)


def experiment_command(plan: ExperimentPlan) -> str:
    arms = "" if set(plan.arms) == set(CORE) else f" --arms {' '.join(shlex.quote(a) for a in plan.arms)}"
    every = " --all-arms-every-seed" if plan.all_arms_every_seed else ""
    return (f"stochw2v experiment --out {plan.out} --hours {plan.hours:g} --test-utterances {plan.test_utterances} "
            f"--valid-utterances {plan.valid_utterances} "
            f"--seeds {' '.join(map(str, plan.seeds))} --pretrain-updates {plan.pretrain_updates} "
            f"--finetune-updates {plan.finetune_updates}{arms}{every} --device {plan.device or 'cpu'} "
            f"--threads {torch.get_num_threads()} --parallel {plan.parallel}"
            f"{'' if plan.repeats == ExperimentPlan.repeats else f' --repeats {plan.repeats}'}")


def _plain_sentence(plan: ExperimentPlan) -> str:
    plain = [f"{arm.name} ({round(arm.plain_share * plan.finetune_updates)})" for arm, seed in plan.runs()
             if arm.plain_share and seed == plan.runs()[0][1]]
    if not plain:
        return ""
    return ("Fine-tuning updates run at s=1 before the stochastic draws start (`policy.plain_updates`): "
            + ", ".join(plain) + ".\n")


def experiment_report(plan: ExperimentPlan, evaluation: Evaluation, seconds: float) -> str:
    runs = plan.runs()
    seeds = tuple(dict.fromkeys(seed for _, seed in runs))
    return f"""# Experiment: the paper's claims in miniature

Generated by `{experiment_command(plan)}` (`make experiment`) at commit `{_commit()}` on
{platform.processor() or platform.machine()}, torch {torch.__version__}; this invocation took {seconds / 60:.0f} min
(stages finished by an earlier, interrupted invocation are reused, not retrained: their times are below).
Runs (arm, seed): {', '.join(f'{arm.name} {seed}' for arm, seed in runs)}.

Corpus: `stochw2v synth --hours {plan.hours:g} --seed 0` (espeak-ng); the test split has {plan.test_utterances}
utterances whose sentences never occur in training and half of whose voices are held out. Every arm: the tiny
architecture (packaged recipes pretrain_tiny and finetune_tiny), {plan.pretrain_updates} pre-training and
{plan.finetune_updates} fine-tuning updates, greedy decoding. Timing protocol: {evaluation.protocol}.
{_plain_sentence(plan)}
## Training stages

{stages_table(plan)}

## Results

{markdown_table(evaluation.rows)}

![trade-off](docs/experiment_tradeoff.png)

## Claim 1: one stochastic model gives a smooth trade-off

{smoothness_table(evaluation, seeds)}

## Claims 2 and 3: differences to specialist models (paired bootstrap over utterances)

Positive numbers mean the first-named model makes more errors.

{claims_table(evaluation, seeds)}
{_seed_noise_section(evaluation, seeds)}"""


def _seed_noise_section(evaluation: Evaluation, seeds: tuple[int, ...]) -> str:
    table = seed_noise_table(evaluation, seeds) if len(seeds) > 1 else ""
    if not table:
        return ""
    return f"""
## Seed-to-seed noise (the same arm trained twice, paired over utterances)

A claim's difference is above the training noise only where it is larger than these.

{table}
"""


__all__ = ["ARMS", "EVAL_SETTINGS", "ExperimentPlan", "experiment_command", "experiment_report", "run_experiment",
           "seed_noise_table", "stages_table"]
