"""PNG curves of a GRPO run over steps, from its `logging.jsonl` (and `completions.jsonl` when present).

    python tools/plot_training.py output/<run> [--out output/<run>/plots]

Writes `rewards.png` (each reward's mean with a ±std band, one panel per reward, sub-scores such as the KG
reward's entity/relation IoU on a panel of their own), `kl.png`, and `completion_length.png` (ms-swift's mean / min /
max length per step, plus the mean number of logged completion tokens per step from completions.jsonl).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.cli import ArgumentParser  # noqa: E402
from utils.io import InputError, atomic_save_figure, read_jsonl  # noqa: E402
from utils.training_logs import read_training_log, step_metrics  # noqa: E402


def completion_lengths(completion_rows: list[dict]) -> list[tuple[int, float]]:
    """Mean logged completion token count per step from completions.jsonl events (one per step kept)."""
    points, seen = [], set()
    for event in completion_rows:
        ids = event.get("completion_token_ids")
        if not ids or not event.get("step"):
            continue
        step = int(event["step"][0])
        if step not in seen:
            seen.add(step)
            points.append((step, sum(len(row) for row in ids) / len(ids)))
    return points


def plot_run(run_dir: Path, out_dir: Path) -> list[Path]:
    """Write the PNGs for one run; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logging_file = run_dir / "logging.jsonl"
    if not logging_file.exists():
        raise InputError(f"{logging_file}: file not found (is {run_dir} a GRPO output folder?)")
    series = step_metrics(read_training_log(logging_file))
    if not series:
        raise InputError(f"{logging_file}: no training steps logged yet")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    rewards = sorted({key.split("/")[1] for key in series if key.startswith("rewards/") and key.endswith("/mean")})
    panels = [(name, "mean") for name in rewards]
    panels += [
        (name, "sub")
        for name in rewards
        if any(k.startswith(f"rewards/{name}/") and k.split("/")[2] not in ("mean", "std") for k in series)
    ]
    fig, axes = plt.subplots(max(1, len(panels)), 1, figsize=(7, 2.6 * max(1, len(panels))), squeeze=False)
    for ax, (name, kind) in zip(axes[:, 0], panels):
        if kind == "mean":
            steps, means = zip(*series[f"rewards/{name}/mean"])
            ax.plot(steps, means, marker="o", label=f"{name} mean")
            if f"rewards/{name}/std" in series:
                stds = [v for _, v in series[f"rewards/{name}/std"]]
                ax.fill_between(
                    steps, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)], alpha=0.2
                )
        else:
            counts = None  # counts (num_entities) live on their own axis so the [0, 1] scores stay readable
            for key in sorted(k for k in series if k.startswith(f"rewards/{name}/")):
                metric = key.split("/")[2]
                if metric in ("mean", "std"):
                    continue
                target = ax
                if metric.startswith("num_"):
                    counts = counts or ax.twinx()
                    target = counts
                target.plot(*zip(*series[key]), marker=".", linestyle="--" if target is counts else "-", label=metric)
            if counts is not None:
                counts.legend(fontsize=8, loc="upper right")
        ax.set_title(f"{name} {'reward' if kind == 'mean' else 'sub-scores'}")
        ax.set_xlabel("step")
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    atomic_save_figure(fig, out_dir / "rewards.png")
    plt.close(fig)
    written.append(out_dir / "rewards.png")

    fig, ax = plt.subplots(figsize=(7, 3))
    if "kl" in series:
        ax.plot(*zip(*series["kl"]), marker="o")
    else:
        ax.text(0.5, 0.5, "no KL logged (beta = 0)", ha="center", transform=ax.transAxes)
    ax.set_title("KL to the reference model")
    ax.set_xlabel("step")
    fig.tight_layout()
    atomic_save_figure(fig, out_dir / "kl.png")
    plt.close(fig)
    written.append(out_dir / "kl.png")

    fig, ax = plt.subplots(figsize=(7, 3))
    for key in ("completions/mean_length", "completions/min_length", "completions/max_length"):
        if key in series:
            ax.plot(*zip(*series[key]), marker="o", label=key.split("/")[1])
    completions_file = run_dir / "completions.jsonl"
    if completions_file.exists():
        logged = completion_lengths(read_jsonl(completions_file))
        if logged:
            ax.plot(*zip(*logged), linestyle="--", label="logged tokens (completions.jsonl)")
    ax.set_title("completion length (tokens)")
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_save_figure(fig, out_dir / "completion_length.png")
    plt.close(fig)
    written.append(out_dir / "completion_length.png")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a GRPO output folder (logging.jsonl inside)")
    parser.add_argument("--out", type=Path, help="where to write the PNGs (default: <run_dir>/plots)")
    args = parser.parse_args(argv)
    try:
        for path in plot_run(args.run_dir, args.out or args.run_dir / "plots"):
            print(path)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
