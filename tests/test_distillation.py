"""In-place distillation (task.distill_weight): the drawn setting learns CTC plus KL to the detached s=1
posteriors, computed on the same features and masks in one forward call."""
import numpy as np
import pytest
import soundfile as sf
import torch

import stochw2v
from helpers import small_config
from stochw2v.compute.compression import Compression
from stochw2v.data import Manifest, Vocabulary
from stochw2v.data.dataset import collate
from stochw2v.errors import ConfigError
from stochw2v.train.finetune import Finetuner, distillation_loss
from stochw2v.train.recipe import FinetuneRecipe, load_recipe

RECIPE = [
    "task={mask_time_prob: 0.3, mask_time_length: 2, mask_channel_prob: 0.0, freeze_updates: 0, "
    "freeze_feature_encoder: false}",
    "policy.squeeze=[1, 2]",
    "optim={lr: 0.001, max_updates: 10, schedule: linear, warmup_updates: 0}",
    "data={max_samples: 200000, crop: null, num_workers: 0}",
    "run={log_every: 1, validate_every: 1000, save_every: 1000, seed: 0}",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distil")
    rng = np.random.default_rng(0)
    texts = ["AB CA", "CAB", "BC A"]
    for i in range(len(texts)):
        sf.write(folder / f"u{i}.wav", (0.1 * rng.standard_normal(16000 + 1600 * i)).astype(np.float32), 16000)
    Manifest(folder, [f"u{i}.wav" for i in range(3)], [16000 + 1600 * i for i in range(3)], texts).write(
        folder / "train.tsv")
    return folder


def trainer(corpus, tmp_path, weight):
    recipe = load_recipe(None, RECIPE + [f"task.distill_weight={weight}"], FinetuneRecipe)
    torch.manual_seed(0)
    init = stochw2v.CTCModel(stochw2v.Encoder(small_config()), Vocabulary())
    return Finetuner(recipe, init, corpus / "train.tsv", corpus / "train.tsv", tmp_path / f"run{weight}",
                     progress=False)


def gradients(run, setting):
    batch = collate([run.train_set[i] for i in range(3)])
    run.module.train()
    run.module.zero_grad()
    result = run.compute(run.module, batch, Compression.parse(setting), 5, torch.Generator().manual_seed(1))
    result.loss.backward()
    return result, {n: p.grad.clone() for n, p in run.module.named_parameters() if p.grad is not None}


def test_the_kl_term_is_zero_for_identical_posteriors_and_positive_otherwise():
    logits = torch.randn(2, 7, 5)
    lengths = torch.tensor([7, 4])
    assert float(distillation_loss(logits, logits, lengths)) == pytest.approx(0.0, abs=1e-6)
    other = logits.clone()
    other[1, 5:] = 100.0  # past item 1's length: ignored
    assert float(distillation_loss(other, logits, lengths)) == pytest.approx(0.0, abs=1e-6)
    assert float(distillation_loss(torch.randn(2, 7, 5), logits, lengths)) > 0.01


def test_the_distillation_term_is_zero_when_the_drawn_setting_is_s1(corpus, tmp_path):
    plain, plain_grads = gradients(trainer(corpus, tmp_path, 0.0), "s=1")
    distilled, distilled_grads = gradients(trainer(corpus, tmp_path, 1.0), "s=1")
    assert "kl" not in distilled.sums  # s=1 is its own teacher: one pass, no KL
    assert torch.equal(plain.loss, distilled.loss)
    assert all(torch.equal(plain_grads[n], distilled_grads[n]) for n in plain_grads)


def test_turning_distillation_on_changes_the_gradients_of_a_drawn_setting(corpus, tmp_path):
    plain, plain_grads = gradients(trainer(corpus, tmp_path, 0.0), "s=2")
    distilled, distilled_grads = gradients(trainer(corpus, tmp_path, 1.0), "s=2")
    assert distilled.sums["kl"] > 0 and "full_loss_sum" in distilled.sums
    changed = [n for n in plain_grads if not torch.allclose(plain_grads[n], distilled_grads[n])]
    assert "encoder.context.upsample.blocks.0.linear.weight" in changed or any("upsample" in n for n in changed)
    assert any("layers.0" in n for n in changed) and len(changed) > len(plain_grads) // 2


def test_a_short_distilled_run_trains_and_logs_its_kl(corpus, tmp_path):
    run = trainer(corpus, tmp_path, 0.5)
    summary = run.train(6)
    lines = (tmp_path / "run0.5" / "log.jsonl").read_text().splitlines()
    drawn = [line for line in lines if '"split": "train"' in line and '"setting": "s=2"' in line]
    assert summary is not None and drawn and all('"kl"' in line for line in drawn)


@pytest.mark.parametrize("overrides, words", [
    (["task.distill_weight=-1"], "task.distill_weight must be a number >= 0"),
    (["task.distill_weight=lots"], "task.distill_weight must be float"),
    (["task.distill_weight=.nan"], "task.distill_weight must be a finite number"),
    (["task.distill_weight=0.5", "policy.fixed=s=1"], "only ever draws s=1"),
    (["task.distill_weight=0.5", "policy.squeeze=[1]", "policy.pooling=false"], "only ever draws s=1"),
])
def test_bad_distillation_settings_are_refused_naming_the_key(overrides, words):
    with pytest.raises(ConfigError, match=words):
        load_recipe(None, RECIPE + overrides, FinetuneRecipe)
