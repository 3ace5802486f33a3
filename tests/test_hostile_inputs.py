"""Trust, second round: hostile inputs found by a probe. One bad request never costs another user
their answer, nothing hangs, nothing computes garbage silently, and every refusal is one line."""
import concurrent.futures
import io
import json
import math
import os
import socket
import struct
import time

import httpx
import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import save_file

import stochw2v
from helpers import serving, small_config
from stochw2v.audio import decode_audio, load_audio
from stochw2v.cli import main
from stochw2v.compute.budget import Profile, SettingCost
from stochw2v.data import Vocabulary
from stochw2v.data.manifest import read_manifest
from stochw2v.errors import ConfigError, ManifestError, ModelFileError, Stochw2vError
from stochw2v.evaluate.ngram import tuned_weights
from stochw2v.serve import ServeSettings, create_app
from stochw2v.serve.http_server import bind_socket
from stochw2v.train.recipe import FinetuneRecipe, load_recipe


def wav(samples, rate=16000, subtype="PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(samples, dtype=np.float32), rate, subtype=subtype, format="WAV")
    return buffer.getvalue()


def speechless(seconds=1.0, seed=0):
    return 0.1 * np.random.default_rng(seed).standard_normal(int(16000 * seconds))


# ------------------------------------------------------------------ server
def _free_socket():
    return bind_socket("127.0.0.1", 0)


def small_recogniser(trained_policy=None):
    torch.manual_seed(0)
    config = small_config(trained_policy=trained_policy)
    return stochw2v.CTCModel(stochw2v.Encoder(config), Vocabulary()).eval()


PROFILE = Profile([SettingCost("s=1", {1: 0.01, 8: 0.005}, 0.2), SettingCost("s=2", {1: 0.005, 8: 0.003}, 0.1)])


@pytest.fixture(scope="module")
def app():
    # a long latency target and a batch of 8: a burst of 8 requests is served as one batch
    policy = {"squeeze": [1, 2]}
    application = create_app(small_recogniser(policy), PROFILE,
                             ServeSettings(latency_target=30.0, max_batch=8, body_timeout=1.0))
    yield application
    application.state.engine.drain()


@pytest.fixture(scope="module")
def url(app):
    with serving(app, max_connections=20, header_timeout=1.0) as address:
        yield address


def test_one_short_request_in_a_burst_fails_alone_and_the_other_seven_get_their_answers(url, app):
    engine = app.state.engine
    original = engine._run
    sizes = []

    def slow_first(batch):  # hold the worker so that the burst queues up and runs as one batch
        sizes.append(len(batch.jobs))
        if len(sizes) == 1:
            time.sleep(0.5)
        original(batch)

    engine._run = slow_first
    try:
        bodies = [wav(speechless(1.0, i)) for i in range(7)] + [wav(speechless(300 / 16000))]
        with httpx.Client(timeout=30) as client, concurrent.futures.ThreadPoolExecutor(9) as pool:
            blocker = pool.submit(client.post, f"{url}/transcribe", content=wav(speechless(1.0, 99)))
            time.sleep(0.1)
            answers = list(pool.map(lambda body: client.post(f"{url}/transcribe", content=body), bodies))
            assert blocker.result().status_code == 200
    finally:
        engine._run = original
    assert max(sizes) == 7  # the seven good requests ran as one batch, the short one never joined it
    assert [a.status_code for a in answers] == [200] * 7 + [400]
    assert "300 samples" in answers[-1].json()["error"] and "too short" in answers[-1].json()["error"]


def test_a_batch_that_fails_anyway_is_retried_one_by_one(app):
    engine = app.state.engine
    original = engine._run

    def fails_in_a_batch(batch):  # as if one request broke the batch in a way no check foresaw
        if len(batch.jobs) > 1:
            raise RuntimeError("boom")
        if batch.jobs[0].seconds < 0.6:
            raise ConfigError("this one is bad")
        original(batch)

    engine._run = fails_in_a_batch
    try:
        futures = []
        with engine.condition:  # queue all three before the worker looks, so they form one batch
            for seconds in (1.0, 0.5, 1.0):
                futures.append(engine.submit(speechless(seconds).astype(np.float32), None, None))
        results = []
        for future in futures:
            try:
                results.append(future.result(30).text is not None)
            except ConfigError:
                results.append("refused")
    finally:
        engine._run = original
    assert results == [True, "refused", True]


@pytest.mark.parametrize("query, words", [
    ("?setting=kv=1000", "needs at least"),
    ("?setting=s=2,kv=200", "needs at least"),
])
def test_a_setting_the_audio_cannot_carry_is_a_400(url, query, words):
    answer = httpx.post(f"{url}/transcribe{query}", content=wav(speechless(1.0)), timeout=30)
    assert answer.status_code == 400 and words in answer.json()["error"]


def test_an_untrained_setting_is_served_with_a_warning(url):
    answer = httpx.post(f"{url}/transcribe?setting=s=4", content=wav(speechless(1.0)), timeout=30)
    assert answer.status_code == 200
    assert "never drawn" in answer.json()["warning"] and answer.headers["warning"].startswith("299 stochw2v")
    trained = httpx.post(f"{url}/transcribe?setting=s=2", content=wav(speechless(1.0)), timeout=30)
    assert trained.json()["warning"] is None and "warning" not in trained.headers


def flac_declaring(rate, channels, seconds):
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros((int(rate * seconds), channels), np.float32), rate, format="FLAC")
    return buffer.getvalue()


