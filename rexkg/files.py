"""File helpers of rexkg (it depends on nothing else in the project): the error type for bad input, atomic writes
(a crash never leaves a half-written file), and JSON-lines reading whose errors name the file and line. The project's
`utils.io` builds on these.

>>> import tempfile, pathlib; p = pathlib.Path(tempfile.mkdtemp()) / "a.json"
>>> atomic_write_json(p, {"x": 1}); json.loads(p.read_text())
{'x': 1}
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


class InputError(ValueError):
    """Bad user input: the message names the file, the line or index, and the field. Scripts exit with code 2."""


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and an atomic rename.

    >>> import tempfile, pathlib; p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> atomic_write_text(p, "x"); p.read_text()
    'x'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Serialise `obj` as JSON and write it atomically (see `atomic_write_text`)."""
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[Any]:
    """Load a JSON-lines file; a bad line becomes an `InputError` naming the file and line number."""
    rows = []
    try:
        with open(path, encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}: line {lineno}: malformed JSON ({exc.msg})") from None
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    return rows
