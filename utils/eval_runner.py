"""The one evaluation pipeline behind `evaluate.py` and `evaluate_token_prob.py` (the latter turns log-probs on).

Per split: validate the annotations, shard the unfinished items across ranks (`torchrun --nproc_per_node N` and
multi-node work the same way), generate in batches, stream each batch's records to `parts/part-<rank>.jsonl`
(flushed and fsynced), and on rank 0 merge the parts into `results.json` (the original format plus strict accuracy
and a per-type summary), `summary.json` and `accuracy_by_type.png`; with log-probs also `report.html`.
`--resume` (default) skips every item already in the parts, so a killed run continues where it stopped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from utils.annotations import load_annotations
from utils.env import env_int
from utils.evaluation import (
    EvalItem,
    ResultStream,
    accuracy_chart,
    build_items,
    final_results,
    format_summary,
    image_error,
    read_parts,
    result_record,
    shard,
    summarize,
)
from utils.html_report import render_report
from utils.io import InputError, atomic_write_json, atomic_write_text
from utils.log import get_logger

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SPLITS = ("test_basic", "test_compare", "test_region")
logger = get_logger("evaluate")


def build_parser(token_probs: bool) -> argparse.ArgumentParser:
    """Command-line options shared by both scripts (`token_probs` adds the log-prob options)."""
    parser = argparse.ArgumentParser(
        description=("Token-probability export" if token_probs else "Batched evaluation")
        + " of a Phi-4-MM checkpoint on MIMIC-VQA-CoT annotations. Default mode: every split under --data_root; "
        "single-file mode: --annotation_file with --img_root.",
    )
    parser.add_argument("--model_path", required=True, help="checkpoint folder (native layout, vision-lora/ inside)")
    parser.add_argument("--adapters", nargs="*", default=[], help="LoRA/adapter checkpoint folders to apply")
    parser.add_argument("--model_type", default="phi4_mm_native")
    parser.add_argument("--data_root", default=str(REPO / "data" / "MIMIC-VQA-CoT"))
    parser.add_argument("--splits", nargs="+", default=list(DEFAULT_SPLITS), help="default mode: splits to sweep")
    parser.add_argument("--annotation_file", help="single-file mode: one annotation JSON")
    parser.add_argument("--img_root", help="image folder (default: <data_root>/images)")
    default_out = "eval_token_prob" if token_probs else "eval"
    parser.add_argument("--output_dir", default=str(REPO / "output" / default_out))
    parser.add_argument("--batch_size", type=int, default=16, help="requests per generate call (per rank)")
    parser.add_argument("--max_new_tokens", type=int, default=256)
    parser.add_argument(
        "--dynamic_hd",
        type=int,
        default=env_int("DYNAMIC_HD", 4),
        help="max image crops (default: $DYNAMIC_HD, else 4, the paper's evaluation setting)",
    )
    parser.add_argument("--infer_backend", choices=("transformers", "vllm"), default="transformers")
    parser.add_argument("--torch_dtype", choices=("auto", "bfloat16", "float16", "float32"), default="auto")
    parser.add_argument(
        "--attn_impl", default="auto", help="auto: flash_attention_2 on CUDA with flash-attn, else sdpa"
    )
    parser.add_argument("--use_flash_attention", action="store_true", help="same as --attn_impl flash_attention_2")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--strict", action="store_true", help="a missing or unreadable image stops the run")
    parser.add_argument("--limit", type=int, help="evaluate only the first N items of each split")
    if token_probs:
        parser.add_argument("--top_k", type=int, default=5, help="alternatives kept per token (0: none)")
        parser.add_argument("--low_prob", type=float, default=0.5, help="report: outline tokens below this p")
    return parser


def _jobs(args) -> list[tuple[str, Path, Path]]:
    """(name, annotation file, image root) per split to evaluate."""
    data_root = Path(args.data_root)
    img_root = Path(args.img_root) if args.img_root else data_root / "images"
    if args.annotation_file:
        return [(Path(args.annotation_file).stem, Path(args.annotation_file), img_root)]
    return [(split, data_root / "annotations" / "eval" / f"{split}_vqa.json", img_root) for split in args.splits]


def _distributed() -> tuple[int, int, int, Callable[[], None]]:
    """(rank, world size, local rank, barrier); a process group only under torchrun with more than one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world == 1:
        return 0, 1, local_rank, lambda: None
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        # Ranks wait for each other only at the end of a split; a slow shard must not hit the 30-minute default.
        dist.init_process_group(backend=backend, timeout=timedelta(hours=24))
    return dist.get_rank(), world, local_rank, dist.barrier


