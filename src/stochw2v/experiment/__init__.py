"""`stochw2v experiment`: the paper's claims measured on learning curves, in miniature, on the synthetic corpus.

Per seed: one stochastically pre-trained encoder, one short CTC warm start at s=1 from it, and the
fine-tuning arms that branch from that warm start (arms.py). Every arm's valid CER at s=1, s=2 and
s=4 is logged every `curve_every` updates, its test error counts are kept at each milestone, and the
claims are judged by paired differences whose intervals hold the seed-to-seed variation (claims.py).
Every stage is resumable and reused once finished, and a long budget continues a short one.
"""
from __future__ import annotations

import time
from pathlib import Path

from ..data.synth import make_corpus
from .arms import ARMS, BUDGETS, CORE, Arm, Budget
from .curves import is_flat, primary_setting, valid_curve
from .jobs import plan_jobs, run_jobs
from .plan import ExperimentPlan, check_or_record
from .report import write_report
from .stages import arm_run


def _moving(plan: ExperimentPlan, targets: dict[str, int]) -> list[str]:
    """The long arms (of any seed) whose curve at its primary setting still moves."""
    moving = []
    for arm in plan.chosen_arms:
        if arm.name in targets and any(
                not is_flat(valid_curve(arm_run(plan, arm, seed), primary_setting(arm)), plan.schedule.flat_per_1000)
                for seed in plan.seeds):
            moving.append(arm.name)
    return moving


def train_all(plan: ExperimentPlan) -> None:
    """Every arm to the budget's length; then, with a long budget, the core arms on, in steps, until
    their curves flatten (all together, so that they stay at equal updates) or reach max_updates."""
    budget = plan.schedule
    run_jobs(plan, plan_jobs(plan, {arm.name: budget.finetune_updates for arm in plan.chosen_arms}))
    if not budget.long_updates:
        return
    target = budget.long_updates
    long = [arm.name for arm in plan.chosen_arms if arm.name in CORE]
    while long:
        run_jobs(plan, plan_jobs(plan, dict.fromkeys(long, target)))
        moving = _moving(plan, dict.fromkeys(long, target))
        if not moving or target >= budget.max_updates:
            return
        print(f"[experiment] still moving at {target} updates: {', '.join(moving)}; on to "
              f"{min(target + budget.extend_updates, budget.max_updates)}", flush=True)
        target = min(target + budget.extend_updates, budget.max_updates)


def run_experiment(plan: ExperimentPlan) -> Path | None:
    """Corpus, every stage, the report (OUT/EXPERIMENT.md and its plots); None with plan.train_only."""
    began = time.perf_counter()
    plan.out.mkdir(parents=True, exist_ok=True)
    if not (plan.data / "corpus.json").exists():
        make_corpus(plan.data, plan.hours, seed=0, workers=2, test_count=plan.test_utterances,
                    valid_count=plan.valid_utterances)
    check_or_record(plan)
    train_all(plan)
    if plan.train_only:
        return None
    return write_report(plan, time.perf_counter() - began)


__all__ = ["ARMS", "BUDGETS", "CORE", "Arm", "Budget", "ExperimentPlan", "run_experiment", "train_all"]
