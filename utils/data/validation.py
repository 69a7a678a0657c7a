"""Whole-file checks of annotation files and GRPO training files: every problem, each with where it is (`line N` of a
JSON-lines file, `index N` of a JSON list) and its field.

Images are decoded in full (not just their headers: a truncated file passes a header read and fails at training
time), in parallel over `workers` processes, and each result is cached by path, size and modification time
(`ImageCheckCache`), so the next run over the same set decodes nothing.

>>> grpo_row_problems({"messages": [{"role": "user", "content": "Q"}], "images": ["a.png"], "solution": "s",
...                    "answer": ["x"]}, 0, check_images=False)
["index 0: field 'messages': the user turn has 0 <image> placeholders for 1 images"]
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from utils.data.annotations import REQUIRED, annotation_problems, image_path
from utils.data.grpo_rows import IMAGE_PLACEHOLDER
from utils.evaluation.results import image_error
from utils.io import atomic_write_json


def _where(index: int | str) -> str:
    return f"index {index}" if isinstance(index, int) else index


def grpo_row_problems(
    row, index: int | str, base_dir: str | os.PathLike = ".", check_images: bool = True
) -> list[str]:
    """Problems of one GRPO row: structure, field types, placeholder count, and (optionally) its images.
    `index` is the row's index, or a label such as `"line 7"`."""
    index = _where(index)
    if not isinstance(row, dict):
        return [f"{index}: expected an object, got {type(row).__name__}"]
    problems = []
    messages = row.get("messages")
    users = (
        [m for m in messages if isinstance(m, dict) and m.get("role") == "user"] if isinstance(messages, list) else []
    )
    if not users or not all(isinstance(m.get("content"), str) for m in users):
        problems.append(f"{index}: field 'messages': expected a list with a user turn whose content is a string")
    images = row.get("images")
    if not (isinstance(images, list) and images and all(isinstance(p, str) and p for p in images)):
        problems.append(f"{index}: field 'images': expected a non-empty list of image paths")
        images = []
    if users and images:
        placeholders = sum(m["content"].count(IMAGE_PLACEHOLDER) for m in users if isinstance(m.get("content"), str))
        if placeholders != len(images):
            problems.append(
                f"{index}: field 'messages': the user turn has {placeholders} {IMAGE_PLACEHOLDER} "
                f"placeholders for {len(images)} images"
            )
    if not isinstance(row.get("solution"), str) or not row.get("solution", "").strip():
        problems.append(f"{index}: field 'solution': expected the reference explanation (a non-empty string)")
    answer = row.get("answer")
    if not (isinstance(answer, list) and answer and all(isinstance(a, str) for a in answer)):
        problems.append(f"{index}: field 'answer': expected a non-empty list of strings")
    if check_images:
        for path in images:
            error = image_error([str(Path(base_dir) / path)])
            if error:
                problems.append(f"{index}: field 'images': {error}")
    return problems


def grpo_image_paths(row, base_dir: str | os.PathLike = ".") -> list[str]:
    """The image paths of a GRPO row, resolved against `base_dir` as ms-swift resolves them against its working
    directory (none for a row whose `images` field is malformed)."""
    images = row.get("images") if isinstance(row, dict) else None
    if not (isinstance(images, list) and all(isinstance(p, str) and p for p in images)):
        return []
    return [str(Path(base_dir) / p) for p in images]


class ImageCheckCache:
    """Decode results by absolute path, keyed on (size, mtime_ns): a changed file is decoded again. Stored as one
    JSON file, rewritten atomically; two runs sharing it can only lose each other's new entries, never corrupt it."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self.entries: dict[str, list] = {}
        if self.path and self.path.is_file():
            try:
                self.entries = json.loads(self.path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                self.entries = {}  # a cache is never an input: a broken one is rebuilt
        self.changed = False

    @staticmethod
    def stamp(path: str) -> tuple[int, int] | None:
        try:
            info = os.stat(path)
        except OSError:
            return None
        return info.st_size, info.st_mtime_ns

    def lookup(self, path: str, stamp: tuple[int, int]) -> tuple[bool, str | None]:
        """(found, error) for `path` at `stamp`."""
        entry = self.entries.get(os.path.abspath(path))
        if entry and tuple(entry[:2]) == stamp:
            return True, entry[2]
        return False, None

    def store(self, path: str, stamp: tuple[int, int], error: str | None) -> None:
        self.entries[os.path.abspath(path)] = [stamp[0], stamp[1], error]
        self.changed = True

    def save(self) -> None:
        if self.path and self.changed:
            atomic_write_json(self.path, self.entries)


def default_cache_path() -> Path:
    """`$CHEX_CACHE_DIR/image_checks.json`, by default under `~/.cache/chex-phi4mm/`."""
    root = os.environ.get("CHEX_CACHE_DIR") or Path.home() / ".cache" / "chex-phi4mm"
    return Path(root) / "image_checks.json"


def _decode_error(path: str) -> str | None:
    return image_error([path])


def image_errors(
    paths: Iterable[str], workers: int = 1, cache: ImageCheckCache | None = None, progress: bool = False
) -> dict[str, str | None]:
    """{path: None if it decodes fully, else the reason} for every distinct path, decoding over `workers`
    processes and skipping what `cache` already holds for the file's current size and modification time."""
    from tqdm import tqdm

    results, todo = {}, []
    for path in dict.fromkeys(paths):
        stamp = ImageCheckCache.stamp(path)
        if stamp is None:
            results[path] = f"image not found: {path}"
            continue
        found, error = cache.lookup(path, stamp) if cache else (False, None)
        if found:
            results[path] = error
        else:
            todo.append((path, stamp))
    bar = tqdm(total=len(todo), desc="decoding images", unit="image", disable=not progress or not todo)
    if workers > 1 and len(todo) > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            decoded = pool.imap(_decode_error, [path for path, _ in todo], chunksize=4)
            for (path, _), error in zip(todo, decoded):
                results[path] = error
                bar.update()
    else:
        for path, _ in todo:
            results[path] = _decode_error(path)
            bar.update()
    bar.close()
    if cache:
        for path, stamp in todo:
            cache.store(path, stamp, results[path])
        cache.save()
    return results


