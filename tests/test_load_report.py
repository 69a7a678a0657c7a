"""Loading a checkpoint with its vision LoRA reports nothing when nothing is missing, and stays loud when a LoRA
tensor is missing (swift_patches.phi4mm.lora_only_load_report)."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file


@pytest.fixture
def reports(monkeypatch):
    """Every load report transformers would print during the test, as (missing keys) sets."""
    from transformers.integrations import peft as peft_integration

    seen = []
    monkeypatch.setattr(
        peft_integration,
        "log_state_dict_report",
        lambda *a, loading_info, **k: seen.append(set(loading_info.missing_keys)),
    )
    return seen


def _load(path):
    from swift.model import get_model_processor

    return get_model_processor(str(path), model_type="phi4_mm_native", torch_dtype=torch.float32)[0]


def test_a_complete_checkpoint_reports_nothing_missing(tiny_model, swift_plugin, reports):
    _load(tiny_model)
    assert reports == [set()]  # before the patch: the four audio_embed.*_for_vision_speech base tensors


def test_a_missing_lora_tensor_is_still_reported(tiny_model, swift_plugin, reports, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    weights = broken / "vision-lora" / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    dropped = sorted(tensors)[0]
    save_file({k: v for k, v in tensors.items() if k != dropped}, str(weights))
    _load(broken)
    assert len(reports) == 1 and len(reports[0]) == 1
    (missing,) = reports[0]
    assert ".lora_" in missing and missing.endswith(dropped.split(".lora_")[1].replace(".weight", ".vision.weight"))
