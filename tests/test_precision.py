"""Precision as part of the setting: s=2@bf16 and s=2@int8 from one set of weights, chosen like any setting."""
import io
import shutil
import subprocess
import warnings
from pathlib import Path

import httpx
import pytest
import soundfile
import torch

import stochw2v
from helpers import serving, small_config
from stochw2v.audio.io import load_audio
from stochw2v.compute.budget import Profile, SettingCost, pick_setting
from stochw2v.data import Vocabulary
from stochw2v.data.error_rates import error_rates
from stochw2v.errors import ConfigError, ModelFileError
from stochw2v.formats.onnx import open_session
from stochw2v.runtime import PrecisionDial, SlowPrecisionWarning, dial
from stochw2v.serve import ServeSettings, create_app

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "stochw2v-synth-en"
SENTENCES = ["the cat sat on the mat", "people who push both buttons should get their wish",
             "a small boat drifted slowly across the quiet lake"]


def small_recogniser() -> stochw2v.CTCModel:
    torch.manual_seed(0)
    return stochw2v.CTCModel(stochw2v.Encoder(small_config()), Vocabulary()).eval()


def test_a_setting_names_its_precision_after_an_at_sign():
    parse = stochw2v.Compression.parse
    assert str(parse("s=2,kv=2@int8")) == "s=2,kv=2@int8" and str(parse("s=2@bfloat16")) == "s=2@bf16"
    assert parse("s=2@fp32") == parse("s=2") and type(parse("s=2@fp32")) is stochw2v.Compression
    assert parse("s=2@int8") != parse("s=2") and parse(str(parse("s=2@int8"))) == parse("s=2@int8")
    for bad, words in (("s=2@int4", "precision 'int4'"), ("s=2@int8@bf16", "twice")):
        with pytest.raises(ConfigError, match=words):
            parse(bad)


def test_a_plain_model_refuses_a_precision_its_weights_do_not_hold_and_a_dial_runs_it():
    model = small_recogniser()
    with pytest.raises(ConfigError, match="this model's weights are fp32.*PrecisionDial"):
        model.resolve("s=2@bf16")
    audio = 0.1 * torch.randn(2, 16000)
    with torch.inference_mode():
        fp32 = model(audio, None, "s=2").logits
        bf16 = PrecisionDial(model)(audio, None, "s=2@bf16")
    assert bf16.logits.dtype == torch.float32 and (bf16.logits - fp32).abs().max() < 0.1


def test_a_precision_the_machine_or_install_cannot_run_is_refused_or_warned_by_name(monkeypatch, tmp_path):
    model = PrecisionDial(small_recogniser())
    monkeypatch.setattr(dial, "onnxruntime", None)
    with pytest.raises(ConfigError, match="int8 runs on ONNX Runtime.*onnxruntime package is not installed"):
        model.resolve("s=1@int8")
    (tmp_path / "cpuinfo").write_text("flags\t: fpu sse avx2\n")
    monkeypatch.setattr(dial, "CPU_FLAGS", tmp_path / "cpuinfo")
    with pytest.warns(SlowPrecisionWarning, match="neither AMX nor AVX512-BF16"):
        model.variant("bf16")


def test_budgets_and_the_server_pick_a_precision_row_when_it_is_the_most_accurate_within_budget():
    profile = Profile([SettingCost("s=1", {1: 0.10}, 0.20, wer=0.10),
                       SettingCost("s=1@bf16", {1: 0.04}, 0.20, wer=0.101),
                       SettingCost("s=2", {1: 0.05}, 0.11, wer=0.14)])
    model = PrecisionDial(small_recogniser())
    assert str(pick_setting(model, profile, budget=0.06).setting) == "s=1@bf16"
    assert str(pick_setting(model, profile, budget=0.2).setting) == "s=1"
    with pytest.raises(ModelFileError, match="setting s=1@bf16 cannot run on this model"):
        pick_setting(small_recogniser(), profile, budget=0.06)  # a plain fp32 model runs no bf16 row
    app = create_app(model, profile, ServeSettings(latency_target=5.0))
    body = io.BytesIO()
    soundfile.write(body, (0.1 * torch.randn(16000)).numpy(), 16000, format="WAV")
    with serving(app) as url:
        answer = httpx.post(f"{url}/transcribe?budget=0.06", content=body.getvalue(), timeout=30).json()
    assert answer["setting"] == "s=1@bf16", answer


@pytest.mark.slow
def test_int8_and_bf16_transcribe_as_fp32_does_on_real_synthetic_speech(tmp_path, monkeypatch):
    """The shipped model on espeak-ng speech: fp32 is a real transcript (CER < 0.3 against the text), so a
    broken quantizer (transcripts near CER 1) could not stay within the bound int8 and bf16 are held to."""
    espeak = shutil.which("espeak-ng")
    assert espeak, "make setup installs espeak-ng"
    waves = []
    for i, sentence in enumerate(SENTENCES):
        subprocess.run([espeak, "-v", "en-us+m3", "-w", str(tmp_path / f"{i}.wav"), sentence], check=True)
        waves.append(torch.from_numpy(load_audio(tmp_path / f"{i}.wav")).float())
    lengths = torch.tensor([len(w) for w in waves])
    batch = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
    monkeypatch.setenv("STOCHW2V_CACHE", str(tmp_path / "cache"))
    model = PrecisionDial(stochw2v.load(SHIPPED), threads=1)
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        texts = {p: model.transcribe(batch, lengths, f"s=2@{p}") for p in ("fp32", "bf16", "int8")}
    assert error_rates([s.upper() for s in SENTENCES], texts["fp32"]).cer < 0.3, texts["fp32"]
    for precision in ("bf16", "int8"):
        assert error_rates(texts["fp32"], texts[precision]).cer < 0.08, (precision, texts)
    # the cached int8 graph says what it holds: loaded as fp32 it is refused by name
    graph = next((tmp_path / "cache").rglob("*int8.onnx"))
    with pytest.raises(ModelFileError, match="holds int8 weights, but it was loaded as fp32"):
        open_session(graph, "fp32", 1)


def test_profile_refuses_precision_rows_it_cannot_measure_in_one_line(capsys):
    from stochw2v.cli import main

    assert main(["profile", "--size", "tiny", "--settings", "s=1;s=1@int8", "--threads", "1"]) == 2
    assert "s=1@int8: settings at a precision are profiled on a float32 recogniser with --out" in \
        capsys.readouterr().err
