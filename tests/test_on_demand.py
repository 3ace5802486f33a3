"""On-demand compute: profiles and budgets, the confidence cascade, bf16 inference."""
import json

import numpy as np
import pytest
import torch

import stochw2v
from helpers import noise_corpus, small_config
from stochw2v.cli import main
from stochw2v.compute.budget import Profile, SettingCost
from stochw2v.data import Vocabulary
from stochw2v.evaluate.cascade import Cascade, CascadeConfig, Measurements, calibrate, simulate
from stochw2v.model import CTCModel

TRANSCRIPTS = ["AB CA", "CAB", "BC A"]


def _profile():
    # s=1 most accurate and slowest; s=2,kv=2 is beaten by s=2 on both counts (not Pareto)
    return Profile([SettingCost("s=1", {1: 0.04, 8: 0.02}, 3.0, wer=0.10),
                    SettingCost("s=2", {1: 0.02, 8: 0.01}, 2.0, wer=0.15),
                    SettingCost("s=2,kv=2", {1: 0.03, 8: 0.015}, 2.1, wer=0.16),
                    SettingCost("s=4", {1: 0.01, 8: 0.005}, 1.5, wer=0.30)])


def test_a_profile_keeps_the_pareto_settings_and_a_budget_picks_the_most_accurate_that_fits(tmp_path):
    profile = _profile()
    assert [s.setting for s in profile.by_accuracy()] == ["s=1", "s=2", "s=4"]
    assert str(profile.pick(rtf=0.05).setting) == "s=1"
    assert str(profile.pick(rtf=0.03).setting) == "s=2"  # s=2,kv=2 fits too but is dominated
    assert str(profile.pick(rtf=0.015).setting) == "s=4"
    assert str(profile.pick(gmacs=2.5).setting) == "s=2"
    assert str(profile.pick(rtf=0.03, batch=8).setting) == "s=1"  # batches are cheaper per audio second
    assert profile.settings[0].rtf_at(4) == pytest.approx(0.04 - 3 / 7 * 0.02)  # linear between batch sizes
    none_fits = profile.pick(rtf=0.001)
    assert (str(none_fits.setting), none_fits.fits) == ("s=4", False)
    with pytest.raises(stochw2v.Stochw2vError, match="RTF budget must be a finite number > 0"):
        profile.pick(rtf=float("nan"))
    loaded = Profile.load(profile.save(tmp_path / "profile.json"))
    assert [(s.setting, s.rtf, s.pareto) for s in loaded.settings] == [(s.setting, s.rtf, s.pareto)
                                                                     for s in profile.settings]


def test_a_model_picks_by_its_profile_and_refuses_one_for_settings_it_cannot_run(tmp_path):
    model = CTCModel(stochw2v.Encoder(small_config()), Vocabulary()).eval()
    path = _profile().save(tmp_path / "profile.json")
    assert str(stochw2v.pick_setting(model, budget=0.025, profile=path).setting) == "s=2"
    assert str(stochw2v.pick_setting(model, budget_macs=1.6, profile=path).setting) == "s=4"
    foreign = Profile([SettingCost("s=1,q9=2", {1: 0.01}, 1.0, wer=0.1)]).save(tmp_path / "foreign.json")
    with pytest.raises(stochw2v.Stochw2vError):
        stochw2v.pick_setting(model, budget=0.1, profile=foreign)
    (tmp_path / "bad.json").write_text(json.dumps({"settings": [{"setting": "s=1"}]}))
    with pytest.raises(stochw2v.Stochw2vError, match="bad.json: not a usable stochw2v profile"):
        stochw2v.pick_setting(model, budget=0.1, profile=tmp_path / "bad.json")


