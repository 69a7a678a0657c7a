"""Helpers for the end-to-end tests that train GRPO in-process through ms-swift on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

from utils.data.grpo_rows import annotation_to_grpo_row
from utils.io import atomic_write_jsonl


def write_grpo_rows(annotation_file: Path, image_root: Path, output: Path, limit: int) -> Path:
    """Write the first `limit` annotations as ms-swift GRPO rows (JSON lines)."""
    rows = json.loads(annotation_file.read_text())[:limit]
    atomic_write_jsonl(output, [annotation_to_grpo_row(row, image_root) for row in rows])
    return output


def grpo_arguments(
    model: Path, dataset: Path, output_dir: Path, plugins: list[str], reward_funcs: list[str], **overrides
):
    """RLHFArguments for a tiny CPU GRPO run (2 steps, 4 generations, 16-token completions)."""
    from swift import RLHFArguments

    kwargs = dict(
        rlhf_type="grpo",
        model=str(model),
        model_type="phi4_mm_native",
        dataset=[str(dataset)],
        external_plugins=plugins,
        reward_funcs=reward_funcs,
        tuner_type="full",
        torch_dtype="float32",
        use_vllm=False,
        num_generations=4,
        per_device_train_batch_size=4,
        max_completion_length=16,
        max_steps=2,
        logging_steps=1,
        save_steps=2,
        learning_rate=1e-3,
        log_completions=True,
        report_to=["none"],
        check_model=False,
        dataset_num_proc=1,
        dataloader_num_workers=0,
        output_dir=str(output_dir),
        add_version=False,
        seed=0,
    )
    kwargs.update(overrides)
    return RLHFArguments(**kwargs)
