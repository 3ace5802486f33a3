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
from typing import Any, Iterator

import torch
from torch import nn
from tqdm import tqdm

from ..audio import SAMPLE_RATE
from ..audio.augment import Augmenter
from ..compute.compression import Compression
from ..data import AudioDataset, Batch, BucketBatchSampler, Manifest, make_loader
from ..errors import ConfigError, TrainingError
from ..formats.checkpoint import CHECKPOINTS, LAST, read_checkpoint, save_checkpoint
from ..formats.run_folder import append_log, prepare_run_folder, tensorboard_writer, truncate_log
from .distributed import init_distributed, ranks_agree, smallest_on_every_rank
from .optim import make_optimizer, make_scheduler
from .usable_data import usable_manifest


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


# distinct primes, so that (seed, update, rank) triples map to distinct seeds (no two ranks or updates share one)
SEED_PRIME, UPDATE_PRIME, RANK_PRIME = 1_000_003, 7_919, 104_729
VALIDATION_SEED = 12345  # validation masks nothing, but draws negatives (pre-training): the same at every validation


@dataclass(frozen=True)
class TimeBudget:
    """The milestones of a wall-clock plan (run.max_minutes), counted in updates since this invocation began:
    the clock starts once half the calibration updates have run (data-loader start-up and each shape's
    first kernels are behind), the first fit comes after `calibration_updates` more, and every validation
    after that refits the plan to the pace so far."""

    calibration_updates: int
    # share of the budget the first fit plans updates into: the rest is for validation, saving and the last
    # batches (the refits measure those instead)
    first_fit_share: float = 0.92

    @property
    def warm_after(self) -> int:
        return self.calibration_updates // 2

    @property
    def first_fit_after(self) -> int:
        return self.warm_after + self.calibration_updates


def seed_update(seed: int, update: int, rank: int) -> torch.Generator:
    """Seed the global RNG (dropout, Gumbel) and return a generator for masks and negatives."""
    value = (seed * SEED_PRIME + update * UPDATE_PRIME + rank * RANK_PRIME) % (2**63)
    torch.manual_seed(value)
    return torch.Generator().manual_seed(value + 1)


