"""An experiment's plan (what to train, how long, where) and the record that keeps a resumed one honest."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import ConfigError
from ..files import write_json
from ..formats.strict_yaml import load_strict
from ..train.recipe import packaged_recipe
from .arms import CORE, Arm, Budget, arms_named, budget_named

PLAN_FILE = "plan.json"


@dataclass
class ExperimentPlan:
    out: Path
    budget: str = "short"
    seeds: tuple[int, ...] = (1, 2, 3)
    arms: tuple[str, ...] = CORE
    hours: float = 2.0
    test_utterances: int = 300
    valid_utterances: int = 100
    device: str | None = None
    parallel: int = 1  # training processes, torch's threads divided among them
    train_only: bool = False  # train and stop: several invocations (or nodes) can share one OUT
    overrides: dict = field(default_factory=dict)  # Budget fields on top of the named budget (tests, users)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.seeds = tuple(dict.fromkeys(self.seeds))
        if not self.seeds:
            raise ConfigError("--seeds: give at least one seed")
        self.chosen_arms  # noqa: B018 - unknown arm names are refused here, before anything runs
        self.schedule.check()

    @property
    def schedule(self) -> Budget:
        budget = budget_named(self.budget)
        unknown = sorted(set(self.overrides) - set(vars(budget)))
        if unknown:
            raise ConfigError(f"unknown budget field(s) {unknown}")
        return replace(budget, **self.overrides)

    @property
    def chosen_arms(self) -> tuple[Arm, ...]:
        return arms_named(self.arms)

    @property
    def data(self) -> Path:
        return self.out / "data"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _recipe_digest(path: Path) -> str:
    """Of what the recipe says, not how it is written: a comment edited in a recipe does not orphan a run."""
    return hashlib.sha256(json.dumps(load_strict(path.read_text()), sort_keys=True).encode()).hexdigest()[:16]


def plan_record(plan: ExperimentPlan) -> dict:
    """What a resumed experiment must share with the one that started its folder. The fine-tuning
    length is not among it: a longer budget continues a shorter one's arms."""
    budget = plan.schedule
    return {"seeds": list(plan.seeds), "corpus": _digest(plan.data / "corpus.json"),
            "recipes": {name: _recipe_digest(packaged_recipe(name)) for name in ("pretrain_tiny", "finetune_tiny")},
            "pretrain_updates": budget.pretrain_updates, "warm_updates": budget.warm_updates,
            "curve_every": budget.curve_every}


def check_or_record(plan: ExperimentPlan) -> None:
    """Write OUT/plan.json on the first run; refuse, by key, a later run that differs from it."""
    path = plan.out / PLAN_FILE
    record = plan_record(plan)
    if not path.exists():
        write_json(path, record)
        return
    saved = json.loads(path.read_text())
    changed = [key for key in record if saved.get(key) != record[key]]
    if changed:
        details = "; ".join(f"{key}: this folder has {saved.get(key)}, this run asks for {record[key]}"
                            for key in changed)
        raise ConfigError(f"{plan.out}: this experiment was started with another plan ({details}); use another "
                          f"--out, or the same seeds and updates")


__all__ = ["PLAN_FILE", "ExperimentPlan", "check_or_record", "plan_record"]
