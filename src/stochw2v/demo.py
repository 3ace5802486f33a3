"""`make demo`: the whole method in miniature on a 2-core CPU, from nothing to the trade-off table.

Synthesises a small speech corpus, pre-trains a tiny stochastic model (squeeze and pooling drawn
per update), fine-tunes it with CTC (again for every setting), evaluates the settings it was
trained on, on held-out voices and sentences, next to the shipped recogniser (models/), and
shows transcripts at s=1 and s=4 side by side. Everything goes under OUT (runs/demo by default).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from .data import read_manifest
from .data.synth import make_corpus
from .evaluate.report import write_results
from .evaluate.tradeoff import evaluate_models, markdown_table
from .formats.load import load
from .formats.run_folder import read_log
from .model import CTCModel
from .train.finetune import Finetuner
from .train.pretrain import Pretrainer
from .train.recipe import FinetuneRecipe, PretrainRecipe, load_recipe, packaged_recipe

# the shipped model is compared when the demo runs from a checkout (an installed wheel does not carry it)
SHIPPED = Path(__file__).resolve().parents[2] / "models" / "stochw2v-synth-en"
# both models, 7 settings, 50 utterances took 0.9 min on a slow day; fine-tuning's budget is fitted from its
# first s=1 updates and missed by -2.1 to +0.9 min of 7.8-8.8 on a machine whose speed drifted (2026-12-02)
EVALUATION_MINUTES = 1.5
MIN_FINETUNE_MINUTES = 2.0  # below this the model cannot leave CTC's blank plateau
DEMO_MINUTES = 14.0  # the whole demo, `stochw2v demo --minutes`


def _corpus(data: Path, hours: float) -> None:
    if (data / "corpus.json").exists() and json.loads((data / "corpus.json").read_text())["hours_requested"] == hours:
        print(f"[1/4] synthetic corpus: reusing {data}")
        return
    print(f"[1/4] synthesising {hours} h of speech with espeak-ng")
    summary = make_corpus(data, hours, seed=0, workers=2)
    print(f"      {summary['audio_seconds'] / 3600:.2f} h at {summary['audio_seconds_per_second']} audio s/s")


def _what_training_did(run: Path, cer: bool = False) -> None:
    """Did it learn? The mean train loss over the first and last tenth of logged updates, and with
    `cer` the valid CER at s=1 and s=4 of every validation (all read once from the run's log)."""
    losses, validations = read_log(run)
    if len(losses) >= 2:
        tenth = max(1, len(losses) // 10)
        first, last = losses[:tenth], losses[-tenth:]
        print(f"      train loss {sum(v for _, v in first) / tenth:.3f} (updates {first[0][0]}-{first[-1][0]}) -> "
              f"{sum(v for _, v in last) / tenth:.3f} (updates {last[0][0]}-{last[-1][0]})")
    for update, row in sorted(validations.items()) if cer else ():
        print(f"      update {update}: valid CER " + ", ".join(f"{s} {row[s]['cer']:.3f}" for s in ("s=1", "s=4")
                                                          if "cer" in row.get(s, {})))


def _pretrain(out: Path, data: Path, updates: int) -> Path:
    print(f"[2/4] pre-training a tiny stochastic model ({updates} updates, squeeze and pooling drawn per update)")
    recipe = load_recipe(packaged_recipe("pretrain_tiny"), [f"optim.max_updates={updates}",
                                                        f"run.validate_every={updates}"], PretrainRecipe)
    trainer = Pretrainer(recipe, data / "train.tsv", data / "valid.tsv", out / "pretrain",
                         resume=(out / "pretrain" / "checkpoints" / "checkpoint_last.safetensors").exists())
    trainer.train()
    _what_training_did(out / "pretrain")
    for name, result in (trainer.last_validation or trainer.validate()).items():  # it validated at its end
        print(f"      valid {name}: contrastive accuracy {result['accuracy']:.3f} (chance {result['chance']:.3f}), "
              f"loss {result['loss']:.3f}")
    return out / "pretrain"


def _finetune(out: Path, data: Path, init: Path, updates: int, minutes: float) -> Path:
    print(f"[3/4] fine-tuning with CTC ({updates} updates, every trained setting; at most {minutes:.1f} min)")
    # the first half at s=1 (policy.plain_updates), a warm start within the run (the experiment warm-starts
    # every arm at s=1 instead): drawn from
    # update 1, a fresh clone's demo sat on CTC's blank plateau to update ~1,300 of 1,800 (valid CER
    # 0.98 at 1,200; measured 2026-12-01)
    recipe = load_recipe(packaged_recipe("finetune_tiny"), [f"optim.max_updates={updates}",
                                                        f"policy.plain_updates={updates // 2}",
                                                        f"run.validate_every={-(-updates // 3)}",
                                                        f"run.max_minutes={minutes:.1f}"], FinetuneRecipe)
    trainer = Finetuner(recipe, load(init), data / "train.tsv", data / "valid.tsv", out / "finetune",
                        init_source=str(init.resolve()),
                        resume=(out / "finetune" / "checkpoints" / "checkpoint_last.safetensors").exists())
    trainer.train()
    _what_training_did(out / "finetune", cer=True)
    return trainer.export()


def _show(models: dict[str, CTCModel], data: Path, out: Path) -> None:
    print("[4/4] evaluating on the test split (held-out sentences and voices), trained settings only")
    manifest = read_manifest(data / "test.tsv", labels=True)
    evaluation = evaluate_models(models, manifest, repeats=3)
    write_results(evaluation, out / "evaluate", {"manifest": str(data / "test.tsv")})
    print()
    print(markdown_table(evaluation.rows))
    print(f"\n{evaluation.protocol}\n")
    refs = {manifest.utterance_id(i): manifest.words[i] for i in range(len(manifest))}
    columns = [(name, setting) for name in models for setting in ("s=1", "s=4")]
    print("| utterance | reference | " + " | ".join(f"{name} {setting}" for name, setting in columns) + " |")
    print("|---" * (2 + len(columns)) + "|")
    for utt in sorted(refs)[:3]:
        hyps = [evaluation.hypotheses[name].get(setting, {}).get(utt, "") for name, setting in columns]
        print(f"| {utt} | {refs[utt]} | " + " | ".join(hyps) + " |")
    print(f"\nwrote {out / 'evaluate' / 'results.md'} and {out / 'evaluate' / 'tradeoff.png'}")


def run_demo(out: Path, hours: float = 1.0, pretrain_updates: int = 300, finetune_updates: int = 1300,
             minutes: float = DEMO_MINUTES) -> int:
    """`minutes` bounds the whole demo: fine-tuning gets what synthesis and pre-training left, less
    EVALUATION_MINUTES (a slow machine did 1,300 updates in 12.1 min, against ~8.5 on ours)."""
    torch.set_num_threads(2)
    out = Path(out)
    start = time.perf_counter()
    print(f"stochw2v demo: everything goes under {out.resolve()}")
    data = out / "data"
    _corpus(data, hours)
    pretrained = _pretrain(out, data, pretrain_updates)
    print(f"      ({(time.perf_counter() - start) / 60:.1f} min so far)")
    left = minutes - (time.perf_counter() - start) / 60 - EVALUATION_MINUTES
    model_dir = _finetune(out, data, pretrained, finetune_updates, max(MIN_FINETUNE_MINUTES, left))
    print(f"      recogniser saved to {model_dir} ({(time.perf_counter() - start) / 60:.1f} min so far)")
    models = {"demo (just trained)": load(model_dir)}
    if (SHIPPED / "config.json").exists():
        models["shipped"] = load(SHIPPED)
    _show(models, data, out)
    print(f"demo finished in {(time.perf_counter() - start) / 60:.1f} min")
    return 0
