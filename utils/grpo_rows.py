"""Conversion of evaluation-format annotations into ms-swift GRPO training rows.

A row carries the image placeholder ms-swift expects in the user turn (one `<image>` per image), absolute image
paths, `solution` = the reference explanation (`<think>…</think><answer>…</answer>`), and the ids.

>>> row = {"image_ids": ["a"], "question": "Is there effusion?", "answer": ["no"], "idx": 3,
...        "explanation": "<think>No effusion.</think><answer>no</answer>", "subject_id": 1, "study_id": 2}
>>> out = annotation_to_grpo_row(row, "/data/images")
>>> out["messages"][0]["content"], out["images"], out["answer"]
('<image>Is there effusion?', ['/data/images/a.png'], ['no'])
"""

from __future__ import annotations

import os
from pathlib import Path


def image_paths(image_ids: list[str], image_root: str | os.PathLike) -> list[str]:
    """Absolute paths of `<image_root>/<id>.png` (ids may already carry an extension)."""
    root = Path(image_root).resolve() if not Path(image_root).is_absolute() else Path(image_root)
    return [str(root / (stem if Path(stem).suffix else f"{stem}.png")) for stem in image_ids]


def annotation_to_grpo_row(row: dict, image_root: str | os.PathLike) -> dict:
    """One GRPO row from one annotation (see module docstring)."""
    answer = row["answer"] if isinstance(row["answer"], list) else [row["answer"]]
    return {
        "messages": [{"role": "user", "content": "<image>" * len(row["image_ids"]) + row["question"]}],
        "images": image_paths(row["image_ids"], image_root),
        "solution": row["explanation"],
        "answer": answer,
        "idx": row.get("idx"),
        "subject_id": row.get("subject_id"),
        "study_id": row.get("study_id"),
    }
