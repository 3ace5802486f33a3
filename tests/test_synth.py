import json
import shutil

import pytest
import soundfile as sf

from stochw2v.cli import main
from stochw2v.data import read_manifest

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="espeak-ng could not be installed here (make setup installs it with apt-get)")]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    assert main(["synth", "--out", str(out), "--hours", "0.05", "--seed", "3"]) == 0
    return out


def test_synth_writes_manifests_matching_the_audio(corpus):
    total = 0.0
    for split in ("train", "valid", "test"):
        manifest = read_manifest(corpus / f"{split}.tsv", labels=True, check_lengths=True)
        for i in range(len(manifest)):
            info = sf.info(str(manifest.audio_path(i)))
            assert info.samplerate == 16000 and info.frames == manifest.num_samples[i]
            assert manifest.words[i] and manifest.words[i] == manifest.words[i].upper()
        total += manifest.total_seconds
    assert 0.6 * 180 < total < 1.6 * 180  # 0.05 h requested
    meta = json.loads((corpus / "corpus.json").read_text())
    by_path = {u["split"]: [] for u in meta["utterances"]}
    for u in meta["utterances"]:
        by_path[u["split"]].append(u["words"])
    assert by_path["train"] == read_manifest(corpus / "train.tsv").words


def test_test_split_holds_unseen_sentences_and_voices(corpus):
    meta = json.loads((corpus / "corpus.json").read_text())
    seen_text = {u["text"] for u in meta["utterances"] if u["split"] != "test"}
    seen_voices = {u["voice"] for u in meta["utterances"] if u["split"] != "test"}
    test = [u for u in meta["utterances"] if u["split"] == "test"]
    assert test and not {u["text"] for u in test} & seen_text
    assert len({u["voice"] for u in test} - seen_voices) >= 2


def test_synth_is_deterministic_for_a_seed(corpus):
    from stochw2v.data.synth import load_sentences, plan_corpus

    sentences = load_sentences()
    assert plan_corpus(sentences, 0.05, seed=3) == plan_corpus(sentences, 0.05, seed=3)
    assert plan_corpus(sentences, 0.05, seed=3) != plan_corpus(sentences, 0.05, seed=4)
    meta = json.loads((corpus / "corpus.json").read_text())
    assert [u["text"] for u in meta["utterances"]] == [u.text for u in plan_corpus(sentences, 0.05, seed=3)]


def test_each_engine_speaks_an_equal_share_and_chosen_voices_stay_out_of_training():
    from collections import Counter

    from stochw2v.data.synth import SynthError, plan_corpus

    sentences = [f"sentence number {i} is spoken here" for i in range(400)]
    plan = plan_corpus(sentences, 1.0, seed=1, engines=("espeak", "flite"))
    train = [u for u in plan if u.split == "train"]
    share = Counter(u.voice.startswith("flite:") for u in train)[True] / len(train)
    assert 0.45 < share < 0.55  # over all voices flite's 4 would get 1 in 140
    held = {u.voice for u in plan if u.split == "test" and u.index % 2 == 0}  # every other test utterance
    assert len(held) == 5 and sum(v.startswith("flite:") for v in held) == 1
    assert not held & {u.voice for u in plan if u.split != "test"}

    kept_out = plan_corpus(sentences, 1.0, seed=1, engines=("flite",), held_out_voices=("flite:slt",))
    assert {u.voice for u in kept_out if u.split != "test"} == {"flite:kal", "flite:kal16", "flite:awb", "flite:rms"}
    assert "flite:slt" in {u.voice for u in kept_out if u.split == "test"}
    assert plan_corpus(sentences, 0.05, seed=3) == plan_corpus(sentences, 0.05, seed=3, engines=("espeak",))
    with pytest.raises(SynthError, match=r"\['flite:nobody'\] are not voices"):
        plan_corpus(sentences, 0.1, seed=1, engines=("flite",), held_out_voices=("flite:nobody",))
    with pytest.raises(SynthError, match="every flite voice is held out"):
        plan_corpus(sentences, 0.1, seed=1, engines=("flite",),
                    held_out_voices=("flite:kal", "flite:kal16", "flite:awb", "flite:rms", "flite:slt"))


def test_voice_sampling_remakes_the_plan_from_before_the_equal_shares():
    """`voice` draws over every seen voice, as plans did when the shipped model's first corpus was made: with
    espeak's hundreds of voices beside flite's 4, flite speaks about 4 in every N; one engine alone plans the same."""
    from collections import Counter

    from stochw2v.data.synth import SynthError, plan_corpus, voice_pool

    sentences = [f"sentence number {i} is spoken here" for i in range(400)]
    plan = plan_corpus(sentences, 3.0, seed=1, engines=("espeak", "flite"), voice_sampling="voice")
    train = [u for u in plan if u.split == "train"]
    seen_voices = sum(len(v) for v in voice_pool(("espeak", "flite")).values()) - 5
    flite = Counter(u.voice.startswith("flite:") for u in train)[True]
    expected = len(train) * 4 / seen_voices
    assert abs(flite - expected) < 4 * expected ** 0.5 + 1, (flite, expected)
    held = {u.voice for u in plan if u.split == "test" and u.index % 2 == 0}
    assert held == {u.voice for u in plan_corpus(sentences, 3.0, seed=1, engines=("espeak", "flite"))
                    if u.split == "test" and u.index % 2 == 0}  # the same voices are held out either way
    assert not held & {u.voice for u in plan if u.split != "test"}
    assert plan_corpus(sentences, 0.2, seed=4, voice_sampling="voice") == plan_corpus(sentences, 0.2, seed=4)
    with pytest.raises(SynthError, match="--voice-sampling must be one of"):
        plan_corpus(sentences, 0.1, seed=1, voice_sampling="speaker")