@pytest.mark.parametrize("body, status, words", [
    (flac_declaring(192_000, 2, 0.5), 400, "192000 Hz"),  # over the server's 48 kHz limit, refused from the header
    (wav(np.zeros(100), rate=1, subtype="FLOAT"), 400, "1 Hz"),
    (wav(np.full(16000, 1e30), subtype="FLOAT"), 400, "far beyond full scale"),
])
def test_audio_whose_header_or_scale_is_absurd_is_refused(url, body, status, words):
    answer = httpx.post(f"{url}/transcribe", content=body, timeout=30)
    assert answer.status_code == status and words in answer.json()["error"]


def test_a_small_file_declaring_a_gigabyte_is_refused_before_decoding():
    # 8 channels at 384 kHz for 59 s: 181M samples; FLAC of silence compresses that to almost nothing
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36, b"WAVE", b"fmt ", 16, 3, 8, 384_000, 384_000 * 32, 32,
                         32, b"data", 0xFFFFFFFF)
    with pytest.raises(stochw2v.Stochw2vError, match="over the limit of 60 s|384000 Hz"):
        decode_audio(header + b"\0" * 64, "bomb.wav", max_seconds=60.0, max_rate=48_000)


def test_more_idle_connections_than_the_cap_leave_health_answering(url):
    idle = []
    try:
        for _ in range(35):  # the cap is 20: the oldest idle ones are let go to make room
            idle.append(socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))))
        time.sleep(0.2)
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200
    finally:
        for sock in idle:
            sock.close()


def test_slow_headers_are_cut_off_and_slow_bodies_get_408(url):
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as slow:
        slow.sendall(b"POST /transcribe HTTP/1.1\r\nHost: x\r\n")  # the headers never finish
        slow.settimeout(5)
        start = time.monotonic()
        assert slow.recv(100) == b""  # closed by the server after its 1 s header timeout
        assert time.monotonic() - start < 4
    with socket.create_connection(("127.0.0.1", port)) as slow:
        slow.sendall(b"POST /transcribe HTTP/1.1\r\nHost: x\r\nContent-Length: 32000\r\n\r\nRIFF")
        slow.settimeout(5)
        assert slow.recv(200).startswith(b"HTTP/1.1 408")  # the body did not arrive within 1 s


def test_serve_exits_with_one_line_when_it_cannot_listen(capsys):
    with _free_socket() as taken:
        port = taken.getsockname()[1]
        assert main(["serve", "no-such-model", "--port", str(port)]) == 2
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "m", "--port", "70000"])
    assert "from 1 to 65535" in capsys.readouterr().err


# ------------------------------------------------------------------- files
def test_a_fifo_is_refused_by_name_not_read_forever(tmp_path):
    fifo = tmp_path / "audio.wav"
    os.mkfifo(fifo)
    with pytest.raises(stochw2v.Stochw2vError, match="audio.wav: is a FIFO"):
        load_audio(fifo)


