"""`stochw2v pretrain`: the stochastic wav2vec 2.0 pre-training loop.

Each update draws its compression setting from the recipe's policy (the same on every rank),
and all randomness of an update (masks, negatives, Gumbel noise, dropout) is seeded from
(seed, update, rank). With the sampler position in the checkpoint, a resumed run therefore
repeats exactly what an uninterrupted run would have done.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import nn
from tqdm import tqdm

from ..data import AudioDataset, BucketBatchSampler, make_loader, read_manifest
from ..model.compression import Compression
from ..model.encoder import Encoder
from ..model.pretraining import Wav2Vec2Pretraining
from .distributed import DistInfo, init_distributed, ranks_agree
from .optim import make_optimizer, make_scheduler
from .recipe import PretrainRecipe
from .state import BEST, LAST, load_checkpoint, rng_state, save_checkpoint


class TrainingError(RuntimeError):
    pass


@dataclass
class Position:
    """Where the run is: updates done, and batches of the current epoch consumed by this rank."""

    update: int = 0
    epoch: int = 0
    batch: int = 0


def prepare_run_folder(out: Path, recipe: PretrainRecipe, resume: bool, info: DistInfo) -> Path | None:
    """Refuse to mix runs; return the checkpoint to resume from, if any."""
    saved = out / "recipe.yaml"
    last = out / "checkpoints" / LAST
    current = recipe.to_dict()
    if saved.exists():
        before = yaml.safe_load(saved.read_text())
        comparable = lambda d: {**d, "optim": {**d["optim"], "max_updates": None}}  # noqa: E731
        if comparable(before) != comparable(current):
            raise TrainingError(f"{out}: holds a different run (its recipe.yaml differs); choose a new --out")
        if not resume and last.exists():
            raise TrainingError(f"{out}: already holds a run; pass --resume to continue it or choose a new --out")
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        saved.write_text(yaml.safe_dump(current, sort_keys=False))
    return last if resume and last.exists() else None


def seed_update(seed: int, update: int, rank: int) -> torch.Generator:
    """Seed the global RNG (dropout, Gumbel) and return a generator for masks and negatives."""
    value = (seed * 1_000_003 + update * 7_919 + rank * 104_729) % (2**63)
    torch.manual_seed(value)
    return torch.Generator().manual_seed(value + 1)


class Pretrainer:
    def __init__(self, recipe: PretrainRecipe, train_tsv: Path, valid_tsv: Path, out: Path,
                 resume: bool = False, progress: bool = True, device: str | None = None) -> None:
        self.recipe, self.out, self.progress = recipe, Path(out), progress
        self.info = init_distributed(device)
        train_manifest = read_manifest(train_tsv, labels=False)
        valid_manifest = read_manifest(valid_tsv, labels=False)
        resume_from = prepare_run_folder(self.out, recipe, resume, self.info)

        self.seed = recipe.run.seed
        torch.manual_seed(self.seed)
        encoder = Encoder(recipe.model.encoder_config())
        self.module = Wav2Vec2Pretraining(encoder, recipe.task).to(self.info.device)
        self.policy = recipe.policy.policy(self.seed)
        self.policy.check(encoder.config.num_layers, encoder.config.max_upsample)
        self.model: nn.Module = self.module
        if self.info.enabled:
            self.model = nn.parallel.DistributedDataParallel(
                self.module, find_unused_parameters=True,
                device_ids=[self.info.local_rank] if self.info.device.type == "cuda" else None)
        self.optimizer = make_optimizer(self.module, recipe.optim)
        self.scheduler = make_scheduler(self.optimizer, recipe.optim)

        crop = recipe.data.crop or None
        self.train_set = AudioDataset(train_manifest, crop=crop, seed=self.seed)
        self.sampler = BucketBatchSampler(self.train_set.sizes(), recipe.data.max_samples, seed=self.seed,
                                          num_replicas=self.info.world_size, rank=self.info.rank)
        self.valid_set = AudioDataset(valid_manifest, crop=crop, seed=self.seed)
        self.valid_sampler = BucketBatchSampler(self.valid_set.sizes(), recipe.data.max_samples, shuffle=False,
                                                num_replicas=self.info.world_size, rank=self.info.rank)
        self.position, self.best, self.bad_in_row = Position(), math.inf, 0
        self.writer = None
        if resume_from is not None:
            self._restore(load_checkpoint(resume_from))

    # --------------------------------------------------------------- state
    def _state(self) -> dict:
        return {
            "kind": "pretrain",
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "position": vars(self.position).copy(),
            "best": self.best,
            "recipe": self.recipe.to_dict(),
            "encoder_config": self.module.encoder.config.to_dict(),
            "policy": self.policy.to_dict(),
            "rng": rng_state(),
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
        optim = self.recipe.optim
        total = max_updates if max_updates is not None else optim.max_updates
        batches = self._batches()
        if self.info.is_main and self.writer is None:
            self.writer = _tensorboard(self.out / "tensorboard")
        bar = tqdm(total=total, initial=self.position.update, desc="pretrain", unit="upd",
                   disable=not (self.progress and self.info.is_main))
        history: list[dict] = []
        start = time.perf_counter()
        seconds_seen = 0.0
        self.model.train()
        while self.position.update < total:
            update = self.position.update
            setting = self.policy.sample(update)
            # fetch first: starting a DataLoader draws from the global RNG, which is seeded next
            micro_batches = [next(batches).to(self.info.device) for _ in range(optim.update_freq)]
            generator = seed_update(self.seed, update, self.info.rank)
            logs, finite = [], True
            for micro, batch in enumerate(micro_batches):
                seconds_seen += float(batch.lengths.sum()) / 16_000
                sync = micro == optim.update_freq - 1 or not self.info.enabled
                with (contextlib.nullcontext() if sync else self.model.no_sync()), self._autocast():
                    out = self.model(batch.waveforms, batch.lengths, setting, update, generator)
                    finite &= bool(torch.isfinite(out.loss))
                    (out.loss / optim.update_freq).backward()
                logs.append(out)
            if not finite:
                self.optimizer.zero_grad(set_to_none=True)
                self.bad_in_row += 1
                warnings.warn(f"update {update} ({setting}): loss is NaN or inf; update skipped "
                              f"({self.bad_in_row} in a row)", stacklevel=1)
                if self.bad_in_row >= optim.max_bad_updates:
                    raise TrainingError(f"{self.bad_in_row} non-finite losses in a row at update {update}; "
                                        f"stopped. The last good checkpoint is {self.out / 'checkpoints' / LAST}")
                self.position.update += 1
                continue
            self.bad_in_row = 0
            if optim.clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.module.parameters(), optim.clip_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.position.update += 1
            bar.update()
            record = {
                "update": self.position.update, "setting": str(setting),
                "loss": sum(o.loss.item() for o in logs) / len(logs),
                "accuracy": sum(o.accuracy for o in logs) / len(logs),
                "lr": self.scheduler.get_last_lr()[0],
                "audio_s_per_s": seconds_seen / (time.perf_counter() - start),
            }
            history.append(record)
            if self.position.update % self.recipe.run.log_every == 0 or self.position.update == total:
                bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['accuracy']:.2f}", lr=f"{record['lr']:.1e}",
                                s=str(setting))
                self._log("train", record, logs[-1])
            if self.position.update % self.recipe.run.validate_every == 0 or self.position.update == total:
                results = self.validate()
                mean_loss = sum(r["loss"] for r in results.values()) / len(results)
                is_best = mean_loss < self.best
                self.best = min(self.best, mean_loss)
                for name, result in results.items():
                    self._log(f"valid/{name}", result)
                self.save(is_best)
            elif self.position.update % self.recipe.run.save_every == 0:
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
        """Contrastive loss and accuracy on the valid set at every setting of the policy."""
        self.model.eval()
        results = {}
        for setting in settings or self.policy.settings():
            generator = torch.Generator().manual_seed(12345)
            loss = accuracy = frames = 0.0
            self.valid_sampler.set_epoch(0)
            for batch in make_loader(self.valid_set, self.valid_sampler, self.recipe.data.num_workers):
                batch = batch.to(self.info.device)
                with self._autocast():
                    out = self.module(batch.waveforms, batch.lengths, setting, self.position.update, generator)
                loss += out.contrastive * out.masked_frames
                accuracy += out.accuracy * out.masked_frames
                frames += out.masked_frames
            results[str(setting)] = {"loss": loss / frames, "accuracy": accuracy / frames, "frames": frames}
        self.model.train()
        return results

    def _log(self, prefix: str, record: dict, out=None) -> None:
        if self.writer is None:
            return
        for key, value in record.items():
            if isinstance(value, (int, float)) and key != "update":
                self.writer.add_scalar(f"{prefix}/{key}", value, self.position.update)
        if out is not None:
            for key in ("diversity", "feature_penalty", "perplexity", "temperature"):
                self.writer.add_scalar(f"{prefix}/{key}", getattr(out, key), self.position.update)


def _tensorboard(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency; keep training if a user removed it
        warnings.warn("tensorboard is not installed: no TensorBoard logs", stacklevel=1)
        return None
    return SummaryWriter(str(folder))
