"""WER and CER of an evaluation split by voice group: held-out or seen, per engine (one row per held-out voice).

A synthetic test split mixes voices heard in training with voices that were not, and several engines.
One average hides which part fails; this reads the hypotheses `stochw2v evaluate` saved and the
voice of each utterance from the corpus that made the split.

    .venv/bin/python recipes/synth-en/error_by_voice.py runs/shipped/eval/greedy/results.json runs/shipped/data \
        [--settings "s=1;s=4"]
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from stochw2v.data import read_manifest
from stochw2v.data.error_rates import error_rates
from stochw2v.data.synth import Utterance, engine_of


def voice_groups(corpus: Path, split: str) -> dict[str, str]:
    """Utterance id -> group name, from corpus.json (held-out voices are those never used outside the split)."""
    meta = json.loads((corpus / "corpus.json").read_text())
    others = {u["voice"] for u in meta["utterances"] if u["split"] != split}
    groups = {}
    for u in meta["utterances"]:
        if u["split"] == split:
            engine = engine_of(u["voice"])
            uid = Path(Utterance(**u).relative_path).with_suffix("").as_posix()  # as Manifest.utterance_id
            groups[uid] = f"held-out {u['voice']}" if u["voice"] not in others else f"seen {engine} voices"
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="results.json of `stochw2v evaluate`")
    parser.add_argument("corpus", type=Path, help="the `stochw2v synth` folder the manifest came from")
    parser.add_argument("--split", default="test")
    parser.add_argument("--settings", default="s=1;s=4")
    args = parser.parse_args()
    results = json.loads(args.results.read_text())
    manifest = read_manifest(results["manifest"], labels=True, check_files=False)
    references = {manifest.utterance_id(i): manifest.words[i] for i in range(len(manifest))}
    groups = voice_groups(args.corpus, args.split)
    settings = args.settings.split(";")
    for model, by_setting in results["hypotheses"].items():
        print(f"{model} ({args.results})\n")
        print("| voices | utterances | " + " | ".join(f"{s} WER / CER" for s in settings) + " |")
        print("|---|---|" + "---|" * len(settings))
        members = defaultdict(list)
        for uid in references:
            members[groups.get(uid, "unknown")].append(uid)
        for group in sorted(members, key=lambda g: (not g.startswith("held-out"), g)) + ["all"]:
            uids = list(references) if group == "all" else members[group]
            cells = []
            for setting in settings:
                hyps = by_setting.get(setting, {})
                counts = error_rates([references[u] for u in uids], [hyps.get(u, "") for u in uids])
                cells.append(f"{counts.wer:.3f} / {counts.cer:.3f}" if hyps else "-")
            print(f"| {group} | {len(uids)} | " + " | ".join(cells) + " |")
        print()


if __name__ == "__main__":
    main()
