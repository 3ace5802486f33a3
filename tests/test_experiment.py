"""`stochw2v experiment` end to end, in miniature (a few updates per stage), on a synthetic corpus."""
import json
import shutil

import pytest
import torch

from stochw2v.cli import main
from stochw2v.errors import ConfigError
from stochw2v.experiment import ExperimentPlan
from stochw2v.experiment.claims import seed_interval
from stochw2v.experiment.jobs import Job, plan_jobs

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="espeak-ng could not be installed here (make setup installs it with apt-get)")]

ARGS = ["--hours", "0.02", "--test-utterances", "6", "--valid-utterances", "3", "--seeds", "1", "2",
        "--pretrain-updates", "2", "--warm-updates", "3", "--finetune-updates", "4", "--curve-every", "2",
        "--threads", "1"]
ARMS = ["--arms", "s1", "s2", "stochastic", "distill"]


def _stage(path):
    return json.loads((path / "stage.json").read_text())


def test_experiment_branches_arms_from_shared_warm_starts_reports_claims_and_continues_a_budget(tmp_path, capsys):
    out = tmp_path / "exp"
    assert main(["experiment", "--out", str(out), *ARGS, *ARMS, "--parallel", "2"]) == 0
    assert sorted(p.name for p in (out / "pretrain").iterdir()) == ["stochastic-seed1", "stochastic-seed2"]
    assert sorted(p.name for p in (out / "warm").iterdir()) == ["stochastic-seed1", "stochastic-seed2"]
    for seed in (1, 2):  # every arm of a seed starts from the same weights; the seeds differ
        digests = {_stage(out / "finetune" / f"{arm}-seed{seed}")["init_digest"] for arm in ARMS[1:]}
        assert len(digests) == 1
    assert _stage(out / "finetune" / "s1-seed1")["init_digest"] != _stage(out / "finetune" / "s1-seed2")["init_digest"]
    # curves: every arm validated at its trained settings among s=1, s=2, s=4 every 2 updates
    log = out / "finetune" / "stochastic-seed1" / "log.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert {(e["update"], e["split"]) for e in lines if e["split"].startswith("valid/")} == {
        (u, f"valid/s={s}") for u in (2, 4) for s in (1, 2, 4)}
    tests = json.loads((out / "finetune" / "s2-seed1" / "test-4.json").read_text())
    assert list(tests["settings"]) == ["s=2"] and len(tests["utterances"]) == 6
    report = (out / "EXPERIMENT.md").read_text()
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    # the claims row is the seed mean of the per-seed paired test-CER differences
    cer = {(arm, seed): json.loads((out / "finetune" / f"{arm}-seed{seed}" / "test-4.json").read_text())
           ["settings"]["s=2"]["cer"] for arm in ("stochastic", "s2") for seed in (1, 2)}
    differences = [cer["stochastic", seed] - cer["s2", seed] for seed in (1, 2)]
    row = next(line for line in report.splitlines() if "| stochastic vs fixed s=2, same start |" in line)
    assert f"{seed_interval(differences)[0]:+.3f} [" in row
    assert "## Distillation at equal wall-clock" in report and "| arm stochastic | 2 | 4 |" in report
    capsys.readouterr()

    # a second invocation reuses every finished stage: no update is trained again
    logs = {p: p.read_text() for p in out.glob("*/*/log.jsonl")}
    assert main(["experiment", "--out", str(out), *ARGS, *ARMS, "--parallel", "1"]) == 0
    assert {p: p.read_text() for p in out.glob("*/*/log.jsonl")} == logs
    # the long budget continues the short one's arms where they stopped (updates 1-4 are not trained again)
    assert main(["experiment", "--out", str(out), *ARGS, "--arms", "s1", "--budget", "long",
                 "--long-updates", "6", "--max-updates", "6", "--parallel", "1"]) == 0
    assert _stage(out / "finetune" / "s1-seed2")["updates"] == 6
    assert _stage(out / "finetune" / "s2-seed1")["updates"] == 4
    old = logs[out / "finetune" / "s1-seed1" / "log.jsonl"].splitlines()
    assert (out / "finetune" / "s1-seed1" / "log.jsonl").read_text().splitlines()[:len(old)] == old
    assert (out / "finetune" / "s1-seed1" / "test-6.json").exists()
    capsys.readouterr()

    # a resumed experiment with another plan is refused by key, before any training
    assert main(["experiment", "--out", str(out), *[a if a != "3" else "5" for a in ARGS], *ARMS]) == 2
    assert "warm_updates: this folder has 3, this run asks for 5" in capsys.readouterr().err
    seeds = ARGS.index("--seeds")
    three_seeds = [*ARGS[:seeds], "--seeds", "1", "2", "3", *ARGS[seeds + 3:]]
    assert main(["experiment", "--out", str(out), *three_seeds, *ARMS]) == 2
    assert "seeds: this folder has [1, 2]" in capsys.readouterr().err


