import numpy as np
import pytest
import soundfile as sf

from stochw2v.cli import main
from stochw2v.data import ManifestError, Vocabulary, normalize_text, read_manifest, to_letters

TRANSCRIPTS = {
    "19-198-0000": "NORTHANGER ABBEY",
    "19-198-0001": "THIS LITTLE WORK WAS FINISHED IN THE YEAR EIGHTEEN O THREE",
    "19-227-0000": "I'M NOT SURE HE'S RIGHT",
    "26-495-0000": "A ROOM WITH A VIEW",
}


def make_librispeech(root, split="dev-tiny"):
    folder = root / "LibriSpeech" / split
    lengths = {}
    by_chapter = {}
    for i, (utt, text) in enumerate(sorted(TRANSCRIPTS.items())):
        speaker, chapter, _ = utt.split("-")
        chapter_dir = folder / speaker / chapter
        chapter_dir.mkdir(parents=True, exist_ok=True)
        n = 4000 + 1000 * i
        sf.write(chapter_dir / f"{utt}.flac", np.random.default_rng(i).uniform(-0.1, 0.1, n), 16000)
        lengths[utt] = n
        by_chapter.setdefault((speaker, chapter), []).append(f"{utt} {text}")
    for (speaker, chapter), lines in by_chapter.items():
        (folder / speaker / chapter / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return folder, lengths


def test_librispeech_folder_converts_to_fairseq_manifests(tmp_path):
    folder, lengths = make_librispeech(tmp_path)
    assert main(["manifest", "librispeech", str(tmp_path), "dev-tiny", "--out", str(tmp_path / "m")]) == 0
    tsv = (tmp_path / "m" / "dev-tiny.tsv").read_text().splitlines()
    assert tsv[0] == str(folder.resolve())
    rows = [line.split("\t") for line in tsv[1:]]
    utts = sorted(TRANSCRIPTS)
    assert [r[0] for r in rows] == [f"{u.split('-')[0]}/{u.split('-')[1]}/{u}.flac" for u in utts]
    assert [int(r[1]) for r in rows] == [lengths[u] for u in utts]
    wrd = (tmp_path / "m" / "dev-tiny.wrd").read_text().splitlines()
    ltr = (tmp_path / "m" / "dev-tiny.ltr").read_text().splitlines()
    assert wrd == [TRANSCRIPTS[u] for u in utts]
    assert ltr[0] == "N O R T H A N G E R | A B B E Y |"  # fairseq's libri_labels.py format
    assert ltr[2] == "I ' M | N O T | S U R E | H E ' S | R I G H T |"
    manifest = read_manifest(tmp_path / "m" / "dev-tiny.tsv", labels=True, check_lengths=True)
    assert len(manifest) == 4 and manifest.words == wrd


def test_folder_manifest_is_unlabelled(tmp_path):
    make_librispeech(tmp_path)
    assert main(["manifest", "folder", str(tmp_path / "LibriSpeech"), "--out", str(tmp_path / "m")]) == 0
    manifest = read_manifest(tmp_path / "m" / "train.tsv")
    assert len(manifest) == 4 and not manifest.has_labels
    with pytest.raises(ManifestError, match="no labels"):
        read_manifest(tmp_path / "m" / "train.tsv", labels=True)


def test_librispeech_errors_are_clear(tmp_path):
    folder, _ = make_librispeech(tmp_path)
    assert main(["manifest", "librispeech", str(tmp_path), "train-clean-100", "--out", str(tmp_path / "m")]) == 2
    (folder / "19" / "198" / "19-198.trans.txt").write_text("19-198-0000 NORTHANGER ABBEY\n")
    with pytest.raises(ManifestError, match="no transcript line for 19-198-0001"):
        from stochw2v.data import librispeech_manifest

        librispeech_manifest(tmp_path, "dev-tiny", progress=False)


def test_manifest_validation_catches_mismatches(tmp_path):
    make_librispeech(tmp_path)
    main(["manifest", "librispeech", str(tmp_path), "dev-tiny", "--out", str(tmp_path / "m")])
    tsv = tmp_path / "m" / "dev-tiny.tsv"
    wrd = tsv.with_suffix(".wrd")
    good_wrd = wrd.read_text()
    wrd.write_text("\n".join(good_wrd.splitlines()[:3]) + "\n")
    with pytest.raises(ManifestError, match="3 transcripts for 4 audio files"):
        read_manifest(tsv)
    wrd.write_text(good_wrd)
    lines = tsv.read_text().splitlines()
    tsv.write_text("\n".join(lines[:2] + [lines[2].split("\t")[0] + "\t123"] + lines[3:]) + "\n")
    with pytest.raises(ManifestError, match="the manifest says 123"):
        read_manifest(tsv, check_lengths=True)
    tsv.write_text("\n".join(lines + ["missing/file.flac\t1000"]) + "\n")
    with pytest.raises(ManifestError, match="1 audio files missing"):
        read_manifest(tsv, labels=False)
    tsv.write_text("\n".join(lines + ["no tab here"]) + "\n")
    with pytest.raises(ManifestError, match=r"dev-tiny.tsv:6: expected"):
        read_manifest(tsv)
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "none.tsv")


