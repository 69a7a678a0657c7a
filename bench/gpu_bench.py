"""Know the node before the sweep: one GRPO step of the paper's recipe on the full-size Phi-4-multimodal, measured.

    python bench/gpu_bench.py                      # on one GPU of the node (sized to end within 8 minutes on an H200)
    python bench/gpu_bench.py --tiny               # the same code on the tiny model, on CPU (`make test` runs it)

No download and no checkpoint: the model is microsoft's full-size architecture built from the release config with
random bf16 weights (`tools/make_tiny_model.build(full_size=True)`), so its answers are noise and every completion runs
to the token limit, the slowest case. What it runs and measures:
- the vision tower's attention under sdpa at full size: the last patch of an unpadded crop must change the first
  patch's output (an encoder sees the whole crop);
- evaluation samples/s with `evaluate.py`'s engine, batched against one sample per `generate` call;
- real GRPO steps through `train.sh`, the paper's recipe: 8 generations of up to 256 tokens, DYNAMIC_HD=4, one
  MIMIC-sized (2544x3056) image per prompt, the vision LoRA trainable (FREEZE_NON_VISION_PARAMS=1), the KL reference
  copy (BETA=0.5), external_r1v_acc + external_kg_jac. Dynamic sampling is off: on a random model every group's
  rewards tie, and resampling would time the resample limit instead of a step. The first step is warm-up and left
  out of the means.

It reports the step time split into rollout generation, rewards and the rest (log-probs of the policy and the
reference, forward, backward, optimizer), rollout tokens/s, the KG reward's share of a step, the peak memory next
to `tools/gpu_plan.py`'s prediction for the same settings, and the hours of the README's sweep (5,000 prompts on 8
GPUs) at the measured step time. One JSON file (`<out>/gpu_bench.json`) holds it with the machine; a table is printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.gpu_plan import DEFAULT_IMAGE_SIZE, RecipePlan, memory_per_gpu, parameter_counts, schedule  # noqa: E402
from utils.cli import ArgumentParser  # noqa: E402
from utils.data.grpo_rows import annotation_to_grpo_row  # noqa: E402
from utils.data.synthetic_cxr import build_annotations, render_study  # noqa: E402
from utils.io import atomic_write_json, atomic_write_jsonl  # noqa: E402

logger = logging.getLogger("gpu_bench")
# The reward metrics' keys in logging.jsonl are ms-swift's class names of the rewards.
KG_REWARD_TIME = "time/reward/KGJaccard_s"


@dataclass(frozen=True)
class BenchSettings:
    """What one bench run builds and runs. `full()` is the paper's recipe; `tiny()` the same on CPU, in seconds."""

    tiny: bool
    warmup_steps: int
    measured_steps: int
    num_generations: int
    prompts_per_step: int  # per GPU
    completion_tokens: int
    dynamic_hd: int
    image_size: tuple[int, int]  # width, height
    eval_items: int
    eval_batch: int

    @classmethod
    def full(cls) -> BenchSettings:
        return cls(False, 1, 4, 8, 1, 256, 4, DEFAULT_IMAGE_SIZE, 8, 8)

    @classmethod
    def tiny_cpu(cls) -> BenchSettings:
        return cls(True, 1, 2, 8, 1, 16, 4, (224, 256), 4, 4)

    @property
    def grpo_steps(self) -> int:
        return self.warmup_steps + self.measured_steps

    @property
    def completions_per_step(self) -> int:
        return self.prompts_per_step * self.num_generations


def machine() -> dict:
    """The GPU (name, memory), torch, CUDA and the stack's versions."""
    import swift
    import torch
    import transformers

    facts = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "ms_swift": getattr(swift, "__version__", "unknown"),
        "gpu": None,
        "gpu_memory_gib": None,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        facts.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1))
    return facts


def build_model(settings: BenchSettings, output: Path) -> Path:
    """The bench's model: full size with random weights on the GPU, or the tiny model with an embedding larger than
    its tokenizer (as the release's is), so the tiny run takes the same paths."""
    from tools.make_tiny_model import build

    if settings.tiny:
        return build(output, seed=0, model_vocab_size=2048)
    return build(output, seed=0, full_size=True, device="cuda")


