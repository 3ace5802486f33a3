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
