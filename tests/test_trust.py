"""Trust: loading never runs code, every bad input gets a one-line error, nothing is lost."""
import json
import os
import re
import stat
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

import stochw2v
from helpers import noise_corpus, small_config
from stochw2v.cli import main
from stochw2v.data import Vocabulary
from stochw2v.model import CTCModel

TRANSCRIPTS = ["AB CA", "CAB", "BC A"]


class Planted:
    """A pickle that creates a file when unpickled: proof that loading ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture()
def marker(tmp_path):
    path = tmp_path / "code-ran"
    yield path
    assert not path.exists(), "a planted pickle ran"


@pytest.fixture()
def corpus(tmp_path):
    return noise_corpus(tmp_path / "corpus", TRANSCRIPTS)


@pytest.fixture()
def recogniser(tmp_path):
    model = CTCModel(stochw2v.Encoder(small_config()), Vocabulary()).eval()
    return stochw2v.save(model, tmp_path / "model")


def plant(folder, names, marker):
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"model": Planted(marker)}, path)


# ----------------------------------------------------------------- no code runs
LEGACY = ["checkpoints/checkpoint_last.pt", "checkpoints/checkpoint_best.pt", "checkpoints/checkpoint_0000100.pt"]


def test_a_planted_checkpoint_pickle_is_refused_by_load(recogniser, marker):
    plant(recogniser, LEGACY, marker)
    with pytest.raises(stochw2v.Stochw2vError, match="checkpoint_last.pt: a pickled checkpoint .* not loaded"):
        stochw2v.load(recogniser)


@pytest.mark.parametrize("command", [
    lambda model, corpus, _: ["transcribe", model, str(corpus / "u0.wav")],
    lambda model, corpus, out: ["evaluate", model, "--manifest", str(corpus / "test.tsv"), "--out", out],
    lambda model, _, out: ["export-hf", model, "--out", out],
    lambda model, *_: ["profile", "--model", model, "--seconds", "1", "--repeats", "1"],
    lambda model, corpus, out: ["finetune", "--init", model, "--train", str(corpus / "test.tsv"), "--valid",
                                str(corpus / "test.tsv"), "--out", out, "--max-updates", "1"],
    lambda model, _, out: ["export", model, "--out", out],
], ids=["transcribe", "evaluate", "export-hf", "profile", "finetune-init", "export"])
def test_no_entry_point_runs_a_planted_pickle(command, recogniser, corpus, tmp_path, marker, capsys):
    plant(recogniser, LEGACY, marker)
    assert main(command(str(recogniser), corpus, str(tmp_path / "out"))) == 2
    err = capsys.readouterr().err
    assert "checkpoint_last.pt: a pickled checkpoint" in err and "Traceback" not in err


def test_a_hf_folder_with_a_planted_bin_is_refused(tmp_path, marker):
    transformers = pytest.importorskip("transformers")
    config = transformers.Wav2Vec2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                         intermediate_size=64, conv_dim=(32, 32), conv_kernel=(10, 3),
                                         conv_stride=(5, 2), num_conv_pos_embeddings=16,
                                         num_conv_pos_embedding_groups=4)
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config.to_dict()))
    plant(folder, ["pytorch_model.bin"], marker)
    with pytest.raises(stochw2v.Stochw2vError, match="pytorch_model.bin: refused: loading it would run code"):
        stochw2v.load(folder)


def test_a_run_folder_reads_only_safetensors(tmp_path, corpus, recogniser, marker):
    from stochw2v.train.finetune import Finetuner
    from stochw2v.train.recipe import FinetuneRecipe, load_recipe

    recipe = load_recipe(None, ["policy.fixed=s=1", "data={num_workers: 0, max_samples: 100000}",
                                "task={freeze_updates: 0, mask_time_prob: 0.0, mask_channel_prob: 0.0}"],
                         FinetuneRecipe)
    trainer = Finetuner(recipe, stochw2v.load(recogniser), corpus / "test.tsv", corpus / "test.tsv",
                        tmp_path / "run", progress=False)
    trainer.train(2)
    plant(tmp_path / "run", ["checkpoints/checkpoint_0000001.pt", "checkpoints/evil.bin", "model.pt"], marker)
    assert isinstance(stochw2v.load(tmp_path / "run"), CTCModel)  # the pickles lie there, unread
    resumed = Finetuner(recipe, stochw2v.load(recogniser), corpus / "test.tsv", corpus / "test.tsv",
                        tmp_path / "run", resume=True, progress=False)
    assert resumed.position.update == 2


def test_corrupt_weights_give_a_clear_error(recogniser):
    (recogniser / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(stochw2v.Stochw2vError, match="model.safetensors: not a readable safetensors file"):
        stochw2v.load(recogniser)


# ------------------------------------------------------------------ data loss
def test_an_unlabelled_manifest_never_pairs_with_stale_labels(corpus, capsys):
    assert main(["manifest", "folder", str(corpus), "--out", str(corpus), "--name", "test"]) == 2
    assert "test.wrd and test.ltr beside it belong to another list of audio" in capsys.readouterr().err
    assert (corpus / "test.tsv").read_text().splitlines()[1].startswith("u0.wav")  # untouched


def test_manifest_folder_lists_every_unreadable_file(tmp_path, capsys):
    folder = tmp_path / "audio"
    folder.mkdir()
    sf.write(folder / "good.wav", np.zeros(4000, dtype=np.float32), 16000)
    for name in ("bad1.wav", "bad2.flac"):
        (folder / name).write_bytes(b"not audio at all")
    assert main(["manifest", "folder", str(folder), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "2 of 3 audio files cannot be read" in err and "bad1.wav" in err and "bad2.flac" in err


def test_saved_files_are_readable_per_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        folder = stochw2v.save(stochw2v.Encoder(small_config()), tmp_path / "m")
    finally:
        os.umask(old)
    for name in ("config.json", "model.safetensors"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o644, name


def test_saving_onto_a_file_is_refused(tmp_path):
    (tmp_path / "taken").write_text("precious")
    with pytest.raises(stochw2v.Stochw2vError, match="is a file"):
        stochw2v.save(stochw2v.Encoder(small_config()), tmp_path / "taken")
    assert (tmp_path / "taken").read_text() == "precious"


# --------------------------------------------------------- evaluate is honest
def test_evaluate_refuses_references_it_could_never_match_and_normalises_case(corpus, recogniser, tmp_path, capsys):
    (corpus / "test.wrd").write_text("ab ca\nCAB 1\nBC A\n")
    (corpus / "test.ltr").unlink()
    assert cli("evaluate", recogniser, "--manifest", corpus / "test.tsv", "--out", tmp_path / "e") == 2
    err = capsys.readouterr().err
    assert re.search(r"1 of 3 references hold characters model \S+ cannot emit: u1 \('1'\)$", err.strip())
    # ... and only that one: the lower-case references were normalised as training normalises them
    (corpus / "test.wrd").write_text("ab ca\ncab\nbc a\n")
    assert main(["evaluate", str(recogniser), "--manifest", str(corpus / "test.tsv"), "--settings", "s=1",
                 "--repeats", "1", "--out", str(tmp_path / "e")]) == 0


def test_evaluate_checks_lengths_letters_and_duplicates(corpus, recogniser, tmp_path, capsys):
    run = ["evaluate", str(recogniser), "--manifest", str(corpus / "test.tsv"), "--out", str(tmp_path / "e")]
    lines = (corpus / "test.tsv").read_text().splitlines()
    (corpus / "test.tsv").write_text("\n".join(lines[:2] + [lines[2].replace("\t14000", "\t14400")] + lines[3:]) + "\n")
    assert main(run) == 2 and "u1.wav: has 14000 samples at 16 kHz, the manifest says 14400" in capsys.readouterr().err
    (corpus / "test.tsv").write_text("\n".join(lines[:3] + [lines[1]]) + "\n")
    (corpus / "test.wrd").write_text("AB CA\nCAB\nAB CA\n")
    assert main(run) == 2 and "utterance ids appear more than once: ['u0']" in capsys.readouterr().err
    (corpus / "test.tsv").write_text("\n".join(lines) + "\n")
    (corpus / "test.wrd").write_text("AB CA\nCAB\nBC A\n")
    (corpus / "test.ltr").write_text("A B | C A |\nC A B |\nB C | B |\n")
    assert main(run) == 2 and "test.ltr:3: spells 'B C | B |' but test.wrd line 3 says 'BC A'" in \
        capsys.readouterr().err


def test_evaluate_checks_its_output_folder_first(corpus, recogniser, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["evaluate", str(recogniser), "--manifest", str(corpus / "test.tsv"), "--out",
                 str(tmp_path / "file")]) == 2
    assert "is a file; --out must be a folder" in capsys.readouterr().err


# ------------------------------------------------------------------ training
def _finetune(corpus, recogniser, out, extra=(), resume=False):
    return main(["finetune", "--init", str(recogniser), "--train", str(corpus / "test.tsv"), "--valid",
                 str(corpus / "test.tsv"), "--out", str(out), "--max-updates", "2", "--device", "cpu",
                 "--set", "policy.fixed=s=1", "data.num_workers=0", "task.freeze_updates=0",
                 "task.mask_time_prob=0.0", "task.mask_channel_prob=0.0", *extra] + (["--resume"] if resume else []))


def test_unreadable_audio_is_listed_before_training_or_dropped(corpus, recogniser, tmp_path, capsys):
    (corpus / "u1.wav").write_bytes(b"RIFF broken")
    (corpus / "u2.wav").write_bytes(open(corpus / "u2.wav", "rb").read()[:5000])  # truncated
    assert _finetune(corpus, recogniser, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert "2 entries cannot be used" in err and "u1.wav" in err and "truncated" in err
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert _finetune(corpus, recogniser, tmp_path / "run", ["data.drop_unreadable=true"]) == 0


@pytest.mark.parametrize("override, words", [
    ("run.log_every=0", "run.log_every must be >= 1"),
    ("run.validate_every=-5", "run.validate_every must be >= 1"),
    ("optim.update_freq=0", "optim.update_freq must be >= 1"),
    ("optim.precision=fp16", "optim.precision must be one of"),
    ("data.crop=0", "data.crop must be >= 1"),
    ("optim.warmup_updates=-1", "optim.warmup_updates must be >= 0"),
    ("run.max_minutes=-1", "run.max_minutes must be >= 0"),
    ("encoder_overrides.dim=64", "encoder_overrides takes only"),
])
def test_bad_recipe_values_are_named(override, words, corpus, recogniser, tmp_path, capsys):
    assert _finetune(corpus, recogniser, tmp_path / "run", [override]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_resume_problems_are_explained(corpus, recogniser, tmp_path, capsys):
    out = tmp_path / "run"
    assert _finetune(corpus, recogniser, out, resume=True) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert _finetune(corpus, recogniser, out, ["optim.lr=fast"]) == 2  # a failed start ...
    capsys.readouterr()
    assert _finetune(corpus, recogniser, out) == 0  # ... does not block the corrected command
    other = tmp_path / "other.tsv"
    other.write_text((corpus / "test.tsv").read_text())
    for name in ("wrd", "ltr"):
        other.with_suffix(f".{name}").write_text((corpus / f"test.{name}").read_text())
    assert main(["finetune", "--init", str(recogniser), "--train", str(other), "--valid", str(corpus / "test.tsv"),
                 "--out", str(out), "--max-updates", "3", "--resume", "--set", "policy.fixed=s=1",
                 "data.num_workers=0", "task.freeze_updates=0", "task.mask_time_prob=0.0",
                 "task.mask_channel_prob=0.0"]) == 2
    assert "was started with --train" in capsys.readouterr().err
    (out / "checkpoints" / ".checkpoint_last.safetensors.x1.tmp").write_bytes(b"half")
    assert _finetune(corpus, recogniser, out, ["optim.max_updates=4"], resume=True) == 0
    assert not list((out / "checkpoints").glob("*.tmp"))  # a kill's leftovers are cleared
    (out / "recipe.yaml").write_text(": : not yaml [")
    assert _finetune(corpus, recogniser, out, resume=True) == 2
    assert "recipe.yaml: not valid YAML" in capsys.readouterr().err
    (out / "recipe.yaml").unlink()
    assert _finetune(corpus, recogniser, out, resume=True) == 2
    assert "no recipe.yaml" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["file", "under-file"])
def test_out_that_cannot_be_a_folder(where, corpus, recogniser, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" if where == "file" else tmp_path / "file" / "run"
    assert _finetune(corpus, recogniser, out) == 2
    assert "file" in capsys.readouterr().err and (tmp_path / "file").read_text() == "x"


# ------------------------------------------------------------------ CLI values
def cli(*args):
    """main() as the shell sees it: the exit code, whether argparse or the command refused."""
    try:
        return main([str(a) for a in args])
    except SystemExit as exit_:
        return exit_.code


@pytest.mark.parametrize("args, words", [
    (["--device", "cuda:7"], "CUDA"),
    (["--device", "tpu"], "--device 'tpu'"),
    (["--beam", "0"], "expected a whole number >= 1"),
    (["--compression", "kv=99999999999"], "larger than 4096"),
    (["--compression", "s=2;s=4"], "--compression takes one setting"),
    (["--lm", "missing.arpa"], "missing.arpa: language model file not found"),
])
def test_bad_transcribe_options(args, words, corpus, recogniser, capsys):
    assert cli("transcribe", recogniser, corpus / "u0.wav", *args) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_an_unreadable_lm_is_refused_before_decoding(corpus, recogniser, tmp_path, capsys):
    (tmp_path / "lm.arpa").write_text("this is not an ARPA file\n")
    assert main(["transcribe", str(recogniser), str(corpus / "u0.wav"), "--lm", str(tmp_path / "lm.arpa")]) == 2
    assert "not a readable ARPA or KenLM binary language model" in capsys.readouterr().err


@pytest.mark.parametrize("hours", ["inf", "nan", "0", "-1"])
def test_synth_hours_must_be_finite_and_positive(hours, tmp_path, capsys):
    assert cli("synth", "--out", tmp_path, "--hours", hours) == 2
    assert "expected a finite number > 0" in capsys.readouterr().err


def test_evaluate_repeats_must_be_positive(corpus, recogniser, tmp_path, capsys):
    assert cli("evaluate", recogniser, "--manifest", corpus / "test.tsv", "--out", tmp_path, "--repeats", "0") == 2
    assert "expected a whole number >= 1" in capsys.readouterr().err


def test_a_compression_factor_beyond_the_input_is_refused_by_frame_count(recogniser):
    model = stochw2v.load(recogniser)
    with pytest.raises(stochw2v.Stochw2vError, match="needs at least 800 frames"):
        model(torch.randn(16000), compression="s=1,kv=800")


def test_profile_of_a_recogniser_profiles_its_encoder(recogniser, capsys):
    assert main(["profile", "--model", str(recogniser), "--seconds", "1", "--repeats", "1", "--settings", "s=1"]) == 0
    assert "| s=1 |" in capsys.readouterr().out


# ------------------------------------------------------------------ Python API
def test_python_inputs_that_would_silently_go_wrong_are_refused():
    model = stochw2v.Encoder(small_config()).eval()
    audio = torch.randn(2, 8000)
    with pytest.raises(stochw2v.Stochw2vError, match="a float would be truncated"):
        model.encode(audio, lengths=[8000, 6000.5])
    with pytest.raises(stochw2v.Stochw2vError, match="integer sample counts"):
        model.encode(audio, lengths=torch.tensor([8000.0, 6000.0]))
    with pytest.raises(stochw2v.Stochw2vError, match="meta tensor"):
        model.encode(torch.empty(2, 8000, device="meta"))
    with pytest.raises(stochw2v.Stochw2vError, match="squeeze must hold integers"):
        stochw2v.StochasticPolicy(squeeze=(1.7, 2))
    with pytest.raises(stochw2v.Stochw2vError, match="squeeze must hold integers"):
        stochw2v.StochasticPolicy(squeeze="12")


@pytest.mark.parametrize("change, words", [
    ({"hidden_size": None}, "hidden_size must be a positive integer, got None"),
    ({"num_hidden_layers": 0}, "num_hidden_layers must be a positive integer"),
    ({"conv_dim": None}, "conv_dim, conv_kernel and conv_stride must be lists of integers"),
])
def test_hf_configs_with_null_sizes_are_refused(change, words, tmp_path):
    transformers = pytest.importorskip("transformers")
    model = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64, conv_dim=(32, 32),
        conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4))
    model.save_pretrained(tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(stochw2v.Stochw2vError, match=words):
        stochw2v.load(tmp_path / "hf")


def test_a_malformed_preprocessor_config_is_named(tmp_path):
    transformers = pytest.importorskip("transformers")
    transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64, conv_dim=(32, 32),
        conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4)).save_pretrained(tmp_path / "hf")
    (tmp_path / "hf" / "preprocessor_config.json").write_text("{not json")
    with pytest.raises(stochw2v.Stochw2vError, match="preprocessor_config.json: not valid JSON"):
        stochw2v.load(tmp_path / "hf")


# ------------------------------------------------------------------ audio
def test_a_truncated_wav_is_reported_not_shortened(tmp_path):
    sf.write(tmp_path / "full.wav", np.zeros(16000, dtype=np.float32), 16000, subtype="PCM_16")
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    from stochw2v.audio import load_audio

    with pytest.raises(stochw2v.Stochw2vError, match="cut.wav: truncated: its header announces 32000 bytes"):
        load_audio(tmp_path / "cut.wav")


def test_one_bad_file_does_not_stop_the_others(corpus, recogniser, capsys):
    (corpus / "bad.wav").write_bytes(b"nope")
    files = [str(corpus / "u0.wav"), str(corpus / "bad.wav"), str(corpus / "u1.wav")]
    assert main(["transcribe", str(recogniser), *files]) == 1
    out, err = capsys.readouterr()
    assert [line.split("\t")[0] for line in out.splitlines()] == [files[0], files[2]]
    assert "bad.wav: not a readable audio file" in err and "1 of 3 files could not be transcribed" in err


def test_user_errors_print_one_line_and_real_bugs_keep_their_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "stochw2v", "transcribe", str(tmp_path / "none"), "x.wav"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0 and "no such file" in result.stderr