def build_data(settings: BenchSettings, root: Path) -> tuple[Path, list[dict]]:
    """Synthetic basic-VQA rows with one image of `settings.image_size` each: annotations (for the evaluation) and
    the GRPO set (for train.sh), enough prompts for every step."""
    count = max(settings.grpo_steps * settings.prompts_per_step, settings.eval_items)
    rows, studies = build_annotations("test_basic_vqa", count, random.Random(0))
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    width, height = settings.image_size
    for stem, study in sorted(studies.items()):
        image = render_study(study, max(width, height), random.Random(stem)).resize((width, height))
        image.save(images / f"{stem}.png")
    atomic_write_json(root / "annotations.json", rows)
    dataset = root / "grpo.jsonl"
    atomic_write_jsonl(dataset, [annotation_to_grpo_row(row, images) for row in rows])
    return dataset, rows


def vision_attention_check(engine) -> dict:
    """The last patch of an unpadded crop changes the first patch's output (bidirectional attention)."""
    import torch

    tower = engine.model.model.embed_tokens_extend.image_embed.img_processor
    parameter = next(tower.parameters())
    size, patch = tower.config.image_size, tower.config.patch_size
    pixels = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(parameter)
    changed = pixels.clone()
    changed[:, :, -patch:, -patch:] += 1.0
    mask = torch.ones(1, size // patch, size // patch, dtype=torch.bool, device=parameter.device)
    with torch.no_grad():
        before = tower(pixels, patch_attention_mask=mask).last_hidden_state
        after = tower(changed, patch_attention_mask=mask).last_hidden_state
    change = float((after[0, 0] - before[0, 0]).abs().max())
    return {"attention": tower.config._attn_implementation, "first_patch_change": change, "bidirectional": change > 0}


def evaluation_throughput(model: Path, rows: list[dict], image_root: Path, settings: BenchSettings) -> dict:
    """Samples/s of greedy evaluation, batched (`eval_batch` per call) and one sample per `generate` call; and the
    vision-attention check on the loaded model."""
    import torch
    from swift.utils import import_external_file

    from utils.evaluation.engine import EngineConfig, generate, load_engine
    from utils.evaluation.results import build_items

    import_external_file(str(ROOT / "plugin.py"))
    cuda = torch.cuda.is_available()
    engine = load_engine(
        EngineConfig(
            model_path=str(model),
            batch_size=settings.eval_batch,
            attn_impl="sdpa",
            dynamic_hd=settings.dynamic_hd,
            device_map="cuda:0" if cuda else None,
        )
    )
    attention = vision_attention_check(engine)
    items = build_items(rows[: settings.eval_items], image_root)
    generate(engine, items[:1], settings.completion_tokens)  # warm-up: kernels, caches

    def timed(call) -> float:
        if cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        call()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - started

    batched = timed(lambda: generate(engine, items, settings.completion_tokens))
    single = timed(lambda: [generate(engine, [item], settings.completion_tokens) for item in items])
    engine.model.to("cpu")  # the GRPO run that follows gets the whole GPU
    if cuda:
        torch.cuda.empty_cache()
    return {
        "vision_attention": attention,
        "evaluation": {
            "items": len(items),
            "batch_size": settings.eval_batch,
            "max_new_tokens": settings.completion_tokens,
            "batched_samples_per_s": len(items) / batched,
            "single_samples_per_s": len(items) / single,
            "batching_speedup": single / batched,
        },
    }


def run_grpo(model: Path, dataset: Path, out: Path, settings: BenchSettings) -> Path:
    """`train.sh` with the paper's recipe (module docstring); returns its logging.jsonl."""
    env = {
        **os.environ,
        "MODEL_PATH": str(model),
        "DATASET": str(dataset),
        "OUTPUT_DIR": str(out / "grpo"),
        "LOG_DIR": str(out / "logs"),
        "MAX_STEPS": str(settings.grpo_steps),
        "NUM_GENERATIONS": str(settings.num_generations),
        "PER_DEVICE_BATCH": str(settings.completions_per_step),
        "GRAD_ACCUM": "1",
        "MAX_COMPLETION_LENGTH": str(settings.completion_tokens),
        "DYNAMIC_HD": str(settings.dynamic_hd),
        "FREEZE_NON_VISION_PARAMS": "1",
        "BETA": "0.5",
        "REWARD_FUNCS": "external_r1v_acc external_kg_jac",
        "DYNAMIC_SAMPLE": "false",
        "WARMUP_RATIO": "0",
        "SAVE_STEPS": str(settings.grpo_steps),
        "SAVE_TOTAL_LIMIT": "1",
        "LOGGING_STEPS": "1",
        "DATALOADER_WORKERS": "0",
        "DATASET_NUM_PROC": "1",
        "NPROC_PER_NODE": "1",
    }
    env.pop("MAX_NEW_TOKENS", None)  # no train.sh knob: it would be taken for a misspelt MAX_COMPLETION_LENGTH
    log = out / "grpo.log"
    with log.open("w") as handle:
        completed = subprocess.run(["bash", str(ROOT / "train.sh")], env=env, stdout=handle, stderr=subprocess.STDOUT)
    if completed.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-30:]
        raise SystemExit("gpu_bench: train.sh failed (exit {}); the end of {}:\n{}".format(
            completed.returncode, log, "\n".join(tail)))  # fmt: skip
    return out / "grpo" / "logging.jsonl"


