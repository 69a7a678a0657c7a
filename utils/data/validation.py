"""Whole-file checks of annotation files and GRPO training files: every problem, each with its index and field.

>>> grpo_row_problems({"messages": [{"role": "user", "content": "Q"}], "images": ["a.png"], "solution": "s",
...                    "answer": ["x"]}, 0, check_images=False)
["index 0: field 'messages': the user turn has 0 <image> placeholders for 1 images"]
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from utils.data.annotations import REQUIRED, annotation_problems, image_path
from utils.evaluation.results import image_error
from utils.data.grpo_rows import IMAGE_PLACEHOLDER


def grpo_row_problems(row, index: int, base_dir: str | os.PathLike = ".", check_images: bool = True) -> list[str]:
    """Problems of one GRPO row: structure, field types, placeholder count, and (optionally) its images."""
    if not isinstance(row, dict):
        return [f"index {index}: expected an object, got {type(row).__name__}"]
    problems = []
    messages = row.get("messages")
    users = (
        [m for m in messages if isinstance(m, dict) and m.get("role") == "user"] if isinstance(messages, list) else []
    )
    if not users or not all(isinstance(m.get("content"), str) for m in users):
        problems.append(f"index {index}: field 'messages': expected a list with a user turn whose content is a string")
    images = row.get("images")
    if not (isinstance(images, list) and images and all(isinstance(p, str) and p for p in images)):
        problems.append(f"index {index}: field 'images': expected a non-empty list of image paths")
        images = []
    if users and images:
        placeholders = sum(m["content"].count(IMAGE_PLACEHOLDER) for m in users if isinstance(m.get("content"), str))
        if placeholders != len(images):
            problems.append(
                f"index {index}: field 'messages': the user turn has {placeholders} {IMAGE_PLACEHOLDER} "
                f"placeholders for {len(images)} images"
            )
    if not isinstance(row.get("solution"), str) or not row.get("solution", "").strip():
        problems.append(f"index {index}: field 'solution': expected the reference explanation (a non-empty string)")
    answer = row.get("answer")
    if not (isinstance(answer, list) and answer and all(isinstance(a, str) for a in answer)):
        problems.append(f"index {index}: field 'answer': expected a non-empty list of strings")
    if check_images:
        for path in images:
            error = image_error([str(Path(base_dir) / path)])
            if error:
                problems.append(f"index {index}: field 'images': {error}")
    return problems


def _read_records(path: Path) -> tuple[list, list[str]]:
    """(records, problems): a JSON list, a `{"results": [...]}` object, or JSON lines."""
    text = path.read_text(encoding="utf-8")
    try:
        whole = json.loads(text)
    except json.JSONDecodeError as error:
        if text.lstrip().startswith("["):
            return [], [f"line {error.lineno} column {error.colno}: malformed JSON ({error.msg})"]
        records, problems = [], []
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as line_error:
                    problems.append(f"line {lineno}: malformed JSON ({line_error.msg})")
        return records, problems
    if isinstance(whole, list):
        return whole, []
    if isinstance(whole, dict) and isinstance(whole.get("results"), list):
        return whole["results"], []
    return [whole], []


def validate_file(
    path: str | os.PathLike,
    kind: str = "auto",
    img_root: str | os.PathLike | None = None,
    check_images: bool = True,
    require: tuple[str, ...] = (),
    base_dir: str | os.PathLike = ".",
) -> list[str]:
    """Every problem of an annotation file (`kind="annotations"`) or a GRPO training file (`kind="grpo"`), each
    prefixed with the file name. `auto` decides per file: rows with `messages` are GRPO rows. `require` adds
    annotation fields that must be present (the sampler's pool needs the type fields and `is_correct`). Relative
    image paths of GRPO rows are resolved against `base_dir`, as ms-swift resolves them against its working
    directory."""
    path = Path(path)
    if not path.is_file():
        return [f"{path}: file not found"]
    records, problems = _read_records(path)
    if not records and not problems:
        problems.append("no records")
    if kind == "auto":
        kind = "grpo" if records and isinstance(records[0], dict) and "messages" in records[0] else "annotations"
    for index, record in enumerate(records):
        if kind == "grpo":
            problems += grpo_row_problems(record, index, base_dir, check_images)
            continue
        row_problems = annotation_problems(record, index, (*REQUIRED, *require))
        problems += row_problems
        if check_images and not row_problems and img_root is not None:
            for stem in record["image_ids"]:
                error = image_error([image_path(stem, img_root)])
                if error:
                    problems.append(f"index {index}: field 'image_ids': {error}")
    return [f"{path}: {problem}" for problem in problems]
