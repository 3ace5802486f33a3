"""Word n-gram LMs: a proper distribution in every context, clear errors, tuned weights used by --lm."""
import json
import random

import numpy as np
import pytest
import soundfile as sf
import torch

import stochw2v
from helpers import small_config
from stochw2v.cli import main
from stochw2v.data import Manifest, Vocabulary
from stochw2v.evaluate.decoding import BeamDecoder, greedy_decode
from stochw2v.evaluate.ngram import EOS, UNK, build_ngram

kenlm = pytest.importorskip("kenlm", reason="kenlm reads the ARPA files in these tests (pip install .[test])")
WORDS = "THE A CAT DOG SAT ON MAT RAN FAST SLOW RED BIG".split()


def sentences(count=300, seed=0):
    rng = random.Random(seed)
    return [[rng.choice(WORDS) for _ in range(rng.randint(2, 9))] for _ in range(count)]


@pytest.mark.parametrize("order", [2, 3, 4])
def test_every_context_is_a_probability_distribution(order, tmp_path):
    (tmp_path / "lm.arpa").write_text(build_ngram(sentences(), order).to_arpa())
    model = kenlm.Model(str(tmp_path / "lm.arpa"))
    for context in ([], ["THE"], ["THE", "CAT"], ["CAT", "SAT", "ON"], ["RED", "RED"], ["MAT", "XYZZY"]):
        for start in (model.BeginSentenceWrite, model.NullContextWrite):
            state = kenlm.State()
            start(state)
            for word in context:
                after = kenlm.State()
                model.BaseScore(state, word, after)
                state = after
            total = sum(10 ** model.BaseScore(state, w, kenlm.State()) for w in WORDS + [EOS, UNK])
            assert total == pytest.approx(1.0, abs=1e-5), (context, start)


def test_kneser_ney_unigrams_count_contexts_not_occurrences():
    # FRANCISCO occurs 20 times but only after SAN; RED occurs 5 times after 5 different words
    text = [["SAN", "FRANCISCO"]] * 20 + [[w, "RED"] for w in ("A", "THE", "BIG", "ONE", "MY")]
    model = build_ngram(text, order=2)
    assert model.probs[0][("FRANCISCO",)] < model.probs[0][("RED",)]
    assert model.probs[1][("SAN", "FRANCISCO")] > -0.1  # after SAN it is nearly certain


def test_a_built_lm_corrects_a_spelling_in_beam_search(tmp_path):
    text = tmp_path / "train.wrd"
    text.write_text("THE CAT SAT\nA CAT RAN\nTHE CAT\n" * 10)
    assert main(["lm", "build", "--text", str(text), "--order", "3", "--out", str(tmp_path / "lm")]) == 0
    assert json.loads((tmp_path / "lm" / "lm.json").read_text())["order"] == 3
    vocab = Vocabulary()
    letters = "CAT"  # ambiguous middle frame: 'A' slightly below 'O'
    logits = torch.full((1, 3, len(vocab)), -10.0)
    for t, c in enumerate(letters):
        logits[0, t, vocab.tokens.index(c)] = 0.0
    logits[0, 1, vocab.tokens.index("O")] = 0.2
    lengths = torch.tensor([3])
    assert greedy_decode(logits, lengths, vocab) == ["COT"]
    assert BeamDecoder(vocab, 16, tmp_path / "lm", lm_weight=2.0, word_score=0.0)(logits, lengths) == ["CAT"]


def test_words_of_a_vocabulary_file_are_known_to_the_lm_and_spelled_by_the_beam_search(tmp_path):
    text, words = tmp_path / "train.wrd", tmp_path / "words.txt"
    text.write_text("THE DOG SAT\nA DOG RAN\nTHE DOG\n" * 10)
    words.write_text("cat\ncat's\nDog\n\u00e9clair\n")  # a dictionary's casing and accents, normalised
    assert main(["lm", "build", "--text", str(text), "--order", "3", "--out", str(tmp_path / "lm"),
                 "--vocabulary", str(words)]) == 0
    meta = json.loads((tmp_path / "lm" / "lm.json").read_text())
    assert meta["vocabulary"] == str(words) and meta["words_only_in_vocabulary"] == 3  # CAT CAT'S ECLAIR
    model = kenlm.Model(str(tmp_path / "lm" / "lm.arpa"))
    assert "CAT" in model and "ECLAIR" in model
    for context in ([], ["THE"], ["THE", "DOG"]):  # still one distribution per context, now over more words
        state = kenlm.State()
        model.BeginSentenceWrite(state)
        for word in context:
            after = kenlm.State()
            model.BaseScore(state, word, after)
            state = after
        vocabulary = "THE A DOG SAT RAN CAT CAT'S ECLAIR".split() + [EOS, UNK]
        assert sum(10 ** model.BaseScore(state, w, kenlm.State()) for w in vocabulary) == pytest.approx(1.0, abs=1e-5)

    vocab = Vocabulary()
    logits = torch.full((1, 3, len(vocab)), -10.0)
    for t, c in enumerate("CAT"):
        logits[0, t, vocab.tokens.index(c)] = 0.0
    logits[0, 1, vocab.tokens.index("O")] = 0.2  # acoustics lean to COT, a word neither file has
    lengths = torch.tensor([3])
    assert greedy_decode(logits, lengths, vocab) == ["COT"]
    assert BeamDecoder(vocab, 16, tmp_path / "lm", lm_weight=2.0, word_score=0.0)(logits, lengths) == ["CAT"]
    (tmp_path / "plain").mkdir()
    assert main(["lm", "build", "--text", str(text), "--order", "3", "--out", str(tmp_path / "plain")]) == 0
    assert "CAT" not in kenlm.Model(str(tmp_path / "plain" / "lm.arpa"))