def step_figures(logging_file: Path, settings: BenchSettings) -> dict:
    """Means over the measured steps (after warm-up) of the step time and its parts, from train.sh's log."""
    steps = [row for row in map(json.loads, logging_file.read_text().splitlines()) if "step_time" in row]
    if len(steps) < settings.grpo_steps:
        raise SystemExit(f"gpu_bench: {logging_file} holds {len(steps)} steps, {settings.grpo_steps} were run")
    measured = steps[settings.warmup_steps :]

    def mean(key: str) -> float | None:
        values = [row[key] for row in measured if key in row]
        return statistics.fmean(values) if values else None

    step, generation, rewards, kg = (
        mean(k) for k in ("step_time", "time/generation_s", "time/rewards_s", KG_REWARD_TIME)
    )
    tokens = mean("completions/mean_length") * settings.completions_per_step
    peaks = [row["memory/peak_gib"] for row in steps if "memory/peak_gib" in row]
    return {
        "steps_measured": len(measured),
        "step_s": step,
        "generation_s": generation,
        "rewards_s": rewards,
        "rest_s": step - generation - rewards,
        "kg_reward_s": kg,
        "kg_reward_share_of_step": kg / step,
        "completion_tokens_per_step": tokens,
        "rollout_tokens_per_s": tokens / generation,
        "peak_memory_gib": max(peaks) if peaks else None,
    }


def predictions(settings: BenchSettings, step_s: float) -> dict:
    """`tools/gpu_plan.py`'s memory for the bench's settings, and the README's sweep at the measured step time."""
    plan = RecipePlan(
        dynamic_hd=settings.dynamic_hd,
        num_generations=settings.num_generations,
        per_device_batch=settings.completions_per_step,
        completion_tokens=settings.completion_tokens,
        image_size=settings.image_size,
    )
    memory = memory_per_gpu(parameter_counts(), plan)
    predicted = memory["policy_bf16"] + memory["reference_bf16"] + memory["grads_bf16"] + memory["adamw_bf16_states"]
    sweep = RecipePlan()  # 5,000 prompts x 8 generations on 8 GPUs, 8 completions per GPU and step
    steps = schedule(sweep)["steps"]
    return {
        "gpu_plan_memory_gib": predicted + memory["rollout_kv_cache"],
        "gpu_plan_parts_gib": memory,
        "sweep": {
            "prompts": sweep.samples,
            "gpus": sweep.gpus,
            "steps": steps,
            # data parallel: each GPU runs one step of this bench's size per optimizer step
            "hours": steps * step_s / 3600 if settings.completions_per_step == sweep.per_device_batch else None,
        },
    }


