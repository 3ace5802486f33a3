"""Learning curves from the arms' logs: valid CER per setting against updates and against training
wall-clock, each arm's gap to the specialist at a setting, and whether a curve has flattened."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..formats.run_folder import read_log_entries
from .arms import Arm

FLAT_SPAN = 1000  # updates over which a curve's movement is measured


@dataclass
class Curve:
    updates: np.ndarray
    cer: np.ndarray
    seconds: np.ndarray  # training wall-clock at each point, since the arm branched from its warm start

    def at(self, updates: int) -> float:
        return float(np.interp(updates, self.updates, self.cer))

    def at_seconds(self, seconds: float) -> float:
        return float(np.interp(seconds, self.seconds, self.cer))


def train_clock(entries: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(updates, cumulative seconds) from the train records' `elapsed_s`, which restarts at 0 with each
    invocation (a resumed run, or a budget continued): the restarts are chained."""
    updates, seconds, offset, last = [0], [0.0], 0.0, 0.0
    for entry in entries:
        if entry.get("split") != "train" or "elapsed_s" not in entry:
            continue
        elapsed = float(entry["elapsed_s"])
        if elapsed < last:  # a new invocation
            offset += last
        last = elapsed
        updates.append(int(entry["update"]))
        seconds.append(offset + elapsed)
    return np.array(updates), np.array(seconds)


def valid_curve(run: Path, setting: str) -> Curve | None:
    """The arm's validation CER at `setting`, or None when it has no point there."""
    entries = read_log_entries(run)
    points = sorted({int(e["update"]): float(e["cer"]) for e in entries
                     if e.get("split") == f"valid/{setting}" and "cer" in e}.items())
    if not points:
        return None
    clock_updates, clock_seconds = train_clock(entries)
    updates = np.array([u for u, _ in points])
    return Curve(updates, np.array([c for _, c in points]), np.interp(updates, clock_updates, clock_seconds))


def primary_setting(arm: Arm) -> str:
    """The setting whose curve says whether an arm has flattened: s=1 where it trains it."""
    return "s=1" if "s=1" in arm.trained else arm.trained[0]


def movement_per_1000(curve: Curve | None) -> float | None:
    """How much valid CER moved over the last FLAT_SPAN updates (None: the curve is shorter than that)."""
    if curve is None or curve.updates[-1] - curve.updates[0] < FLAT_SPAN:
        return None
    end = int(curve.updates[-1])
    return (curve.at(end) - curve.at(end - FLAT_SPAN)) * 1000 / FLAT_SPAN


def is_flat(curve: Curve | None, threshold: float) -> bool:
    movement = movement_per_1000(curve)
    return movement is not None and abs(movement) < threshold


__all__ = ["FLAT_SPAN", "Curve", "is_flat", "movement_per_1000", "primary_setting", "train_clock", "valid_curve"]
