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


def step_metrics(logging_rows: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """Series `metric -> [(step, value)]` from logging.jsonl rows (rows without a step, like the final summary, and
    repeated steps are skipped)."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    seen = set()
    for row in logging_rows:
        marker = row.get("global_step/max_steps")
        if not isinstance(marker, str) or "/" not in marker:
            continue
        step = int(marker.split("/")[0])
        if step in seen:
            continue
        seen.add(step)
        for key, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                series[key].append((step, float(value)))
    return dict(series)


def reward_means(series: dict[str, list[tuple[int, float]]], position: int) -> dict[str, float]:
    """`{reward class: mean}` at one logged step of the series (`0` the first, `-1` the last)."""
    return {
        key.split("/")[1]: points[position][1]
        for key, points in series.items()
        if key.startswith("rewards/") and key.endswith("/mean") and points
    }
