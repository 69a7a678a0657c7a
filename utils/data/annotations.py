"""The original MIMIC-VQA-CoT annotation format: field checks shared by evaluation, sampling and the validator.

An annotation file is a JSON list of objects with `image_ids` (non-empty list of image stems), `question` (str) and
`answer` (str or list of str); `explanation`, `semantic_type`, `question_type`, `answer_type` (str), `is_correct`
(bool) and `idx`, `subject_id`, `study_id` (int) are optional here but must have those types when present.

>>> annotation_problems({"image_ids": ["a"], "question": "Q?", "answer": 3}, 7)
["index 7: field 'answer': expected a string or a list of strings, got int"]
"""

from __future__ import annotations

import os
from typing import Any

from utils.io import InputError, read_json

REQUIRED = ("image_ids", "question", "answer")
OPTIONAL_STR = ("explanation", "semantic_type", "question_type", "answer_type")
OPTIONAL_INT = ("idx", "subject_id", "study_id")
# The question categories: evaluation summaries group by them, the sampler stratifies by them.
TYPE_FIELDS = ("semantic_type", "question_type", "answer_type")
# What a pool scored by the SFT model must carry for hard-example mining.
POOL_FIELDS = (*REQUIRED, "explanation", *TYPE_FIELDS, "is_correct")


def _type_name(value: Any) -> str:
    return type(value).__name__


def annotation_problems(row: Any, index: int, required: tuple[str, ...] = REQUIRED) -> list[str]:
    """Every structural problem of one annotation, each as `index N: field 'x': problem`."""
    if not isinstance(row, dict):
        return [f"index {index}: expected an object, got {_type_name(row)}"]
    problems = [f"index {index}: field '{field}': missing" for field in dict.fromkeys(required) if field not in row]
    ids = row.get("image_ids")
    if ids is not None and not (isinstance(ids, list) and ids and all(isinstance(i, str) and i for i in ids)):
        problems.append(f"index {index}: field 'image_ids': expected a non-empty list of image names")
    if "question" in row and not (isinstance(row["question"], str) and row["question"].strip()):
        problems.append(f"index {index}: field 'question': expected a non-empty string")
    answer = row.get("answer")
    if "answer" in row and not (
        isinstance(answer, str) or (isinstance(answer, list) and all(isinstance(a, str) for a in answer))
    ):
        problems.append(
            f"index {index}: field 'answer': expected a string or a list of strings, got {_type_name(answer)}"
        )
    elif "answer" in row and not (answer.strip() if isinstance(answer, str) else [a for a in answer if a.strip()]):
        # an empty reference makes every response wrong: the item can only mislead mining and accuracy
        problems.append(f"index {index}: field 'answer': empty (no reference answer)")
    for field in OPTIONAL_STR:
        if field in row and not isinstance(row[field], str):
            problems.append(f"index {index}: field '{field}': expected a string, got {_type_name(row[field])}")
    for field in OPTIONAL_INT:
        value = row.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            problems.append(f"index {index}: field '{field}': expected an integer, got {_type_name(value)}")
    if "sampled_right" in row and not isinstance(row["sampled_right"], bool):
        problems.append(
            f"index {index}: field 'sampled_right': expected true or false, got {_type_name(row['sampled_right'])}"
        )
    if "is_correct" in row and not isinstance(row["is_correct"], bool):
        problems.append(
            f"index {index}: field 'is_correct': expected true or false, got {_type_name(row['is_correct'])}"
        )
    return problems


def reference_answers(row: dict) -> list[str]:
    """The reference answers of an annotation as a list (`answer` may be one string)."""
    answer = row["answer"]
    return [answer] if isinstance(answer, str) else list(answer)


def image_path(image_id: str, img_root: str | os.PathLike) -> str:
    """`<img_root>/<image_id>.png` (an id that already has an extension keeps it)."""
    name = image_id if os.path.splitext(image_id)[1] else f"{image_id}.png"
    return os.path.join(os.fspath(img_root), name)


def load_annotations(path: str | os.PathLike, required: tuple[str, ...] = REQUIRED) -> list[dict]:
    """Read and check an annotation file; the first problem becomes an InputError naming the file, index and field."""
    rows = read_json(path)
    if not isinstance(rows, list):
        raise InputError(f"{path}: expected a JSON list of annotations, got {_type_name(rows)}")
    if not rows:
        raise InputError(f"{path}: no annotations (an empty list)")
    for index, row in enumerate(rows):
        problems = annotation_problems(row, index, required)
        if problems:
            raise InputError(f"{path}: {problems[0]}")
    return rows