def test_text_normalisation_and_vocabulary():
    assert normalize_text("It\u2019s a well-known café, isn't it?") == "IT'S A WELL KNOWN CAFE ISN'T IT"
    assert to_letters("A BC") == "A | B C |"
    vocab = Vocabulary()
    ids = vocab.encode("IT'S OK")
    assert vocab.decode(ids) == "IT'S OK" and vocab.blank_id not in ids
    assert Vocabulary.from_json(vocab.to_json()) == vocab
    with pytest.raises(ValueError, match="outside the vocabulary: '4'"):
        vocab.encode("ROOM 4")


def test_two_corpora_combine_into_one_training_manifest(tmp_path, capsys):
    make_librispeech(tmp_path / "a", "dev-tiny")
    make_librispeech(tmp_path / "b", "dev-other")
    for name, split in (("a", "dev-tiny"), ("b", "dev-other")):
        assert main(["manifest", "librispeech", str(tmp_path / name), split, "--out", str(tmp_path / name / "m")]) == 0
    parts = [tmp_path / "a" / "m" / "dev-tiny.tsv", tmp_path / "b" / "m" / "dev-other.tsv"]
    assert main(["manifest", "combine", *map(str, parts), "--out", str(tmp_path / "both")]) == 0
    combined = read_manifest(tmp_path / "both" / "train.tsv", labels=True, check_lengths=True)
    first, second = (read_manifest(p, labels=True) for p in parts)
    assert len(combined) == 8 and combined.root == tmp_path.resolve()
    assert [combined.audio_path(i) for i in range(8)] == \
        [m.audio_path(i).resolve() for m in (first, second) for i in range(4)]
    assert combined.words == first.words + second.words and combined.num_samples == first.num_samples * 2
    assert (tmp_path / "both" / "train.ltr").read_text().splitlines()[0] == "N O R T H A N G E R | A B B E Y |"
    assert "8 utterances (4 + 4)" in capsys.readouterr().out

    (tmp_path / "b" / "m" / "dev-other.wrd").unlink()  # one part unlabelled
    (tmp_path / "b" / "m" / "dev-other.ltr").unlink()
    assert main(["manifest", "combine", *map(str, parts), "--out", str(tmp_path / "mixed")]) == 2
    assert "dev-other.tsv: has no .wrd beside it" in capsys.readouterr().err
    assert main(["manifest", "combine", str(parts[0]), "--out", str(tmp_path / "one")]) == 2
    assert "at least two manifests" in capsys.readouterr().err
    assert main(["manifest", "combine", str(parts[0]), str(parts[0]), "--out", str(tmp_path / "a" / "m"),
                 "--name", "dev-tiny"]) == 2
    assert "is one of the manifests being combined" in capsys.readouterr().err
    assert not (tmp_path / "mixed" / "train.tsv").exists() and not (tmp_path / "one" / "train.tsv").exists()
