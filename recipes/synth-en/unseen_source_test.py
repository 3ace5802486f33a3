"""A test set from synthesizers a model never heard: the test split's sentences spoken by other voices.

The synthetic test split holds unseen voices of the engines the model trained on. This asks what a
new way of making speech does: festival's HTS voice (a statistical parametric synthesizer, speaker
slt, whom the shipped corpora hold out; it keeps its own rate and pitch) and festival's diphone
voices speak the sentences of a corpus's test split (never in its training).
Writes DIR/test.{tsv,wrd,ltr} for `stochw2v evaluate`.

    .venv/bin/python recipes/synth-en/unseen_source_test.py runs/shipped/data --out runs/unseen \
        --voices festival:cmu_us_slt_arctic_hts,festival:ked_diphone --utterances 200
    .venv/bin/python -m stochw2v evaluate models/stochw2v-synth-en --manifest runs/unseen/test.tsv \
        --out runs/unseen/eval
    .venv/bin/python recipes/synth-en/error_by_voice.py runs/unseen/eval/results.json runs/unseen
"""
from __future__ import annotations

import argparse
import json
import random
from dataclasses import asdict, replace
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from stochw2v.data.manifest import Manifest
from stochw2v.data.synth import SynthError, Utterance, check_voices, engine_binary, engine_of, prosody, synthesize
from stochw2v.errors import Stochw2vError
from stochw2v.files import atomic_write


def plan(corpus: Path, voices: list[str], count: int, seed: int) -> list[Utterance]:
    """`count` test sentences of `corpus` (each once, while they last), voices in turn, prosody drawn per utterance."""
    meta_path = corpus / "corpus.json"
    if not meta_path.is_file():
        raise SynthError(f"{meta_path}: not found (expected a `stochw2v synth` folder)")
    meta = json.loads(meta_path.read_text())
    test = list({u["text"]: u for u in meta["utterances"] if u["split"] == "test"}.values())
    if not test:
        raise SynthError(f"{meta_path}: no test utterances")
    rng = random.Random(seed)
    rng.shuffle(test)
    chosen = []
    for i in range(count):
        source = Utterance(**test[i % len(test)])
        voice = voices[i % len(voices)]
        speed, pitch = prosody(voice, rng)
        chosen.append(replace(source, split="test", index=i, voice=voice, speed=speed, pitch=pitch))
    return chosen


def _work(args):
    return synthesize(*args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="a `stochw2v synth` folder whose test sentences are spoken")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--voices", default="festival:cmu_us_slt_arctic_hts,festival:ked_diphone")
    parser.add_argument("--utterances", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    voices = [v for v in args.voices.split(",") if v]
    try:
        if not voices or args.utterances < 1 or args.workers < 1:
            raise SynthError("--voices needs at least one voice, --utterances and --workers at least 1")
        check_voices(voices)
        binaries = {engine: engine_binary(engine) for engine in {engine_of(v) for v in voices}}
        utterances = plan(args.corpus, voices, args.utterances, args.seed)
    except Stochw2vError as error:
        print(f"error: {error}")
        return 2
    jobs = [(u, args.out, binaries) for u in utterances]
    with get_context("spawn").Pool(args.workers) as pool:
        made = list(tqdm(pool.imap(_work, jobs, chunksize=4), total=len(jobs), desc="synth", unit="utt"))
    Manifest(args.out, [u.relative_path for u, _ in made], [n for _, n in made],
             [u.words for u, _ in made]).write(args.out / "test.tsv")
    # corpus.json in synth's layout, so error_by_voice.py can split the results by voice
    atomic_write(args.out / "corpus.json", json.dumps({"source": str(args.corpus), "voices": voices,
                                                       "utterances": [asdict(u) for u, _ in made]}, indent=1).encode())
    print(f"wrote {args.out / 'test.tsv'}: {len(made)} utterances, voices {voices}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