def test_file_level_refusals_are_one_line(tmp_path, capsys):
    model = stochw2v.save(small_recogniser(), tmp_path / "model")
    sf.write(tmp_path / "one_hz.wav", np.zeros(100, np.float32), 1, subtype="FLOAT")
    sf.write(tmp_path / "loud.wav", np.full(16000, 1e30, np.float32), 16000, subtype="FLOAT")
    long_name = str(tmp_path / ("x" * 300 + ".wav"))
    assert main(["transcribe", str(model), str(tmp_path / "one_hz.wav"), str(tmp_path / "loud.wav"),
                 long_name]) == 1
    err = capsys.readouterr().err
    assert "1 Hz" in err and "far beyond full scale" in err and "File name too long" in err
    assert "Traceback" not in err
    assert main(["evaluate", str(model), "--manifest", "m.tsv", "--out", long_name]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "too long" in err


def test_manifest_check_is_linear_in_the_number_of_entries(tmp_path):
    # 200,000 lines with one repeated id: a quadratic duplicate search would never finish
    lines = [str(tmp_path)] + [f"u{i}.wav\t16000" for i in range(200_000)] + ["u7.wav\t16000"]
    (tmp_path / "big.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=r"more than once: \['u7'\]"):
        read_manifest(tmp_path / "big.tsv", check_files=False)


# ------------------------------------------------------------ model folders
@pytest.fixture()
def model_folder(tmp_path):
    return stochw2v.save(small_recogniser(), tmp_path / "model")


def edit_config(folder, **changes):
    path = folder / "config.json"
    meta = json.loads(path.read_text())
    meta["encoder"].update(changes)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("changes, words", [
    ({"layer_norm_eps": float("nan")}, "layer_norm_eps must be a finite number"),
    ({"layer_norm_eps": -1e-5}, "layer_norm_eps must be in"),
    ({"layer_norm_eps": "1e-5"}, "layer_norm_eps must be a finite number"),
    ({"layer_norm_first": ""}, "layer_norm_first must be true or false"),
    ({"normalize_waveform": "false"}, "normalize_waveform must be true or false"),
    ({"dropout": "x"}, "dropout must be a finite number"),
    ({"num_layers": 100_000}, "does not belong to these weights"),
    ({"dim": 1_000_000, "num_heads": 1, "pos_conv_groups": 1}, "does not belong to these weights"),
    ({"conv_layers": "big"}, "conv_layers must be a list"),
])
def test_a_config_of_the_wrong_type_or_range_is_refused_naming_the_field(model_folder, changes, words):
    edit_config(model_folder, **changes)
    with pytest.raises(ModelFileError, match=words):
        stochw2v.load(model_folder)


def test_a_config_nested_ten_thousand_deep_is_one_line(model_folder):
    (model_folder / "config.json").write_text("[" * 10_000 + "]" * 10_000)
    with pytest.raises(ModelFileError, match="nested too deeply"):
        stochw2v.load(model_folder)


@pytest.mark.parametrize("poison, words", [
    (lambda t: t.fill_(float("nan")), "holds NaN or inf"),
    (lambda t: t.to(torch.int64), "is int64"),
    (lambda t: t.to(torch.bool), "is bool"),
])
def test_weights_that_are_not_finite_floats_are_refused(model_folder, poison, words):
    from safetensors.torch import load_file
    state = load_file(model_folder / "model.safetensors")
    state["head.bias"] = poison(state["head.bias"].clone())
    save_file(state, model_folder / "model.safetensors")
    with pytest.raises(ModelFileError, match=f"head.bias {words}" if "is" in words[:2] else words):
        stochw2v.load(model_folder)


# ----------------------------------------------------------------- recipes
def recipe_file(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))


@pytest.mark.parametrize("text, words", [
    (BILLION_LAUGHS, "aliases|anchors"),
    ("a: " + "[" * 1000 + "]" * 1000, "nested more than"),
    ("optim:\n  lr: 0.001\n  lr: 0.1\n", "key 'lr' is given twice"),
    ("optim:\n  lr: .inf\n", "optim.lr must be a finite number"),
    ("optim:\n  lr: .nan\n", "optim.lr must be a finite number"),
    ("run:\n  max_minutes: .nan\n", "run.max_minutes must be a finite number"),
    ("optim:\n  weight_decay: -0.1\n", "optim.weight_decay must be >= 0"),
    ("optim:\n  betas: [0.9, 1.5]\n", "optim.betas must be two numbers in"),
    ("optim:\n  betas: [a, b]\n", "optim.betas must be two numbers in"),
    ("optim:\n  eps: -1.0e-8\n", "optim.eps must be > 0"),
    ("run:\n  seed: 1180591620717411303424\n", "run.seed must be a whole number from 0"),
])
def test_hostile_recipes_are_refused_before_training(tmp_path, text, words):
    with pytest.raises(ConfigError, match=words):
        load_recipe(recipe_file(tmp_path, text), cls=FinetuneRecipe)


def test_an_override_may_not_smuggle_an_alias():
    with pytest.raises(ConfigError, match="aliases|anchors"):
        load_recipe(None, ["optim.betas=&a [0.9, 0.98]"])


# --------------------------------------------------- profiles and LM folders
def profile_file(tmp_path, **changes):
    row = {"setting": "s=1", "rtf": {"1": 0.01}, "gmacs_per_audio_second": 0.2, "wer": 0.3, "cer": 0.1}
    data = {"device": "cpu", "threads": 1, "settings": [{**row, **changes.pop("row", {})}], **changes}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("changes, words", [
    ({"row": {"gmacs_per_audio_second": float("nan")}}, "gmacs_per_audio_second must be a finite number"),
    ({"row": {"rtf": {"1": 0}}}, r"rtf\[1\] must be a finite number > 0"),
    ({"row": {"rtf": {"1": -0.5}}}, r"rtf\[1\] must be a finite number > 0"),
    ({"row": {"wer": "0.3"}}, "wer must be a finite number >= 0"),
    ({"threads": "2"}, "threads must be a whole number"),
    ({"row": {"setting": "s=9x"}}, "setting"),
])
def test_a_bad_profile_is_one_line_naming_the_field(tmp_path, changes, words):
    with pytest.raises(ModelFileError, match=words):
        Profile.load(profile_file(tmp_path, **changes))


def test_a_bad_profile_is_refused_by_transcribe_and_serve(tmp_path, model_folder, capsys):
    bad = profile_file(tmp_path, row={"rtf": {"1": 0}})
    sf.write(tmp_path / "a.wav", speechless(1.0).astype(np.float32), 16000)
    assert main(["transcribe", str(model_folder), str(tmp_path / "a.wav"), "--budget", "0.1",
                 "--profile", str(bad)]) == 2
    assert main(["serve", str(model_folder), "--profile", str(bad), "--port", str(_free_port())]) == 2
    err = capsys.readouterr().err
    assert err.count("rtf[1] must be a finite number > 0") == 2 and "Traceback" not in err


def _free_port():
    with _free_socket() as sock:
        return sock.getsockname()[1]


def test_budget_without_profile_uses_the_model_folders_own(tmp_path, model_folder, capsys):
    (model_folder / "profile.json").write_bytes(profile_file(tmp_path).read_bytes())
    sf.write(tmp_path / "a.wav", speechless(1.0).astype(np.float32), 16000)
    assert main(["transcribe", str(model_folder), str(tmp_path / "a.wav"), "--budget", "0.1"]) == 0
    assert f"from {model_folder / 'profile.json'}" in capsys.readouterr().err


def test_python_api_arguments_of_the_wrong_type_are_one_error():
    model = small_recogniser()
    with pytest.raises(ConfigError, match="RTF budget must be a finite number"):
        stochw2v.pick_setting(model, budget="x", profile=PROFILE)
    with pytest.raises(ConfigError, match="seconds must be a finite number"):
        stochw2v.count_macs(model.encoder, seconds=math.nan)


@pytest.mark.parametrize("content, words", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"lm_weight": "0.5"}', "lm_weight must be a finite number"),
    ('{"beam": -5}', "beam must be a whole number"),
    ('{"token_min_logp": 3}', "token_min_logp must be <= 0"),
])
def test_a_bad_decoding_json_is_one_line(tmp_path, content, words):
    (tmp_path / "decoding.json").write_text(content)
    with pytest.raises(Stochw2vError, match=words):
        tuned_weights(tmp_path)


