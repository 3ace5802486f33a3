"""The shipped recogniser: it loads, runs every trained setting, and its card's check-set CERs hold."""
import json
import shlex
import shutil
from pathlib import Path

import pytest
import torch

import stochw2v
from stochw2v.cli import main
from stochw2v.data import read_manifest
from stochw2v.evaluate.tradeoff import evaluate_models

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "stochw2v-synth-en"


def test_the_shipped_model_loads_with_its_training_distribution():
    model = stochw2v.load(SHIPPED)
    assert isinstance(model, stochw2v.CTCModel) and model.config.training_distribution is not None
    assert model.trained_settings[:4] == ["s=1", "s=2", "s=3", "s=4"]
    with torch.inference_mode():
        for setting in model.trained_settings:
            out = model(torch.randn(16000), compression=setting)
            assert out.logits.shape[1] == out.lengths.item() == model.encoder.num_frames(16000)
    assert (SHIPPED / "model.safetensors").stat().st_size < 30e6


@pytest.mark.slow
def test_the_check_set_cers_of_the_model_card_hold(tmp_path):
    assert shutil.which("espeak-ng"), "make setup installs espeak-ng"
    card = json.loads((SHIPPED / "card.json").read_text())["check_set"]
    args = shlex.split(card["command"])
    assert args[:2] == ["stochw2v", "synth"]
    assert main(args[1:] + ["--out", str(tmp_path / "check")]) == 0
    manifest = read_manifest(tmp_path / "check" / "test.tsv", labels=True)
    settings = [stochw2v.Compression.parse(s) for s in card["cer"]]
    evaluation = evaluate_models({"shipped": stochw2v.load(SHIPPED)}, manifest, settings, repeats=1, progress=False)
    for row in evaluation.rows:
        assert abs(row.cer - card["cer"][row.setting]) <= card["tolerance"], (row.setting, row.cer)
