"""Starting, resuming and writing a run folder (the layout is described in `formats/checkpoint.py`).

A run folder is "started" once it holds a checkpoint. Before that it can be re-used by a
corrected command (a failed start never blocks the next one); after that it is only continued,
with --resume, from the same recipe and the same data and initial model.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from ..errors import ConfigError, MissingFileError, TrainingError
from ..files import atomic_write, ensure_writable_folder, read_json, remove_stale_temp_files, write_json
from .checkpoint import CHECKPOINTS, LAST
from .strict_yaml import dump_plain, load_strict

RECIPE_FILE, SOURCES_FILE, LOG_FILE = "recipe.yaml", "run.json", "log.jsonl"


def _comparable(recipe: dict) -> dict:
    """What must match to continue a run: all but the length and the logging/saving cadence."""
    return {**recipe, "optim": {**recipe["optim"], "max_updates": None}, "run": {"seed": recipe["run"].get("seed")},
            "data": {**recipe["data"], "num_workers": None}}


def _read_saved_recipe(path: Path) -> dict:
    try:
        data = load_strict(path.read_text(encoding="utf-8"))
    except (ConfigError, UnicodeDecodeError) as error:
        raise TrainingError(f"{path}: {error}; this folder does not hold a readable run") from None
    if not isinstance(data, dict) or "optim" not in data or "run" not in data:
        raise TrainingError(f"{path}: not a stochw2v recipe; this folder does not hold a readable run")
    return data


def prepare_run_folder(out: Path, recipe: dict, sources: dict[str, str], resume: bool, is_main: bool) -> Path | None:
    """Refuse to mix runs; return the checkpoint to resume from (None for a fresh start)."""
    out = Path(out)
    last = out / CHECKPOINTS / LAST
    started = last.exists()
    if out.exists() and not out.is_dir():
        raise TrainingError(f"{out}: is a file; --out must be a folder")
    if resume and not started:
        raise TrainingError(f"{out}: nothing to resume (no {CHECKPOINTS}/{LAST}); drop --resume to start the run")
    if started:
        _check_same_run(out, recipe, sources, resume)
    if is_main:
        ensure_writable_folder(out, "run folder")
        remove_stale_temp_files(out / CHECKPOINTS)
        atomic_write(out / RECIPE_FILE, dump_plain(recipe).encode())
        write_json(out / SOURCES_FILE, sources)
        if not started and (out / LOG_FILE).exists():
            (out / LOG_FILE).unlink()  # the log of a start that never reached a checkpoint
    return last if started else None


def _check_same_run(out: Path, recipe: dict, sources: dict[str, str], resume: bool) -> None:
    saved = out / RECIPE_FILE
    if not resume:
        raise TrainingError(f"{out}: already holds a run; pass --resume to continue it or choose a new --out")
    if not saved.exists():
        raise TrainingError(f"{out}: holds checkpoints but no {RECIPE_FILE}; cannot check that --resume continues "
                            "the same run")
    if _comparable(_read_saved_recipe(saved)) != _comparable(recipe):
        raise TrainingError(f"{out}: holds a different run (its {RECIPE_FILE} differs); choose a new --out")
    before = read_json(out / SOURCES_FILE, "run sources") if (out / SOURCES_FILE).exists() else {}
    for key, value in sources.items():
        if key in before and before[key] != value:
            raise TrainingError(f"{out}: was started with --{key} {before[key]}, not {value}; resume with the same "
                                f"--{key} or choose a new --out")


def append_log(out: Path, line: dict[str, Any]) -> None:
    """One JSON line per record in log.jsonl (greppable, survives without TensorBoard)."""
    with (Path(out) / LOG_FILE).open("a") as log:
        log.write(json.dumps(line) + "\n")


def truncate_log(out: Path, update: int) -> None:
    """Drop log.jsonl's records past `update` (and lines a kill tore): a resumed run re-runs those
    updates, and its log must read as an uninterrupted run's, not 7, 8, 7, 8."""
    path = Path(out) / LOG_FILE
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("update"), int) and entry["update"] <= update:
            kept.append(line)
    atomic_write(path, "".join(line + "\n" for line in kept).encode())


def read_log_entries(out: Path) -> list[dict[str, Any]]:
    """Every readable line of a run's log.jsonl, in order."""
    path = Path(out) / LOG_FILE
    if not path.exists():
        raise MissingFileError(f"{path}: no training log (is {out} a run folder?)")
    entries = []
    for line in path.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:  # a line torn by a killed run
            continue
    return entries


def read_log(out: Path) -> tuple[list[tuple[int, float]], dict[int, dict[str, dict[str, float]]]]:
    """A run's log.jsonl as (train losses [(update, loss)], validations {update: {setting: metrics}})."""
    losses: list[tuple[int, float]] = []
    validations: dict[int, dict[str, dict[str, float]]] = {}
    for entry in read_log_entries(out):
        if entry.get("split") == "train":
            losses.append((entry["update"], entry["loss"]))
        elif str(entry.get("split", "")).startswith("valid/"):
            metrics = {k: v for k, v in entry.items() if k not in ("update", "split")}
            validations.setdefault(entry["update"], {})[entry["split"].removeprefix("valid/")] = metrics
    return losses, validations


def tensorboard_writer(folder: Path, purge_after: int = 0):
    """A SummaryWriter; on resume (`purge_after` > 0) TensorBoard discards the events logged past that
    update by the run that was stopped, as log.jsonl drops its lines."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency; keep training if a user removed it
        warnings.warn("tensorboard is not installed: no TensorBoard logs", stacklevel=1)
        return None
    return SummaryWriter(str(folder), purge_step=purge_after + 1 if purge_after > 0 else None)


__all__ = ["LOG_FILE", "RECIPE_FILE", "SOURCES_FILE", "append_log", "prepare_run_folder", "read_log",
           "read_log_entries",
           "tensorboard_writer", "truncate_log"]
