"""What each compression setting costs and earns on one machine, and the setting a budget affords.

A `Profile` (written by `stochw2v profile MODEL --out PROFILE.json`) lists, per trained setting,
the measured real-time factor (encoder seconds per audio second) at each profiled batch size, the
MACs per audio second, and, when an evaluation was given, the WER and CER. `pick` returns the
most accurate setting that fits a budget; if none fits, the cheapest one, flagged.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ModelFileError
from ..files import read_json, write_json
from .compression import Compression


@dataclass
class SettingCost:
    setting: str
    rtf: dict[int, float]  # batch size -> encoder seconds per audio second
    gmacs_per_audio_second: float
    wer: float | None = None
    cer: float | None = None
    pareto: bool = True

    def rtf_at(self, batch: int) -> float:
        """RTF at `batch`, interpolated linearly in batch size between the profiled ones."""
        sizes = sorted(self.rtf)
        if batch <= sizes[0]:
            return self.rtf[sizes[0]]
        for low, high in zip(sizes, sizes[1:]):
            if batch <= high:
                share = (batch - low) / (high - low)
                return self.rtf[low] * (1 - share) + self.rtf[high] * share
        return self.rtf[sizes[-1]]

    @property
    def error(self) -> float:
        """What 'most accurate' ranks by: WER, else CER, else more compute is assumed better."""
        if self.wer is not None:
            return self.wer
        if self.cer is not None:
            return self.cer
        return -self.gmacs_per_audio_second


@dataclass
class Choice:
    setting: Compression
    cost: SettingCost
    fits: bool  # False: no setting met the budget; the cheapest one was taken


@dataclass
class Profile:
    settings: list[SettingCost]
    device: str = "cpu"
    threads: int = 1
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.settings:
            raise ConfigError("a profile needs at least one setting")
        mark_pareto(self.settings)

    # ------------------------------------------------------------- choice
    def by_accuracy(self) -> list[SettingCost]:
        """Pareto-optimal settings, most accurate first."""
        return sorted((s for s in self.settings if s.pareto), key=lambda s: (s.error, s.gmacs_per_audio_second))

    def cheapest(self, batch: int = 1) -> SettingCost:
        return min(self.settings, key=lambda s: (s.rtf_at(batch), s.gmacs_per_audio_second))

    def pick(self, rtf: float | None = None, gmacs: float | None = None, batch: int = 1) -> Choice:
        """Most accurate setting with RTF <= `rtf` and GMACs per audio second <= `gmacs`."""
        for name, value in (("RTF budget", rtf), ("MACs budget", gmacs)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value <= 0):
                raise ConfigError(f"the {name} must be a finite number > 0, got {value!r}")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ConfigError(f"batch must be a whole number >= 1, got {batch!r}")
        for cost in self.by_accuracy():
            if (rtf is None or cost.rtf_at(batch) <= rtf) and (gmacs is None or cost.gmacs_per_audio_second <= gmacs):
                return Choice(Compression.parse(cost.setting), cost, True)
        cheapest = self.cheapest(batch)
        return Choice(Compression.parse(cheapest.setting), cheapest, False)

    # ------------------------------------------------------------ storage
    def save(self, path: Path) -> Path:
        data = {"device": self.device, "threads": self.threads, "source": self.source, **self.meta,
                "settings": [{**asdict(s), "rtf": {str(k): v for k, v in s.rtf.items()}} for s in self.settings]}
        return write_json(Path(path), data)

    @classmethod
    def load(cls, path: str | Path) -> "Profile":
        """A profile file, every field type- and range-checked; a bad one is one line naming the file and field."""
        data = read_json(Path(path), "profile")
        where = f"{path}: not a usable stochw2v profile"
        rows = data.get("settings")
        if not isinstance(rows, list) or not rows:
            raise ModelFileError(f"{where} (settings must be a non-empty list; make one with "
                                 "`stochw2v profile MODEL --out PROFILE.json`)")
        settings = [_setting_cost(row, f"{where} (settings[{i}]") for i, row in enumerate(rows)]
        names = [c.setting for c in settings]
        if len(set(names)) != len(names):
            raise ModelFileError(f"{where} (a setting is listed twice: {names})")
        threads = data.get("threads", 1)
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ModelFileError(f"{where} (threads must be a whole number >= 1, got {threads!r})")
        for key in ("device", "source"):
            if not isinstance(data.get(key, ""), str):
                raise ModelFileError(f"{where} ({key} must be a string, got {data[key]!r})")
        meta = {k: v for k, v in data.items() if k not in ("settings", "device", "threads", "source")}
        return cls(settings, data.get("device", "cpu"), threads, data.get("source", ""), meta)

    def check_runs_on(self, model, path: str | Path) -> None:
        """Every row names a setting `model` can run (a profile of another model would schedule nonsense)."""
        for cost in self.settings:
            try:
                model.resolve(cost.setting)
            except ConfigError as error:
                raise ModelFileError(f"{path}: setting {cost.setting} cannot run on this model ({error})") from None


def _number(value: Any, field_name: str, where: str, low: float = 0.0, optional: bool = False) -> float | None:
    """A finite number > low (>= low for error rates), or a ModelFileError naming the field."""
    if value is None and optional:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value < low if optional else value <= low):
        bound = f">= {low:g}" if optional else f"> {low:g}"
        raise ModelFileError(f"{where}.{field_name} must be a finite number {bound}, got {value!r})")
    return float(value)


def _setting_cost(row: Any, where: str) -> SettingCost:
    if not isinstance(row, dict):
        raise ModelFileError(f"{where} must be an object, got {row!r})")
    setting = row.get("setting")
    try:
        setting = str(Compression.parse(setting))
    except ConfigError as error:
        raise ModelFileError(f"{where}.setting: {error})") from None
    rtf = row.get("rtf")
    if not isinstance(rtf, dict) or not rtf:
        raise ModelFileError(f"{where}.rtf must map batch sizes to real-time factors, got {rtf!r})")
    by_batch = {}
    for batch, value in rtf.items():
        if not str(batch).isdigit() or int(batch) < 1:
            raise ModelFileError(f"{where}.rtf: batch size {batch!r} is not a whole number >= 1)")
        by_batch[int(batch)] = _number(value, f"rtf[{batch}]", where)
    gmacs = _number(row.get("gmacs_per_audio_second"), "gmacs_per_audio_second", where)
    wer = _number(row.get("wer"), "wer", where, optional=True)
    cer = _number(row.get("cer"), "cer", where, optional=True)
    return SettingCost(setting, by_batch, gmacs, wer, cer)


def pick_setting(model, profile: Profile | str | Path, budget: float | None = None, budget_macs: float | None = None,
                 batch: int = 1) -> Choice:
    """The most accurate setting of `model` whose measured real-time factor (encoder seconds per audio
    second) is within `budget` and MACs within `budget_macs` (GMACs per audio second), by `profile` (a
    Profile or a PROFILE.json from `stochw2v profile --out`). A function beside the profile, not a method
    of the network: the network knows nothing of machines and budgets."""
    path = profile if not isinstance(profile, Profile) else "the profile"
    profile = profile if isinstance(profile, Profile) else Profile.load(Path(profile))
    choice = profile.pick(budget, budget_macs, batch)
    profile.check_runs_on(model, path)  # the profile must describe settings this model runs
    return choice


def mark_pareto(settings: list[SettingCost], batch: int = 1) -> None:
    """A setting is kept when no other is both at least as fast and at least as accurate (one strictly)."""
    for cost in settings:
        cost.pareto = not any(
            other is not cost and other.rtf_at(batch) <= cost.rtf_at(batch) and other.error <= cost.error
            and (other.rtf_at(batch) < cost.rtf_at(batch) or other.error < cost.error)
            for other in settings)


__all__ = ["Choice", "Profile", "SettingCost", "mark_pareto", "pick_setting"]
