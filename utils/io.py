"""File helpers every tool shares: atomic writes (nothing half-written survives a crash) and JSON reading whose
errors name the file and position."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rexkg.files import InputError, apply_umask, atomic_write_json, atomic_write_text, read_jsonl

__all__ = [
    "InputError",
    "apply_umask",
    "atomic_save_figure",
    "atomic_write_json",
    "atomic_write_jsonl",
    "atomic_write_text",
    "read_json",
    "read_jsonl",
]


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> None:
    """Write one JSON object per line, atomically."""
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def atomic_save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> None:
    """Save a matplotlib figure as PNG through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_json(path: str | os.PathLike) -> Any:
    """Load a JSON file; a syntax error becomes an `InputError` naming the file, line and column.

    >>> read_json("/nonexistent.json")
    Traceback (most recent call last):
    ...
    rexkg.files.InputError: /nonexistent.json: file not found
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: line {exc.lineno} column {exc.colno}: malformed JSON ({exc.msg})") from None