def test_the_unknown_word_score_decides_between_the_acoustics_and_the_lexicon(tmp_path):
    text = tmp_path / "train.wrd"
    text.write_text("THE CAT SAT\nA CAT RAN\nTHE CAT\n" * 10)
    assert main(["lm", "build", "--text", str(text), "--order", "3", "--out", str(tmp_path / "lm")]) == 0
    vocab = Vocabulary()
    logits = torch.full((1, 3, len(vocab)), -10.0)
    for t, c in enumerate("COT"):  # the acoustics say COT clearly, a word the LM does not list
        logits[0, t, vocab.tokens.index(c)] = 0.0
    logits[0, 1, vocab.tokens.index("A")] = -3.0
    lengths = torch.tensor([3])
    decoder = BeamDecoder(vocab, 16, tmp_path / "lm", lm_weight=0.5, word_score=0.0, unknown_word_score=0.0)
    assert decoder(logits, lengths) == ["COT"]  # no cost for leaving the lexicon
    decoder.set_weights(0.5, 0.0, -1000.0)
    assert decoder(logits, lengths) == ["CAT"]  # only the LM's words
    assert BeamDecoder(vocab, 16, tmp_path / "lm", 0.5, 0.0, -1000.0)(logits, lengths) == ["CAT"]
    # 'A' at -3 is below a -2 floor: the search never tries it, and no lexicon can bring CAT back
    assert BeamDecoder(vocab, 16, tmp_path / "lm", 0.5, 0.0, -1000.0, token_min_logp=-2.0)(logits, lengths) != ["CAT"]
    for bad in ({"token_min_logp": 1.0}, {"beam_prune_logp": float("nan")}):
        with pytest.raises(stochw2v.Stochw2vError, match="must be a negative log-probability"):
            BeamDecoder(vocab, 16, tmp_path / "lm", **bad)


def test_lm_build_refuses_a_missing_or_empty_vocabulary(tmp_path, capsys):
    (tmp_path / "train.wrd").write_text("THE CAT\n")
    (tmp_path / "empty.txt").write_text("  \n")
    for vocabulary, message in (("nothing.txt", "no such vocabulary file"), ("empty.txt", "holds no words")):
        assert main(["lm", "build", "--text", str(tmp_path / "train.wrd"), "--out", str(tmp_path / "lm"),
                     "--vocabulary", str(tmp_path / vocabulary)]) == 2
        assert message in capsys.readouterr().err


@pytest.mark.parametrize("content, words", [
    (b"", "holds no words"),
    (b"\n  \n...\n", "holds no words"),
    (bytes(range(200, 256)) * 4, "not a UTF-8 text file"),
])
def test_lm_build_refuses_what_is_not_text(content, words, tmp_path, capsys):
    (tmp_path / "bad.txt").write_bytes(content)
    assert main(["lm", "build", "--text", str(tmp_path / "bad.txt"), "--out", str(tmp_path / "lm")]) == 2
    assert words in capsys.readouterr().err


def test_an_lm_in_another_alphabet_is_refused_before_decoding(tmp_path):
    (tmp_path / "lm.arpa").write_text(
        "\\data\\\nngram 1=4\nngram 2=1\n\n\\1-grams:\n-1.0\t<s>\t-0.3\n-1.0\t</s>\n-9.0\t<unk>\n-0.1\tcat\t-0.3\n\n"
        "\\2-grams:\n-0.05\t<s> cat\n\n\\end\\\n")
    with pytest.raises(stochw2v.Stochw2vError, match="words use characters the model cannot emit: 'act'"):
        BeamDecoder(Vocabulary(), 8, tmp_path / "lm.arpa")


