"""Training checkpoints: everything needed to continue a run exactly, written atomically."""
from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..model.checkpoint import atomic_write

LAST, BEST = "checkpoint_last.pt", "checkpoint_best.pt"
_NUMBERED = re.compile(r"checkpoint_(\d+)\.pt$")


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save_checkpoint(folder: Path, state: dict[str, Any], update: int, is_best: bool, keep_last: int) -> Path:
    """checkpoint_{update}.pt plus checkpoint_last.pt (and _best); older numbered ones beyond keep_last go."""
    folder.mkdir(parents=True, exist_ok=True)
    numbered = folder / f"checkpoint_{update:07d}.pt"
    atomic_write(numbered, None, lambda tmp: torch.save(state, tmp))
    atomic_write(folder / LAST, None, lambda tmp: torch.save(state, tmp))
    if is_best:
        atomic_write(folder / BEST, None, lambda tmp: torch.save(state, tmp))
    old = sorted((p for p in folder.iterdir() if _NUMBERED.search(p.name)), key=lambda p: p.name)
    for path in old[:-keep_last] if keep_last > 0 else old:
        path.unlink()
    return numbered


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"{path}: unreadable checkpoint ({error})") from None