def _read_records(path: Path) -> tuple[list[tuple[str, object]], list[str]]:
    """((where, record) pairs, problems): a JSON list (`index N`), a `{"results": [...]}` object, or JSON lines
    (`line N`, 1-based)."""
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
                    records.append((f"line {lineno}", json.loads(line)))
                except json.JSONDecodeError as line_error:
                    problems.append(f"line {lineno}: malformed JSON ({line_error.msg})")
        return records, problems
    if isinstance(whole, list):
        return [(f"index {i}", record) for i, record in enumerate(whole)], []
    if isinstance(whole, dict) and isinstance(whole.get("results"), list):
        return [(f"index {i}", record) for i, record in enumerate(whole["results"])], []
    return [("line 1" if path.suffix == ".jsonl" else "index 0", whole)], []


WRONG_KIND = {
    "grpo": "an annotation file (image_ids, question, answer), not GRPO training rows: convert it with "
    "tools/convert_to_grpo.py --annotations {path} --img_root <image folder> --output <rows>.jsonl",
    "annotations": "GRPO training rows (messages, images, solution), not annotations: check them with --kind grpo",
}


def _record_kind(records: list[tuple[str, object]]) -> str | None:
    """"grpo" or "annotations" when every record is unmistakably one of them, else None."""
    rows = [record for _, record in records]
    if not rows or not all(isinstance(row, dict) for row in rows):
        return None
    if all("messages" in row for row in rows):
        return "grpo"
    if all("messages" not in row and "image_ids" in row and "question" in row for row in rows):
        return "annotations"
    return None


@dataclass
class FileCheck:
    """The outcome of checking one file: its records with their positions, and the problems of each."""

    path: Path
    records: list[tuple[str, object]] = field(default_factory=list)
    row_problems: dict[int, list[str]] = field(default_factory=dict)  # position in `records` -> problems
    file_problems: list[str] = field(default_factory=list)

    def messages(self) -> list[str]:
        """Every problem, prefixed with the file name, in file order."""
        rows = [problem for position in sorted(self.row_problems) for problem in self.row_problems[position]]
        return [f"{self.path}: {problem}" for problem in (*self.file_problems, *rows)]

    def good_records(self) -> list[object]:
        return [record for i, (_, record) in enumerate(self.records) if i not in self.row_problems]


def check_file(
    path: str | os.PathLike,
    kind: str = "auto",
    img_root: str | os.PathLike | None = None,
    check_images: bool = True,
    require: tuple[str, ...] = (),
    base_dir: str | os.PathLike = ".",
    workers: int = 1,
    cache: ImageCheckCache | None = None,
    progress: bool = False,
) -> FileCheck:
    """Check an annotation file (`kind="annotations"`) or a GRPO training file (`kind="grpo"`); `auto` decides per
    file: rows with `messages` are GRPO rows. `require` adds annotation fields that must be present (the sampler's
    pool needs the type fields and `is_correct`). Relative image paths of GRPO rows are resolved against
    `base_dir`, as ms-swift resolves them against its working directory. Images are decoded in full over `workers`
    processes, with `cache` (see the module docstring)."""
    path = Path(path)
    check = FileCheck(path)
    if not path.is_file():
        check.file_problems.append("file not found")
        return check
    check.records, check.file_problems = _read_records(path)
    if not check.records and not check.file_problems:
        check.file_problems.append("no records (an empty file)")
    records = check.records
    found_kind = _record_kind(records)
    if kind == "auto":
        kind = found_kind or "annotations"
    elif found_kind and found_kind != kind:
        # One line that names the fix, instead of the same missing fields on every row.
        check.file_problems.append(WRONG_KIND[kind].format(path=path))
        return check
    images: dict[int, list[str]] = {}
    for position, (where, record) in enumerate(records):
        if kind == "grpo":
            problems = grpo_row_problems(record, where, base_dir, check_images=False)
            images[position] = grpo_image_paths(record, base_dir)
        else:
            problems = annotation_problems(record, position, (*REQUIRED, *require))
            if not problems and img_root is not None:
                images[position] = [str(image_path(stem, img_root)) for stem in record["image_ids"]]
        if problems:
            check.row_problems[position] = problems
    if check_images:
        field_name = "images" if kind == "grpo" else "image_ids"
        errors = image_errors([p for paths in images.values() for p in paths], workers, cache, progress)
        for position, paths in images.items():
            where = records[position][0]
            for problem in (errors[p] for p in paths if errors[p]):
                check.row_problems.setdefault(position, []).append(f"{where}: field {field_name!r}: {problem}")
    return check


def validate_file(
    path: str | os.PathLike,
    kind: str = "auto",
    img_root: str | os.PathLike | None = None,
    check_images: bool = True,
    require: tuple[str, ...] = (),
    base_dir: str | os.PathLike = ".",
) -> list[str]:
    """Every problem of a file (`check_file`), each prefixed with the file name."""
    return check_file(path, kind, img_root, check_images, require, base_dir).messages()
