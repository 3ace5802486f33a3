"""EXPERIMENT.md from an experiment folder: stages, learning curves, test CER, claims."""
from __future__ import annotations

import math
import platform
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .arms import ARMS_BY_NAME, CURVE_SETTINGS, SPECIALIST, STARTS  # noqa: E402
from .claims import MARGIN, claims_rows, seed_interval, smoothness, test_cer  # noqa: E402
from .curves import movement_per_1000, primary_setting, valid_curve  # noqa: E402
from .plan import ExperimentPlan  # noqa: E402
from .stages import arm_run, commit, pretrain_run, read_stage, warm_run  # noqa: E402
from .testing import read_test, scores_path  # noqa: E402

PLOT = "curves.png"
CAPTION = f"""Row 1: valid CER against fine-tuning updates (seed mean, band from the lowest to the highest seed).
Rows 2 and 3: each stochastic arm's valid-CER gap to the fixed arm of that setting, against updates and
against training minutes (seed mean, 95% t interval over seeds).

![curves]({PLOT})"""
SCALE = """## What this miniature can and cannot say

The paper's claims are about base-size models (95M parameters) pre-trained for 400k updates on 960 h of
LibriSpeech and fine-tuned on 10 h, on GPUs. This run is a tiny model (about 4M parameters), a few hundred
pre-training updates on synthetic speech, and CPU fine-tuning measured in hundreds to thousands of updates.
What transfers is the comparison's design (shared warm starts, paired per-seed differences, intervals over
seeds), not the size of any gap: a gap here is the price of stochastic training for a model this small,
this early in its curve. What would decide a claim that this run leaves open:

- a gap that is still shrinking where the curves stop (the flatness table above): `--budget long`, which
  continues these arms until their curves flatten;
- a gap below the seed noise: more seeds (`--seeds 1 2 3 4 5`), which narrows the t interval;
- the paper's own scale: `pretrain_base` and `finetune_base_10h` on LibriSpeech with torchrun on GPUs
  (README, "Training"), then `stochw2v evaluate` at the settings compared here.
"""


def _interval(centre: float, low: float, high: float) -> str:
    if math.isnan(low):
        return f"{centre:+.3f}"
    return f"{centre:+.3f} [{low:+.3f}, {high:+.3f}]"


def _tested_arms(plan: ExperimentPlan, updates: int) -> list[str]:
    return [arm.name for arm in plan.chosen_arms
            if any(scores_path(arm_run(plan, arm, seed), updates).exists() for seed in plan.seeds)]


def stages_table(plan: ExperimentPlan) -> tuple[str, float]:
    lines = ["| stage | seed | updates | wall-clock (min) | commit |", "|---|---|---|---|---|"]
    total = 0.0
    runs = []
    for start in dict.fromkeys(arm.start for arm in plan.chosen_arms):
        runs += [(f"pretrain {start}", seed, pretrain_run(plan, STARTS[start], seed)) for seed in plan.seeds]
        runs += [(f"warm start {start}", seed, warm_run(plan, STARTS[start], seed)) for seed in plan.seeds]
    runs += [(f"arm {arm.name}", seed, arm_run(plan, arm, seed)) for arm in plan.chosen_arms for seed in plan.seeds]
    for name, seed, run in runs:
        stage = read_stage(run)
        if not stage:
            continue
        minutes = stage.get("wall_seconds", 0.0) / 60
        total += minutes
        lines.append(f"| {name} | {seed} | {stage['updates']} | {minutes:.1f} | {stage.get('commit', '?')} |")
    lines.append(f"| all training | | | {total:.1f} | |")
    return "\n".join(lines), total


def results_table(plan: ExperimentPlan, updates: int) -> str:
    lines = ["| arm | what | setting | test CER, mean over seeds [95% seed interval] | per seed | GMACs / audio s |",
             "|---|---|---|---|---|---|"]
    for name in _tested_arms(plan, updates):
        arm = ARMS_BY_NAME[name]
        for setting in arm.test_settings:
            values = [v for seed in plan.seeds if (v := test_cer(plan, name, setting, updates, seed)) is not None]
            if not values:
                continue
            centre, low, high = seed_interval(values)
            cell = f"{centre:.3f}" if math.isnan(low) else f"{centre:.3f} [{low:.3f}, {high:.3f}]"
            gmacs = _gmacs(plan, name, setting, updates)
            lines.append(f"| {name} | {arm.about} | {setting} | {cell} | {', '.join(f'{v:.3f}' for v in values)} | "
                         f"{gmacs:.3f} |")
    return "\n".join(lines)


def _gmacs(plan: ExperimentPlan, arm: str, setting: str, updates: int) -> float:
    for seed in plan.seeds:
        path = scores_path(arm_run(plan, ARMS_BY_NAME[arm], seed), updates)
        if path.exists():
            return read_test(path)["settings"][setting]["gmacs_per_audio_second"]
    return float("nan")


