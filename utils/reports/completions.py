"""A GRPO run's completions as one page: what the rewards paid, group by group, step by step.

Per step, each prompt's group of generations with every reward column, its advantage and its tokens shaded by their
rollout probability (`token_logps`); groups that dynamic sampling dropped (reward spread too small, from
`dynamic_sampling.jsonl`) or drew in a resample round (`sampling_round` > 0) are marked. At the top, smoothed curves
of the rewards and their sub-scores from `logging.jsonl`, raw points faint behind them.

The page stays light for long runs: steps live in chunk files beside it (`<page>_files/steps-NNNN.js`, loaded by a
script tag when their page is opened, which works from file:// too), so a 625-step run opens at the curves.

>>> rows = [{"step": ["1", "1"], "prompt": ["p", "p"], "completion": ["a", "b"], "R1VAccuracy": [1.0, 0.0],
...          "advantages": [0.7, -0.7], "token_logps": [[-0.1], [-2.0]], "completion_tokens": [["a"], ["b"]]}]
>>> [step] = completion_steps(rows, [])
>>> step["step"], [len(g["generations"]) for g in step["groups"]], step["groups"][0]["generations"][1]["rewards"]
(1, [2], {'R1VAccuracy': 0.0})
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from utils.io import atomic_write_text
from utils.reports.page import html_page, script_json
from utils.training_logs import row_step, step_metrics

STEPS_PER_CHUNK = 10
# completions.jsonl columns that are not reward columns
_NOT_REWARDS = {
    "step", "prompt", "completion", "solution", "advantages", "completion_token_ids", "completion_tokens",
    "completion_token_bytes", "token_logps", "sampling_round", "num_turns",
}  # fmt: skip


def _reward_columns(row: dict) -> list[str]:
    return [
        key
        for key, values in row.items()
        if key not in _NOT_REWARDS and isinstance(values, list) and all(isinstance(v, (int, float)) for v in values)
    ]


def _group(entries: list[dict]) -> list[dict]:
    """Consecutive entries with the same prompt and solution: one GRPO group."""
    groups: list[dict] = []
    for entry in entries:
        key = (entry.pop("prompt"), entry.pop("solution"), entry.pop("round"))
        if groups and groups[-1]["key"] == key:
            groups[-1]["generations"].append(entry)
        else:
            groups.append({"key": key, "generations": [entry]})
    return [
        {
            "prompt": prompt,
            "solution": solution,
            "round": number,
            "dropped": False,
            "generations": group["generations"],
        }
        for group in groups
        for prompt, solution, number in [group["key"]]
    ]


def completion_steps(completion_rows: Sequence[dict], dropped_rows: Sequence[dict]) -> list[dict]:
    """Steps in order, each with its kept groups (from completions.jsonl rows) and the groups dynamic sampling
    dropped (from dynamic_sampling.jsonl rows). A step logged twice keeps its last row."""
    by_step: dict[int, dict] = {}
    for row in completion_rows:
        step = row_step(row)
        if step is not None:
            by_step[step] = row
    dropped_by_step: dict[int, list[dict]] = {}
    for row in dropped_rows:
        dropped_by_step.setdefault(int(row["step"]), []).append(row)
    steps = []
    for step in sorted(set(by_step) | set(dropped_by_step)):
        row = by_step.get(step, {})
        rewards = _reward_columns(row)
        count = len(row.get("completion", []))
        entries = []
        for i in range(count):
            logps = (row.get("token_logps") or [[]] * count)[i]
            entries.append(
                {
                    "prompt": row["prompt"][i],
                    "solution": (row.get("solution") or [""] * count)[i],
                    "round": int((row.get("sampling_round") or [0] * count)[i]),
                    "completion": row["completion"][i],
                    "rewards": {name: row[name][i] for name in rewards},
                    "advantage": (row.get("advantages") or [None] * count)[i],
                    "tokens": (row.get("completion_tokens") or [[]] * count)[i],
                    "probabilities": [round(math.exp(x), 4) for x in logps],
                }
            )
        groups = _group(entries)
        dropped = [
            {"prompt": r["prompt"], "solution": "", "round": int(r["round"]), "completion": r["completion"],
             "rewards": r["rewards"], "advantage": None, "tokens": [], "probabilities": []}
            for r in dropped_by_step.get(step, [])
        ]  # fmt: skip
        groups += [{**group, "dropped": True} for group in _group(dropped)]
        steps.append({"step": step, "groups": groups})
    return steps


def smoothed(points: Sequence[tuple[int, float]], weight: float = 0.9) -> list[tuple[int, float]]:
    """An exponential moving average with bias correction (TensorBoard's smoothing).

    >>> smoothed([(1, 0.0), (2, 1.0)], 0.5)
    [(1, 0.0), (2, 0.6666666666666666)]
    """
    out, average = [], 0.0
    for n, (step, value) in enumerate(points, 1):
        average = weight * average + (1 - weight) * value
        out.append((step, average / (1 - weight**n)))
    return out


def reward_curves(logging_rows: Sequence[dict]) -> dict[str, dict]:
    """`rewards/...` series (means and sub-scores) and the total `reward`, raw and smoothed."""
    series = step_metrics(list(logging_rows))
    curves = {}
    for key, points in series.items():
        if (key.startswith("rewards/") and not key.endswith("/std")) or key == "reward":
            weight = 0.9 if len(points) > 50 else 0.6
            curves[key] = {"raw": points, "smooth": smoothed(points, weight)}
    return curves


def write_completions_report(
    completion_rows: Sequence[dict],
    dropped_rows: Sequence[dict],
    logging_rows: Sequence[dict],
    output: Path,
    title: str,
) -> dict:
    """Write the page and its step chunks (atomically, chunks first); returns counts of what it holds."""
    steps = completion_steps(completion_rows, dropped_rows)
    folder = output.with_name(output.stem + "_files")
    chunks = []
    for start in range(0, len(steps), STEPS_PER_CHUNK):
        name = f"steps-{start // STEPS_PER_CHUNK:04d}.js"
        part = steps[start : start + STEPS_PER_CHUNK]
        atomic_write_text(folder / name, f"chexChunk({script_json(name)}, {script_json(part)});\n")
        chunks.append(name)
    index = [
        {
            "step": s["step"],
            "chunk": i // STEPS_PER_CHUNK,
            "groups": sum(not g["dropped"] for g in s["groups"]),
            "dropped": sum(g["dropped"] for g in s["groups"]),
            "resampled": sum(g["round"] > 0 and not g["dropped"] for g in s["groups"]),
        }
        for i, s in enumerate(steps)
    ]
    payload = {
        "index": index,
        "chunks": chunks,
        "folder": folder.name,
        "curves": reward_curves(logging_rows),
        "total": len(steps),
        "page_size": 2,
        "low_threshold": 0.5,
    }
    atomic_write_text(output, html_page(title, payload, "completions.js"))
    return {"steps": len(steps), "chunks": len(chunks), "dropped_groups": sum(i["dropped"] for i in index)}
