"""The training loop shared by pre-training and fine-tuning: small, readable, resumable.

Each update draws its compression setting from the recipe's policy (the same on every rank),
and all randomness of an update (masks, negatives, Gumbel noise, dropout) is seeded from
(seed, update, rank). With the sampler position in the checkpoint, a resumed run therefore
repeats exactly what an uninterrupted run would have done.

A task subclasses `Trainer` and supplies the module, the datasets and `compute` (the loss of
one batch plus additive metric sums); `summarize` turns summed validation metrics into numbers.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from tqdm import tqdm

from ..data import AudioDataset, BucketBatchSampler, make_loader
from ..model.compression import Compression
from .distributed import init_distributed, ranks_agree
from .optim import make_optimizer, make_scheduler
from .state import LAST, load_checkpoint, rng_state, save_checkpoint


class TrainingError(RuntimeError):
    pass


@dataclass
class Position:
    """Where the run is: updates done, and batches of the current epoch consumed by this rank."""

    update: int = 0
    epoch: int = 0
    batch: int = 0


@dataclass
class StepResult:
    loss: torch.Tensor  # what backward() runs on (already averaged over the batch)
    sums: dict[str, float] = field(default_factory=dict)  # additive metrics, summed over batches
    skipped: list[str] = field(default_factory=list)  # utterance ids left out of the loss, with reason


def _comparable(recipe: dict) -> dict:
    """What must match to continue a run: all but the length and the logging/saving cadence."""
    return {**recipe, "optim": {**recipe["optim"], "max_updates": None}, "run": {"seed": recipe["run"]["seed"]}}


def prepare_run_folder(out: Path, recipe_dict: dict, resume: bool, is_main: bool) -> Path | None:
    """Refuse to mix runs; return the checkpoint to resume from, if any."""
    saved = out / "recipe.yaml"
    last = out / "checkpoints" / LAST
    if saved.exists():
        before = yaml.safe_load(saved.read_text())
        if _comparable(before) != _comparable(recipe_dict):
            raise TrainingError(f"{out}: holds a different run (its recipe.yaml differs); choose a new --out")
        if not resume and last.exists():
            raise TrainingError(f"{out}: already holds a run; pass --resume to continue it or choose a new --out")
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        saved.write_text(yaml.safe_dump(recipe_dict, sort_keys=False))
    return last if resume and last.exists() else None


def seed_update(seed: int, update: int, rank: int) -> torch.Generator:
    """Seed the global RNG (dropout, Gumbel) and return a generator for masks and negatives."""
    value = (seed * 1_000_003 + update * 7_919 + rank * 104_729) % (2**63)
    torch.manual_seed(value)
    return torch.Generator().manual_seed(value + 1)


class Trainer:
    """Generic loop; subclasses set `kind` and implement build_module, datasets, compute, summarize."""

    kind = "task"
    progress_name = "train"

    def __init__(self, recipe: Any, out: Path, resume: bool = False, progress: bool = True,
                 device: str | None = None) -> None:
        self.recipe, self.out, self.progress = recipe, Path(out), progress
        self.info = init_distributed(device)
        self.train_set, self.valid_set = self.datasets()  # validates manifests before anything is written
        resume_from = prepare_run_folder(self.out, recipe.to_dict(), resume, self.info.is_main)

        self.seed = recipe.run.seed
        torch.manual_seed(self.seed)
        self.module = self.build_module().to(self.info.device)
        encoder_config = self.encoder.config
        self.policy = recipe.policy.policy(self.seed)
        self.policy.check(encoder_config.num_layers, encoder_config.max_upsample)
        self.model: nn.Module = self.module
        if self.info.enabled:
            self.model = nn.parallel.DistributedDataParallel(
                self.module, find_unused_parameters=True,
                device_ids=[self.info.local_rank] if self.info.device.type == "cuda" else None)
        self.optimizer = make_optimizer(self.module, recipe.optim)
        self.scheduler = make_scheduler(self.optimizer, recipe.optim)
        max_samples = recipe.data.max_samples
        self.sampler = BucketBatchSampler(self.train_set.sizes(), max_samples, seed=self.seed,
                                          num_replicas=self.info.world_size, rank=self.info.rank)
        self.valid_sampler = BucketBatchSampler(self.valid_set.sizes(), max_samples, shuffle=False)
        self.position, self.best, self.bad_in_row = Position(), float("inf"), 0
        self.writer = None
        if resume_from is not None:
            self._restore(load_checkpoint(resume_from))

    # ---------------------------------------------------------- task hooks
    @property
    def encoder(self) -> nn.Module:
        return self.module.encoder

    def datasets(self) -> tuple[AudioDataset, AudioDataset]:
        raise NotImplementedError

    def build_module(self) -> nn.Module:
        raise NotImplementedError

    def compute(self, model: nn.Module, batch: Any, setting: Compression, update: int,
                generator: torch.Generator) -> StepResult:
        raise NotImplementedError

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        """Validation numbers from summed metrics; must include 'loss' (lower is better)."""
        raise NotImplementedError

    def extra_state(self) -> dict:
        return {}

    def check_validation(self, results: dict[str, dict]) -> None:
        """Warn about a run that has gone wrong in a way the loss hides (no-op unless overridden)."""

    # --------------------------------------------------------------- state
    def _state(self) -> dict:
        return {
            "kind": self.kind,
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "position": vars(self.position).copy(),
            "best": self.best,
            "recipe": self.recipe.to_dict(),
            "encoder_config": self.encoder.config.to_dict(),
            "policy": self.policy.to_dict(),
            "rng": rng_state(),
            **self.extra_state(),
        }

    def _restore(self, state: dict) -> None:
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.position = Position(**state["position"])
        self.best = state["best"]

    def save(self, is_best: bool = False) -> None:
        if self.info.is_main:
            save_checkpoint(self.out / "checkpoints", self._state(), self.position.update, is_best,
                            self.recipe.run.keep_last)

    # ---------------------------------------------------------------- data
    def _batches(self):
        """Endless batches for this rank, continuing from the saved position."""
        while True:
            self.sampler.set_epoch(self.position.epoch, start_batch=self.position.batch)
            self.train_set.set_epoch(self.position.epoch)
            for batch in make_loader(self.train_set, self.sampler, self.recipe.data.num_workers):
                self.position.batch += 1
                yield batch
            self.position.epoch += 1
            self.position.batch = 0

    def _autocast(self):
        precision = self.recipe.optim.precision
        if precision == "auto":
            precision = "bf16" if self.info.device.type == "cuda" else "fp32"
        if precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(self.info.device.type, dtype=dtype)

    # ---------------------------------------------------------------- loop
    def train(self, max_updates: int | None = None) -> dict:
        optim, run = self.recipe.optim, self.recipe.run
        total = max_updates if max_updates is not None else optim.max_updates
        batches = self._batches()
        if self.info.is_main and self.writer is None:
            self.writer = _tensorboard(self.out / "tensorboard")
        bar = tqdm(total=total, initial=self.position.update, desc=self.progress_name, unit="upd",
                   disable=not (self.progress and self.info.is_main))
        history: list[dict] = []
        start, seconds_seen = time.perf_counter(), 0.0
        self.model.train()
        while self.position.update < total:
            update = self.position.update
            setting = self.policy.sample(update)
            # fetch first: starting a DataLoader draws from the global RNG, which is seeded next
            micro_batches = [next(batches).to(self.info.device) for _ in range(optim.update_freq)]
            generator = seed_update(self.seed, update, self.info.rank)
            results, finite = [], True
            for micro, batch in enumerate(micro_batches):
                seconds_seen += float(batch.lengths.sum()) / 16_000
                sync = micro == optim.update_freq - 1 or not self.info.enabled
                with (contextlib.nullcontext() if sync else self.model.no_sync()), self._autocast():
                    result = self.compute(self.model, batch, setting, update, generator)
                    finite &= bool(torch.isfinite(result.loss))
                    (result.loss / optim.update_freq).backward()
                if result.skipped:
                    warnings.warn(f"update {update}: left out of the loss: {'; '.join(result.skipped)}",
                                  stacklevel=1)
                results.append(result)
            grad_norm = float("nan")
            if finite:  # the norm also catches gradients that overflow while the loss does not
                grad_norm = float(torch.nn.utils.clip_grad_norm_(
                    self.module.parameters(), optim.clip_norm if optim.clip_norm > 0 else float("inf")))
            if not finite or not math.isfinite(grad_norm):
                self.optimizer.zero_grad(set_to_none=True)
                self.bad_in_row += 1
                what = "loss" if not finite else "gradient norm"
                warnings.warn(f"update {update} ({setting}): {what} is NaN or inf; update skipped "
                              f"({self.bad_in_row} in a row)", stacklevel=1)
                if self.bad_in_row >= optim.max_bad_updates:
                    raise TrainingError(f"{self.bad_in_row} non-finite losses in a row at update {update}; "
                                        f"stopped. The last good checkpoint is {self.out / 'checkpoints' / LAST}")
                self.position.update += 1
                continue
            self.bad_in_row = 0
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.position.update += 1
            bar.update()
            record = {"update": self.position.update, "setting": str(setting),
                      "loss": sum(r.loss.item() for r in results) / len(results),
                      "lr": self.scheduler.get_last_lr()[0], "grad_norm": grad_norm,
                      "audio_s_per_s": seconds_seen / (time.perf_counter() - start)}
            sums = _add_sums(r.sums for r in results)
            record.update({k: v for k, v in self.summarize(sums).items() if k != "loss"})
            history.append(record)
            done = self.position.update == total
            if self.position.update % run.log_every == 0 or done:
                bar.set_postfix({k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in record.items()
                                 if k not in ("update", "audio_s_per_s", "grad_norm")})
                self._log("train", record)
            if self.position.update % run.validate_every == 0 or done:
                results_by_setting = self.validate()
                mean_loss = sum(r["loss"] for r in results_by_setting.values()) / len(results_by_setting)
                is_best = mean_loss < self.best
                self.best = min(self.best, mean_loss)
                for name, result in results_by_setting.items():
                    self._log(f"valid/{name}", result)
                self.check_validation(results_by_setting)
                if self.progress and self.info.is_main:
                    bar.write(f"update {self.position.update} valid: " + "; ".join(
                        f"{name} " + " ".join(f"{k}={v:.3f}" for k, v in result.items())
                        for name, result in results_by_setting.items()))
                self.save(is_best)
            elif self.position.update % run.save_every == 0:
                self.save()
        bar.close()
        summary = {"updates": self.position.update, "history": history[-5:],
                   "ranks_agree": ranks_agree(self.module, self.info)}
        if self.info.is_main:
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
            if self.writer is not None:
                self.writer.flush()
        return summary

    @torch.no_grad()
    def validate(self, settings: list[Compression] | None = None) -> dict[str, dict]:
        """Validation metrics at every setting of the policy (or the given ones), on rank 0's view."""
        self.model.eval()
        results = {}
        for setting in settings or self.policy.settings():
            generator = torch.Generator().manual_seed(12345)
            self.valid_sampler.set_epoch(0)
            sums: dict[str, float] = {}
            for batch in make_loader(self.valid_set, self.valid_sampler, self.recipe.data.num_workers):
                with self._autocast():
                    result = self.compute(self.module, batch.to(self.info.device), setting,
                                          self.position.update, generator)
                sums = _add_sums([sums, result.sums])
            results[str(setting)] = self.summarize(sums)
        self.model.train()
        return results

    def _log(self, prefix: str, record: dict) -> None:
        """One JSON line per record in log.jsonl (greppable, survives without TensorBoard), and TensorBoard."""
        if not self.info.is_main:
            return
        line = {"update": self.position.update, "split": prefix, **{k: v for k, v in record.items() if k != "update"}}
        with (self.out / "log.jsonl").open("a") as log:
            log.write(json.dumps(line) + "\n")
        if self.writer is None:
            return
        for key, value in record.items():
            if isinstance(value, (int, float)) and key != "update":
                self.writer.add_scalar(f"{prefix}/{key}", value, self.position.update)


def _add_sums(items) -> dict[str, float]:
    total: dict[str, float] = {}
    for sums in items:
        for key, value in sums.items():
            total[key] = total.get(key, 0.0) + value
    return total


def _tensorboard(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency; keep training if a user removed it
        warnings.warn("tensorboard is not installed: no TensorBoard logs", stacklevel=1)
        return None
    return SummaryWriter(str(folder))
