"""The one evaluation pipeline behind `evaluate.py` and `evaluate_token_prob.py` (the latter turns log-probs on).

Per split: validate the annotations, shard the unfinished items across ranks (`torchrun --nproc_per_node N` and
multi-node work the same way), generate in batches, stream each batch's records to `parts/part-<rank>.jsonl`
(flushed and fsynced), and on rank 0 merge the parts into `results.json` (the original format plus strict accuracy
and a per-type summary), `summary.json` and `accuracy_by_type.png`; with log-probs also `report.html`.
`--resume` (default) skips every item already in the parts, so a killed run continues where it stopped; the parts
carry a fingerprint (`utils/evaluation/identity.py`: model path, weight digests, annotation digest, generation
settings) and resuming against a different one stops with an error naming both. Before anything is generated, rank
0 decides what is left to do and broadcasts it, so every rank shards the same plan, and every rank must see a file
rank 0 wrote in the output folder: multi-node evaluation needs that folder on a shared filesystem, and says so at
start-up.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from utils.checkpoints.phi4mm import PROMPT_FORMATS
from utils.cli import ArgumentParser
from utils.data.annotations import load_annotations
from utils.evaluation.identity import FINGERPRINT_FILE, evaluation_fingerprint, fingerprint_differences
from utils.evaluation.naming import run_name
from utils.evaluation.results import (
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
from utils.io import InputError, atomic_write_json, atomic_write_text, read_json
from utils.knobs import argparse_type
from utils.log import get_logger
from utils.reports.evaluation import render_report

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SPLITS = ("test_basic", "test_compare", "test_region")
SHARED_TOKEN_FILE = ".shared-check"  # rank 0 writes it, every rank must read it back: a shared output folder
logger = get_logger("evaluate")


def build_parser(token_probs: bool) -> argparse.ArgumentParser:
    """Command-line options shared by both scripts (`token_probs` adds the log-prob options)."""
    parser = ArgumentParser(
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
    parser.add_argument(
        "--output_dir", help=f"default: output/{default_out}/<run name> (utils/evaluation/naming.py), as evaluate.sh"
    )
    parser.set_defaults(default_output=default_out)
    parser.add_argument(
        "--batch_size", type=argparse_type("BATCH_SIZE"), default=16, help="requests per generate call (per rank)"
    )
    parser.add_argument("--max_new_tokens", type=argparse_type("MAX_NEW_TOKENS"), default=256)
    parser.add_argument(
        "--dynamic_hd",
        type=argparse_type("DYNAMIC_HD"),
        default=os.environ.get("DYNAMIC_HD", "4"),  # a string, so that argparse checks it like a typed value
        help="max image crops (default: $DYNAMIC_HD, else 4, the paper's evaluation setting)",
    )
    parser.add_argument(
        "--prompt_format",
        choices=tuple(PROMPT_FORMATS),
        default="sft",
        help="sft: the SFT checkpoint's chat template (default); original: the original CheX-Phi4MM evaluate.py's "
        "prompt, eos and decoding, to compare with the paper's figures",
    )
    parser.add_argument(
        "--infer_backend",
        choices=("transformers", "vllm"),
        default="transformers",
        help="vllm: vLLM 0.32 in the vLLM environment (.venv-vllm/bin/python evaluate.py ...; docs/vllm.md)",
    )
    parser.add_argument(
        "--gpu_memory_utilization",
        type=argparse_type("VLLM_GPU_MEMORY_UTILIZATION"),
        default=0.9,
        help="vllm: share of the GPU's memory the engine takes (default 0.9)",
    )
    parser.add_argument(
        "--tensor_parallel_size",
        type=argparse_type("VLLM_TENSOR_PARALLEL_SIZE"),
        default=1,
        help="vllm: GPUs per engine",
    )
    parser.add_argument("--torch_dtype", choices=("auto", "bfloat16", "float16", "float32"), default="auto")
    parser.add_argument(
        "--attn_impl", default="auto", help="auto: flash_attention_2 on CUDA with flash-attn, else sdpa"
    )
    parser.add_argument("--use_flash_attention", action="store_true", help="same as --attn_impl flash_attention_2")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--strict", action="store_true", help="a missing or unreadable image stops the run")
    parser.add_argument("--limit", type=argparse_type("LIMIT"), help="evaluate only the first N items of each split")
    parser.add_argument(
        "--num_samples",
        type=argparse_type("NUM_SAMPLES"),
        default=0,
        help="headroom: also sample K completions per item at --temperature and report pass@1, pass@K and the share "
        "of items whose samples are mixed, what GRPO can learn from (0: off; the paper's GRPO draws 8)",
    )
    parser.add_argument(
        "--temperature",
        type=argparse_type("TEMPERATURE"),
        default=0.9,
        help="sampling temperature of --num_samples (default 0.9, the paper's GRPO rollouts)",
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of --num_samples")
    if token_probs:
        parser.add_argument(
            "--top_k", type=argparse_type("TOP_K"), default=5, help="alternatives kept per token (0: none)"
        )
        parser.add_argument(
            "--low_prob", type=argparse_type("LOW_PROB"), default=0.5, help="report: outline tokens below this p"
        )
    return parser


@dataclass(frozen=True)
class SplitJob:
    """One split to evaluate: its annotations, images and output folder."""

    name: str
    annotation_file: Path
    img_root: Path
    out_dir: Path


@dataclass(frozen=True)
class EvalSettings:
    """What every split of a run shares (from the command line)."""

    model_path: str
    adapters: tuple[str, ...]
    model_type: str
    max_new_tokens: int
    dynamic_hd: int
    prompt_format: str
    infer_backend: str
    batch_size: int
    resume: bool
    strict: bool
    limit: int | None
    token_probs: bool
    top_k: int
    low_prob: float
    num_samples: int = 0
    temperature: float = 0.9
    seed: int = 42

    @classmethod
    def from_args(cls, args, token_probs: bool) -> EvalSettings:
        return cls(
            model_path=args.model_path,
            adapters=tuple(args.adapters),
            model_type=args.model_type,
            max_new_tokens=args.max_new_tokens,
            dynamic_hd=args.dynamic_hd,
            prompt_format=args.prompt_format,
            infer_backend=args.infer_backend,
            batch_size=args.batch_size,
            resume=args.resume,
            strict=args.strict,
            limit=args.limit,
            token_probs=token_probs,
            top_k=args.top_k if token_probs else 0,
            low_prob=args.low_prob if token_probs else 0.0,
            num_samples=args.num_samples,
            temperature=args.temperature,
            seed=args.seed,
        )

    def generation(self) -> dict:
        """The settings that decide what is generated: part of every fingerprint."""
        return {
            "model_type": self.model_type,
            "decoding": "greedy",
            "max_new_tokens": self.max_new_tokens,
            "dynamic_hd": self.dynamic_hd,
            "prompt_format": self.prompt_format,
            "infer_backend": self.infer_backend,
            "token_probs": self.token_probs,
            "top_k": self.top_k,
            **(
                {"samples": self.num_samples, "temperature": self.temperature, "seed": self.seed}
                if self.num_samples
                else {}
            ),
        }


@dataclass(frozen=True)
class Ranks:
    """This process's place among the evaluation processes, and the collectives they share (no-ops alone)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def broadcast(self, obj):
        """Rank 0's `obj`, on every rank."""
        if self.world == 1:
            return obj
        import torch.distributed as dist

        holder = [obj]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def gather(self, obj) -> list:
        """Every rank's `obj`, in rank order, on every rank."""
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        gathered = [None] * self.world
        dist.all_gather_object(gathered, obj)
        return gathered


