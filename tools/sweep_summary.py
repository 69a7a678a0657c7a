"""The end-of-sweep table of train_loop.sh: run, status, rows trained on, how many of them the SFT model could learn
(wrong at greedy but right in a sample, from the set's manifest), last mean of each reward, output directory.

python tools/sweep_summary.py $'RUN_NAME\tSTATUS\tOUTPUT_DIR\tSET.jsonl\tSIZE' ...

A run whose set holds fewer rows than its size names (drawn with `--allow-short`) is marked SHORT. The learnable
column reads "-" when the pool was scored without samples (`evaluate.py --num_samples`).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.io import read_json  # noqa: E402
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


def set_rows(path: str | Path) -> int:
    """The number of rows (non-empty lines) of a training set, 0 when it is missing."""
    path = Path(path)
    return sum(1 for line in path.open() if line.strip()) if path.is_file() else 0


def learnable_cell(set_path: str | Path) -> str:
    """ "k of n": the rows of a set its SFT model got wrong at greedy but right in a sample, from the set's manifest
    (`tools/sample_data.py`); "-" when unknown.

    >>> learnable_cell("/nonexistent.jsonl")
    '-'
    """
    manifest = Path(set_path).with_suffix(".manifest.json")
    if not manifest.is_file():
        return "-"
    facts = read_json(manifest)
    return "-" if facts.get("learnable") is None else f"{facts['learnable']} of {facts['size']}"


def table(runs: list[tuple[str, str, str, str, int]]) -> str:
    """Rows (run, status, output dir, set file, size) formatted with one column per reward seen in any run."""
    means = {name: last_reward_means(out) for name, _, out, _, _ in runs}
    rewards = sorted({r for m in means.values() for r in m})
    header = ["run", "status", "rows", "learnable", *rewards, "output"]
    rows = [
        [
            name,
            status,
            rows_cell(set_rows(set_path), size),
            learnable_cell(set_path),
            *(f"{means[name][r]:.4f}" if r in means[name] else "-" for r in rewards),
            out,
        ]
        for name, status, out, set_path, size in runs
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows])


def main(argv: list[str]) -> int:
    runs = []
    for arg in argv:
        name, status, out, set_path, size = arg.split("\t")
        runs.append((name, status, out, set_path, int(size)))
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
