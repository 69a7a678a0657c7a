"""Two-rank GRPO on CPU through train.sh takes the distributed code paths an 8-GPU node takes: DDP engaged (gloo),
samples gathered across ranks, identical weights on both ranks, one checkpoint writer, and resume under 2 ranks.
The paper's recipe settings: dynamic sampling on, vision LoRA only."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.grpo_helpers import write_grpo_rows
from tests.test_launchers import REPO, _run, _tiny_env
from utils.training_logs import read_training_log, row_step


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _two_ranks(tiny_model: Path, rows: Path, out: Path, tmp_path: Path, steps: int, **extra) -> dict:
    return {
        **_tiny_env(tiny_model, tmp_path),
        "DATASET": str(rows),
        "OUTPUT_DIR": str(out),
        "NPROC_PER_NODE": "2",
        "MASTER_PORT": str(_free_port()),
        "MAX_STEPS": str(steps),
        "SAVE_STEPS": "2",
        "LR": "1e-2",
        "WARMUP_RATIO": "0",  # a warm-up would start at lr 0: the first step would change nothing
        "DYNAMIC_SAMPLE": "true",
        "FREEZE_NON_VISION_PARAMS": "1",
        "REWARD_FUNCS": "test_even_tokens external_r1v_acc external_kg_jac",
        **extra,
    }


# A constant learning rate: the resumed run raises MAX_STEPS, and a linear schedule would have reached 0 at step 2.
PLUGINS = (
    "--",
    "--external_plugins",
    str(REPO / "plugin.py"),
    str(REPO / "tests" / "ddp_probe_plugin.py"),
    "--lr_scheduler_type",
    "constant",
)


@pytest.fixture(scope="module")
def two_rank_run(tiny_model, demo_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    rows = write_grpo_rows(
        demo_data / "annotations" / "eval" / "test_basic_vqa.json", demo_data / "images", tmp / "rows.jsonl", 16
    )
    out = tmp / "run"
    completed = _run("train.sh", _two_ranks(tiny_model, rows, out, tmp, steps=2), *PLUGINS, timeout=600)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return out, rows, tmp, completed.stdout + completed.stderr


def test_ddp_is_engaged_and_the_weights_agree_across_ranks(two_rank_run):
    out, _, _, log = two_rank_run
    assert "parallel_mode != ParallelMode.DISTRIBUTED" not in log
    probe = {p.stem: json.loads(p.read_text())["digest"] for p in (out / "probe").glob("*.json")}
    assert probe["rank0-step1"] == probe["rank1-step1"]  # the same start
    assert probe["rank0-step2"] == probe["rank1-step2"]  # and the same weights after the first optimizer step
    assert probe["rank0-step1"] != probe["rank0-step2"]  # which changed them


def test_completions_hold_every_ranks_samples_with_their_own_tokens(two_rank_run, tiny_model):
    from transformers import AutoConfig, AutoTokenizer

    out, _, _, _ = two_rank_run
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    end_ids = set(AutoConfig.from_pretrained(tiny_model).eos_token_id)
    rows = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    assert rows and all(len(row["completion"]) == 8 for row in rows)  # 2 ranks x 4 completions per step
    assert all(len(set(row["prompt"])) == 2 for row in rows)  # one prompt from each rank
    for row in rows:
        for text, ids in zip(row["completion"], row["completion_token_ids"]):
            visible = ids[:-1] if ids and ids[-1] in end_ids else ids
            assert tokenizer.decode(visible) == text
        assert len(row["KGJaccard"]) == len(row["R1VAccuracy"]) == 8
    metrics = [r for r in read_training_log(out / "logging.jsonl") if "rewards/KGJaccard/entity_iou" in r]
    assert len(metrics) == 2  # sub-scores logged at every step


def test_each_checkpoint_is_written_once_and_resume_continues_under_two_ranks(two_rank_run, tiny_model):
    out, rows, tmp, _ = two_rank_run
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]
    from safetensors.torch import load_file

    saved = load_file(str(out / "checkpoint-2" / "vision-lora" / "adapter_model.safetensors"))
    env = _two_ranks(tiny_model, rows, out, tmp, steps=3, RESUME="1", SAVE_STEPS="3")
    completed = _run("train.sh", env, *PLUGINS, timeout=600)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "resuming from" in completed.stdout and "resumed" in completed.stderr + completed.stdout
    assert (out / "checkpoint-3").is_dir()
    steps = [row_step(r) for r in read_training_log(out / "logging.jsonl") if "train_runtime" not in r]
    assert [s for s in steps if s is not None] == [1, 2, 3]
    after = load_file(str(out / "checkpoint-3" / "vision-lora" / "adapter_model.safetensors"))
    assert set(after) == set(saved) and any((after[k] != saved[k]).any() for k in saved)