def test_re_profiling_keeps_the_accuracies_of_an_earlier_profile(tmp_path):
    # a model's shipped profile was measured on another machine: a new one, on this machine's threads,
    # takes its WER/CER from the old one so that budgets and the server still rank by accuracy
    model = CTCModel(stochw2v.Encoder(small_config()), Vocabulary())
    stochw2v.save(model, tmp_path / "model")
    old = Profile([SettingCost("s=1", {1: 0.5}, 3.0, wer=0.10, cer=0.04),
                   SettingCost("s=2", {1: 0.2}, 2.0, wer=0.15, cer=0.06)]).save(tmp_path / "old.json")
    assert main(["profile", "--model", str(tmp_path / "model"), "--settings", "s=1;s=2", "--seconds", "1",
                 "--repeats", "1", "--threads", "1", "--out", str(tmp_path / "new.json"),
                 "--results", str(old)]) == 0
    new = Profile.load(tmp_path / "new.json")
    assert [(c.setting, c.wer, c.cer) for c in new.settings] == [("s=1", 0.10, 0.04), ("s=2", 0.15, 0.06)]
    assert all(c.rtf[1] not in (0.5, 0.2) for c in new.settings)  # the speeds are this machine's own
    assert new.threads == 1
    (tmp_path / "list.json").write_text("[1, 2]")
    listed = tmp_path / "list.json"
    assert main(["profile", "--model", str(tmp_path / "model"), "--settings", "s=1", "--seconds", "1", "--repeats",
                 "1", "--threads", "1", "--out", str(tmp_path / "x.json"), "--results", str(listed)]) == 2


def _measurements():
    # 4 utterances, 2 stages; the cheap stage is wrong (1 error) exactly where it is unsure
    return Measurements(errors=np.array([[0, 0], [1, 0], [0, 0], [1, 0]], dtype=float),
                        words=np.ones(4), confidence=np.array([[0.9, 0.95], [0.4, 0.9], [0.8, 0.9], [0.5, 0.9]]),
                        gmacs=np.array([1.0, 3.0]), conv_gmacs=2.0)


def test_calibration_finds_the_cheapest_thresholds_that_meet_the_target_wer():
    m = _measurements()
    wer, cost, stages = simulate(m, (0.6,))  # re-run the two unsure utterances only
    assert wer == 0 and stages.tolist() == [0, 1, 0, 1] and cost == pytest.approx(2.0 + 1.0 + 3.0 * 0.5)
    thresholds, wer, cost = calibrate(m, target_wer=0.0)
    assert wer == 0 and cost == pytest.approx(4.5)  # below running the costly stage on everything (6.0)
    assert 0.5 < thresholds[0] <= 0.8
    thresholds, wer, cost = calibrate(m, target_wer=0.5)  # the cheap stage alone is good enough
    assert wer == 0.5 and cost == pytest.approx(3.0)


@pytest.fixture()
def recogniser(tmp_path):
    model = CTCModel(stochw2v.Encoder(small_config()), Vocabulary()).eval()
    return stochw2v.save(model, tmp_path / "model")


@pytest.fixture()
def corpus(tmp_path):
    return noise_corpus(tmp_path / "corpus", TRANSCRIPTS, step=3000)


def test_the_cascade_reruns_only_unsure_items_and_reuses_the_features(recogniser):
    model = stochw2v.load(recogniser)
    audio = torch.randn(3, 16000)
    lengths = torch.tensor([16000, 12000, 9000])
    cheap, costly = model(audio, lengths, "s=4"), model(audio, lengths, "s=1")
    everyone = Cascade(model, CascadeConfig(["s=4", "s=1"], [2.0]))(audio, lengths)  # nobody is that sure
    nobody = Cascade(model, CascadeConfig(["s=4", "s=1"], [0.0]))(audio, lengths)
    assert everyone.stages.tolist() == [1, 1, 1] and nobody.stages.tolist() == [0, 0, 0]
    for out, reference in ((everyone, costly), (nobody, cheap)):
        for i, n in enumerate(reference.lengths.tolist()):
            torch.testing.assert_close(out.logits[i, :n], reference.logits[i, :n], atol=1e-4, rtol=1e-4)
    calls = []
    model.encoder.front = (lambda front: lambda *a: calls.append(1) or front(*a))(model.encoder.front)
    Cascade(model, CascadeConfig(["s=4", "s=2", "s=1"], [2.0, 2.0]))(audio, lengths)
    assert len(calls) == 1  # three stages, one pass of the conv feature encoder