def test_tuned_weights_are_written_and_used_by_lm_folders(tmp_path):
    model = stochw2v.CTCModel(stochw2v.Encoder(small_config()), Vocabulary()).eval()
    stochw2v.save(model, tmp_path / "model")
    rng = np.random.default_rng(0)
    for i in range(2):
        sf.write(tmp_path / f"u{i}.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    Manifest(tmp_path, ["u0.wav", "u1.wav"], [16000, 16000], ["THE CAT", "A DOG"]).write(tmp_path / "valid.tsv")
    (tmp_path / "train.wrd").write_text("THE CAT\nA DOG\n")
    assert main(["lm", "build", "--text", str(tmp_path / "train.wrd"), "--order", "2", "--out",
                 str(tmp_path / "lm")]) == 0
    assert main(["lm", "tune", str(tmp_path / "model"), "--lm", str(tmp_path / "lm"), "--manifest",
                 str(tmp_path / "valid.tsv"), "--beam", "4", "--lm-weights", "0.5,1", "--word-scores", "0,1",
                 "--unknown-word-scores=-10,-20", "--token-min-logp=-8", "--beam-prune-logp=-15",
                 "--compression", "s=1"]) == 0
    tuned = json.loads((tmp_path / "lm" / "decoding.json").read_text())
    assert len(tuned["grid"]) == 8 and tuned["valid_wer"] == min(g["wer"] for g in tuned["grid"])
    assert {g["unknown_word_score"] for g in tuned["grid"]} == {-10.0, -20.0}
    from stochw2v.cli import build_parser
    from stochw2v.cli.common import beam_options

    args = build_parser().parse_args(["transcribe", "m", "a.wav", "--lm", str(tmp_path / "lm")])
    assert beam_options(args) == {"beam_width": 4, "lm": str(tmp_path / "lm"), "lm_weight": tuned["lm_weight"],
                                  "word_score": tuned["word_score"],
                                  "unknown_word_score": tuned["unknown_word_score"],
                                  "token_min_logp": -8.0, "beam_prune_logp": -15.0, "workers": 1}
    args = build_parser().parse_args(["transcribe", "m", "a.wav", "--lm", str(tmp_path / "lm"), "--lm-weight", "3"])
    assert beam_options(args)["lm_weight"] == 3.0  # what the user says wins
    args = build_parser().parse_args(["evaluate", "m", "--manifest", "t.tsv", "--out", "o", "--lm",
                                      str(tmp_path / "lm"), "--decode-workers", "2"])
    assert beam_options(args)["workers"] == 2

    again = tmp_path / "again"
    again.mkdir()
    (again / "lm.arpa").write_bytes((tmp_path / "lm" / "lm.arpa").read_bytes())
    assert main(["lm", "tune", str(tmp_path / "model"), "--lm", str(again), "--manifest",
                 str(tmp_path / "valid.tsv"), "--beam", "4", "--lm-weights", "0.5,1", "--word-scores", "0,1",
                 "--unknown-word-scores=-10,-20", "--token-min-logp=-8", "--beam-prune-logp=-15",
                 "--compression", "s=1", "--decode-workers", "2"]) == 0
    assert json.loads((again / "decoding.json").read_text())["grid"] == tuned["grid"]


def test_parallel_beam_search_gives_the_serial_texts_in_order_and_follows_new_weights(tmp_path):
    text = tmp_path / "train.wrd"
    text.write_text("THE CAT SAT\nA CAT RAN\nTHE CAT\nA DOG SAT ON THE MAT\n" * 10)
    assert main(["lm", "build", "--text", str(text), "--order", "3", "--out", str(tmp_path / "lm")]) == 0
    vocab = Vocabulary()
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(7, 30, len(vocab), generator=generator)
    lengths = torch.tensor([30, 12, 25, 3, 30, 18, 9])
    serial = BeamDecoder(vocab, 8, tmp_path / "lm", lm_weight=0.5, word_score=0.0)
    parallel = BeamDecoder(vocab, 8, tmp_path / "lm", lm_weight=0.5, word_score=0.0, workers=3)
    assert parallel.workers == 3  # Linux forks: the pool path, not the serial fallback, is what runs
    expected = serial(logits, lengths)
    assert len(set(expected)) > 3 and parallel(logits, lengths) == expected

    cot = torch.full((2, 3, len(vocab)), -10.0)  # acoustics say COT, a word the LM does not list
    for t, c in enumerate("COT"):
        cot[:, t, vocab.tokens.index(c)] = 0.0
    cot[:, 1, vocab.tokens.index("A")] = -3.0
    both = torch.tensor([3, 3])
    parallel.set_weights(0.5, 0.0, 0.0)
    assert parallel(cot, both) == ["COT", "COT"]
    parallel.set_weights(0.5, 0.0, -1000.0)  # a pool forked after this sees the lexicon-only weights
    assert parallel(cot, both) == ["CAT", "CAT"]
    with pytest.raises(stochw2v.Stochw2vError, match="--decode-workers must be an integer >= 1"):
        BeamDecoder(vocab, 8, tmp_path / "lm", workers=0)
