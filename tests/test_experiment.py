"""`stochw2v experiment` end to end, in miniature (a few updates per stage), on a synthetic corpus."""
import json
import shutil

import pytest

from stochw2v.cli import main
from stochw2v.experiment import CORE, ExperimentPlan, _parallel_groups, _stage_cost

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="espeak-ng could not be installed here (make setup installs it with apt-get)")]

ARGS = ["--hours", "0.02", "--test-utterances", "6", "--valid-utterances", "3", "--seeds", "1", "2",
        "--pretrain-updates", "2", "--finetune-updates", "3", "--repeats", "1", "--arms", "w2v2", "stochastic",
        "stoch>s2"]


def test_experiment_trains_every_arm_reports_the_claims_and_reuses_finished_stages(tmp_path, capsys):
    out = tmp_path / "exp"
    # one process may train some arms only (--train-only), as parallel processes or nodes would ...
    assert main(["experiment", "--out", str(out), *ARGS[:-3], "w2v2", "--threads", "1", "--parallel", "1",
                 "--train-only"]) == 0
    assert "run it again without --train-only" in capsys.readouterr().out
    assert not (out / "EXPERIMENT.md").exists() and not (out / "evaluate").exists()
    assert sorted(p.name for p in (out / "finetune").iterdir()) == ["w2v2-seed1", "w2v2-seed2"]
    trained_first = {p: p.read_text() for p in out.glob("*/w2v2-seed*/log.jsonl")}
    # ... and the full invocation trains the other arms in 2 processes, reuses those stages, evaluates all
    assert main(["experiment", "--out", str(out), *ARGS, "--threads", "1", "--parallel", "2"]) == 0
    assert {p: p.read_text() for p in out.glob("*/w2v2-seed*/log.jsonl")} == trained_first
    logs = sorted((out / "logs").iterdir())
    assert [p.name for p in logs] == ["train-process1.log", "train-process2.log"]
    assert sorted(line for p in logs for line in p.read_text().splitlines() if line.startswith("[experiment]")) == [
        f"[experiment] {arm} seed {seed} trained" for arm in ("stoch>s2", "stochastic") for seed in (1, 2)]
    report = (out / "EXPERIMENT.md").read_text()
    capsys.readouterr()

    # w2v2 and stochastic pre-train once per seed; stoch>s2 fine-tunes the stochastic pre-trained model
    assert sorted(p.name for p in (out / "pretrain").iterdir()) == [
        "stochastic-seed1", "stochastic-seed2", "w2v2-seed1", "w2v2-seed2"]
    assert sorted(p.name for p in (out / "finetune").iterdir()) == [  # stoch>s2 is a core arm: both seeds
        "stoch-to-s2-seed1", "stoch-to-s2-seed2", "stochastic-seed1", "stochastic-seed2", "w2v2-seed1", "w2v2-seed2"]
    for summary in out.glob("*/*/summary.json"):
        stage = json.loads(summary.read_text())
        assert stage["finished"] and stage["wall_seconds"] > 0 and stage["commit"]

    rows = json.loads((out / "evaluate" / "results.json").read_text())["rows"]
    w2v2 = [r for r in rows if r["model"] == "w2v2 seed1"]
    # a fixed s=1 model has no upsampler: only settings that keep the length, flagged untrained but s=1
    assert {r["setting"]: r["trained"] for r in w2v2} == {"s=1": True, "s=1,kv=2": False}
    stochastic = {r["setting"] for r in rows if r["model"] == "stochastic seed1"}
    assert {"s=1", "s=2", "s=4", "s=2,kv=2", "s=4,q3=2"} <= stochastic
    assert all(r["cer_low"] <= r["cer"] <= r["cer_high"] for r in rows)

    assert "--seeds 1 2 --pretrain-updates 2 --finetune-updates 3 --arms w2v2 stochastic 'stoch>s2'" in report
    assert "| pretrain w2v2-seed1 | 2 |" in report and "| finetune stoch-to-s2-seed1 | 3 |" in report
    assert "| 2: small loss vs fixed | stochastic @ s=1 vs w2v2 @ s=1 | 2 |" in report
    assert "| 3: fine-tuning recovers | stoch>s2 @ s=2 vs stochastic @ s=2 | 1 |" in report
    # two seeds: each claim also as the mean of its seeds' paired differences, and how much seeds differ
    mean_row = next(line for line in report.splitlines()
                    if line.startswith("| 2: small loss vs fixed | stochastic @ s=1 vs w2v2 @ s=1 | mean of 2 |"))
    by_seed = {r["model"]: r for r in rows if r["setting"] == "s=1"}
    expected = sum(by_seed[f"stochastic seed{k}"]["cer"] - by_seed[f"w2v2 seed{k}"]["cer"] for k in (1, 2)) / 2
    assert mean_row.split("|")[4].split()[0] == f"{expected:+.3f}"
    assert "## Seed-to-seed noise" in report
    noise = [line for line in report.splitlines() if line.startswith("| w2v2 | s=1 |")]
    assert len(noise) == 1 and noise[0].split("|")[3].strip() == f"{by_seed['w2v2 seed1']['cer']:.3f}"
    assert (out / "evaluate" / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"

    # a second invocation reuses every finished stage (no update is trained again) ...
    logs = {p: p.read_text() for p in out.glob("*/*/log.jsonl")}
    assert main(["experiment", "--out", str(out), *ARGS, "--threads", "1"]) == 0
    assert {p: p.read_text() for p in out.glob("*/*/log.jsonl")} == logs
    # ... and a changed plan never silently reuses stages trained for another number of updates
    changed = [a if a != "3" else "4" for a in ARGS]
    assert main(["experiment", "--out", str(out), *changed, "--threads", "1"]) == 2
    assert "trained for 3 updates, the plan asks for 4" in capsys.readouterr().err


def test_parallel_training_splits_the_runs_evenly_and_keeps_shared_pretraining_in_one_process(tmp_path):
    plan = ExperimentPlan(tmp_path, seeds=(1, 2), arms=CORE, parallel=2)
    groups = _parallel_groups(plan, 2)
    names = sorted((arm.name, seed) for group in groups for arm, seed in group)
    assert len(groups) == 2 and names == sorted((arm.name, seed) for arm, seed in plan.runs())
    for group in groups:  # a stochastic pre-training is trained by the process that fine-tunes both its arms
        for seed in (1, 2):
            assert sum(arm.pretrain_name == "stochastic" and s == seed for arm, s in group) in (0, 2)
    # w2v2: 2 stages of 1.5 per seed; sew2: 2 of 1; stochastic + stoch>s2: 3 of 1 per seed; 16 in all, 8 each
    def cost(group):
        pretrainings = {(arm.pretrain_name, seed): arm for arm, seed in group}.values()
        return sum(map(_stage_cost, pretrainings)) + sum(_stage_cost(arm) for arm, _ in group)
    assert [cost(g) for g in groups] == [8.0, 8.0]
    assert len(_parallel_groups(plan, 1)) == 1 and len(_parallel_groups(plan, 9)) == 6  # one per pre-training
