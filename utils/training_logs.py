"""Reading an ms-swift run's `logging.jsonl`: one reader for the plots, the sweep table and the demo summary.

>>> series = step_metrics([{"global_step/max_steps": "1/2", "rewards/KGJaccard/mean": 0.2},
...                        {"global_step/max_steps": "2/2", "rewards/KGJaccard/mean": 0.3}, {"train_runtime": 3.0}])
>>> series["rewards/KGJaccard/mean"], reward_means(series, -1)
([(1, 0.2), (2, 0.3)], {'KGJaccard': 0.3})
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

from utils.io import atomic_write_text

# The run logs that ms-swift appends to, one row per logging step / per logged batch.
RUN_LOGS = ("logging.jsonl", "completions.jsonl", "dynamic_sampling.jsonl")


def read_training_log(path: str | os.PathLike) -> list[dict]:
    """The rows of a `logging.jsonl`; a line cut short by a crashed run is skipped (the run may still be writing)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def row_step(row: dict) -> int | None:
    """The training step a log row belongs to: `global_step/max_steps` ("3/60") of logging.jsonl, or the `step`
    column of completions.jsonl (one entry per sample); None for rows without one (the final summary).

    >>> row_step({"global_step/max_steps": "3/60"}), row_step({"step": ["7", "7"]}), row_step({"train_runtime": 1.0})
    (3, 7, None)
    """
    marker = row.get("global_step/max_steps")
    if isinstance(marker, str) and marker.split("/")[0].isdigit():
        return int(marker.split("/")[0])
    steps = row.get("step")
    if isinstance(steps, list) and steps and str(steps[0]).isdigit():
        return int(steps[0])
    return None


def step_metrics(logging_rows: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """Series `metric -> [(step, value)]` from logging.jsonl rows, in step order. Rows without a step and the final
    summary are skipped; a repeated step keeps its last row, the history that continued (a resume sets the
    abandoned rows aside, `set_aside_after`, so this only matters for logs written before it did).

    >>> rows = [{"global_step/max_steps": "1/2", "r": 0.1}, {"global_step/max_steps": "2/2", "r": 0.2},
    ...         {"global_step/max_steps": "2/2", "r": 0.3}, {"global_step/max_steps": "2/2", "train_runtime": 9.0}]
    >>> step_metrics(rows)["r"]
    [(1, 0.1), (2, 0.3)]
    """
    by_step: dict[int, dict] = {}
    for row in logging_rows:
        step = row_step(row)
        # ms-swift's final summary row (`train_runtime`, ...) carries the last step's marker too: it is no step row.
        if step is not None and "global_step/max_steps" in row and "train_runtime" not in row:
            by_step[step] = row
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for step in sorted(by_step):
        for key, value in by_step[step].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                series[key].append((step, float(value)))
    return dict(series)


def set_aside_after(run_dir: str | os.PathLike, step: int) -> dict[str, int]:
    """On resume from the checkpoint of `step`: move every log row from the first one past `step` onward (what the
    killed run logged after its last checkpoint) out of each run log into `<name>.abandoned.jsonl` (appended, never
    deleted), so every reader sees one history. Returns the rows moved per file.

    >>> import tempfile, pathlib; d = pathlib.Path(tempfile.mkdtemp())
    >>> rows = [json.dumps({"global_step/max_steps": f"{i}/4"}) for i in (1, 2, 3)]
    >>> _ = (d / "logging.jsonl").write_text("\\n".join(rows) + "\\n")
    >>> set_aside_after(d, 2), [row_step(r) for r in read_training_log(d / "logging.jsonl")]
    ({'logging.jsonl': 1}, [1, 2])
    """
    moved = {}
    for name in RUN_LOGS:
        path = Path(run_dir) / name
        if not path.is_file():
            continue
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        cut = len(lines)
        for number, line in enumerate(lines):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by the kill goes with whatever follows
            found = row_step(row) if isinstance(row, dict) else None
            if found is not None and found > step:
                cut = number
                break
        if cut == len(lines):
            continue
        abandoned = path.with_name(path.stem + ".abandoned.jsonl")
        previous = abandoned.read_text(encoding="utf-8") if abandoned.is_file() else ""
        atomic_write_text(
            abandoned, previous + "".join(line if line.endswith("\n") else line + "\n" for line in lines[cut:])
        )
        atomic_write_text(path, "".join(lines[:cut]))
        moved[name] = len(lines) - cut
    return moved


def reward_means(series: dict[str, list[tuple[int, float]]], position: int) -> dict[str, float]:
    """`{reward class: mean}` at one logged step of the series (`0` the first, `-1` the last)."""
    return {
        key.split("/")[1]: points[position][1]
        for key, points in series.items()
        if key.startswith("rewards/") and key.endswith("/mean") and points
    }
