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


@pytest.mark.slow
def test_the_onnxruntime_backend_gives_the_torch_transcripts_and_reuses_its_cached_graph(tmp_path, monkeypatch,
                                                                                        capsys):
    from stochw2v.runtime import OnnxRuntimeRecogniser, onnx_runtime

    torch.manual_seed(0)
    model = stochw2v.CTCModel(stochw2v.Encoder(small_config()), Vocabulary()).eval()
    lengths = torch.tensor([24000, 11000, 7000])
    audio = torch.zeros(3, 24000)
    for i, n in enumerate(lengths.tolist()):
        audio[i, :n] = 0.1 * torch.randn(n)
    monkeypatch.setenv("STOCHW2V_CACHE", str(tmp_path / "cache"))
    fast = OnnxRuntimeRecogniser(model, threads=1)
    with torch.inference_mode():
        ours, theirs = model(audio, lengths, "s=2,kv=2"), fast(audio, lengths, "s=2,kv=2")
    assert theirs.lengths.tolist() == ours.lengths.tolist()
    assert max((theirs.logits[i, :n] - ours.logits[i, :n]).abs().max().item()
               for i, n in enumerate(ours.lengths.tolist())) < 1e-4
    assert fast.transcribe(audio, lengths, "s=2,kv=2") == model.transcribe(audio, lengths, "s=2,kv=2")
    assert len(list((tmp_path / "cache").rglob("*.onnx"))) == 1
    # a second recogniser of the same weights runs the cached graph: no export
    def exported_again(*_args, **_kwargs):
        pytest.fail("exported again")

    monkeypatch.setattr(onnx_runtime, "export_onnx", exported_again)
    again = OnnxRuntimeRecogniser(model, threads=1)
    with torch.inference_mode():
        assert torch.equal(again(audio, lengths, "s=2,kv=2").logits, theirs.logits)
    # the CLI takes the backend; what it cannot run is refused by name
    stochw2v.save(model, tmp_path / "m")
    import soundfile

    soundfile.write(tmp_path / "a.wav", audio[0].numpy(), 16000)
    assert main(["transcribe", str(tmp_path / "m"), str(tmp_path / "a.wav"), "--compression", "s=2,kv=2",
                 "--backend", "onnxruntime", "--threads", "1"]) == 0
    assert capsys.readouterr().out.split("\t", 1)[1].strip() == model.transcribe(audio[0], None, "s=2,kv=2")[0]
    assert main(["transcribe", str(tmp_path / "m"), str(tmp_path / "a.wav"), "--backend", "onnxruntime",
                 "--dtype", "bfloat16"]) == 2
    assert "--backend onnxruntime runs float32 on the CPU" in capsys.readouterr().err


def test_the_automatic_backend_runs_fp32_on_torch_and_a_dial_needs_float32_weights():
    from stochw2v.runtime import PrecisionDial

    model = stochw2v.CTCModel(stochw2v.Encoder(small_config()), Vocabulary()).eval()
    dial = PrecisionDial(model, "auto", threads=1)
    assert dial.backend == "torch" and dial.variant("fp32") is model
    assert list(dial.state_dict()) == list(model.state_dict())  # each weight once, under the recogniser's names
    audio = 0.1 * torch.randn(2, 16000)
    with torch.inference_mode():
        assert torch.equal(dial(audio, None, "s=2").logits, model(audio, None, "s=2").logits)
    with pytest.raises(stochw2v.errors.Stochw2vError, match="starts from float32 weights"):
        PrecisionDial(model.to(torch.bfloat16), "auto")
