"""The run folder: what a training run writes, and how it is read back without running code.

    RUN/recipe.yaml                 the recipe, as run
    RUN/run.json                    what the run was started from (manifests, init), compared on --resume
    RUN/checkpoints/checkpoint_0000100.safetensors   numbered, the newest `keep_last` kept
    RUN/checkpoints/checkpoint_last.safetensors      the newest
    RUN/checkpoints/checkpoint_best.safetensors      best validation (pre-training: loss; CTC: WER)
    RUN/log.jsonl, RUN/tensorboard/, RUN/summary.json
    RUN/model/                      fine-tuning: the best recogniser as a model folder

A checkpoint is one safetensors file: the module's tensors under `model/`, the optimizer's under
`optimizer/`, and everything else (position, recipe, encoder config, scheduler, vocabulary) as
JSON metadata. Nothing in it is a pickle, so reading a run folder cannot run code. Each update
reseeds every random generator from (seed, update, rank), so no RNG state needs saving.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from ..errors import MissingFileError, ModelFileError, UnsafeFileError
from ..files import atomic_copy, read_tensors, write_tensors

CHECKPOINTS = "checkpoints"
LAST, BEST = "checkpoint_last.safetensors", "checkpoint_best.safetensors"
FORMAT = "stochw2v-checkpoint"
_NUMBERED = re.compile(r"^checkpoint_(\d+)\.safetensors$")
_LEGACY = ("checkpoint_last.pt", "checkpoint_best.pt")


@dataclass
class Checkpoint:
    """A checkpoint as read back: the module and optimizer state, and the JSON metadata."""

    model: dict[str, Tensor]
    optimizer: dict[str, Any] | None
    meta: dict[str, Any]
    path: Path


# ------------------------------------------------------------------ writing
def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    tensors, values = {}, {}
    for index, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"optimizer/{index}/{name}"] = value
            else:
                values.setdefault(str(index), {})[name] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items()}
              for group in state["param_groups"]]
    return tensors, {"param_groups": groups, "values": values}


def save_checkpoint(folder: Path, model_state: dict[str, Tensor], optimizer_state: dict[str, Any],
                    meta: dict[str, Any], update: int, is_best: bool, keep_last: int) -> Path:
    """checkpoint_{update}, then last (and best) as atomic links to it; prune old numbered ones."""
    tensors = {f"model/{k}": v for k, v in model_state.items()}
    optimizer_tensors, optimizer_meta = _flatten_optimizer(optimizer_state)
    tensors.update(optimizer_tensors)
    numbered = Path(folder) / f"checkpoint_{update:07d}.safetensors"
    write_tensors(numbered, tensors, {"format": FORMAT, "version": 2, **meta, "optimizer": optimizer_meta})
    atomic_copy(numbered, Path(folder) / LAST)
    if is_best:
        atomic_copy(numbered, Path(folder) / BEST)
    old = sorted(p for p in Path(folder).iterdir() if _NUMBERED.match(p.name))
    for path in old[:-keep_last] if keep_last > 0 else old:
        path.unlink()
    return numbered


# ------------------------------------------------------------------ reading
def read_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint file; a legacy pickled `.pt` is refused, never unpickled."""
    path = Path(path)
    if path.suffix == ".pt":
        raise UnsafeFileError(f"{path}: a pickled checkpoint (stochw2v before 0.2, or another tool's); it is "
                              "not loaded because unpickling can run code. Re-run training to get "
                              "safetensors checkpoints")
    tensors, meta = read_tensors(path, with_metadata=True)
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a stochw2v training checkpoint (no '{FORMAT}' metadata)")
    model = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    optimizer = None
    if "optimizer" in meta:
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer/"):
                _, index, name = key.split("/", 2)
                state.setdefault(int(index), {})[name] = value
        for index, values in meta["optimizer"].get("values", {}).items():
            state.setdefault(int(index), {}).update(values)
        optimizer = {"state": state, "param_groups": meta["optimizer"]["param_groups"]}
    return Checkpoint(model, optimizer, meta, path)


def checkpoint_path(run: Path, which: str = "last") -> Path:
    """RUN/checkpoints/checkpoint_{which}.safetensors, or a clear error (legacy pickles refused)."""
    folder = Path(run) / CHECKPOINTS
    path = folder / (LAST if which == "last" else BEST)
    if path.exists():
        return path
    for legacy in _LEGACY:
        if (folder / legacy).exists():
            read_checkpoint(folder / legacy)  # raises UnsafeFileError naming the file
    raise MissingFileError(f"{run}: no {path.name} in {folder}")


def is_run_folder(path: Path) -> bool:
    folder = Path(path) / CHECKPOINTS
    return folder.is_dir() and any((folder / name).exists() for name in (LAST, BEST) + _LEGACY)


def model_checkpoint(run: Path) -> Checkpoint:
    """The checkpoint a run's model is taken from: best-WER for fine-tuning (fairseq selects
    fine-tuned models by dev WER), the last one for pre-training."""
    last = read_checkpoint(checkpoint_path(run, "last"))
    if last.meta.get("kind") == "finetune" and (Path(run) / CHECKPOINTS / BEST).exists():
        return read_checkpoint(checkpoint_path(run, "best"))
    return last


__all__ = ["BEST", "CHECKPOINTS", "Checkpoint", "LAST", "checkpoint_path", "is_run_folder", "model_checkpoint",
           "read_checkpoint", "save_checkpoint"]
