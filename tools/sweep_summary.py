"""The end-of-sweep table of train_loop.sh: run, status, rows trained on, last mean of each reward, output directory.

python tools/sweep_summary.py RUN_NAME=STATUS=OUTPUT_DIR=ROWS=SIZE ...

A run whose set holds fewer rows than its size names (drawn with `--allow-short`) is marked SHORT.
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


def rows_cell(rows: int, size: int) -> str:
    """The row count of a run's set, marked when it is short of the size its name says.

    >>> rows_cell(1000, 1000), rows_cell(34, 1000)
    ('1000', '34 of 1000 SHORT')
    """
    return str(rows) if rows >= size else f"{rows} of {size} SHORT"


def table(runs: list[tuple[str, str, str, int, int]]) -> str:
    """Rows (run, status, output dir, rows, size) formatted with one column per reward seen in any run."""
    means = {name: last_reward_means(out) for name, _, out, _, _ in runs}
    rewards = sorted({r for m in means.values() for r in m})
    header = ["run", "status", "rows", *rewards, "output"]
    rows = [
        [
            name,
            status,
            rows_cell(n, size),
            *(f"{means[name][r]:.4f}" if r in means[name] else "-" for r in rewards),
            out,
        ]
        for name, status, out, n, size in runs
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows])


def main(argv: list[str]) -> int:
    runs = []
    for arg in argv:
        name, status, rest = arg.split("=", 2)
        out, rows, size = rest.rsplit("=", 2)
        runs.append((name, status, out, int(rows), int(size)))
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
