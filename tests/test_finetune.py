"""Fine-tuning, decoding, transcription and the trade-off evaluation."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

import stochw2v
from helpers import small_config
from stochw2v.cli import main
from stochw2v.data import Manifest, Vocabulary
from stochw2v.data.error_rates import error_rates
from stochw2v.evaluate.decoding import BeamDecoder, greedy_decode
from stochw2v.model.ctc import CTCModel
from stochw2v.train.finetune import Finetuner
from stochw2v.train.recipe import FinetuneRecipe, load_recipe

TONES = {"A": 300.0, "B": 700.0, "C": 1300.0}
TRANSCRIPTS = ["AB CA", "CAB", "BC A", "ACB BA"]

RECIPE = [
    "encoder_overrides={}",
    "task={mask_time_prob: 0.0, mask_channel_prob: 0.0, freeze_updates: 0, freeze_feature_encoder: false}",
    "policy.squeeze=[1, 2]",
    "optim={lr: 0.001, max_updates: 800, schedule: linear, warmup_updates: 10, final_lr_scale: 0.5, "
    "clip_norm: 5.0}",
    "data={max_samples: 200000, crop: null, num_workers: 0}",
    "run={log_every: 50, validate_every: 1000, save_every: 1000, keep_last: 1, seed: 0}",
]


def speak(text: str) -> np.ndarray:
    """Each letter a 120 ms tone, words separated by 100 ms of silence: 'speech' a tiny model can learn."""
    pieces = [np.zeros(1600)]
    for word in text.split():
        for letter in word:
            t = np.arange(1920) / 16000
            pieces.append(0.4 * np.sin(2 * np.pi * TONES[letter] * t))
        pieces.append(np.zeros(1600))
    return np.concatenate(pieces).astype(np.float32)


@pytest.fixture(scope="module")
def tone_corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tones")
    paths, sizes = [], []
    for i, text in enumerate(TRANSCRIPTS):
        audio = speak(text)
        sf.write(folder / f"t{i}.wav", audio, 16000, subtype="FLOAT")
        paths.append(f"t{i}.wav")
        sizes.append(len(audio))
    Manifest(folder, paths, sizes, TRANSCRIPTS).write(folder / "train.tsv")
    Manifest(folder, paths[:2], sizes[:2], TRANSCRIPTS[:2]).write(folder / "valid.tsv")
    Manifest(folder, paths, sizes).write(folder / "unlabelled.tsv")
    stochw2v.save(stochw2v.Encoder(small_config()), folder / "init")
    return folder


def finetuner(recipe, init, train, valid, out, **kwargs):
    return Finetuner(recipe, stochw2v.load(init), train, valid, out, init_source=str(init), progress=False, **kwargs)


@pytest.fixture(scope="module")
def finetuned(tone_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft") / "run"
    recipe = load_recipe(None, RECIPE, FinetuneRecipe)
    trainer = finetuner(recipe, tone_corpus / "init", tone_corpus / "train.tsv", tone_corpus / "valid.tsv", out)
    before = trainer.validate()
    summary = trainer.train()
    trainer.export()
    return trainer, before, summary, out


@pytest.mark.slow
def test_ctc_finetuning_lowers_loss_and_reproduces_transcripts(finetuned, tone_corpus):
    trainer, before, summary, out = finetuned
    after = trainer.validate()
    for setting in ("s=1", "s=2"):
        assert after[setting]["loss"] < 0.3 * before[setting]["loss"]
    model = stochw2v.load(out / "model")
    assert isinstance(model, CTCModel) and model.trained_settings == ["s=1", "s=2"]
    for i, text in enumerate(TRANSCRIPTS[:2]):
        audio = torch.from_numpy(sf.read(tone_corpus / f"t{i}.wav", dtype="float32")[0])
        assert model.transcribe(audio, compression="s=1") == [text]


@pytest.mark.slow
def test_the_training_log_reads_back_as_losses_and_validations(finetuned, tmp_path):
    from stochw2v.errors import MissingFileError
    from stochw2v.formats.run_folder import LOG_FILE, read_log

    trainer, _, summary, out = finetuned
    losses, validations = read_log(out)
    assert losses and all(isinstance(u, int) and v > 0 for u, v in losses)
    assert [u for u, _ in losses] == sorted(u for u, _ in losses)
    last = validations[max(validations)]
    assert set(last) == {"s=1", "s=2"} and {"loss", "wer", "cer"} <= set(last["s=1"])
    torn = tmp_path / "torn"
    torn.mkdir()
    (torn / LOG_FILE).write_text((out / LOG_FILE).read_text() + '{"update": 99, "spl')  # a run killed mid-line
    assert read_log(torn) == (losses, validations)
    with pytest.raises(MissingFileError, match="no training log"):
        read_log(tmp_path / "nothing")


@pytest.mark.slow
def test_run_folder_loads_as_the_recogniser(finetuned):
    _, _, _, out = finetuned
    model = stochw2v.load(out)
    assert isinstance(model, CTCModel)


def test_beam_search_without_lm_equals_greedy_on_peaked_output():
    vocab = Vocabulary()
    torch.manual_seed(1)
    path = torch.randint(0, len(vocab), (2, 60))
    logits = torch.full((2, 60, len(vocab)), -8.0).scatter(2, path[..., None], 8.0)
    lengths = torch.tensor([60, 45])
    assert BeamDecoder(vocab, beam_width=16)(logits, lengths) == greedy_decode(logits, lengths, vocab)


def test_beam_search_with_an_ngram_lm_prefers_known_words(tmp_path):
    vocab = Vocabulary()
    arpa = tmp_path / "lm.arpa"
    arpa.write_text(
        "\\data\\\nngram 1=4\nngram 2=2\n\n\\1-grams:\n-1.0\t<s>\t-0.3\n-1.0\t</s>\n-9.0\t<unk>\n"
        "-0.1\tCAT\t-0.3\n\n\\2-grams:\n-0.05\t<s> CAT\n-0.05\tCAT </s>\n\n\\end\\\n")
    letters = "CAT"  # ambiguous middle frame: 'A' slightly below 'O'
    frames = [vocab.tokens.index(c) for c in letters]
    logits = torch.full((1, 3, len(vocab)), -10.0)
    for t, index in enumerate(frames):
        logits[0, t, index] = 0.0
    logits[0, 1, vocab.tokens.index("O")] = 0.2
    lengths = torch.tensor([3])
    assert greedy_decode(logits, lengths, vocab) == ["COT"]
    assert BeamDecoder(vocab, beam_width=16, lm=arpa, lm_weight=2.0, word_score=0.0)(logits, lengths) == ["CAT"]


@pytest.mark.parametrize("refs, hyps", [
    (["THE CAT SAT ON THE MAT"], ["THE CAT SAT ON MAT"]),
    (["A B C", "HELLO WORLD"], ["A X C D", "HELO WORLD"]),
    (["ONE"], [""]),
    (["IT'S FINE"], ["ITS FINE TODAY"]),
])
def test_wer_and_cer_agree_with_jiwer(refs, hyps):
    jiwer = pytest.importorskip("jiwer", reason="jiwer is the oracle for error rates (pip install .[test])")
    counts = error_rates(refs, hyps)
    assert counts.wer == pytest.approx(jiwer.wer(refs, hyps))
    assert counts.cer == pytest.approx(jiwer.cer(refs, hyps))


@pytest.mark.slow
def test_evaluate_writes_table_json_and_plot(finetuned, tone_corpus, tmp_path):
    _, _, _, out = finetuned
    models = [str(out / "model"), str(out)]  # the exported recogniser and its run folder
    code = main(["evaluate", *models, "--manifest", str(tone_corpus / "train.tsv"), "--settings",
                 "s=1;s=2;s=2,kv=2", "--out", str(tmp_path / "ev"), "--repeats", "2"])
    assert code == 0
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert [(r["model"], r["setting"]) for r in results["rows"]] == [
        (m, s) for m in models for s in ("s=1", "s=2", "s=2,kv=2")]
    jiwer = pytest.importorskip("jiwer")
    for row in results["rows"]:  # the reported rates are the hypotheses' rates, inside their intervals
        hyps = results["hypotheses"][row["model"]][row["setting"]]
        refs = dict(zip([f"t{i}" for i in range(4)], TRANSCRIPTS))
        assert row["wer"] == pytest.approx(jiwer.wer([refs[u] for u in sorted(refs)], [hyps[u] for u in sorted(refs)]))
        assert row["wer_low"] <= row["wer"] <= row["wer_high"] and row["cer_low"] <= row["cer"] <= row["cer_high"]
        assert row["encoder_seconds"] > 0 and row["decode_seconds"] > 0 and row["gmacs_per_audio_second"] > 0
    assert [r["trained"] for r in results["rows"]] == [True, True, False] * 2
    assert "interleaved timed passes" in results["protocol"] and "threads" in results["protocol"]
    text = (tmp_path / "ev" / "results.md").read_text()
    table, differences = text.split("Paired differences to each model's first setting")
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == 1 + 6  # header and one row each
    paired = [line.split(" | ") for line in differences.splitlines() if line.startswith("| ") and "vs" not in line]
    assert [(cells[0][2:], cells[1], cells[2]) for cells in paired] == [
        (m, s, "s=1") for m in models for s in ("s=2", "s=2,kv=2")]
    by_setting = {(r["model"], r["setting"]): r for r in results["rows"]}
    for cells in paired:  # the difference is the two rows' difference, inside its own interval
        model, setting = cells[0][2:], cells[1]
        diff, low, high = (float(x) for x in cells[3].replace("[", "").replace("]", "").replace(",", "").split()[:3])
        assert diff == pytest.approx(by_setting[model, setting]["cer"] - by_setting[model, "s=1"]["cer"], abs=6e-4)
        assert low <= diff + 1e-3 and diff - 1e-3 <= high
    png = (tmp_path / "ev" / "tradeoff.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    assert matplotlib.image.imread(str(tmp_path / "ev" / "tradeoff.png")).shape[2] in (3, 4)


@pytest.mark.slow
def test_transcribe_cli_prints_text_and_json(finetuned, tone_corpus, capsys):
    _, _, _, out = finetuned
    assert main(["transcribe", str(out / "model"), str(tone_corpus / "t0.wav"), "--compression", "s=1"]) == 0
    assert capsys.readouterr().out.strip().endswith("\tAB CA")
    assert main(["transcribe", str(out / "model"), str(tone_corpus / "t1.wav"), "--json"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["text"] == "CAB" and line["rtf"] > 0 and line["compression"] == "s=1"
    assert line["encoder_seconds"] > 0 and line["decode_seconds"] >= 0


@pytest.mark.slow
def test_bad_input_fails_before_work(finetuned, tone_corpus, tmp_path, capsys):
    _, _, _, out = finetuned
    recipe = load_recipe(None, RECIPE, FinetuneRecipe)
    with pytest.raises(ValueError, match="no labels"):
        finetuner(recipe, tone_corpus / "init", tone_corpus / "unlabelled.tsv", tone_corpus / "valid.tsv",
                  tmp_path / "r1")
    assert main(["evaluate", str(out / "model"), "--manifest", str(tone_corpus / "unlabelled.tsv"),
                 "--out", str(tmp_path)]) == 2
    assert "no labels" in capsys.readouterr().err
    assert main(["transcribe", str(out / "model"), str(tone_corpus / "t0.wav"), "--compression", "s=16"]) == 2
    assert "upsampler covers total factors up to 8" in capsys.readouterr().err
    odd = tmp_path / "odd"
    odd.mkdir()
    Manifest(tone_corpus, ["t0.wav", "t1.wav"], [1, 1], ["AB CA", "ROOM 101"]).write(odd / "train.tsv")
    (odd / "train.tsv").write_text((tone_corpus / "train.tsv").read_text().splitlines()[0] + "\n" + "\n".join(
        (tone_corpus / "train.tsv").read_text().splitlines()[1:3]) + "\n")
    with pytest.raises(ValueError, match=r"t1 \('01'\)"):
        finetuner(recipe, tone_corpus / "init", odd / "train.tsv", tone_corpus / "valid.tsv", tmp_path / "r2")
    dropping = load_recipe(None, RECIPE + ["task.unknown_characters=drop"], FinetuneRecipe)
    trainer = finetuner(dropping, tone_corpus / "init", odd / "train.tsv", tone_corpus / "valid.tsv",
                        tmp_path / "r3")
    assert trainer.train_set.manifest.words[1] == "ROOM"


def test_infinite_ctc_loss_is_reported_by_utterance(tone_corpus, tmp_path):
    long_labels = tmp_path / "long"
    long_labels.mkdir()
    lines = (tone_corpus / "train.tsv").read_text().splitlines()
    (long_labels / "train.tsv").write_text("\n".join(lines[:3]) + "\n")
    (long_labels / "train.wrd").write_text("AB CA\n" + "ABC" * 40 + "\n")  # 120 letters for ~40 frames
    recipe = load_recipe(None, RECIPE, FinetuneRecipe)
    trainer = finetuner(recipe, tone_corpus / "init", long_labels / "train.tsv", tone_corpus / "valid.tsv",
                        tmp_path / "r")
    before = [p.detach().clone() for p in trainer.module.parameters()]
    with pytest.warns(UserWarning, match=r"t1 \(CTC loss is inf: 120 labels need 120 frames, \d+ at") as caught:
        trainer.train(2)
    # the other items still train: no update is skipped, no NaN reaches the weights
    assert not any("update skipped" in str(w.message) for w in caught)
    after = list(trainer.module.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after))


def test_ctc_min_frames_counts_a_blank_between_repeated_labels():
    from stochw2v.train.finetune import ctc_min_frames

    targets = torch.tensor([[1, 1, 2, 2, 2], [3, 4, 3, -1, -1], [5, 5, -1, -1, -1]])
    assert ctc_min_frames(targets, torch.tensor([5, 3, 1])).tolist() == [8, 3, 1]


@pytest.mark.slow
def test_finetuning_starts_from_a_hf_sew_folder(tone_corpus, tmp_path):
    transformers = pytest.importorskip("transformers", reason="HF transformers is the test oracle")
    config = transformers.SEWConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                                    conv_dim=(32, 32, 32), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2),
                                    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, squeeze_factor=2)
    transformers.SEWModel(config).save_pretrained(tmp_path / "hf")
    recipe = load_recipe(None, RECIPE + ["policy.squeeze=[2]"], FinetuneRecipe)
    trainer = finetuner(recipe, tmp_path / "hf", tone_corpus / "train.tsv", tone_corpus / "valid.tsv",
                        tmp_path / "run")
    trainer.train(3)
    model = stochw2v.load(trainer.export())
    assert model.trained_settings == ["s=2"] and model.config.max_upsample == 2
    # a policy that draws s=4 grows the upsampler: the s=2 blocks are kept, two fresh ones are added
    wider = finetuner(load_recipe(None, RECIPE + ["policy.squeeze=[2, 4]"], FinetuneRecipe), tmp_path / "hf",
                      tone_corpus / "train.tsv", tone_corpus / "valid.tsv", tmp_path / "run4")
    assert wider.encoder.config.max_upsample == 4
    original = stochw2v.load(tmp_path / "hf").context.upsample
    assert all(torch.equal(wider.encoder.context.upsample.weights[i], original.weights[i]) for i in (0, 1))
    wider.train(2)
    assert stochw2v.load(wider.export()).trained_settings == ["s=2", "s=4"]


@pytest.mark.slow
def test_a_hf_hubert_folder_is_fine_tuned_on_demand_from_the_cli(tone_corpus, tmp_path, capsys):
    transformers = pytest.importorskip("transformers", reason="HF transformers is the test oracle")
    config = transformers.HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                       intermediate_size=64, conv_dim=(32, 32, 32), conv_kernel=(10, 3, 3),
                                       conv_stride=(5, 2, 2), num_conv_pos_embeddings=16,
                                       num_conv_pos_embedding_groups=4)
    transformers.HubertModel(config).save_pretrained(tmp_path / "hubert")
    run = tmp_path / "run"
    assert main(["finetune", "--init", str(tmp_path / "hubert"), "--train", str(tone_corpus / "train.tsv"),
                 "--valid", str(tone_corpus / "valid.tsv"), "--out", str(run), "--max-updates", "3",
                 "--set", *RECIPE, "--threads", "1"]) == 0
    assert "upsampler" in capsys.readouterr().out  # a HuBERT has none: the policy's blocks are added
    model = stochw2v.load(run / "model")
    assert model.config.family == "hubert" and model.config.max_upsample == 2
    assert model.trained_settings == ["s=1", "s=2"]
    assert main(["evaluate", str(run / "model"), "--manifest", str(tone_corpus / "valid.tsv"),
                 "--settings", "s=1;s=2", "--repeats", "1", "--threads", "1", "--out", str(tmp_path / "eval")]) == 0
    rows = json.loads((tmp_path / "eval" / "results.json").read_text())["rows"]
    assert [row["setting"] for row in rows] == ["s=1", "s=2"]


def test_fresh_ctc_head_sees_the_audio():
    # two N(0, 0.02) layers in a row (upsampler, head) gave logits that barely varied with the input
    # and kept the tiny model on CTC's all-blank plateau; the init now leaves it by ~300 updates
    from stochw2v.model.config import EncoderConfig

    torch.manual_seed(0)
    model = CTCModel(stochw2v.Encoder(EncoderConfig.tiny(dropout=0.0, attention_dropout=0.0, feature_dropout=0.0,
                                                          layerdrop=0.0)), Vocabulary()).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 32000), compression="s=1").logits[0]
    assert logits.std(dim=0).mean().item() > 0.2  # 0.39 now; 0.028 with the old init


def test_frozen_feature_encoder_freezes_the_conv_stack_only(tone_corpus, tmp_path):
    # fairseq's feature_grad_mult=0 and HF's freeze_feature_encoder stop at the conv stack: the
    # feature layer norm and the projection to the model width keep training
    recipe = load_recipe(None, RECIPE + ["task.freeze_feature_encoder=true"], FinetuneRecipe)
    trainer = finetuner(recipe, tone_corpus / "init", tone_corpus / "train.tsv", tone_corpus / "valid.tsv",
                        tmp_path / "run")
    before = {k: v.clone() for k, v in trainer.module.state_dict().items()}
    trainer.train(3)
    after = trainer.module.state_dict()
    conv = [k for k in before if k.startswith("encoder.feature_encoder.")]
    assert conv and all(torch.equal(before[k], after[k]) for k in conv)
    for key in ("encoder.feature_projection.weight", "encoder.feature_norm.weight"):
        assert not torch.equal(before[key], after[key]), key


def test_time_masks_put_at_least_two_spans_in_every_item():
    from stochw2v.train.masking import mask_features

    x = torch.zeros(3, 40, 8)
    out = mask_features(x, [40, 30, 12], time_prob=0.01, time_span=3, channel_prob=0.0, channel_span=1,
                        mask_embedding=torch.ones(8), generator=torch.Generator().manual_seed(0))
    masked = out[..., 0] == 1.0
    for row in masked:  # two spans of 3 (they may overlap): at least 3 frames, and no item left unmasked
        assert row.sum() >= 3
    zero = mask_features(x, [40, 30, 12], 0.01, 3, 0.0, 1, torch.ones(8), torch.Generator().manual_seed(0), 0)
    assert (zero == 0).all()  # prob * length rounds to no span when no minimum is asked for


@pytest.mark.slow
def test_transcribe_runs_the_encoder_once_per_file(finetuned, tone_corpus, monkeypatch, capsys):
    _, _, _, out = finetuned
    from stochw2v.model.encoder import Encoder

    calls = []
    original = Encoder.front  # the conv front end: every pass of the encoder starts there, once

    def counting(self, waveforms, *args, **kwargs):
        calls.append(waveforms.shape[-1])
        return original(self, waveforms, *args, **kwargs)

    monkeypatch.setattr(Encoder, "front", counting)
    files = [str(tone_corpus / f"t{i}.wav") for i in range(3)]
    assert main(["transcribe", str(out / "model"), *files, "--json"]) == 0
    lengths = [len(sf.read(f)[0]) for f in files]
    assert calls[0] <= 16000 and calls[1:] == lengths  # a one-second warm-up, then each file exactly once
    assert [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()] == TRANSCRIPTS[:3]


def test_a_fine_tuning_run_loads_as_its_best_wer_checkpoint(tone_corpus, tmp_path):
    from stochw2v.formats.checkpoint import read_checkpoint

    recipe = load_recipe(None, RECIPE + ["run.validate_every=4", "run.keep_last=5"], FinetuneRecipe)
    trainer = finetuner(recipe, tone_corpus / "init", tone_corpus / "train.tsv", tone_corpus / "valid.tsv",
                        tmp_path / "run")
    trainer.train(8)
    folder = tmp_path / "run" / "checkpoints"
    best = read_checkpoint(folder / "checkpoint_best.safetensors")
    last = read_checkpoint(folder / "checkpoint_last.safetensors")
    assert best.meta["best"] == min(best.meta["best"], last.meta["best"])
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    wers = {}
    for line in log:
        if line["split"].startswith("valid/"):
            wers.setdefault(line["update"], []).append(line["wer"])
    best_update = min(wers, key=lambda u: (sum(wers[u]) / len(wers[u]), u))
    assert best.meta["position"]["update"] == best_update  # chosen by mean valid WER, not by loss
    loaded = stochw2v.load(tmp_path / "run")
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, best.model[key]), key
    exported = stochw2v.load(trainer.export(tmp_path / "exported"))
    assert all(torch.equal(v, best.model[k]) for k, v in exported.state_dict().items())


@pytest.mark.slow
def test_evaluate_timing_does_not_depend_on_the_order_of_settings(finetuned, tone_corpus):
    # a fake clock advanced by the model: the first call at each (setting, input shape) costs 10,
    # later ones 1; a full warm-up pass per setting makes every timed pass cost the same
    from stochw2v.data import read_manifest
    from stochw2v.evaluate.tradeoff import evaluate_models

    _, _, _, out = finetuned
    manifest = read_manifest(tone_corpus / "train.tsv", labels=True)

    def measure(order):
        model, now, seen = stochw2v.load(out / "model"), [0.0], set()

        def cost(_module, args):
            key = (str(args[2]), tuple(args[0].shape))
            now[0] += 1.0 if key in seen else 10.0
            seen.add(key)

        model.register_forward_pre_hook(cost)
        evaluation = evaluate_models({"m": model}, manifest, [stochw2v.Compression.parse(s) for s in order],
                                     repeats=3, max_samples=40000, progress=False, clock=lambda: now[0])
        return {r.setting: r.encoder_seconds for r in evaluation.rows}

    forward, backward = measure(["s=1", "s=2"]), measure(["s=2", "s=1"])
    assert forward == backward and forward["s=1"] == forward["s=2"] > 0


def test_a_recogniser_exports_as_hf_for_ctc_with_equal_logits(tmp_path, capsys):
    transformers = pytest.importorskip("transformers", reason="HF transformers is the test oracle")
    encoder = stochw2v.Encoder(small_config(conv_norm="group", conv_bias=False, dim=48, max_upsample=4))
    ours = CTCModel(encoder, Vocabulary()).eval()
    stochw2v.save(ours, tmp_path / "ours")
    vocab = json.loads((tmp_path / "ours" / "vocab.json").read_text())  # our folder names its vocabulary too
    assert tuple(sorted(vocab, key=vocab.get)) == ours.vocabulary.tokens
    assert isinstance(stochw2v.load(tmp_path / "ours"), CTCModel)  # and still loads as ours, not as HF
    assert main(["export-hf", str(tmp_path / "ours"), "--out", str(tmp_path / "hf"), "--compression", "s=2"]) == 0
    hf = transformers.AutoModelForCTC.from_pretrained(tmp_path / "hf").eval()
    assert type(hf).__name__ == "SEWForCTC"
    audio = torch.randn(2, 9000)
    with torch.no_grad():
        ref = hf(audio).logits
        mine = ours(audio, compression="s=2").logits
    assert ref.shape == mine.shape and (ref - mine).abs().max().item() < 1e-4
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    lengths = torch.tensor([mine.shape[1]] * 2)
    assert tokenizer.decode(ref[0].argmax(-1)) == greedy_decode(mine, lengths, ours.vocabulary)[0]
    again = stochw2v.load(tmp_path / "hf")  # and back: a HF ForCTC folder with vocab.json is a recogniser
    assert isinstance(again, CTCModel) and again.vocabulary == ours.vocabulary
    with torch.no_grad():
        assert (again(audio).logits - mine).abs().max().item() < 1e-5
    capsys.readouterr()
    assert main(["export-hf", str(tmp_path / "ours"), "--out", str(tmp_path / "ours" / "hf")]) == 2
    assert "is (inside) the model folder" in capsys.readouterr().err
    assert not (tmp_path / "ours" / "hf").exists()


def test_fine_tuning_a_recogniser_continues_from_its_head(finetuned, tone_corpus, tmp_path):
    # fairseq's --finetune-from-model: a recogniser over the same vocabulary keeps its trained head,
    # so a continued run starts where the first one stopped instead of from a random head
    _, _, _, out = finetuned
    recogniser = stochw2v.load(out / "model")
    recipe = load_recipe(None, RECIPE, FinetuneRecipe)
    trainer = finetuner(recipe, out / "model", tone_corpus / "train.tsv", tone_corpus / "valid.tsv", tmp_path / "run")
    for key, value in recogniser.state_dict().items():
        assert torch.equal(trainer.module.state_dict()[key], value), key
    encoder_only = finetuner(recipe, tone_corpus / "init", tone_corpus / "train.tsv", tone_corpus / "valid.tsv",
                             tmp_path / "fresh")
    assert not torch.equal(encoder_only.module.head.weight, recogniser.head.weight)