def claims_table(plan: ExperimentPlan, updates: int) -> str:
    lines = ["| claim | comparison (first minus second, test CER) | per seed | mean [95% seed interval] | "
             "held if | verdict |", "|---|---|---|---|---|---|"]
    smooth = smoothness(plan, updates)
    if smooth:
        cells = ", ".join(f"s={s + 1} {c[0]:.3f}" for s, c in enumerate(smooth["cer"]))
        lines.append(f"| 1 | stochastic: seed-mean CER at s=1..4 ({cells}) | | steps "
                     f"{', '.join(f'{x:+.3f}' for x in smooth['steps'])} | ordered, no step over twice the mean "
                     f"step or {MARGIN} | {smooth['verdict']} |")
    for row in claims_rows(plan, updates):
        rule = f"upper bound <= {MARGIN}" if row["held_if"] == "at_most_margin" else "upper bound <= 0"
        lines.append(f"| {row['claim']} | {row['comparison']} | {', '.join(f'{v:+.3f}' for v in row['per_seed'])} | "
                     f"{_interval(row['mean'], row['low'], row['high'])} | {rule} | {row['verdict']} |")
    return "\n".join(lines)


def distillation_at_equal_clock(plan: ExperimentPlan) -> str:
    """The share of the stochastic arm's valid-CER gap to the specialist that distillation closes, with the
    distilled arm read at the stochastic arm's final wall-clock (it is slower per update)."""
    lines = ["| setting | gap stochastic - fixed (valid CER) | gap distill - fixed at equal wall-clock | "
             "share of the gap closed, mean [95% seed interval] |", "|---|---|---|---|"]
    for setting in ("s=2", "s=4", "s=1"):
        gaps, distilled, closed = [], [], []
        for seed in plan.seeds:
            curves = {name: valid_curve(arm_run(plan, ARMS_BY_NAME[name], seed), setting)
                      for name in ("stochastic", "distill", SPECIALIST[setting]) if _has_run(plan, name, seed)}
            if len(curves) < 3 or any(c is None for c in curves.values()):
                continue
            stochastic, distill, fixed = curves["stochastic"], curves["distill"], curves[SPECIALIST[setting]]
            end = int(stochastic.updates[-1])
            gap = stochastic.at(end) - fixed.at(end)
            other = distill.at_seconds(float(stochastic.seconds[-1])) - fixed.at(end)
            gaps.append(gap)
            distilled.append(other)
            closed.append(1 - other / gap if gap > 0 else float("nan"))
        if not gaps:
            continue
        usable = [c for c in closed if not math.isnan(c)]
        share = _interval(*seed_interval(usable)) if usable else "n/a (no gap)"
        lines.append(f"| {setting} | {_interval(*seed_interval(gaps))} | {_interval(*seed_interval(distilled))} | "
                     f"{share} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def _has_run(plan: ExperimentPlan, name: str, seed: int) -> bool:
    return name in plan.arms and (arm_run(plan, ARMS_BY_NAME[name], seed) / "log.jsonl").exists()


def flatness_table(plan: ExperimentPlan) -> str:
    lines = ["| arm | seed | updates | setting | valid CER at the end | moved over the last 1,000 updates |",
             "|---|---|---|---|---|---|"]
    for arm in plan.chosen_arms:
        for seed in plan.seeds:
            run = arm_run(plan, arm, seed)
            if not (run / "log.jsonl").exists():
                continue
            curve = valid_curve(run, primary_setting(arm))
            if curve is None:
                continue
            movement = movement_per_1000(curve)
            moved = "curve shorter than 1,000 updates" if movement is None else f"{movement:+.3f}"
            lines.append(f"| {arm.name} | {seed} | {int(curve.updates[-1])} | {primary_setting(arm)} | "
                         f"{curve.cer[-1]:.3f} | {moved} |")
    return "\n".join(lines)


def plot_curves(plan: ExperimentPlan, path: Path) -> None:
    """Row 1: valid CER against updates (seed mean, min-max band); rows 2 and 3: each stochastic arm's gap
    to the specialist at that setting against updates and against training minutes (seed mean, 95% t
    interval over seeds)."""
    figure, axes = plt.subplots(3, len(CURVE_SETTINGS), figsize=(5 * len(CURVE_SETTINGS), 12), squeeze=False)
    for column, setting in enumerate(CURVE_SETTINGS):
        for arm in plan.chosen_arms:
            if setting not in arm.trained:
                continue
            curves = [c for seed in plan.seeds if (arm_run(plan, arm, seed) / "log.jsonl").exists()
                      and (c := valid_curve(arm_run(plan, arm, seed), setting)) is not None]
            if not curves:
                continue
            grid = np.unique(np.concatenate([c.updates for c in curves]))
            values = np.array([[c.at(u) for u in grid] for c in curves])
            axes[0][column].plot(grid, values.mean(0), label=arm.name)
            axes[0][column].fill_between(grid, values.min(0), values.max(0), alpha=0.15)
            if arm.stochastic and SPECIALIST[setting] in plan.arms:
                for row, clock in ((1, "updates"), (2, "minutes")):
                    _plot_gap(plan, arm, setting, clock, axes[row][column])
        axes[0][column].set(title=f"valid CER at {setting}", xlabel="fine-tuning updates", ylabel="CER")
        axes[1][column].set(title=f"gap to the fixed {setting} arm", xlabel="fine-tuning updates",
                            ylabel="CER difference")
        axes[2][column].set(title=f"gap to the fixed {setting} arm", xlabel="training minutes since the warm start",
                            ylabel="CER difference")
        for row in axes:
            if row is not axes[0]:
                row[column].axhline(0, color="black", linewidth=0.5)
            if row[column].lines:
                row[column].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


GAP_POINTS = 50  # points each seed's gap curve is sampled at on the shorter of the two clocks


def _plot_gap(plan: ExperimentPlan, arm, setting: str, clock: str, axis) -> None:
    """One arm's valid-CER gap to the specialist of `setting`, per seed on a shared grid of updates or
    minutes (each seed's own shorter clock), then the seed mean with its 95% t interval."""
    gaps = []
    for seed in plan.seeds:
        mine = valid_curve(arm_run(plan, arm, seed), setting) if _has_run(plan, arm.name, seed) else None
        fixed = valid_curve(arm_run(plan, ARMS_BY_NAME[SPECIALIST[setting]], seed), setting) \
            if _has_run(plan, SPECIALIST[setting], seed) else None
        if mine is None or fixed is None:
            continue
        if clock == "updates":
            grid = np.linspace(0, min(mine.updates[-1], fixed.updates[-1]), GAP_POINTS)
            gaps.append((grid, np.array([mine.at(u) - fixed.at(u) for u in grid])))
        else:
            grid = np.linspace(0, min(mine.seconds[-1], fixed.seconds[-1]), GAP_POINTS)
            gaps.append((grid / 60, np.array([mine.at_seconds(t) - fixed.at_seconds(t) for t in grid])))
    if not gaps:
        return
    shared = min(gaps, key=lambda pair: pair[0][-1])[0]
    values = np.array([np.interp(shared, x, g) for x, g in gaps])
    bounds = np.array([seed_interval(list(column)) for column in values.T])
    axis.plot(shared, bounds[:, 0], label=arm.name)
    if len(gaps) > 1:
        axis.fill_between(shared, bounds[:, 1], bounds[:, 2], alpha=0.15)


def write_report(plan: ExperimentPlan, seconds: float) -> Path:
    budget = plan.schedule
    plot_curves(plan, plan.out / PLOT)
    stages, total = stages_table(plan)
    milestones = sorted({int(p.stem.split("-")[1]) for p in plan.out.glob("finetune/*/test-*.json")})
    sections = []
    for updates in milestones:
        sections.append(f"""## Test CER after {updates} fine-tuning updates

Arms tested at this point: {', '.join(_tested_arms(plan, updates))}. The last weights are evaluated (no
checkpoint selection), greedy decoding, {plan.test_utterances} test utterances whose sentences never
occur in training and half of whose voices are held out.

{results_table(plan, updates)}

### Claims after {updates} updates

Differences are first minus second in test CER; one per seed (the two arms of a seed share their warm
start and are scored on the same utterances), with a 95% t interval over seeds, which holds the
seed-to-seed noise. "Marginal" means at most {MARGIN} absolute CER.

{claims_table(plan, updates)}
""")
    distill = distillation_at_equal_clock(plan)
    text = f"""# Experiment: the paper's claims on learning curves, in miniature

Generated by `{experiment_command(plan)}` at commit `{commit()}` on {platform.machine()}, torch
{torch.__version__}, {torch.get_num_threads()} thread(s); this invocation took {seconds / 60:.0f} min, all training
stages {total:.0f} min (stages of earlier invocations are reused, with their times below).

Design: per seed ({', '.join(map(str, plan.seeds))}), a pre-trained encoder per start ({budget.pretrain_updates}
updates), one CTC warm start from it ({budget.warm_updates} updates at its start's setting), and every arm
branches from that warm start, so arms of one start and seed begin from identical weights (stage.json's
`init_digest`). Fine-tuning runs at a constant learning rate after a 50-update warm-up, so a longer budget
continues a shorter one; valid CER (100 utterances) is logged every {budget.curve_every} updates.

## Arms

{chr(10).join(f'- **{arm.name}** (start: {arm.start}): {arm.about}' for arm in plan.chosen_arms)}

## Learning curves

{CAPTION}

{flatness_table(plan)}

{chr(10).join(sections)}
## Distillation at equal wall-clock (valid CER)

{distill or "Not measured: the distill, stochastic and fixed arms are not all trained."}

## Training stages

{stages}

{SCALE}"""
    path = plan.out / "EXPERIMENT.md"
    path.write_text(text)
    return path


def experiment_command(plan: ExperimentPlan) -> str:
    overrides = "".join(f" --{key.replace('_', '-')} {value}" for key, value in sorted(plan.overrides.items()))
    return (f"stochw2v experiment --out {plan.out} --budget {plan.budget} --seeds {' '.join(map(str, plan.seeds))} "
            f"--arms {' '.join(repr(a) if '>' in a else a for a in plan.arms)} --hours {plan.hours:g} "
            f"--test-utterances {plan.test_utterances} --valid-utterances {plan.valid_utterances} "
            f"--parallel {plan.parallel}{overrides}")


__all__ = ["experiment_command", "write_report"]
