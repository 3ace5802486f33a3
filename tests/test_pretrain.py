"""Pre-training: the loss falls, resume is exact, ranks stay identical, bad input fails early."""
import json
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

import stochw2v
from stochw2v.data import Manifest
from stochw2v.errors import TrainingError
from stochw2v.train.pretrain import Pretrainer
from stochw2v.train.recipe import load_recipe

TINY = [
    "model.overrides={conv_layers: [[32, 10, 5], [32, 3, 2], [32, 3, 2], [32, 3, 2], [32, 3, 2], [32, 2, 2], "
    "[32, 2, 2]], dim: 32, num_layers: 2, num_heads: 2, ffn_dim: 64, pos_conv_kernel: 8, pos_conv_groups: 4, "
    "layerdrop: 0.0, dropout: 0.0, attention_dropout: 0.0, feature_dropout: 0.0}",
    "task={mask_prob: 0.5, mask_length: 3, num_negatives: 10, codebook_size: 16, codevector_dim: 32, "
    "final_dim: 32, gumbel_temperature: [2.0, 0.5, 0.99], feature_penalty_weight: 1.0}",
    "optim={lr: 0.003, warmup_updates: 5, max_updates: 40, clip_norm: 5.0}",
    "data={max_samples: 80000, crop: null, num_workers: 0}",
    "run={log_every: 5, validate_every: 1000, save_every: 1000, keep_last: 2, seed: 3}",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Eight 1-second 'utterances' of repeated pitched pulses: structure a model can learn."""
    folder = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    paths, sizes = [], []
    for i in range(8):
        t = np.arange(16000) / 16000
        freq = 120 + 40 * (i % 4)
        wave = 0.3 * np.sign(np.sin(2 * np.pi * freq * t)) * (np.sin(2 * np.pi * 3 * t) > 0)
        wave = (wave + 0.01 * rng.standard_normal(16000)).astype(np.float32)
        sf.write(folder / f"u{i}.wav", wave, 16000, subtype="FLOAT")
        paths.append(f"u{i}.wav")
        sizes.append(16000)
    Manifest(folder, paths, sizes).write(folder / "train.tsv")
    Manifest(folder, paths[:4], sizes[:4]).write(folder / "valid.tsv")
    return folder


def _trainer(corpus, out, extra=(), resume=False):
    recipe = load_recipe(None, TINY + list(extra))
    return Pretrainer(recipe, corpus / "train.tsv", corpus / "valid.tsv", out, resume=resume, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["policy.squeeze=[2]", "policy.squeeze=[1, 2, 3, 4]"])
def test_loss_decreases_for_fixed_and_sampled_settings(corpus, tmp_path, policy):
    trainer = _trainer(corpus, tmp_path / "run", [policy])
    before = trainer.validate()
    trainer.train(40)
    after = trainer.validate()
    drops = {name: before[name]["loss"] - after[name]["loss"] for name in before}
    assert all(drop > 0.05 for drop in drops.values()), drops
    assert sum(drops.values()) / len(drops) > 0.15, drops


@pytest.mark.slow
def test_resumed_run_equals_uninterrupted_run(corpus, tmp_path):
    straight = _trainer(corpus, tmp_path / "a")
    straight.train(12)
    first = _trainer(corpus, tmp_path / "b", ["run.save_every=5", "run.log_every=1"])
    first.train(7)  # stopped after update 7, in the middle of an epoch
    del first
    with (tmp_path / "b" / "log.jsonl").open("a") as log:  # a killed run had logged past its last checkpoint
        log.write('{"update": 8, "split": "train", "loss": 9.0}\n{"update": 9, "split": "tr')
    resumed = _trainer(corpus, tmp_path / "b", ["run.save_every=5", "run.log_every=1"], resume=True)
    assert resumed.position.update == 7 and resumed.position.batch > 0
    resumed.train(12)
    for (name, a), b in zip(straight.module.state_dict().items(), resumed.module.state_dict().values()):
        assert torch.equal(a, b), name
    # the log reads as an uninterrupted run's: each update once, in order, none of the killed run's extras
    train_updates = [json.loads(line)["update"] for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()
                     if json.loads(line)["split"] == "train"]
    assert train_updates == list(range(1, 13))
    encoder = stochw2v.load(tmp_path / "b")  # a run folder loads as its latest encoder
    assert isinstance(encoder, stochw2v.Encoder)


@pytest.mark.slow
def test_two_process_gloo_run_keeps_ranks_identical(corpus, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    data = {}
    from stochw2v.train.recipe import apply_override

    for item in TINY:
        apply_override(data, item)
    recipe.write_text(yaml.safe_dump(data))
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as probe:  # a free port, so parallel runs of the suite do not collide
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run(  # pooling is sampled too: every rank must draw the same setting per update
        [str(torchrun), "--nproc_per_node=2", f"--master_port={port}", "-m", "stochw2v", "pretrain", "--config",
         str(recipe), "--train", str(corpus / "train.tsv"), "--valid", str(corpus / "valid.tsv"),
         "--out", str(tmp_path / "ddp"), "--max-updates", "6", "--device", "cpu",
         "--set", "run.log_every=2", "run.seed=3", "policy.query={layers: [2], prob: 0.5}",
         "policy.kv={layers: [1, 2], prob: 0.4, all_prob: 0.3}", "policy.validate=[s=1, s=2]"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = yaml.safe_load((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["updates"] == 6 and summary["ranks_agree"] is True
    log = [json.loads(line) for line in (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()]
    assert [r["update"] for r in log if r["split"] == "train"] == [2, 4, 6]  # written by rank 0 only
    assert {r["split"] for r in log if r["split"] != "train"} == {"valid/s=1", "valid/s=2"}
    policy = stochw2v.load(tmp_path / "ddp").config.training_distribution  # what the encoder was trained on
    assert any(policy.sample(u).has_pooling for u in range(6)) and policy.query.layers == (2,)


def _plan_on_rank(rank: int, port: int, results) -> None:
    import torch.distributed as dist

    from stochw2v.train.distributed import DistInfo, smallest_on_every_rank

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        results[rank] = smallest_on_every_rank([900, 700][rank], DistInfo(rank, 2, rank, enabled=True))
    finally:
        dist.destroy_process_group()


def test_a_time_budget_plan_is_the_same_on_every_rank():
    import torch.multiprocessing as mp

    from stochw2v.train.distributed import DistInfo, smallest_on_every_rank

    assert smallest_on_every_rank(900, DistInfo()) == 900  # one process: its own plan
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with mp.Manager() as manager:  # each rank timed itself: 900 and 700 updates fit; both must stop at 700
        results = manager.dict()
        mp.spawn(_plan_on_rank, args=(port, results), nprocs=2, join=True)
        assert dict(results) == {0: 700, 1: 700}


@pytest.mark.slow
def test_bad_recipes_and_folders_fail_before_training(corpus, tmp_path):
    with pytest.raises(ValueError, match="unknown recipe key"):
        load_recipe(None, TINY + ["optim.learning_rate=1"])
    with pytest.raises(ValueError, match="must be float"):
        load_recipe(None, TINY + ["optim.lr=fast"])
    with pytest.raises(FileNotFoundError, match="recipe not found"):
        load_recipe(tmp_path / "none.yaml")
    with pytest.raises(ValueError, match="query.layers names layer 3 but the model has 2 layers"):
        load_recipe(None, TINY + ["policy.query={layers: [3], prob: 0.1}"])
    with pytest.raises(ValueError, match="the upsampler is sized from the policy"):
        load_recipe(None, TINY + ["model.overrides.max_upsample=8"])
    recipe = load_recipe(None, TINY)
    with pytest.raises(ValueError, match="manifest not found"):
        Pretrainer(recipe, tmp_path / "missing.tsv", corpus / "valid.tsv", tmp_path / "r", progress=False)
    _trainer(corpus, tmp_path / "run").train(2)
    with pytest.raises(TrainingError, match="already holds a run"):
        _trainer(corpus, tmp_path / "run")
    with pytest.raises(TrainingError, match="holds a different run"):
        _trainer(corpus, tmp_path / "run", ["optim.lr=0.1"], resume=True)


def test_nan_losses_skip_updates_then_stop(corpus, tmp_path, monkeypatch):
    trainer = _trainer(corpus, tmp_path / "run", ["optim.max_bad_updates=3"])
    trainer.train(2)
    trainer.save()
    weights = {k: v.clone() for k, v in trainer.module.state_dict().items()}
    original = trainer.module.forward

    def poisoned(*args, **kwargs):
        out = original(*args, **kwargs)
        out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(trainer.module, "forward", poisoned)
    with pytest.warns(UserWarning, match="NaN or inf"), pytest.raises(TrainingError, match="3 non-finite"):
        trainer.train(10)
    for name, value in trainer.module.state_dict().items():
        assert torch.equal(value, weights[name]), name  # no poisoned update was applied


def test_overflowing_gradients_skip_the_update(corpus, tmp_path):
    trainer = _trainer(corpus, tmp_path / "run", ["optim.max_bad_updates=2"])
    weights = {k: v.clone() for k, v in trainer.module.state_dict().items()}
    trainer.module.final_proj.weight.register_hook(lambda grad: grad * float("inf"))
    with pytest.warns(UserWarning, match="gradient norm is NaN or inf"), \
            pytest.raises(TrainingError, match="2 non-finite"):
        trainer.train(5)
    for name, value in trainer.module.state_dict().items():
        assert torch.equal(value, weights[name]), name


def test_collapsed_codebook_is_reported(corpus, tmp_path):
    trainer = _trainer(corpus, tmp_path / "run")
    quantizer, size = trainer.module.quantizer, trainer.recipe.task.codebook_size
    with torch.no_grad():  # every frame picks code 0 of each group
        quantizer.weight_proj.weight.zero_()
        quantizer.weight_proj.bias.zero_()
        quantizer.weight_proj.bias[::size] = 50.0
    results = trainer.validate()
    assert all(r["accuracy"] == 0.0 and r["chance"] == 0.0 and r["perplexity"] < 2.01 for r in results.values())
    with pytest.warns(UserWarning, match="codebook has collapsed"):
        trainer.check_validation(results)
    healthy = _trainer(corpus, tmp_path / "fresh")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = healthy.validate()
        healthy.check_validation(results)
    negatives = healthy.recipe.task.num_negatives
    assert all(1 / (negatives + 1) - 1e-6 <= r["chance"] <= 1.0 for r in results.values())


def test_quantizer_input_gets_fairseq_dropout_features(corpus, tmp_path):
    trainer = _trainer(corpus, tmp_path / "run", ["task.dropout_features=0.5"])
    seen = []
    trainer.module.quantizer.register_forward_pre_hook(lambda _module, args: seen.append(args[0].detach()))
    trainer.train(1)
    zeros = (seen[0] == 0).float().mean().item()
    assert 0.4 < zeros < 0.6  # half the quantizer's input is dropped in training
    trainer.validate()
    assert (seen[-1] == 0).float().mean().item() < 0.01  # and none of it at validation


def test_feature_penalty_ignores_padding():
    from stochw2v.train.contrastive import Wav2Vec2Pretraining
    from stochw2v.train.tasks import PretrainConfig

    recipe = load_recipe(None, TINY)
    module = Wav2Vec2Pretraining(stochw2v.Encoder(recipe.model.encoder_config(4)), PretrainConfig(
        mask_prob=0.5, mask_length=3, num_negatives=5, codebook_size=16, codevector_dim=32, final_dim=32))
    module.eval()
    audio = torch.randn(1, 16000)
    padded = torch.cat([audio, torch.zeros(1, 16000)], dim=1).repeat(2, 1)
    padded[1] = torch.randn(32000)
    setting = stochw2v.Compression.parse("s=1")
    alone = module(audio, torch.tensor([16000]), setting, 0, torch.Generator().manual_seed(0))
    both = module(padded[1:], torch.tensor([32000]), setting, 0, torch.Generator().manual_seed(0))
    batch = module(padded, torch.tensor([16000, 32000]), setting, 0, torch.Generator().manual_seed(0))
    frames = [module.encoder.num_frames(16000), module.encoder.num_frames(32000)]
    expected = (alone.feature_penalty * frames[0] + both.feature_penalty * frames[1]) / sum(frames)
    assert batch.feature_penalty == pytest.approx(expected, rel=1e-4)  # padded frames do not count


def test_too_short_utterances_are_left_out_before_training(corpus, tmp_path):
    short = tmp_path / "short"
    short.mkdir()
    sf.write(short / "tiny.wav", np.zeros(800, dtype=np.float32), 16000)
    lines = (corpus / "train.tsv").read_text().splitlines()
    (short / "train.tsv").write_text(lines[0] + "\n" + "\n".join(lines[1:]) + f"\n{short / 'tiny.wav'}\t800\n")
    recipe = load_recipe(None, TINY)
    with pytest.warns(UserWarning, match="left out 0 unreadable and 1 utterances shorter than"):
        trainer = Pretrainer(recipe, short / "train.tsv", corpus / "valid.tsv", tmp_path / "run", progress=False)
    assert len(trainer.train_set) == 8
    trainer.train(2)


def test_a_wall_clock_budget_shortens_the_run_and_its_schedule(corpus, tmp_path, monkeypatch):
    from stochw2v.train import trainer as trainer_module

    now = [0.0]

    def clock():  # every look at the clock is 0.25 s later: about half a second per update
        now[0] += 0.25
        return now[0]

    monkeypatch.setattr(trainer_module.time, "perf_counter", clock)
    trainer = _trainer(corpus, tmp_path / "run", ["run.max_minutes=0.2", "run.calibration_updates=4",
                                                  "optim.max_updates=1000"])
    summary = trainer.train()
    planned = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()
               if json.loads(line)["split"] == "plan"]
    assert len(planned) == 1 and summary["updates"] == planned[0]["max_updates"] < 1000
    expected = 12 * 0.92 / planned[0]["seconds_per_update"]  # 12 s budget, 8% kept back
    assert abs(summary["updates"] - expected) < 8
    assert trainer.recipe.optim.max_updates == summary["updates"]  # the schedule ends with the run


@pytest.mark.filterwarnings("ignore:update .* the codebook has collapsed")
def test_a_machine_that_slows_down_is_caught_at_the_next_validation(corpus, tmp_path, monkeypatch):
    from stochw2v.train import trainer as trainer_module

    now, looks = [0.0], [0]

    def clock():  # fast for the calibration, then every look takes three times as long
        looks[0] += 1
        now[0] += 0.25 if looks[0] < 60 else 0.75
        return now[0]

    monkeypatch.setattr(trainer_module.time, "perf_counter", clock)
    trainer = _trainer(corpus, tmp_path / "run", ["run.max_minutes=0.5", "run.calibration_updates=4",
                                                  "run.validate_every=5", "optim.max_updates=1000"])
    summary = trainer.train()
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    first = [entry for entry in logged if entry["split"] == "plan"]
    replans = [entry["max_updates"] for entry in logged if entry["split"] == "replan"]
    assert len(first) == 1 and replans and replans[0] < first[0]["max_updates"]
    assert replans == sorted(replans, reverse=True)  # a plan only shrinks
    assert summary["updates"] == replans[-1] == trainer.recipe.optim.max_updates  # the schedule ends with the run
    assert now[0] <= 30 * 1.1  # a 30 s budget; the first plan alone would have run to about 3x that


def test_plain_updates_run_the_plainest_setting_before_the_draws_start(corpus, tmp_path):
    trainer = _trainer(corpus, tmp_path / "run", ["policy={squeeze: [2, 3, 4], plain_updates: 4}",
                                                  "run.log_every=1"])
    trainer.train(12)
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    settings = [entry["setting"] for entry in logged if entry["split"] == "train"]
    assert settings[:4] == ["s=2"] * 4  # the smallest squeeze, no pooling
    assert len(set(settings[4:])) > 1  # then the policy's own draws
    assert trainer.policy.plainest() == stochw2v.Compression.parse("s=2")
