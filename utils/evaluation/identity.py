"""What an evaluation's results belong to: the fingerprint a resumed evaluation must match.

Parts of a split (`<split>/parts/`) are only valid for the model, annotations and settings that produced them. A
fingerprint records the model path, a digest of every weight file (base weights, `vision-lora/`, adapters), the
annotation file's digest and the generation settings (crop count included). It is written next to the parts before
any result; resuming against a different fingerprint is an error that names both, so a second run's `checkpoint-N`
can never pick up a first run's answers.

>>> a = {"model_path": "/runs/a/checkpoint-1", "dynamic_hd": 4}
>>> fingerprint_differences(a, {**a, "dynamic_hd": 36})
['dynamic_hd: 4 (in the parts) != 36 (now)']
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
FINGERPRINT_FILE = "fingerprint.json"


def file_sha256(path: str | os.PathLike, chunk_size: int = 8 << 20) -> str:
    """SHA-256 of a file, streamed in chunks (weights are gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def weight_digests(folder: str | os.PathLike) -> dict[str, str]:
    """{relative path: sha256} of every weight file under `folder` (subfolders such as `vision-lora/` included;
    optimizer and RNG states of a training checkpoint are not weights and are left out). Hashed once per process
    while the files' sizes and modification times stay the same: every split of a run shares one model."""
    folder = Path(folder)
    skipped = ("optimizer", "scheduler", "rng_state", "training_args", "scaler")
    files = [
        path
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.suffix in WEIGHT_SUFFIXES and not path.name.startswith(skipped)
    ]
    stamp = tuple((str(path), path.stat().st_size, path.stat().st_mtime_ns) for path in files)
    return dict(_digests(str(folder), stamp))


@functools.lru_cache(maxsize=16)
def _digests(folder: str, stamp: tuple) -> tuple[tuple[str, str], ...]:
    return tuple((str(Path(path).relative_to(folder)), file_sha256(path)) for path, _, _ in stamp)


def evaluation_fingerprint(
    model_path: str, adapters: list[str], annotation_file: str | os.PathLike, settings: dict
) -> dict:
    """The fingerprint of one split's evaluation (see the module docstring)."""
    return {
        "model_path": str(Path(model_path).resolve()),
        "weights": weight_digests(model_path),
        "adapters": {str(Path(a).resolve()): weight_digests(a) for a in adapters},
        "annotation_file": str(Path(annotation_file).resolve()),
        "annotation_sha256": file_sha256(annotation_file),
        **settings,
    }


def fingerprint_differences(stored: dict, current: dict) -> list[str]:
    """One line per field that differs between the fingerprint stored with the parts and the current one."""
    lines = []
    for key in sorted(set(stored) | set(current)):
        if stored.get(key) != current.get(key):
            lines.append(f"{key}: {_short(stored.get(key))} (in the parts) != {_short(current.get(key))} (now)")
    return lines


def _short(value) -> str:
    text = repr(value) if not isinstance(value, (int, float)) or isinstance(value, bool) else str(value)
    return text if len(text) <= 200 else text[:197] + "..."