def table(report: dict) -> str:
    """The printed summary."""
    step, evaluation, attention = report["step"], report["evaluation"], report["vision_attention"]
    sweep, gpu = report["predicted"]["sweep"], report["machine"]
    peak = step["peak_memory_gib"]

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f} s"

    lines = [
        f"machine: {gpu['gpu'] or 'CPU'} ({gpu['gpu_memory_gib'] or '-'} GiB), torch {gpu['torch']}, "
        f"CUDA {gpu['cuda']}, transformers {gpu['transformers']}, ms-swift {gpu['ms_swift']}",
        f"model: {report['model']}",
        f"GRPO step ({report['settings']['completions_per_step']} completions of up to "
        f"{report['settings']['completion_tokens']} tokens, mean of {step['steps_measured']} steps after warm-up)",
        f"  total                          {seconds(step['step_s'])}",
        f"  rollout generation             {seconds(step['generation_s'])}",
        f"  rewards                        {seconds(step['rewards_s'])} (KG reward {seconds(step['kg_reward_s'])}, "
        f"{100 * step['kg_reward_share_of_step']:.1f} % of the step)",
        f"  log-probs, forward, backward   {seconds(step['rest_s'])}",
        f"rollout tokens/s                 {step['rollout_tokens_per_s']:.1f}",
        "peak memory                      "
        + ("- (no GPU)" if peak is None else f"{peak:.1f} GiB")
        + f"; tools/gpu_plan.py predicts {report['predicted']['gpu_plan_memory_gib']:.1f} GiB for the full size "
        "(weights, optimizer, rollout KV cache; activations not counted)",
        f"evaluation samples/s             batched {evaluation['batched_samples_per_s']:.2f}, one per call "
        f"{evaluation['single_samples_per_s']:.2f} (x{evaluation['batching_speedup']:.1f})",
        f"vision tower ({attention['attention']}): the last patch "
        + ("changes" if attention["bidirectional"] else "does NOT change")
        + f" the first patch's output (max change {attention['first_patch_change']:.3g})",
    ]
    if sweep["hours"] is not None:
        lines.append(
            f"the README's sweep ({sweep['prompts']} prompts, {sweep['gpus']} GPUs, {sweep['steps']} steps): "
            f"{sweep['hours']:.1f} h at this step time"
            + (" (tiny model on CPU: not a prediction for the full size)" if report["settings"]["tiny"] else "")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="the tiny model on CPU: checks the script, in seconds")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "gpu", help="work folder (%(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    if not args.tiny and not torch.cuda.is_available():
        print(
            "gpu_bench: no CUDA device here; run it on a GPU node, or --tiny to check the script on CPU",
            file=sys.stderr,
        )
        return 2
    settings = BenchSettings.tiny_cpu() if args.tiny else BenchSettings.full()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    started = time.perf_counter()
    logger.info("gpu_bench: building the %s model and the data in %s", "tiny" if args.tiny else "full-size", args.out)
    model = build_model(settings, args.out / "model")
    dataset, rows = build_data(settings, args.out / "data")
    logger.info("gpu_bench: evaluation throughput and the vision-attention check")
    measured = evaluation_throughput(model, rows, args.out / "data" / "images", settings)
    logger.info("gpu_bench: %d GRPO steps through train.sh (log: %s)", settings.grpo_steps, args.out / "grpo.log")
    step = step_figures(run_grpo(model, dataset, args.out, settings), settings)
    report = {
        "machine": machine(),
        "model": "tiny Phi-4-MM (CPU)" if args.tiny else "full-size Phi-4-multimodal, random bf16 weights",
        "settings": {**asdict(settings), "completions_per_step": settings.completions_per_step},
        "step": step,
        **measured,
        "predicted": predictions(settings, step["step_s"]),
        "wall_s": time.perf_counter() - started,
    }
    atomic_write_json(args.out / "gpu_bench.json", report)
    print(table(report))
    print(f"written: {args.out / 'gpu_bench.json'} ({report['wall_s']:.0f} s)")
    return 0 if measured["vision_attention"]["bidirectional"] else 1


if __name__ == "__main__":
    sys.exit(main())