def _median_f0(audio, rate=16000):
    """Crude pitch: autocorrelation peak over voiced 40 ms frames (enough to tell 90 Hz from 200 Hz)."""
    import numpy as np

    frame, found = int(0.04 * rate), []
    for start in range(0, len(audio) - frame, frame):
        x = audio[start:start + frame] - audio[start:start + frame].mean()
        if np.sqrt((x ** 2).mean()) < 0.02:
            continue
        r = np.correlate(x, x, "full")[frame - 1:]
        lag = rate // 400 + int(np.argmax(r[rate // 400:rate // 60]))
        if r[lag] > 0.3 * r[0]:
            found.append(rate / lag)
    return float(np.median(found))


def _festival_and_flite_installed() -> bool:
    from stochw2v.data.synth import SynthError, engine_binary

    try:
        engine_binary("festival"), engine_binary("flite")
    except SynthError:
        return False
    return True


@pytest.mark.skipif(not _festival_and_flite_installed(),
                    reason="festival, its voices or flite could not be installed here (make setup installs them)")
def test_festival_speaks_its_share_at_the_rate_and_pitch_drawn(tmp_path):
    from stochw2v.data.synth import Utterance, engine_binary, synthesize

    out = tmp_path / "corpus"
    assert main(["synth", "--out", str(out), "--hours", "0.03", "--seed", "1", "--engines", "festival,flite",
                 "--held-out-voices", "flite:slt", "--workers", "1"]) == 0
    meta = json.loads((out / "corpus.json").read_text())
    train = [u["voice"] for u in meta["utterances"] if u["split"] == "train"]
    assert {v for v in train if v.startswith("festival:")} == {"festival:kal_diphone", "festival:ked_diphone"}
    assert 0.25 < sum(v.startswith("festival:") for v in train) / len(train) < 0.75
    assert len(read_manifest(out / "train.tsv", labels=True, check_lengths=True)) == len(train)

    binaries = {"festival": engine_binary("festival")}
    text = "the quick brown fox jumps over the lazy dog near the bank of the river"
    made = {}
    for speed, pitch in ((100, 90), (125, 200)):
        utterance = Utterance("train", pitch, text, text.upper(), "festival:ked_diphone", speed, pitch)
        synthesize(utterance, tmp_path, binaries)
        made[pitch], _ = sf.read(str(tmp_path / utterance.relative_path), dtype="float32")
    assert abs(_median_f0(made[90]) - 90) < 20 and abs(_median_f0(made[200]) - 200) < 35
    assert 1.1 < len(made[200]) / len(made[90]) < 1.4  # duration stretch 1.25


def test_voices_no_engine_has_are_refused_before_synthesis():
    from stochw2v.data.synth import SynthError, check_voices

    check_voices(["en-us+m1", "flite:awb"])
    for voice, message in (("foo:bar", "unknown engine 'foo'"), ("flite:zz", "flite's voices are"),
                           ("festival:nobody", "festival has no voice 'nobody' installed")):
        with pytest.raises(SynthError, match=message):
            check_voices([voice])


def _spectral_centroid(audio, rate=16000):
    """Mean frequency of the long-term power spectrum below 6 kHz (rises with the formants)."""
    import numpy as np

    frame = 512
    frames = np.lib.stride_tricks.sliding_window_view(audio, frame)[::256] * np.hanning(frame)
    power = (np.abs(np.fft.rfft(frames, axis=1)) ** 2).mean(axis=0)
    freqs = np.fft.rfftfreq(frame, 1 / rate)
    band = freqs < 6000
    return float((freqs[band] * power[band]).sum() / power[band].sum())


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite could not be installed here (make setup installs it)")
def test_formant_warp_raises_the_formants_at_the_tempo_and_pitch_drawn(tmp_path):
    from stochw2v.data.synth import SynthError, Utterance, engine_binary, plan_corpus, synthesize, warp_prosody

    binaries = {"flite": engine_binary("flite")}
    text = "the quick brown fox jumps over the lazy dog near the bank of the river"
    made = {}
    for warp in (1.0, 1.25):
        speed, pitch = warp_prosody("flite:awb", 100, 120, warp)
        utterance = Utterance("train", int(warp * 100), text, text.upper(), "flite:awb", speed, pitch, warp)
        synthesize(utterance, tmp_path, binaries)
        made[warp], _ = sf.read(str(tmp_path / utterance.relative_path), dtype="float32")
    assert 0.92 < len(made[1.25]) / len(made[1.0]) < 1.08  # tempo kept
    assert abs(_median_f0(made[1.25]) - _median_f0(made[1.0])) < 15  # F0 kept
    assert 1.12 < _spectral_centroid(made[1.25]) / _spectral_centroid(made[1.0]) < 1.4  # formants raised

    sentences = [f"sentence number {i} is spoken here" for i in range(200)]
    plain = plan_corpus(sentences, 0.2, seed=2, engines=("flite",))
    warped = plan_corpus(sentences, 0.2, seed=2, engines=("flite",), formant_warp=(1.1, 1.2))
    assert {u.warp for u in plain} == {1.0}
    assert all(1.1 <= u.warp <= 1.2 for u in warped) and len({u.warp for u in warped}) > 10
    with pytest.raises(SynthError, match="--formant-warp must be LOW,HIGH"):
        plan_corpus(sentences, 0.2, seed=2, formant_warp=(1.3, 1.1))
    with pytest.raises(SystemExit):  # argparse's clear usage error, before any synthesis
        main(["synth", "--out", str(tmp_path / "x"), "--hours", "0.01", "--formant-warp", "fast"])
