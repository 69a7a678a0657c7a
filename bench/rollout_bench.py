"""GRPO rollout speed: vLLM (our adapter) against the transformers engine, same prompts, same sampling, one process.

    .venv-vllm/bin/python bench/rollout_bench.py [--prompts 8] [--num-generations 8] [--max-tokens 256]
        [--dynamic-hd 4] [--model DIR --data-root DIR] [--out rollout_bench.json]

A rollout is what a GRPO step draws: `--num-generations` completions per prompt at temperature 0.9, up to
`--max-tokens` tokens each, one chest X-ray per prompt. Each engine is built (the time is reported apart), warmed up
on one prompt, then timed once on all prompts; tokens/s counts the completion tokens each engine returned.
Without `--model` / `--data-root` it builds the tiny model (the head-size-64 variant vLLM's CPU attention takes) and
synthetic data in a temporary folder. On a CPU with the tiny model the figures check the plumbing, not the speed a
GPU node gets; the same command on a GPU node with the converted checkpoint measures that. It sets vLLM's process
environment itself (utils/vllm_env.py) and runs in the vLLM environment (`make venv-vllm`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from utils.vllm_env import vllm_environment  # noqa: E402

MARKER = "CHEX_ROLLOUT_BENCH_ENV"


def _reexec_with_vllm_environment() -> None:
    """vLLM's CPU build needs its OpenMP runtime preloaded before the process starts: start again with it."""
    import torch

    if os.environ.get(MARKER) == "1":
        return
    env = {**os.environ, **vllm_environment("cuda" if torch.cuda.is_available() else "cpu"), MARKER: "1"}
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def _rollout(engine, requests, num_generations: int, max_tokens: int, seed: int) -> tuple[float, int]:
    """Seconds and completion tokens of one rollout of `requests`."""
    from swift.infer_engine import RequestConfig

    config = RequestConfig(max_tokens=max_tokens, temperature=0.9, n=num_generations, seed=seed)
    start = time.perf_counter()
    responses = engine.infer(requests, config, use_tqdm=False)
    seconds = time.perf_counter() - start
    return seconds, sum(response.usage.completion_tokens for response in responses)


def measure(backend: str, args, items) -> dict:
    """Build the engine, warm it up, time one rollout; the engine is freed before returning."""
    import gc

    import torch

    from utils.evaluation.engine import EngineConfig, _requests, load_engine

    vllm_kwargs = {"gpu_memory_utilization": args.gpu_memory_utilization, "max_model_len": 4096 + args.max_tokens}
    if not torch.cuda.is_available():
        vllm_kwargs["enforce_eager"] = True
    config = EngineConfig(
        model_path=args.model,
        backend=backend,
        batch_size=len(items) * args.num_generations,
        dynamic_hd=args.dynamic_hd,
        vllm_kwargs=vllm_kwargs if backend == "vllm" else {},
    )
    start = time.perf_counter()
    engine = load_engine(config)
    build_seconds = time.perf_counter() - start
    requests = _requests(items)
    _rollout(engine, requests[:1], args.num_generations, args.max_tokens, args.seed)  # warm-up
    seconds, tokens = _rollout(engine, requests, args.num_generations, args.max_tokens, args.seed)
    del engine
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {"build_s": build_seconds, "rollout_s": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="checkpoint (default: the tiny head-size-64 model, built here)")
    parser.add_argument("--data-root", help="MIMIC-VQA-CoT tree (default: synthetic data built here)")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--num-generations", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--dynamic-hd", type=int, default=4)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    _reexec_with_vllm_environment()
    with tempfile.TemporaryDirectory() as work:
        if args.model is None:
            from tools.make_tiny_model import build

            args.model = str(build(Path(work) / "tiny-phi4mm-hd64", seed=0, head_dim=64))
        if args.data_root is None:
            from tools.make_demo_data import generate

            args.data_root = str(Path(work) / "MIMIC-VQA-CoT")
            generate(Path(args.data_root), seed=0, test_size=max(8, args.prompts), pool_size=8, image_size=112)
        return run(args)


def run(args) -> int:
    import torch
    from swift.utils import import_external_file

    from utils.data.annotations import load_annotations
    from utils.evaluation.results import build_items

    import_external_file(str(REPO / "plugin.py"))
    rows = load_annotations(Path(args.data_root) / "annotations" / "eval" / "test_basic_vqa.json")
    items = build_items(rows, Path(args.data_root) / "images")[: args.prompts]
    figures = {backend: measure(backend, args, items) for backend in ("transformers", "vllm")}
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    ratio = figures["vllm"]["tokens_per_s"] / figures["transformers"]["tokens_per_s"]
    print(f"{len(items)} prompts x {args.num_generations} completions, up to {args.max_tokens} tokens,")
    print(f"temperature 0.9, DYNAMIC_HD {args.dynamic_hd}, {device}, model {args.model}")
    for backend, row in figures.items():
        print(
            f"{backend:>12}: {row['tokens_per_s']:9.1f} tokens/s ({row['tokens']} tokens in {row['rollout_s']:.2f} s; "
            f"engine built in {row['build_s']:.1f} s)"
        )
    print(f"vLLM / transformers: {ratio:.2f}x")
    if args.out:
        result = {"device": device, "prompts": len(items), "num_generations": args.num_generations}
        result.update({"max_tokens": args.max_tokens, "dynamic_hd": args.dynamic_hd, "model": args.model})
        result.update({"engines": figures, "vllm_over_transformers": ratio})
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
