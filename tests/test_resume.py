"""RESUME restores everything: a run resumed from checkpoint-2 starts from that checkpoint's weights bit for bit
(base weights and the trained vision LoRA), and ends where the uninterrupted run ends (deterministic on CPU)."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from tests.grpo_helpers import grpo_arguments, write_grpo_rows
from utils.training_logs import read_training_log, row_step


def _checkpoint_tensors(checkpoint) -> dict[str, torch.Tensor]:
    """The checkpoint's files, keyed as the model's parameters are named with the vision adapter attached."""
    base = load_file(checkpoint / "model.safetensors")
    adapter = load_file(checkpoint / "vision-lora" / "adapter_model.safetensors")
    tensors = {f"file:{key}": value for key, value in base.items()}
    tensors.update({f"adapter:{key}": value for key, value in adapter.items()})
    return tensors


def _model_tensors(model) -> dict[str, torch.Tensor]:
    """The model's tensors under the names the checkpoint files use (independent of the loader under test)."""
    tensors = {}
    for name, value in model.state_dict().items():
        if ".lora_" in name:
            tensors["adapter:base_model.model." + name.replace(".vision.", ".")] = value.detach().clone()
        else:
            tensors["file:" + name.replace(".base_layer.", ".")] = value.detach().clone()
    return tensors


@pytest.fixture(scope="module")
def rows(demo_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume_rows")
    return write_grpo_rows(
        demo_data / "annotations" / "eval" / "test_basic_vqa.json", demo_data / "images", folder / "rows.jsonl", 8
    )


def _arguments(tiny_model, rows, output, swift_plugin, **overrides):
    return grpo_arguments(
        tiny_model,
        rows,
        output,
        [str(swift_plugin)],
        ["external_r1v_acc", "external_kg_jac"],
        max_steps=4,
        save_steps=2,
        learning_rate=5e-3,
        max_completion_length=12,
        **overrides,
    )


def test_resume_restores_trained_weights_and_ends_like_an_uninterrupted_run(
    tiny_model, rows, swift_plugin, tmp_path, isolated_environment
):
    from swift import rlhf_main

    from swift_patches.grpo_trainer import CheXGRPOTrainer

    isolated_environment.setenv("FREEZE_NON_VISION_PARAMS", "0")  # everything trains: base weights and LoRA
    rlhf_main(_arguments(tiny_model, rows, tmp_path / "full", swift_plugin))
    interrupted = tmp_path / "interrupted"
    # What a run killed after its fourth step but before checkpoint-4 leaves: checkpoint-2 and logs of steps 1-4
    # (written by the same deterministic run).
    shutil.copytree(tmp_path / "full" / "checkpoint-2", interrupted / "checkpoint-2")
    for log in ("logging.jsonl", "completions.jsonl"):
        shutil.copy(tmp_path / "full" / log, interrupted / log)
    killed_log = read_training_log(interrupted / "logging.jsonl")
    killed_rows = killed_log[next(i for i, r in enumerate(killed_log) if row_step(r) == 3) :]  # steps 3-4 and summary

    after_load = {}
    original = CheXGRPOTrainer._load_from_checkpoint

    def recording(self, resume_from_checkpoint, model=None):
        original(self, resume_from_checkpoint, model)
        after_load.update(_model_tensors(self.model))

    isolated_environment.setattr(CheXGRPOTrainer, "_load_from_checkpoint", recording)
    result = rlhf_main(
        _arguments(
            tiny_model, rows, interrupted, swift_plugin, resume_from_checkpoint=str(interrupted / "checkpoint-2")
        )
    )
    assert result["global_step"] == 4

    saved = _checkpoint_tensors(interrupted / "checkpoint-2")
    sft = _checkpoint_tensors(tiny_model)
    lora = [key for key in saved if key.startswith("adapter:")]
    assert any(not torch.equal(saved[key], sft[key]) for key in lora)  # the LoRA trained before the kill
    assert set(after_load) - set(saved) == {"file:lm_head.weight"}  # tied to the embeddings, as in the release
    assert torch.equal(after_load["file:lm_head.weight"], saved["file:model.embed_tokens.weight"])
    assert all(torch.equal(after_load[key], saved[key]) for key in saved), "resumed weights differ"

    final, uninterrupted = (
        _checkpoint_tensors(interrupted / "checkpoint-4"),
        _checkpoint_tensors(tmp_path / "full" / "checkpoint-4"),
    )
    different = [key for key in final if not torch.equal(final[key], uninterrupted[key])]
    assert different == []

    # One history in the logs: row for row the steps of the uninterrupted run, each step's completions once (the
    # closing summary does not write the last step's again), the killed run's rows past checkpoint-2 set aside.
    for log in ("logging.jsonl", "completions.jsonl"):
        resumed_steps = [row_step(r) for r in read_training_log(interrupted / log)]
        assert resumed_steps == [row_step(r) for r in read_training_log(tmp_path / "full" / log)], log
    abandoned = read_training_log(interrupted / "logging.abandoned.jsonl")
    assert abandoned == killed_rows
    assert [row_step(r) for r in read_training_log(interrupted / "completions.abandoned.jsonl")] == [3, 4]
