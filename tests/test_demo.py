"""The demo end to end, in miniature (a few updates), on a synthetic corpus."""
import json
import shutil

import pytest

from stochw2v.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="espeak-ng could not be installed here (make setup installs it with apt-get)")]


def test_demo_runs_every_stage_and_writes_the_tradeoff(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--hours", "0.03", "--pretrain-updates", "3",
                 "--finetune-updates", "3", "--minutes", "5"]) == 0
    printed = capsys.readouterr().out
    budget = float(printed.split("every trained setting; at most ")[1].split(" min")[0])
    assert 2.0 <= budget <= 4.0  # fine-tuning gets what is left of --minutes, less a minute for evaluation
    assert f"max_minutes: {budget}\n" in (out / "finetune" / "recipe.yaml").read_text()  # the run keeps it
    assert f"everything goes under {out.resolve()}" in printed
    assert "valid CER s=1" in printed and "valid s=1: contrastive accuracy" in printed  # what training did
    results = json.loads((out / "evaluate" / "results.json").read_text())
    demo_rows = [r for r in results["rows"] if r["model"] == "demo (just trained)"]
    assert [r["setting"] for r in demo_rows] == ["s=1", "s=2", "s=3", "s=4", "s=2,kv=2", "s=1,q3=2", "s=4,q3=2"]
    assert all(r["trained"] for r in results["rows"])  # only settings the models were trained on
    assert (out / "evaluate" / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"
    assert "| utterance | reference | demo (just trained) s=1 | demo (just trained) s=4 | shipped s=1 | shipped s=4 |" \
        in printed  # side by side with the shipped recogniser
    assert (out / "finetune" / "model" / "model.safetensors").exists()
