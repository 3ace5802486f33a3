"""ONNX export: dynamic batch and length, padding as an input, outputs equal torch's under onnxruntime."""
import numpy as np
import pytest
import torch

import stochw2v
from helpers import small_config
from stochw2v.cli import main
from stochw2v.data import Vocabulary

onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime runs the exported graph (pip install .[test])")


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["s=1", "s=2,q2=2,kv=2"])
def test_the_onnx_graph_equals_torch_on_padded_batches_of_any_size(setting, tmp_path, capsys):
    torch.manual_seed(0)
    model = stochw2v.CTCModel(stochw2v.Encoder(small_config(conv_norm="group", normalize_waveform=True)),
                              Vocabulary()).eval()
    stochw2v.save(model, tmp_path / "m")
    assert main(["export-onnx", str(tmp_path / "m"), "--compression", setting, "--out", str(tmp_path / "m.onnx")]) == 0
    assert "dynamic batch and length" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    for lengths in ([16000], [24000, 11000, 7000], [9000, 9000]):
        audio = torch.zeros(len(lengths), max(lengths))
        for i, n in enumerate(lengths):
            audio[i, :n] = 0.1 * torch.randn(n)
        with torch.no_grad():
            ref = model(audio, torch.tensor(lengths), setting)
        logits, frames = session.run(None, {"waveforms": audio.numpy(), "lengths": np.array(lengths, dtype=np.int64)})
        assert frames.tolist() == ref.lengths.tolist()
        for i, n in enumerate(frames.tolist()):
            assert np.abs(logits[i, :n] - ref.logits[i, :n].numpy()).max() < 1e-4
