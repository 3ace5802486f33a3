"""The experiment's training stages, each resumable and reused once finished:

    pretrain/<start>-seed<n>   pre-training of a starting point (none for `scratch`)
    warm/<start>-seed<n>       the CTC warm start every arm of that start and seed branches from
    finetune/<arm>-seed<n>     an arm: its curve (validation every `curve_every` updates in log.jsonl) and
                               its test scores (test-<updates>.json) at each milestone

Each stage folder holds stage.json: the updates it reached, its accumulated wall-clock, the commit
that trained it and (arms) a digest of the weights it started from.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import torch

from ..data import read_manifest
from ..errors import TrainingError
from ..files import write_json
from ..formats.load import load
from ..formats.model_folder import save
from ..model.encoder import Encoder
from ..train.finetune import Finetuner
from ..train.growing import grow_upsampler
from ..train.pretrain import Pretrainer
from ..train.recipe import FinetuneRecipe, PretrainRecipe, load_recipe, packaged_recipe
from .arms import STARTS, Arm, Start
from .foreign import foreign_checkpoint
from .plan import ExperimentPlan
from .testing import score_on_test, scores_path

STAGE_FILE = "stage.json"
HERE = Path(__file__).resolve().parent
UPSAMPLER = 8  # every start gets an upsampler for total factors up to 8 before its warm start (the recipe's cap)
# fine-tuning's learning rate: a 50-update warm-up, then constant (a linear decay to 1.0x over a horizon no
# run reaches), so that a longer budget continues a shorter one's arms exactly
HORIZON = 1_000_000
CONSTANT_RATE = ("optim.schedule=linear", "optim.warmup_updates=50", "optim.final_lr_scale=1.0",
                 f"optim.max_updates={HORIZON}")


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=HERE, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def read_stage(run: Path) -> dict:
    path = run / STAGE_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _record(run: Path, updates: int, seconds: float, **extra) -> None:
    """Add one invocation's work to the stage's record (wall-clock accumulates over invocations)."""
    stage = read_stage(run)
    write_json(run / STAGE_FILE, {**stage, **extra, "updates": updates,
                                  "wall_seconds": stage.get("wall_seconds", 0.0) + seconds, "commit": commit()})


def _finished(run: Path, updates: int) -> bool:
    """Whether a fixed-length stage is done; one trained for another number of updates is refused."""
    done = read_stage(run).get("updates", 0)
    if done and done != updates:
        raise TrainingError(f"{run}: this stage was trained for {done} updates, the plan asks for {updates}; "
                            f"use another --out")
    return bool(done)


def weights_digest(module: torch.nn.Module) -> str:
    """A digest of every weight: arms branching from one warm start must start from the same one."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def pretrain_run(plan: ExperimentPlan, start: Start, seed: int) -> Path:
    return plan.out / "pretrain" / f"{start.name}-seed{seed}"


def warm_run(plan: ExperimentPlan, start: Start, seed: int) -> Path:
    return plan.out / "warm" / f"{start.name}-seed{seed}"


def arm_run(plan: ExperimentPlan, arm: Arm, seed: int) -> Path:
    return plan.out / "finetune" / f"{arm.folder}-seed{seed}"


def pretrain(plan: ExperimentPlan, start: Start, seed: int) -> None:
    run, updates = pretrain_run(plan, start, seed), plan.schedule.pretrain_updates
    if start.pretrain is None or _finished(run, updates):
        return
    began = time.perf_counter()
    recipe = load_recipe(packaged_recipe("pretrain_tiny"), [*start.pretrain, f"optim.max_updates={updates}",
                                                          f"run.validate_every={updates}", f"run.seed={seed}"],
                         PretrainRecipe)
    resume = (run / "checkpoints" / "checkpoint_last.safetensors").exists()
    Pretrainer(recipe, plan.data / "train.tsv", plan.data / "valid.tsv", run, resume=resume,
               device=plan.device).train()
    _record(run, updates, time.perf_counter() - began)


