"""Conversion of evaluation-format annotations into ms-swift GRPO training rows.

A row carries the image placeholder ms-swift expects in the user turn (one `<image>` per image, before the
question), the image paths (absolute, or relative to a folder of your choice), `solution` = the reference
explanation (`<think>…</think><answer>…</answer>`, what the rewards score against), the answers and the ids.

>>> row = {"image_ids": ["a"], "question": "Is there effusion?", "answer": ["no"], "idx": 3,
...        "explanation": "<think>No effusion.</think><answer>no</answer>", "subject_id": 1, "study_id": 2}
>>> out = annotation_to_grpo_row(row, "/data/images")
>>> out["messages"][0]["content"], out["images"], out["answer"]
('<image>Is there effusion?', ['/data/images/a.png'], ['no'])
>>> annotation_to_grpo_row(row, "/data/images", relative_to="/data")["images"]
['images/a.png']
"""

from __future__ import annotations

import os
from pathlib import Path

from utils.data.annotations import image_path, reference_answers

IMAGE_PLACEHOLDER = "<image>"


def image_paths(
    image_ids: list[str], image_root: str | os.PathLike, relative_to: str | os.PathLike | None = None
) -> list[str]:
    """Paths of `<image_root>/<id>.png`: absolute, or relative to `relative_to` when given."""
    root = Path(os.path.abspath(image_root))
    paths = [Path(image_path(stem, root)) for stem in image_ids]
    if relative_to is None:
        return [str(p) for p in paths]
    return [os.path.relpath(p, os.path.abspath(relative_to)) for p in paths]


def annotation_to_grpo_row(
    row: dict, image_root: str | os.PathLike, relative_to: str | os.PathLike | None = None
) -> dict:
    """One GRPO row from one annotation (see the module docstring)."""
    return {
        "messages": [{"role": "user", "content": IMAGE_PLACEHOLDER * len(row["image_ids"]) + row["question"]}],
        "images": image_paths(row["image_ids"], image_root, relative_to),
        "solution": row["explanation"],
        "answer": reference_answers(row),
        "idx": row.get("idx"),
        "subject_id": row.get("subject_id"),
        "study_id": row.get("study_id"),
    }


def annotation_to_sft_row(
    row: dict, image_root: str | os.PathLike, relative_to: str | os.PathLike | None = None
) -> dict:
    """The GRPO row plus the reference explanation as the assistant turn: a supervised (SFT) training row.

    >>> row = {"image_ids": ["a"], "question": "Q?", "answer": "no",
    ...        "explanation": "<think>x</think><answer>no</answer>"}
    >>> annotation_to_sft_row(row, "/img")["messages"][1]
    {'role': 'assistant', 'content': '<think>x</think><answer>no</answer>'}
    """
    sft = annotation_to_grpo_row(row, image_root, relative_to)
    sft["messages"] = [*sft["messages"], {"role": "assistant", "content": row["explanation"]}]
    return sft
