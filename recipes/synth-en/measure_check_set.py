"""Measure a recogniser's CER on the small check set its card names, and write them into card.json.

tests/test_shipped_model.py regenerates the same check set and compares against these values, so
a change that hurts the shipped model (or synthesis) fails a test.

    .venv/bin/python recipes/synth-en/measure_check_set.py models/stochw2v-synth-en [--settings "s=1;s=4"]
"""
from __future__ import annotations

import argparse
import json
import shlex
import tempfile
from pathlib import Path

import torch

import stochw2v
from stochw2v.cli import main as cli
from stochw2v.data import read_manifest
from stochw2v.evaluate.tradeoff import evaluate_models

COMMAND = ("stochw2v synth --hours 0.02 --seed 11 --test-utterances 40 --valid-utterances 2 --engines espeak")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--settings", default="s=1;s=4")
    parser.add_argument("--tolerance", type=float, default=0.02)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        if cli(shlex.split(COMMAND)[1:] + ["--out", folder]) != 0:
            raise SystemExit("synthesis of the check set failed")
        manifest = read_manifest(Path(folder) / "test.tsv", labels=True)
        settings = [stochw2v.Compression.parse(s) for s in args.settings.split(";")]
        evaluation = evaluate_models({"model": stochw2v.load(args.model)}, manifest, settings, repeats=1,
                                     progress=False)
    card_path = args.model / "card.json"
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    card["check_set"] = {"command": COMMAND, "utterances": len(manifest),
                         "cer": {row.setting: round(row.cer, 4) for row in evaluation.rows},
                         "tolerance": args.tolerance}
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card["check_set"], indent=2))


if __name__ == "__main__":
    main()