def _starting_encoder(plan: ExperimentPlan, start: Start, seed: int) -> Encoder:
    """The start's pre-trained encoder, a checkpoint of another family (HF's classes, random init), or
    (scratch) a fresh one of the same architecture; with an upsampler."""
    if start.family is not None:
        recipe = load_recipe(packaged_recipe("pretrain_tiny"), [f"run.seed={seed}"], PretrainRecipe)
        encoder = foreign_checkpoint(start.family, recipe.model.encoder_config(UPSAMPLER), seed,
                                     plan.out / "checkpoints" / f"{start.name}-seed{seed}")
    elif start.pretrain is None:
        recipe = load_recipe(packaged_recipe("pretrain_tiny"), [f"run.seed={seed}"], PretrainRecipe)
        torch.manual_seed(seed)
        encoder = Encoder(recipe.model.encoder_config(UPSAMPLER))
    else:
        encoder = load(pretrain_run(plan, start, seed))
    return grow_upsampler(encoder, UPSAMPLER)


def _finetune_recipe(overrides: list[str], seed: int, every: int) -> FinetuneRecipe:
    return load_recipe(packaged_recipe("finetune_tiny"),
                       [*overrides, *CONSTANT_RATE, "policy.plain_updates=0", f"run.validate_every={every}",
                        f"run.save_every={every}", f"run.seed={seed}"], FinetuneRecipe)


def warm_start(plan: ExperimentPlan, start: Start, seed: int) -> Path:
    """The CTC warm start of one start and seed (its model folder)."""
    run, updates = warm_run(plan, start, seed), plan.schedule.warm_updates
    if _finished(run, updates):
        return run / "model"
    began = time.perf_counter()
    recipe = _finetune_recipe([*start.finetune, f"policy.fixed={start.warm_setting}"], seed, updates)
    resume = (run / "checkpoints" / "checkpoint_last.safetensors").exists()
    trainer = Finetuner(recipe, _starting_encoder(plan, start, seed), plan.data / "train.tsv",
                        plan.data / "valid.tsv", run, init_source=f"{start.name} start, seed {seed}", resume=resume,
                        device=plan.device)
    trainer.train(max_updates=updates)
    save(trainer.module, run / "model")
    _record(run, updates, time.perf_counter() - began)
    return run / "model"


def arm_milestones(plan: ExperimentPlan, target: int) -> list[int]:
    """Where an arm trained to `target` is tested: the budget's common length, and its own end."""
    return sorted({min(plan.schedule.finetune_updates, target), target})


def finetune_arm(plan: ExperimentPlan, arm: Arm, seed: int, target: int) -> Path:
    """Train one arm of one seed up to `target` updates (continuing what it has), testing at each milestone."""
    run = arm_run(plan, arm, seed)
    done = read_stage(run).get("updates", 0)
    milestones = [m for m in arm_milestones(plan, target) if m > done]
    if not milestones:
        return run
    warm = warm_start(plan, STARTS[arm.start], seed)
    overrides = [*STARTS[arm.start].finetune, *arm.finetune, f"policy.validate={list(arm.trained)}"]
    recipe = _finetune_recipe(overrides, seed,
                              plan.schedule.curve_every)
    resume = (run / "checkpoints" / "checkpoint_last.safetensors").exists()
    trainer = Finetuner(recipe, load(warm), plan.data / "train.tsv", plan.data / "valid.tsv", run,
                        init_source=str(warm.resolve()), resume=resume, device=plan.device)
    if not resume:
        _record(run, 0, 0.0, init_digest=weights_digest(trainer.module), arm=arm.name, seed=seed)
    test = read_manifest(plan.data / "test.tsv", labels=True)
    for milestone in milestones:
        began = time.perf_counter()
        trainer.train(max_updates=milestone)
        seconds = time.perf_counter() - began
        score_on_test(trainer.module, test, arm.test_settings, scores_path(run, milestone))
        _record(run, milestone, seconds)
    save(trainer.module, run / "model")
    return run



__all__ = ["STAGE_FILE", "arm_milestones", "arm_run", "finetune_arm", "pretrain", "pretrain_run", "read_stage",
           "warm_run", "warm_start", "weights_digest"]