def test_calibrate_then_transcribe_and_evaluate_with_the_cascade(recogniser, corpus, tmp_path, capsys):
    cascade = tmp_path / "cascade.json"
    assert main(["calibrate", str(recogniser), "--manifest", str(corpus / "test.tsv"), "--settings", "s=4;s=1",
                 "--out", str(cascade), "--threads", "1"]) == 0
    config = json.loads(cascade.read_text())
    assert config["settings"] == ["s=4", "s=1"] and len(config["thresholds"]) == 1
    assert config["valid"]["wer"] <= config["target_wer"] + 1e-9 or config["valid"]["wer"] == min(
        v["wer"] for v in config["valid"]["fixed"].values())
    capsys.readouterr()
    assert main(["transcribe", str(recogniser), str(corpus / "u0.wav"), "--compression", "auto", "--cascade",
                 str(cascade), "--json", "--threads", "1"]) == 0
    assert "text" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["evaluate", str(recogniser), "--manifest", str(corpus / "test.tsv"), "--out", str(tmp_path / "ev"),
                 "--settings", "s=1;s=4", "--cascade", str(cascade), "--repeats", "1", "--threads", "1"]) == 0
    rows = json.loads((tmp_path / "ev" / "results.json").read_text())["rows"]
    assert any(r["setting"].startswith("auto(") for r in rows) and len(rows) == 3
    assert main(["transcribe", str(recogniser), str(corpus / "u0.wav"), "--compression", "auto"]) == 2
    assert "--compression auto needs --cascade" in capsys.readouterr().err


def test_transcribe_with_a_budget_says_which_setting_it_took(recogniser, corpus, tmp_path, capsys):
    profile = _profile().save(tmp_path / "profile.json")
    assert main(["transcribe", str(recogniser), str(corpus / "u0.wav"), "--budget", "0.025", "--profile",
                 str(profile), "--threads", "1"]) == 0
    assert "using s=2 " in capsys.readouterr().err
    assert main(["transcribe", str(recogniser), str(corpus / "u0.wav"), "--budget", "0.0001", "--profile",
                 str(profile), "--threads", "1"]) == 0
    assert "using s=4 " in (err := capsys.readouterr().err) and "none fits the budget" in err
    assert main(["transcribe", str(recogniser), str(corpus / "u0.wav"), "--budget", "0.1"]) == 2
    assert "--budget needs --profile" in capsys.readouterr().err


@pytest.mark.parametrize("setting", ["s=1", "s=2,kv=2", "s=4,q2=2"])
def test_bf16_inference_stays_close_to_fp32(setting):
    # small_config's positional conv has 8 channels per group, where torch's CPU bf16 kernel is wrong
    # (relative error 0.45 on these logits before PositionalConv ran such layers in float32)
    model = CTCModel(stochw2v.Encoder(small_config()), Vocabulary()).eval()
    audio = torch.randn(2, 16000)
    lengths = torch.tensor([16000, 11000])
    with torch.inference_mode():
        reference = model(audio, lengths, setting).logits
        model.to(torch.bfloat16)
        out = model(audio, lengths, setting)
    assert out.logits.dtype == torch.bfloat16
    for i, n in enumerate(out.lengths.tolist()):
        a, b = out.logits[i, :n].float(), reference[i, :n]
        assert (a - b).norm() / b.norm() < 0.04
        assert (a.softmax(-1) - b.softmax(-1)).abs().max() < 0.02


def test_the_dtype_option_runs_bf16_and_refuses_what_does_not_exist(recogniser, corpus, capsys):
    assert main(["transcribe", str(recogniser), str(corpus / "u0.wav"), "--dtype", "bfloat16", "--threads", "1"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["transcribe", str(recogniser), str(corpus / "u0.wav"), "--dtype", "float8"])
    assert "invalid choice: 'float8'" in capsys.readouterr().err


def test_timed_rounds_rotate_so_a_drift_within_rounds_favours_no_job():
    # a clock that runs slower along each round (job k of a round costs 1 + k): without rotation
    # the first job would always look fastest; rotated, each job's median is the same
    from stochw2v.evaluate.timing import interleave

    calls: list[str] = []
    position = {"in_round": 0}

    def job(name):
        def run():
            calls.append(name)
            cost = 1 + position["in_round"] % 3
            position["in_round"] += 1
            return cost
        return run

    results = interleave({name: job(name) for name in "abc"}, repeats=3, warmup=1)
    assert calls == list("abc") + list("abc") + list("bca") + list("cab")  # warm-up, then rotated rounds
    assert all(sorted(costs) == [1, 2, 3] for costs in results.values())  # every place in the round once
