"""What `evaluate` leaves on disk: results.json, results.md and tradeoff.png.

The plot has a WER and a CER panel: one curve per model over relative encoder time, 95%
intervals as error bars, each metric's Pareto front marked, and setting labels placed so they
do not overlap (or are left out where no free spot is found, rather than drawn over others).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import Stochw2vError
from ..files import atomic_write, ensure_writable_folder
from .tradeoff import Evaluation, SettingResult, differences_table, markdown_table, pareto_front, results_payload

_OFFSETS = [(5, 5), (5, -12), (-8, 8), (-8, -14), (8, 0), (-12, 0), (5, 16), (5, -22), (-12, 18), (-12, -24)]


def check_output_folder(out: Path) -> Path:
    """Refuse an --out that cannot hold the results before any evaluation runs."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise Stochw2vError(f"{out}: is a file; --out must be a folder (results.json, results.md, tradeoff.png)")
    return ensure_writable_folder(out, "results folder")


def _place_labels(ax, fig, points: list[tuple[float, float, str]]) -> None:
    """Annotate each point at the first offset whose text box overlaps no earlier box and no point."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    taken = []
    for x, y, _ in points:
        px, py = ax.transData.transform((x, y))
        taken.append((px - 3, py - 3, px + 3, py + 3))
    for x, y, text in points:
        for dx, dy in _OFFSETS:
            label = ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=7)
            box = label.get_window_extent(renderer)
            bounds = (box.x0, box.y0, box.x1, box.y1)
            if not any(bounds[0] < t[2] and t[0] < bounds[2] and bounds[1] < t[3] and t[1] < bounds[3]
                       for t in taken):
                taken.append(bounds)
                break
            label.remove()


def plot_tradeoff(rows: list[SettingResult], path: Path, extra_points: list[dict] | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, metric, axis_label in zip(axes, ("wer", "cer"), ("word error rate", "character error rate")):
        points = []
        for name in dict.fromkeys(r.model for r in rows):
            mine = sorted((r for r in rows if r.model == name), key=lambda r: r.relative_time)
            cascade = [r for r in mine if r.setting.startswith("auto")]
            trained = [r for r in mine if r not in cascade and r.trained]
            untrained = [r for r in mine if r not in cascade and not r.trained]
            color = None
            # the curve joins the settings the model was trained on; others are faint crosses, unlabelled
            for group, style, label in ((trained, "o-", name), (cascade, "*", f"{name} confidence cascade"),
                                        (untrained, "x", f"{name} (untrained settings)")):
                if not group:
                    continue
                values = [getattr(r, metric) for r in group]
                errors = [[v - getattr(r, f"{metric}_low") for v, r in zip(values, group)],
                          [getattr(r, f"{metric}_high") - v for v, r in zip(values, group)]]
                drawn = ax.errorbar([r.relative_time for r in group], values, yerr=errors, fmt=style, capsize=3,
                                    label=label, markersize=12 if style == "*" else 6, color=color,
                                    alpha=0.35 if style == "x" else 1.0)
                color = drawn.lines[0].get_color()
            points += [(r.relative_time, getattr(r, metric), "auto" if r.setting.startswith("auto") else r.setting)
                       for r in trained + cascade]
        for point in extra_points or []:
            ax.scatter([point["relative_time"]], [point[metric]], marker="*", s=160, zorder=5, label=point["label"])
            points.append((point["relative_time"], point[metric], point["label"]))
        front = pareto_front([r for r in rows if r.trained or r.setting.startswith("auto")] or rows, metric)
        ax.plot([r.relative_time for r in front], [getattr(r, metric) for r in front], "k--", lw=1,
                label="Pareto front")
        ax.set_xlabel(f"encoder time relative to {rows[0].model} {rows[0].setting}")
        ax.set_ylabel(f"{axis_label} (95% CI)")
        ax.set_title(f"{metric.upper()} against inference time, per setting")
        ax.grid(alpha=0.3)
        _place_labels(ax, fig, points)
    # one legend under both panels: inside an axis, a legend of many models covers the points
    handles, labels = axes[0].get_legend_handles_labels()
    columns = max(1, min(4, len(labels)))
    legend_inches = 0.22 * -(-len(labels) // columns) + 0.15  # rows of 8-point text, and a margin
    fig.set_size_inches(12, 5 + legend_inches)
    fig.legend(handles, labels, loc="lower center", ncol=columns, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, legend_inches / (5 + legend_inches), 1, 1))
    atomic_write(path, None, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return path


def write_results(evaluation: Evaluation, out: Path, extra: dict | None = None,
                  extra_points: list[dict] | None = None) -> str:
    """results.json, results.md and tradeoff.png in `out`; returns the paired-differences table ("" if none)."""
    out = check_output_folder(out)
    payload = results_payload(evaluation, extra)
    if extra_points:
        payload["extra_points"] = extra_points
    atomic_write(out / "results.json", json.dumps(payload, indent=1).encode())
    table = markdown_table(evaluation.rows) + f"\n\n{evaluation.protocol}\n"
    differences = differences_table(evaluation)
    if differences:
        table += f"\nPaired differences to each model's first setting (same utterances):\n\n{differences}\n"
    atomic_write(out / "results.md", table.encode())
    plot_tradeoff(evaluation.rows, out / "tradeoff.png", extra_points)
    return differences


__all__ = ["check_output_folder", "plot_tradeoff", "write_results"]