def main(argv: list[str] | None = None, token_probs: bool = False) -> int:
    """Entry point of both scripts: 0 on success, 2 on bad input (one line naming file, index and field)."""
    args = build_parser(token_probs).parse_args(argv)
    try:
        run(args, token_probs)
    except (InputError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def run(args, token_probs: bool) -> None:
    """Evaluate every job of `args` (see the module docstring)."""
    jobs = _jobs(args)
    annotations = {name: load_annotations(path) for name, path, _ in jobs}  # all inputs checked before loading
    rank, world, local_rank, barrier = _distributed()

    from swift.utils import import_external_file

    from utils.inference import EngineConfig, load_engine

    import_external_file(str(REPO / "plugin.py"))
    attn_impl = "flash_attention_2" if args.use_flash_attention else args.attn_impl
    engine = load_engine(
        EngineConfig(
            model_path=args.model_path,
            model_type=args.model_type,
            adapters=tuple(args.adapters),
            backend=args.infer_backend,
            batch_size=args.batch_size,
            torch_dtype=args.torch_dtype,
            attn_impl=attn_impl,
            dynamic_hd=args.dynamic_hd,
            device_map=f"cuda:{local_rank}" if _cuda() else None,
        )
    )
    for name, path, img_root in jobs:
        items = build_items(annotations[name], img_root)[: args.limit]
        out_dir = Path(args.output_dir) / name
        _evaluate_split(engine, items, out_dir, path, img_root, args, token_probs, rank, world, barrier)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _evaluate_split(engine, items, out_dir, path, img_root, args, token_probs, rank, world, barrier) -> None:
    from tqdm import tqdm

    from utils.inference import generate

    parts = out_dir / "parts"
    if not args.resume and rank == 0 and parts.exists():
        shutil.rmtree(parts)
    barrier()
    done = read_parts(parts) if parts.exists() else {}
    mine = shard([item for item in items if item.id not in done], rank, world)
    stream = ResultStream(parts / f"part-{rank}.jsonl")
    progress = tqdm(total=len(mine), desc=f"{out_dir.name} (rank {rank})", disable=rank != 0, unit="sample")
    top_k = args.top_k if token_probs else 0
    try:
        for start in range(0, len(mine), args.batch_size):
            batch = mine[start : start + args.batch_size]
            records, ready = [], []
            for item in batch:
                error = image_error(item.image_paths)
                if error and args.strict:
                    raise InputError(f"{path}: index {item.id}: field 'image_ids': {error}")
                if error:
                    logger.warning("%s: index %d: %s (recorded, not scored)", path, item.id, error)
                    records.append(result_record(item, None, error))
                else:
                    ready.append(item)
            generations = generate(engine, ready, args.max_new_tokens, logprobs=token_probs, top_k=top_k)
            records += [result_record(item, generation) for item, generation in zip(ready, generations)]
            stream.append(sorted(records, key=lambda r: r["id"]))
            progress.update(len(batch))
    finally:
        stream.close()
        progress.close()
    barrier()
    if rank == 0:
        _merge(items, out_dir, path, img_root, args, token_probs, world)
    barrier()


def _merge(items: list[EvalItem], out_dir: Path, path: Path, img_root: Path, args, token_probs: bool, world: int):
    done = read_parts(out_dir / "parts")
    missing = [item.id for item in items if item.id not in done]
    if missing:
        raise RuntimeError(f"{out_dir}: {len(missing)} items have no result after all ranks finished: {missing[:10]}")
    results = [done[item.id] for item in items]
    summary = summarize(results)
    meta = {
        "model_path": args.model_path,
        "adapters": args.adapters,
        "annotation_file": str(path),
        "img_root": str(img_root),
        "max_new_tokens": args.max_new_tokens,
        "dynamic_hd": args.dynamic_hd,
        "infer_backend": args.infer_backend,
        "world_size": world,
    }
    atomic_write_json(out_dir / "results.json", final_results(results, summary, meta))
    atomic_write_json(out_dir / "summary.json", summary)
    title = f"{out_dir.name}: {args.model_path}"
    accuracy_chart(summary, out_dir / "accuracy_by_type.png", title)
    if token_probs:
        atomic_write_text(out_dir / "report.html", render_report(results, title, args.low_prob))
    print(format_summary(summary, title))
    print(f"results: {out_dir / 'results.json'}")
