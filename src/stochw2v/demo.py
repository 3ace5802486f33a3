"""`make demo`: the whole method in miniature on a 2-core CPU, from nothing to the trade-off table.

Synthesises a small speech corpus, pre-trains a tiny stochastic model (squeeze drawn per
update), fine-tunes it with CTC (again for every squeeze), evaluates s=1..4 and a pooling
setting on held-out voices and sentences, and shows transcripts at s=1 and s=4 side by side.
Everything goes under OUT (runs/demo by default).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DEMO_SETTINGS = "s=1;s=2;s=3;s=4;s=2,kv=2"


def _recipe(name: str) -> Path:
    path = CONFIGS / name
    if not path.exists():
        raise FileNotFoundError(f"{path}: the demo runs from a checkout of the repository (configs/ is missing)")
    return path


def run_demo(out: Path, hours: float = 1.0, pretrain_updates: int = 600,
             finetune_updates: int = 1800) -> int:
    from .data import read_manifest
    from .data.synth import make_corpus
    from .evaluate.profile import parse_settings
    from .evaluate.tradeoff import evaluate_models, markdown_table, write_results
    from .model import load
    from .train.finetune import Finetuner
    from .train.pretrain import Pretrainer
    from .train.recipe import FinetuneRecipe, load_recipe

    torch.set_num_threads(2)
    out = Path(out)
    start = time.perf_counter()
    print(f"stochw2v demo: everything goes under {out.resolve()}")

    data = out / "data"
    if (data / "corpus.json").exists() and json.loads((data / "corpus.json").read_text())["hours_requested"] == hours:
        print(f"[1/4] synthetic corpus: reusing {data}")
    else:
        print(f"[1/4] synthesising {hours} h of speech with espeak-ng")
        summary = make_corpus(data, hours, seed=0, workers=2)
        print(f"      {summary['audio_seconds'] / 3600:.2f} h at {summary['audio_seconds_per_second']} audio s/s")

    print(f"[2/4] pre-training a tiny stochastic model ({pretrain_updates} updates, s drawn from 1..4)")
    pre_recipe = load_recipe(_recipe("pretrain_tiny.yaml"), [f"optim.max_updates={pretrain_updates}",
                                                            f"run.validate_every={pretrain_updates}"])
    pretrainer = Pretrainer(pre_recipe, data / "train.tsv", data / "valid.tsv", out / "pretrain",
                            resume=(out / "pretrain" / "checkpoints").exists())
    pretrainer.train()
    for name, result in pretrainer.validate().items():
        print(f"      valid {name}: contrastive accuracy {result['accuracy']:.3f} (chance {result['chance']:.3f}), "
              f"loss {result['loss']:.3f}")
    print(f"      ({(time.perf_counter() - start) / 60:.1f} min so far)")

    print(f"[3/4] fine-tuning with CTC ({finetune_updates} updates, s drawn from 1..4)")
    ft_recipe = load_recipe(_recipe("finetune_tiny.yaml"), [f"optim.max_updates={finetune_updates}",
                                                           f"run.validate_every={finetune_updates}"],
                            FinetuneRecipe)
    finetuner = Finetuner(ft_recipe, out / "pretrain", data / "train.tsv", data / "valid.tsv", out / "finetune",
                          resume=(out / "finetune" / "checkpoints").exists())
    finetuner.train()
    model_dir = finetuner.export()
    print(f"      recogniser saved to {model_dir} ({(time.perf_counter() - start) / 60:.1f} min so far)")

    print("[4/4] evaluating on the test split (held-out sentences and voices)")
    manifest = read_manifest(data / "test.tsv", labels=True)
    models = {"stochastic tiny": load(model_dir)}
    rows, hypotheses = evaluate_models(models, manifest, parse_settings(DEMO_SETTINGS), repeats=2)
    write_results(rows, hypotheses, out / "evaluate", {"manifest": str(data / "test.tsv")})
    print()
    print(markdown_table(rows))
    print()
    refs = {manifest.utterance_id(i): manifest.words[i] for i in range(len(manifest))}
    shown = sorted(refs)[:3]
    print("| utterance | reference | s=1 | s=4 |\n|---|---|---|---|")
    for utt in shown:
        print(f"| {utt} | {refs[utt]} | {hypotheses['stochastic tiny']['s=1'][utt]} | "
              f"{hypotheses['stochastic tiny']['s=4'][utt]} |")
    print(f"\nwrote {out / 'evaluate' / 'results.md'} and {out / 'evaluate' / 'tradeoff.png'}")
    print(f"demo finished in {(time.perf_counter() - start) / 60:.1f} min")
    return 0
