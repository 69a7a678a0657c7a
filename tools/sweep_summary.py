"""The end-of-sweep table of train_loop.sh: run, status, last mean of each reward, output directory.

python tools/sweep_summary.py RUN_NAME=STATUS=OUTPUT_DIR ...
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.training_logs import read_training_log, reward_means, step_metrics  # noqa: E402


def last_reward_means(run_dir: str | Path) -> dict[str, float]:
    """`{reward class: mean}` from the last training step in `<run_dir>/logging.jsonl` ({} when none).

    >>> last_reward_means("/nonexistent")
    {}
    """
    path = Path(run_dir) / "logging.jsonl"
    return reward_means(step_metrics(read_training_log(path)), -1) if path.is_file() else {}


def table(runs: list[tuple[str, str, str]]) -> str:
    """Rows (run, status, output dir) formatted with one column per reward seen in any run."""
    means = {name: last_reward_means(out) for name, _, out in runs}
    rewards = sorted({r for m in means.values() for r in m})
    header = ["run", "status", *rewards, "output"]
    rows = [
        [name, status, *(f"{means[name][r]:.4f}" if r in means[name] else "-" for r in rewards), out]
        for name, status, out in runs
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows])


def main(argv: list[str]) -> int:
    runs = [tuple(arg.split("=", 2)) for arg in argv]
    print(table([r for r in runs if len(r) == 3]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