def test_unknown_budget_and_arm_are_refused_by_name(tmp_path, capsys):
    with pytest.raises(ConfigError, match="--budget 'huge': unknown budget; known: short, long"):
        ExperimentPlan(tmp_path, budget="huge")
    with pytest.raises(ConfigError, match="unknown arm"):
        ExperimentPlan(tmp_path, arms=("s1", "s3"))
    with pytest.raises(SystemExit):
        main(["experiment", "--out", str(tmp_path), "--budget", "huge"])
    assert "--budget" in capsys.readouterr().err


def test_jobs_put_the_stochastic_start_and_its_arms_first_and_wait_for_their_warm_start(tmp_path):
    plan = ExperimentPlan(tmp_path, seeds=(1, 2), arms=("s1", "stochastic", "w2v2", "scratch"))
    jobs = plan_jobs(plan, {"s1": 10, "stochastic": 10, "w2v2": 10, "scratch": 10})
    assert [job.label for job in jobs[:6]] == [
        "pretrain stochastic seed 1", "warm stochastic seed 1", "pretrain stochastic seed 2", "warm stochastic seed 2",
        "arm s1 seed 1 to 10", "arm stochastic seed 1 to 10"]
    assert Job("arm", "w2v2", 2, 10).needs == (Job("warm", "w2v2", 2),)
    assert Job("warm", "scratch", 1).needs == ()  # no pre-training
    assert len(jobs) == 4 + 4 + 2 + 2 + 4 + 2


@pytest.mark.parametrize("family", ["hubert", "wavlm"])
def test_a_foreign_start_is_a_checkpoint_built_by_hf_that_our_loader_reads_as_hf_runs_it(tmp_path, family):
    transformers = pytest.importorskip("transformers")
    from stochw2v.experiment.foreign import foreign_checkpoint
    from stochw2v.train.recipe import PretrainRecipe, load_recipe, packaged_recipe

    architecture = load_recipe(packaged_recipe("pretrain_tiny"), [], PretrainRecipe).model.encoder_config(8)
    ours = foreign_checkpoint(family, architecture, 1, tmp_path / family).eval()
    assert ours.config.family == family and ours.config.max_upsample == 0
    hf = transformers.AutoModel.from_pretrained(tmp_path / family).eval()
    assert type(hf).__name__ == {"hubert": "HubertModel", "wavlm": "WavLMModel"}[family]
    audio = torch.randn(1, 16000)
    with torch.no_grad():
        assert (hf(audio).last_hidden_state - ours.encode(audio).hidden_states).abs().max() < 1e-4
    assert foreign_checkpoint(family, architecture, 1, tmp_path / family).config == ours.config  # reused


def test_a_foreign_start_fine_tunes_with_its_feature_encoder_frozen_from_warm_start_to_arms():
    from stochw2v.experiment.arms import ARMS_BY_NAME, FROZEN_FEATURES, STARTS

    for name in ("hubert", "hubert>stoch", "wavlm", "wavlm>stoch"):
        assert FROZEN_FEATURES in STARTS[ARMS_BY_NAME[name].start].finetune
    assert not STARTS["stochastic"].finetune  # our own starts train the whole encoder, as before
