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
