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


def current_umask() -> int:
    """The process's umask, read without changing it where Linux reports it (`/proc/self/status`)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (the only portable way to read it)
    os.umask(mask)
    return mask


def apply_umask(path: str | os.PathLike) -> None:
    """Give a file the mode a plain `open()` would have: 0o666 less the umask. Temporary-file writers (ours,
    safetensors') create 0o600 files, which colleagues on a shared cluster cannot read."""
    os.chmod(path, 0o666 & ~current_umask())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and an atomic rename; the file gets the
    mode a plain `open()` would give it (the umask applies).

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
        apply_umask(tmp)
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
