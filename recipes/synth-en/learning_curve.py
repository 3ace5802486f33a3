"""Learning curve of training runs: validation metrics per setting against updates, from log.jsonl.

    .venv/bin/python recipes/synth-en/learning_curve.py runs/shipped/pretrain runs/shipped/finetune --out curve.png

Prints one markdown table per run (a row per validation, a column per setting: contrastive accuracy
for pre-training, CER for fine-tuning) and plots them side by side, with the training loss behind.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from stochw2v.formats.run_folder import read_log  # noqa: E402


def metric_curves(run: Path) -> tuple[str, dict[int, dict[str, float]], list[tuple[int, float]]]:
    """(metric, {update: {setting: value}}, [(update, train loss)]) of one run folder."""
    losses, validations = read_log(run)
    metric = "cer" if any("cer" in m for row in validations.values() for m in row.values()) else "accuracy"
    return metric, {u: {s: m[metric] for s, m in row.items() if metric in m} for u, row in validations.items()}, losses


def table(run: Path, metric: str, validations: dict[int, dict[str, float]]) -> str:
    settings = sorted({s for row in validations.values() for s in row})
    lines = [f"{run} (valid {metric})", "", "| update | " + " | ".join(settings) + " |",
             "|---|" + "---|" * len(settings)]
    for update, row in sorted(validations.items()):
        lines.append(f"| {update} | " + " | ".join(f"{row[s]:.3f}" if s in row else "-" for s in settings) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = parser.parse_args()
    fig, axes = plt.subplots(1, len(args.runs), figsize=(6 * len(args.runs), 4), squeeze=False)
    for ax, run in zip(axes[0], args.runs):
        metric, validations, losses = metric_curves(run)
        print(table(run, metric, validations), end="\n\n")
        behind = ax.twinx()
        behind.plot(*zip(*losses), color="0.8", linewidth=0.8)
        behind.set_ylabel("train loss", color="0.5")
        ax.set_zorder(behind.get_zorder() + 1)
        ax.patch.set_visible(False)
        for setting in sorted({s for row in validations.values() for s in row}):
            points = sorted((u, row[setting]) for u, row in validations.items() if setting in row)
            ax.plot(*zip(*points), marker="o", markersize=3, label=setting)
        ax.set_xlabel("update")
        ax.set_ylabel(f"valid {metric}")
        ax.set_title(run.name)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