@pytest.mark.parametrize("argv, words", [
    (["profile", "--seconds", "1e6"], "at most 120"),
    (["profile", "--batch", "100000"], "from 1 to 256"),
    (["grow", "m", "--layers", "5000", "--out", "o"], "from 1 to 256"),
])
def test_arguments_past_what_the_machine_can_do_are_refused_at_once(argv, words, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert words in capsys.readouterr().err


def test_folders_of_this_projects_old_formats_say_which_version_and_how_to_convert(model_folder):
    meta = json.loads((model_folder / "config.json").read_text())
    (model_folder / "config.json").write_text(json.dumps({**meta, "version": 1, "trained_settings": ["s=1"]}))
    with pytest.raises(ModelFileError, match="format version 1; this release reads version 2.*trained_policy"):
        stochw2v.load(model_folder)
    (model_folder / "config.json").write_text(json.dumps(meta))
    from safetensors.torch import load_file
    state = load_file(model_folder / "model.safetensors")
    blocks = sorted(k for k in state if k.startswith("encoder.context.upsample.weights."))
    state["encoder.context.upsample.weight"] = torch.cat([state.pop(k) for k in blocks])
    save_file(state, model_folder / "model.safetensors")
    with pytest.raises(ModelFileError, match="before 0.2 .*split_upsampler_weights"):
        stochw2v.load(model_folder)
