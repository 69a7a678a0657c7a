"""Every file we write respects the umask, like a plain `open()`: colleagues on a shared cluster can read results,
GRPO sets and checkpoints. The expected mode is what `open()` itself gives a new file under the same umask."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from utils.io import atomic_write_json, atomic_write_jsonl, atomic_write_text


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request, tmp_path):
    previous = os.umask(request.param)
    reference = tmp_path / "plain-open"
    with open(reference, "w") as handle:  # the independent expectation
        handle.write("x")
    yield _mode(reference)
    os.umask(previous)


def test_atomic_writers_give_the_mode_open_gives(umask, tmp_path):
    atomic_write_text(tmp_path / "report.html", "<html></html>")
    atomic_write_json(tmp_path / "results.json", {"accuracy": 1.0})
    atomic_write_jsonl(tmp_path / "set.jsonl", [{"a": 1}])
    for name in ("report.html", "results.json", "set.jsonl"):
        assert _mode(tmp_path / name) == umask, name


def test_checkpoints_give_their_weights_the_mode_open_gives(umask, tiny_model, swift_plugin, tmp_path):
    from swift.model import get_model_processor

    model, _ = get_model_processor(str(tiny_model), model_type="phi4_mm_native", torch_dtype=torch.float32)
    model.save_pretrained(str(tmp_path / "checkpoint"))  # our save_native_layout, as the trainer calls it
    weights = sorted((tmp_path / "checkpoint").rglob("*.safetensors"))
    assert {w.name for w in weights} == {"model.safetensors", "adapter_model.safetensors"}
    assert all(_mode(w) == umask for w in weights), [(w, oct(_mode(w))) for w in weights]
