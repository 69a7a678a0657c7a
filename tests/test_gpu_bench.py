"""bench/gpu_bench.py: the same code a user runs on a GPU node, run on the tiny model on CPU so it cannot rot; and the
model it builds on the node is microsoft's full-size architecture."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_full_size_bench_model_is_the_release_architecture():
    import torch
    from transformers import Phi4MultimodalForCausalLM

    from tools.gpu_plan import parameter_counts
    from tools.make_tiny_model import FULL_SIZE_VOCAB, build_config, build_tokenizer

    config = build_config(build_tokenizer(0, 1200), full_size=True)
    with torch.device("meta"):
        model = Phi4MultimodalForCausalLM(config)
    parameters = sum({id(p): p.numel() for p in model.parameters()}.values())
    # microsoft's release: 200,064 embedding rows, 3072 wide, 32 layers, 448-pixel crops; the same count as the
    # config tools/gpu_plan.py plans memory for
    assert config.vocab_size == FULL_SIZE_VOCAB
    assert (config.hidden_size, config.num_hidden_layers, config.vision_config.crop_size) == (3072, 32, 448)
    assert parameters == parameter_counts()["base"]


@pytest.mark.timeout(600)
def test_the_tiny_bench_runs_every_stage_and_reports_consistent_figures(tmp_path):
    out = tmp_path / "gpu"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_bench.py"), "--tiny", "--out", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""},
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    report = json.loads((out / "gpu_bench.json").read_text())
    step = report["step"]
    # real GRPO steps ran through train.sh: its log holds every step, the warm-up left out of the means
    logged = [json.loads(line) for line in (out / "grpo" / "logging.jsonl").read_text().splitlines()]
    assert sum("step_time" in row for row in logged) == 3 and step["steps_measured"] == 2
    assert "--num_generations 8" in (out / "grpo.log").read_text()
    # the parts are measured inside the step, so they fit in it
    assert 0 < step["generation_s"] < step["step_s"] and 0 < step["rewards_s"] < step["step_s"]
    assert 0 < step["kg_reward_s"] <= step["rewards_s"] and 0 < step["kg_reward_share_of_step"] < 1
    assert step["rest_s"] > 0 and step["rollout_tokens_per_s"] > 0
    assert step["peak_memory_gib"] is None  # no GPU: no figure rather than a wrong one
    evaluation = report["evaluation"]
    assert evaluation["batched_samples_per_s"] > 0 and evaluation["single_samples_per_s"] > 0
    assert report["vision_attention"] == {**report["vision_attention"], "attention": "sdpa", "bidirectional": True}
    assert report["predicted"]["sweep"]["steps"] == 625 and report["predicted"]["sweep"]["hours"] > 0
    assert report["machine"]["gpu"] is None and report["machine"]["torch"]
    for line in ("rollout generation", "rollout tokens/s", "peak memory", "evaluation samples/s", "README's sweep"):
        assert line in completed.stdout, line


def test_without_a_gpu_the_full_bench_stops_with_one_line(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_bench.py"), "--out", str(tmp_path / "gpu")],
        capture_output=True,
        text=True,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        timeout=120,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        "gpu_bench: no CUDA device here; run it on a GPU node, or --tiny to check the script on CPU"
    ]
    assert not (tmp_path / "gpu").exists()
