"""Parameter counts and per-GPU memory of the GRPO recipe on the full-size Phi-4-multimodal, computed, not guessed.

    python tools/gpu_plan.py                               # the recipe: 5,000 prompts, 8 GPUs, DYNAMIC_HD=4
    python tools/gpu_plan.py --dynamic_hd 36 --gpus 8 --samples 5000 --save_steps 125
    python tools/gpu_plan.py --bench bench_out/gpu/gpu_bench.json --samples 5000   # hours at a measured step time

The model is transformers' `Phi4MultimodalConfig()` (microsoft's release) built on the meta device: no weights, no
GPU. LoRA sizes are those of microsoft's adapters (vision r=256, speech r=320, on every language-model qkv/o/gate_up/
down projection). Memory per GPU, bf16 unless said: the policy (base + vision LoRA), the separate KL-reference copy
that `--tuner_type full` keeps when beta > 0, gradients and AdamW states of the trainable set, and the rollout KV cache
of one prompt's generations (prompt at the chosen crop count + completion). Activations of the training forward are
not estimated (they depend on gradient checkpointing and sequence packing): leave headroom for them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.cli import ArgumentParser  # noqa: E402

GIB = 1024**3
LORA_TARGETS = ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj")
# microsoft/Phi-4-multimodal-instruct's adapters (vision-lora/, speech-lora/ adapter_config.json).
VISION_LORA_RANK, SPEECH_LORA_RANK = 256, 320
# A MIMIC-CXR frontal radiograph is about 2,500 x 3,000 pixels; text prompt of the VQA task ~60 tokens.
DEFAULT_IMAGE_SIZE = (2544, 3056)
PROMPT_TEXT_TOKENS = 60


@dataclass(frozen=True)
class RecipePlan:
    """Inputs of the estimate: the recipe and the machine."""

    dynamic_hd: int = 4
    gpus: int = 8
    samples: int = 5000
    num_generations: int = 8
    per_device_batch: int = 8
    grad_accum: int = 1
    completion_tokens: int = 256
    save_steps: int = 125
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE


def parameter_counts() -> dict[str, int]:
    """Parameters of the full-size model: base (tied head counted once), lm_head, vision and speech LoRA."""
    import torch
    from transformers import Phi4MultimodalConfig, Phi4MultimodalForCausalLM

    config = Phi4MultimodalConfig(tie_word_embeddings=True)  # as microsoft's config.json
    head_dim = config.hidden_size // config.num_attention_heads
    with torch.device("meta"):
        model = Phi4MultimodalForCausalLM(config)
    unique = {id(p): p.numel() for p in model.parameters()}
    lora_inputs = sum(
        module.in_features + module.out_features
        for name, module in model.named_modules()
        if name.startswith("model.layers.") and name.endswith(LORA_TARGETS)
    )
    return {
        "base": sum(unique.values()),
        "lm_head": config.vocab_size * config.hidden_size,
        "vision_lora": VISION_LORA_RANK * lora_inputs,
        "speech_lora": SPEECH_LORA_RANK * lora_inputs,
        # K and V, every layer, every key-value head, bf16
        "kv_bytes_per_token": 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * 2,
    }


def memory_per_gpu(counts: dict[str, int], plan: RecipePlan) -> dict[str, float]:
    """GiB per GPU of each part (see the module docstring)."""
    from swift_patches.image_processor import image_token_count

    image_tokens = image_token_count(*plan.image_size, 448, 14, plan.dynamic_hd)
    sequence = PROMPT_TEXT_TOKENS + image_tokens + plan.completion_tokens
    trainable = counts["vision_lora"]
    policy = (counts["base"] + trainable) * 2
    return {
        "prompt_tokens": PROMPT_TEXT_TOKENS + image_tokens,
        "policy_bf16": policy / GIB,
        "reference_bf16": policy / GIB,
        "grads_bf16": trainable * 2 / GIB,
        "adamw_bf16_states": trainable * 4 / GIB,
        "adamw_fp32_master_and_states": trainable * 12 / GIB,
        "rollout_kv_cache": plan.per_device_batch * sequence * counts["kv_bytes_per_token"] / GIB,
    }


def schedule(plan: RecipePlan) -> dict[str, int]:
    """Optimizer steps of one epoch and checkpoints written: ms-swift's GRPO batch counts completions."""
    completions_per_step = plan.gpus * plan.per_device_batch * plan.grad_accum
    steps = math.ceil(plan.samples * plan.num_generations / completions_per_step)
    return {"steps": steps, "checkpoints": steps // plan.save_steps}


def projected_time(bench: dict, plan: RecipePlan, max_steps: int = -1) -> str:
    """One line: the run's optimizer steps and, from a `bench/gpu_bench.py` measurement of the same per-GPU step
    (completions per GPU, completion length, crops), its hours; otherwise why there is no projection. Data parallel:
    each GPU runs one measured step per micro-batch.

    >>> bench = {"settings": {"tiny": False, "completions_per_step": 8, "completion_tokens": 256, "dynamic_hd": 4},
    ...          "step": {"step_s": 36.0}, "machine": {"gpu": "NVIDIA H200"}}
    >>> projected_time(bench, RecipePlan())
    'time: 625 steps x 36.0 s (bench/gpu_bench.py on NVIDIA H200) = 6.2 h'
    """
    steps = max_steps if max_steps > 0 else schedule(plan)["steps"]
    measured, step_s = bench["settings"], bench["step"]["step_s"]
    if measured["tiny"]:
        return f"time: {steps} steps; the bench was --tiny (CPU): no projection for a GPU"
    differs = [
        f"{name} {ours} (measured {theirs})"
        for name, ours, theirs in (
            ("completions per GPU and micro-step", plan.per_device_batch, measured["completions_per_step"]),
            ("completion tokens", plan.completion_tokens, measured["completion_tokens"]),
            ("DYNAMIC_HD", plan.dynamic_hd, measured["dynamic_hd"]),
        )
        if ours != theirs
    ]
    if differs:
        return f"time: {steps} steps; no projection: the bench measured another step ({'; '.join(differs)})"
    per_step = plan.grad_accum * step_s
    where = f"bench/gpu_bench.py on {bench['machine']['gpu']}"
    return f"time: {steps} steps x {per_step:.1f} s ({where}) = {steps * per_step / 3600:.1f} h"


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for field, default in RecipePlan().__dict__.items():
        if field != "image_size":
            parser.add_argument(f"--{field}", type=int, default=default)
    parser.add_argument("--bench", type=Path, help="a bench/gpu_bench.py JSON: print the run's time at its step time")
    parser.add_argument("--max_steps", type=int, default=-1, help="with --bench: a run stopped after this many steps")
    args = parser.parse_args(argv)
    bench_file, max_steps = args.bench, args.max_steps
    plan = RecipePlan(**{k: v for k, v in vars(args).items() if k not in ("bench", "max_steps")})
    if bench_file is not None:
        if not bench_file.is_file():
            print(f"time: not measured (no {bench_file}; run bench/gpu_bench.py on one GPU of the node)")
            return 0
        print(projected_time(json.loads(bench_file.read_text()), plan, max_steps))
        return 0
    counts = parameter_counts()
    memory = memory_per_gpu(counts, plan)
    steps = schedule(plan)
    print(f"Phi-4-multimodal (transformers' defaults = microsoft's release), recipe at dynamic_hd={plan.dynamic_hd}")
    for name in ("base", "lm_head", "vision_lora", "speech_lora"):
        print(f"  {name:<12} {counts[name] / 1e6:>9,.1f} M parameters")
    print(f"  prompt       {memory['prompt_tokens']:>9,} tokens ({plan.image_size[0]}x{plan.image_size[1]} image)")
    print("memory per GPU (GiB):")
    for name in ("policy_bf16", "reference_bf16", "grads_bf16", "adamw_bf16_states", "adamw_fp32_master_and_states"):
        print(f"  {name:<30} {memory[name]:>7.1f}")
    kv = f"rollout_kv_cache ({plan.per_device_batch} x {memory['prompt_tokens'] + plan.completion_tokens} tok)"
    print(f"  {kv:<30} {memory['rollout_kv_cache']:>7.1f}")
    low = memory["policy_bf16"] * 2 + memory["grads_bf16"] + memory["adamw_bf16_states"] + memory["rollout_kv_cache"]
    high = low - memory["adamw_bf16_states"] + memory["adamw_fp32_master_and_states"]
    print(f"  total before activations       {low:>7.1f} - {high:.1f}")
    print(
        f"schedule: {plan.samples} prompts x {plan.num_generations} generations / ({plan.gpus} GPUs x "
        f"{plan.per_device_batch} x {plan.grad_accum}) = {steps['steps']} steps; SAVE_STEPS={plan.save_steps} -> "
        f"{steps['checkpoints']} checkpoints"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