class Trainer:
    """Generic loop; subclasses set `kind` and implement build_module, manifests, compute, summarize."""

    kind = "task"
    progress_name = "train"
    best_key = "loss"  # validation number (mean over settings, lower is better) that picks the best checkpoint

    def __init__(self, recipe: Any, out: Path, sources: dict[str, str], resume: bool = False,
                 progress: bool = True, device: str | None = None) -> None:
        self.recipe, self.out, self.progress = recipe, Path(out), progress
        self.info = init_distributed(device)
        self.seed = recipe.run.seed
        self.policy = recipe.policy.build(self.seed)
        torch.manual_seed(self.seed)
        self.module = self.build_module()
        config = self.encoder.config
        self.policy.check(config.num_layers, config.max_upsample)
        config.trained_policy = self.policy.to_dict()  # the model remembers what it was trained on
        self.validation_settings = self._validation_settings()
        self.train_set, self.valid_set = self._datasets()  # checked before anything is written
        resume_from = prepare_run_folder(self.out, recipe.to_dict(), sources, resume, self.info.is_main)
        self.module.to(self.info.device)
        self.model: nn.Module = self.module
        if self.info.enabled:
            self.model = nn.parallel.DistributedDataParallel(
                self.module, find_unused_parameters=True,
                device_ids=[self.info.local_rank] if self.info.device.type == "cuda" else None)
        self.optimizer = make_optimizer(self.module, recipe.optim)
        self.scheduler = make_scheduler(self.optimizer, recipe.optim)
        self.sampler = BucketBatchSampler(self.train_set.sizes(), recipe.data.max_samples, seed=self.seed,
                                          num_replicas=self.info.world_size, rank=self.info.rank)
        self.valid_sampler = BucketBatchSampler(self.valid_set.sizes(), recipe.data.max_samples, shuffle=False)
        self.position, self.best, self.bad_in_row = Position(), float("inf"), 0
        self.writer, self.last_validation = None, {}
        if resume_from is not None:
            self._restore(resume_from)

    # ---------------------------------------------------------- task hooks
    @property
    def encoder(self) -> nn.Module:
        return self.module.encoder

    def manifests(self) -> tuple[Manifest, Manifest]:
        raise NotImplementedError

    def make_dataset(self, manifest: Manifest, train: bool) -> AudioDataset:
        raise NotImplementedError

    def build_module(self) -> nn.Module:
        raise NotImplementedError

    def compute(self, model: nn.Module, batch: Batch, setting: Compression, update: int,
                generator: torch.Generator) -> StepResult:
        raise NotImplementedError

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        """Validation numbers from summed metrics; must include 'loss' and `best_key`."""
        raise NotImplementedError

    def extra_state(self) -> dict:
        return {}

    def check_validation(self, results: dict[str, dict]) -> None:
        """Warn about a run that has gone wrong in a way the loss hides (no-op unless overridden)."""

    # ------------------------------------------------------------- set-up
    def _validation_settings(self) -> list[Compression]:
        num_layers = self.encoder.config.num_layers
        if not self.recipe.policy.validate:
            return self.policy.validation_settings(num_layers)
        settings = [Compression.parse(s) for s in self.recipe.policy.validate]
        for setting in settings:
            if not self.policy.covers(setting, num_layers):
                raise ConfigError(f"policy.validate: {setting} is never drawn by the policy "
                                  f"({self.policy.describe()}); validate only trained settings")
        return settings

    def min_samples(self) -> int:
        """Shortest utterance every trained setting can use: two output positions at the largest factor."""
        config = self.encoder.config
        return config.receptive_field + config.hop * (2 * self.policy.cap - 1)

    def _datasets(self) -> tuple[AudioDataset, AudioDataset]:
        data = self.recipe.data
        shortest = max(data.min_samples, self.min_samples())
        if data.augment:  # speed perturbation may shorten an utterance: keep a margin
            shortest = math.ceil(shortest / Augmenter.from_dict(data.augment).config.slowest_shrink)
        if data.crop is not None and data.crop < shortest:
            raise ConfigError(f"data.crop={data.crop} is shorter than the {shortest} samples an utterance needs "
                              f"at total factor {self.policy.cap}")
        train, valid = self.manifests()
        verbose = self.progress and self.info.is_main
        train = usable_manifest(train, shortest, data.drop_unreadable, verbose)
        valid = usable_manifest(valid, shortest, data.drop_unreadable, verbose)
        return self.make_dataset(train, True), self.make_dataset(valid, False)

    # --------------------------------------------------------------- state
    def save(self, is_best: bool = False) -> None:
        if not self.info.is_main:
            return
        meta = {"kind": self.kind, "position": vars(self.position).copy(), "best": self.best,
                "recipe": self.recipe.to_dict(), "encoder_config": self.encoder.config.to_dict(),
                "policy": self.policy.to_dict(), "scheduler": self.scheduler.state_dict(), **self.extra_state()}
        save_checkpoint(self.out / CHECKPOINTS, self.module.state_dict(), self.optimizer.state_dict(), meta,
                        self.position.update, is_best, self.recipe.run.keep_last)

    def _restore(self, path: Path) -> None:
        checkpoint = read_checkpoint(path)
        try:
            self.module.load_state_dict(checkpoint.model)
            self.optimizer.load_state_dict(checkpoint.optimizer)
        except (RuntimeError, KeyError, ValueError) as error:
            raise TrainingError(f"{path}: does not fit this run's model ({str(error).splitlines()[0]})") from None
        self.scheduler.load_state_dict(checkpoint.meta["scheduler"])
        self.position = Position(**checkpoint.meta["position"])
        self.best = checkpoint.meta["best"]
        if self.info.is_main:  # the updates after this checkpoint are re-run: their log lines go
            truncate_log(self.out, self.position.update)

    # ---------------------------------------------------------------- data
    def _batches(self) -> Iterator[Batch]:
        """Endless batches for this rank, continuing from the saved position."""
        while True:
            self.sampler.set_epoch(self.position.epoch, start_batch=self.position.batch)
            self.train_set.set_epoch(self.position.epoch)
            for batch in make_loader(self.train_set, self.sampler, self.recipe.data.num_workers,
                                     pin_memory=self.info.device.type == "cuda"):
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
        return torch.autocast(self.info.device.type, dtype=torch.bfloat16)

    # ---------------------------------------------------------------- loop
    def train(self, max_updates: int | None = None) -> dict:
        """Run updates until `max_updates` (default: the recipe's); validate and save on schedule."""
        run = self.recipe.run
        total = max_updates if max_updates is not None else self.recipe.optim.max_updates
        batches = self._batches()
        if self.info.is_main and self.writer is None:
            self.writer = tensorboard_writer(self.out / "tensorboard", purge_after=self.position.update)
        bar = tqdm(total=total, initial=self.position.update, desc=self.progress_name, unit="upd",
                   disable=not (self.progress and self.info.is_main))
        history: list[dict] = []
        clock = {"start": time.perf_counter(), "audio": 0.0, "first_update": self.position.update}
        budget = TimeBudget(run.calibration_updates)
        self.model.train()
        while self.position.update < total:
            record = self._update(batches, clock)
            if record is None:
                continue
            done_here = self.position.update - clock["first_update"]
            if run.max_minutes and done_here == budget.warm_after:
                clock["warm"] = time.perf_counter()
            if run.max_minutes and done_here == budget.first_fit_after:
                total = self._fit_budget(total, clock)
                bar.total = total
            bar.update()
            history.append(record)
            done = self.position.update == total
            if self.position.update % run.log_every == 0 or done:
                bar.set_postfix({k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in record.items()
                                 if k not in ("update", "audio_s_per_s", "grad_norm", "elapsed_s", "peak_memory_mb")})
                self._log("train", record)
            if self.position.update % run.validate_every == 0 or done:
                started = time.perf_counter()
                self._validate_and_save(bar)
                clock["validation"] = time.perf_counter() - started
                if run.max_minutes and not done and done_here > budget.first_fit_after:
                    total = self._fit_budget(total, clock, refit=True)
                    bar.total = total
            elif self.position.update % run.save_every == 0:
                self.save()
        bar.close()
        return self._finish(history)

    def _update(self, batches: Iterator[Batch], clock: dict[str, float]) -> dict | None:
        """One optimizer update (with gradient accumulation); None when it had to be skipped."""
        optim, update = self.recipe.optim, self.position.update
        plain = update < self.recipe.policy.plain_updates
        setting = self.policy.plainest() if plain else self.policy.sample(update)
        # fetch first: starting a DataLoader draws from the global RNG, which is seeded next
        micro_batches = [next(batches).to(self.info.device) for _ in range(optim.update_freq)]
        generator = seed_update(self.seed, update, self.info.rank)
        results, finite = [], True
        for micro, batch in enumerate(micro_batches):
            clock["audio"] += float(batch.lengths.sum()) / SAMPLE_RATE
            sync = micro == optim.update_freq - 1 or not self.info.enabled
            with (contextlib.nullcontext() if sync else self.model.no_sync()), self._autocast():
                result = self.compute(self.model, batch, setting, update, generator)
                finite &= bool(torch.isfinite(result.loss))
                (result.loss / optim.update_freq).backward()
            if result.skipped:
                warnings.warn(f"update {update}: left out of the loss: {'; '.join(result.skipped)}", stacklevel=1)
            results.append(result)
        grad_norm = float("nan")
        if finite:  # the norm also catches gradients that overflow while the loss does not
            limit = optim.clip_norm if optim.clip_norm > 0 else float("inf")
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.module.parameters(), limit))
        if not finite or not math.isfinite(grad_norm):
            self._skip(update, setting, "loss" if not finite else "gradient norm")
            return None
        self.bad_in_row = 0
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.position.update += 1
        record = {"update": self.position.update, "setting": str(setting),
                  "loss": sum(r.loss.item() for r in results) / len(results),
                  "lr": self.scheduler.get_last_lr()[0], "grad_norm": grad_norm,
                  "audio_s_per_s": clock["audio"] / (time.perf_counter() - clock["start"]),
                  "elapsed_s": round(time.perf_counter() - clock["start"], 3)}  # wall-clock of this invocation
        if self.info.device.type == "cuda":
            record["peak_memory_mb"] = round(torch.cuda.max_memory_allocated(self.info.device) / 2**20, 1)
        record.update({k: v for k, v in self.summarize(_add_sums(r.sums for r in results)).items() if k != "loss"})
        return record

    def _fit_budget(self, total: int, clock: dict[str, float], refit: bool = False) -> int:
        """Shorten the run (and its schedule, which reads optim.max_updates) to fit run.max_minutes.

        The first fit times the calibration updates and keeps 8% back for validation, saving and the last
        batches. A refit, at each validation, times every update since warm-up, validations included (a
        machine's speed drifts), and keeps the last validation's time for the final one. A plan only shrinks:
        growing it would raise the learning rate again. Every rank follows the smallest plan."""
        run, optim = self.recipe.run, self.recipe.optim
        budget, now = TimeBudget(run.calibration_updates), time.perf_counter()
        if refit:
            timed = self.position.update - clock["first_update"] - budget.warm_after
            left = run.max_minutes * 60 - clock["validation"] - (now - clock["start"])
        else:
            timed = run.calibration_updates
            left = run.max_minutes * 60 * budget.first_fit_share - (now - clock["start"])
        per_update = (now - clock["warm"]) / timed
        planned = min(total, self.position.update + max(0, int(left / per_update)))
        planned = smallest_on_every_rank(planned, self.info)
        if planned < total:
            optim.max_updates = planned
            if self.info.is_main:
                self._log("replan" if refit else "plan", {"max_updates": planned, "seconds_per_update": per_update,
                                                          "budget_minutes": run.max_minutes})
                tqdm.write(f"{self.progress_name}: {per_update:.3f} s per update"
                           f"{', validations included' if refit else ''}; the run ends at update {planned} to "
                           f"fit run.max_minutes={run.max_minutes:g} (the schedule is shortened to match)")
        return planned

    def _skip(self, update: int, setting: Compression, what: str) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.bad_in_row += 1
        warnings.warn(f"update {update} ({setting}): {what} is NaN or inf; update skipped "
                      f"({self.bad_in_row} in a row)", stacklevel=2)
        if self.bad_in_row >= self.recipe.optim.max_bad_updates:
            raise TrainingError(f"{self.bad_in_row} non-finite losses in a row at update {update}; "
                                f"stopped. The last good checkpoint is {self.out / CHECKPOINTS / LAST}")
        self.position.update += 1

    def _validate_and_save(self, bar: tqdm) -> None:
        results = self.validate()
        self.last_validation = results
        score = sum(r[self.best_key] for r in results.values()) / len(results)
        is_best = score < self.best
        self.best = min(self.best, score)
        for name, result in results.items():
            self._log(f"valid/{name}", result)
        self.check_validation(results)
        if self.progress and self.info.is_main:
            bar.write(f"update {self.position.update} valid: " + "; ".join(
                f"{name} " + " ".join(f"{k}={v:.3f}" for k, v in result.items()) for name, result in results.items()))
        self.save(is_best)

    def _finish(self, history: list[dict]) -> dict:
        summary = {"updates": self.position.update, "best": {self.best_key: self.best}, "history": history[-5:],
                   "ranks_agree": ranks_agree(self.module, self.info)}
        if self.info.is_main:
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
            if self.writer is not None:
                self.writer.flush()
        return summary

    @torch.no_grad()
    def validate(self, settings: list[Compression] | None = None) -> dict[str, dict]:
        """Validation metrics at each validation setting (or the given ones), on this rank's view."""
        self.model.eval()
        results = {}
        for setting in settings or self.validation_settings:
            generator = torch.Generator().manual_seed(VALIDATION_SEED)
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
        """log.jsonl and TensorBoard, on rank 0."""
        if not self.info.is_main:
            return
        append_log(self.out, {"update": self.position.update, "split": prefix,
                              **{k: v for k, v in record.items() if k != "update"}})
        if self.writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "update":
                    self.writer.add_scalar(f"{prefix}/{key}", value, self.position.update)


def _add_sums(items) -> dict[str, float]:
    total: dict[str, float] = {}
    for sums in items:
        for key, value in sums.items():
            total[key] = total.get(key, 0.0) + value
    return total


__all__ = ["Position", "StepResult", "Trainer", "seed_update"]