def _jobs(args) -> list[SplitJob]:
    """The splits to evaluate."""
    data_root = Path(args.data_root)
    img_root = Path(args.img_root) if args.img_root else data_root / "images"
    default_out = REPO / "output" / args.default_output / run_name(args.model_path)
    out = Path(args.output_dir) if args.output_dir else default_out
    if args.annotation_file:
        path = Path(args.annotation_file)
        return [SplitJob(path.stem, path, img_root, out / path.stem)]
    return [
        SplitJob(split, data_root / "annotations" / "eval" / f"{split}_vqa.json", img_root, out / split)
        for split in args.splits
    ]


def _distributed() -> Ranks:
    """The process group under torchrun with more than one process; a single process needs none."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world == 1:
        return Ranks(0, 1, local_rank)
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        # Ranks wait for each other only at the end of a split; a slow shard must not hit the 30-minute default.
        dist.init_process_group(backend=backend, timeout=timedelta(hours=24))
    return Ranks(dist.get_rank(), world, local_rank)


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
    annotations = {job.name: load_annotations(job.annotation_file) for job in jobs}  # inputs checked before loading
    settings = EvalSettings.from_args(args, token_probs)
    ranks = _distributed()

    from swift.utils import import_external_file

    from utils.evaluation.engine import EngineConfig, load_engine

    import_external_file(str(REPO / "plugin.py"))
    attn_impl = "flash_attention_2" if args.use_flash_attention else args.attn_impl
    engine = load_engine(
        EngineConfig(
            model_path=settings.model_path,
            model_type=settings.model_type,
            adapters=settings.adapters,
            backend=settings.infer_backend,
            batch_size=settings.batch_size,
            torch_dtype=args.torch_dtype,
            attn_impl=attn_impl,
            dynamic_hd=settings.dynamic_hd,
            device_map=f"cuda:{ranks.local_rank}" if _cuda() else None,
            prompt_format=settings.prompt_format,
            vllm_kwargs=_vllm_kwargs(args, settings) if settings.infer_backend == "vllm" else {},
        )
    )
    for job in jobs:
        items = build_items(annotations[job.name], job.img_root)[: settings.limit]
        _evaluate_split(engine, items, job, settings, ranks)


def _vllm_kwargs(args, settings) -> dict:
    """VllmEngine arguments: memory share, tensor parallelism, the longest sequence (prompt + answer); eager on a
    CPU (vLLM's CPU build has no CUDA graphs)."""
    kwargs = {
        "gpu_memory_utilization": args.gpu_memory_utilization,
        "tensor_parallel_size": args.tensor_parallel_size,
        "max_model_len": 4096 + settings.max_new_tokens,
    }
    if not _cuda():
        kwargs["enforce_eager"] = True
    return kwargs


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _prepare_parts(job: SplitJob, settings: EvalSettings, ranks: Ranks) -> tuple[dict, list[int]]:
    """Agree, before anyone writes, on the fingerprint and the items already done; check the folder is shared.

    Rank 0 decides (clears the parts without --resume, checks or writes the fingerprint, reads what is done) and
    broadcasts the decision; every rank then confirms that it sees the token file rank 0 wrote. Any problem stops
    every rank with the same error before a single item is generated.
    """
    parts = job.out_dir / "parts"
    decision: dict = {}
    if ranks.rank == 0:
        try:
            fingerprint = evaluation_fingerprint(
                settings.model_path, list(settings.adapters), job.annotation_file, settings.generation()
            )
            if not settings.resume and parts.exists():
                shutil.rmtree(parts)
            parts.mkdir(parents=True, exist_ok=True)
            stored_path = parts / FINGERPRINT_FILE
            if stored_path.exists():
                differences = fingerprint_differences(read_json(stored_path), fingerprint)
                if differences:
                    raise InputError(
                        f"{parts}: these results were produced by another evaluation; resuming would mix them "
                        f"with this one ({'; '.join(differences)}). Use another --output_dir, or --no-resume to "
                        "start this split over"
                    )
            elif any(parts.glob("part-*.jsonl")):
                raise InputError(f"{parts}: results without a fingerprint (an older run?); use --no-resume")
            else:
                atomic_write_json(stored_path, fingerprint)
            token = uuid.uuid4().hex
            atomic_write_text(parts / SHARED_TOKEN_FILE, token)
            done = read_parts(parts)
            decision = {"token": token, "fingerprint": fingerprint, "done": sorted(done), "folder": str(job.out_dir)}
        except InputError as error:
            decision = {"error": str(error)}
    decision = ranks.broadcast(decision)
    if "error" in decision:
        raise InputError(decision["error"])
    token_path = parts / SHARED_TOKEN_FILE
    sees = token_path.is_file() and token_path.read_text() == decision["token"]
    blind = [rank for rank, ok in enumerate(ranks.gather(sees)) if not ok]
    if blind:
        raise InputError(
            f"--output_dir {decision['folder']}: not shared between the evaluation processes: rank(s) "
            f"{', '.join(map(str, blind))} cannot see what rank 0 writes there (this rank, {ranks.rank}, uses "
            f"{job.out_dir}). Multi-node evaluation needs an output folder on a filesystem every node mounts (rank 0 "
            "merges every rank's parts from it)"
        )
    return decision["fingerprint"], decision["done"]


def _evaluate_split(engine, items: list[EvalItem], job: SplitJob, settings: EvalSettings, ranks: Ranks) -> None:
    from tqdm import tqdm

    from utils.evaluation.engine import generate, sample

    parts = job.out_dir / "parts"
    fingerprint, done = _prepare_parts(job, settings, ranks)
    finished = set(done)
    mine = shard([item for item in items if item.id not in finished], ranks.rank, ranks.world)
    stream = ResultStream(parts / f"part-{ranks.rank}.jsonl")
    progress = tqdm(total=len(mine), desc=f"{job.name} (rank {ranks.rank})", disable=ranks.rank != 0, unit="sample")
    try:
        for start in range(0, len(mine), settings.batch_size):
            batch = mine[start : start + settings.batch_size]
            records, ready = [], []
            for item in batch:
                error = image_error(item.image_paths)
                if error and settings.strict:
                    raise InputError(f"{job.annotation_file}: index {item.id}: field 'image_ids': {error}")
                if error:
                    logger.warning("%s: index %d: %s (recorded, not scored)", job.annotation_file, item.id, error)
                    records.append(result_record(item, None, error))
                else:
                    ready.append(item)
            generations = generate(
                engine,
                ready,
                settings.max_new_tokens,
                logprobs=settings.token_probs,
                top_k=settings.top_k,
                keep_special_tokens=settings.prompt_format == "original",
            )
            if settings.num_samples and ready:
                drawn = sample(
                    engine, ready, settings.max_new_tokens, settings.num_samples, settings.temperature, settings.seed
                )
                for generation, samples in zip(generations, drawn):
                    generation["samples"] = samples
            records += [result_record(item, generation) for item, generation in zip(ready, generations)]
            stream.append(sorted(records, key=lambda r: r["id"]))
            progress.update(len(batch))
    finally:
        stream.close()
        progress.close()
    ranks.barrier()
    if ranks.rank == 0:
        _merge(items, job, settings, fingerprint, ranks.world)
    ranks.barrier()


def _merge(items: list[EvalItem], job: SplitJob, settings: EvalSettings, fingerprint: dict, world: int) -> None:
    done = read_parts(job.out_dir / "parts")
    missing = [item.id for item in items if item.id not in done]
    if missing:
        raise RuntimeError(
            f"{job.out_dir}: {len(missing)} items have no result after all ranks finished: {missing[:10]}"
        )
    results = [done[item.id] for item in items]
    summary = summarize(results)
    meta = {
        "model_path": settings.model_path,
        "adapters": list(settings.adapters),
        "annotation_file": str(job.annotation_file),
        "img_root": str(job.img_root),
        "max_new_tokens": settings.max_new_tokens,
        "dynamic_hd": settings.dynamic_hd,
        "prompt_format": settings.prompt_format,
        "infer_backend": settings.infer_backend,
        "num_samples_per_item": settings.num_samples,
        "temperature": settings.temperature if settings.num_samples else None,
        "world_size": world,
        "fingerprint": fingerprint,
    }
    out_dir = job.out_dir
    atomic_write_json(out_dir / "results.json", final_results(results, summary, meta))
    atomic_write_json(out_dir / "summary.json", summary)
    title = f"{out_dir.name}: {settings.model_path}"
    accuracy_chart(summary, out_dir / "accuracy_by_type.png", title)
    if settings.token_probs:
        atomic_write_text(out_dir / "report.html", render_report(results, title, settings.low_prob))
    (out_dir / "parts" / SHARED_TOKEN_FILE).unlink(missing_ok=True)
    print(format_summary(summary, title))
    print(f"results: {out_dir / 'results.json'}")
