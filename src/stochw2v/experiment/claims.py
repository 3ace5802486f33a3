"""The paper's claims judged above the seed noise.

Each comparison is paired twice: two arms of one seed start from the same warm start and are scored
on the same test utterances, so each seed gives one difference; the interval is a t interval over
those per-seed differences, whose spread holds the seed-to-seed noise and the utterance noise together.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import mean, stdev

from .arms import ARMS_BY_NAME
from .plan import ExperimentPlan
from .stages import arm_run
from .testing import read_test, scores_path

MARGIN = 0.02  # "only marginal loss": at most this much absolute CER (the paper's losses are a few % relative)
# two-sided 95% Student t quantiles by degrees of freedom (1.96 beyond the table)
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def seed_interval(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high): a 95% t interval over per-seed values (nan bounds for one seed)."""
    centre = mean(values)
    if len(values) < 2:
        return centre, float("nan"), float("nan")
    half = T975.get(len(values) - 1, 1.96) * stdev(values) / math.sqrt(len(values))
    return centre, centre - half, centre + half


def test_cer(plan: ExperimentPlan, arm: str, setting: str, updates: int, seed: int) -> float | None:
    path = scores_path(arm_run(plan, ARMS_BY_NAME[arm], seed), updates)
    if not path.exists():
        return None
    return read_test(path)["settings"].get(setting, {}).get("cer")


@dataclass
class Comparison:
    claim: str
    text: str
    first: tuple[str, str]  # (arm, setting): the model the claim is about
    second: tuple[str, str]  # what it is compared with
    held_if: str = "at_most_margin"  # at_most_margin | below_zero

    def differences(self, plan: ExperimentPlan, updates: int) -> list[float]:
        """first - second, one per seed that has both (CER)."""
        values = []
        for seed in plan.seeds:
            a = test_cer(plan, *self.first, updates, seed)
            b = test_cer(plan, *self.second, updates, seed)
            if a is not None and b is not None:
                values.append(a - b)
        return values

    def verdict(self, low: float, high: float) -> str:
        if math.isnan(low):
            return "inconclusive (one seed)"
        bound = MARGIN if self.held_if == "at_most_margin" else 0.0
        if high <= bound:
            return "held"
        if low > bound:
            return "not held"
        return "inconclusive"


COMPARISONS = [
    Comparison("2", "stochastic vs fixed s=1, same start", ("stochastic", "s=1"), ("s1", "s=1")),
    Comparison("2", "stochastic vs fixed s=2, same start", ("stochastic", "s=2"), ("s2", "s=2")),
    Comparison("2", "stochastic vs fixed s=4, same start", ("stochastic", "s=4"), ("s4", "s=4")),
    Comparison("2", "squeeze only vs fixed s=2, same start", ("squeeze", "s=2"), ("s2", "s=2")),
    Comparison("2", "squeeze only vs fixed s=4, same start", ("squeeze", "s=4"), ("s4", "s=4")),
    Comparison("2", "stochastic vs W2V2 (pre-trained at s=1)", ("stochastic", "s=1"), ("w2v2", "s=1")),
    Comparison("2", "stochastic vs SEW (pre-trained at s=2)", ("stochastic", "s=2"), ("sew2", "s=2")),
    Comparison("3", "stochastic pre-training fine-tuned to s=2 vs SEW", ("s2", "s=2"), ("sew2", "s=2")),
    Comparison("3", "fine-tuned to s=2 vs stochastic at s=2", ("s2", "s=2"), ("stochastic", "s=2"), "below_zero"),
    Comparison("distillation", "distill vs stochastic at s=1", ("distill", "s=1"), ("stochastic", "s=1")),
    Comparison("distillation", "distill vs stochastic at s=2", ("distill", "s=2"), ("stochastic", "s=2"),
               "below_zero"),
    Comparison("distillation", "distill vs stochastic at s=4", ("distill", "s=4"), ("stochastic", "s=4"),
               "below_zero"),
    Comparison("pre-training", "scratch vs stochastic pre-training, fixed s=1", ("scratch", "s=1"), ("s1", "s=1"),
               "below_zero"),
    Comparison("existing checkpoints", "W2V2 fine-tuned stochastically vs stochastic, s=1",
               ("w2v2>stoch", "s=1"), ("stochastic", "s=1")),
    Comparison("existing checkpoints", "W2V2 fine-tuned stochastically vs stochastic, s=4",
               ("w2v2>stoch", "s=4"), ("stochastic", "s=4")),
    Comparison("other families", "HuBERT fine-tuned stochastically vs fixed s=1, s=1", ("hubert>stoch", "s=1"),
               ("hubert", "s=1")),
    Comparison("other families", "WavLM fine-tuned stochastically vs fixed s=1, s=1", ("wavlm>stoch", "s=1"),
               ("wavlm", "s=1")),
]


def claims_rows(plan: ExperimentPlan, updates: int) -> list[dict]:
    """Every comparison both of whose arms were tested at `updates`, with its seed interval and verdict."""
    rows = []
    for comparison in COMPARISONS:
        values = comparison.differences(plan, updates)
        if not values:
            continue
        centre, low, high = seed_interval(values)
        rows.append({"claim": comparison.claim, "comparison": comparison.text,
                     "first": comparison.first, "second": comparison.second, "per_seed": values,
                     "mean": centre, "low": low, "high": high, "verdict": comparison.verdict(low, high),
                     "held_if": comparison.held_if})
    return rows


def smoothness(plan: ExperimentPlan, updates: int, arm: str = "stochastic") -> dict | None:
    """Claim 1: the arm's seed-mean test CER at s=1..4 is ordered by compute with no cliff (no step larger
    than twice the mean step, or MARGIN, whichever is larger; an inversion beyond MARGIN fails too)."""
    means = []
    for s in range(1, 5):
        values = [v for seed in plan.seeds if (v := test_cer(plan, arm, f"s={s}", updates, seed)) is not None]
        if not values:
            return None
        means.append(seed_interval(values))
    steps = [b[0] - a[0] for a, b in zip(means, means[1:])]
    average = (means[-1][0] - means[0][0]) / len(steps)
    smooth = all(step >= -MARGIN for step in steps) and max(steps) <= max(2 * average, MARGIN)
    return {"arm": arm, "cer": means, "steps": steps, "verdict": "held" if smooth else "not held"}


__all__ = ["COMPARISONS", "MARGIN", "Comparison", "claims_rows", "seed_interval", "smoothness", "test_cer"]
