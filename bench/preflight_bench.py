"""Cost of train.sh's pre-flight check (`tools/validate_data.py`: every image decoded in full) on MIMIC-sized films.

    .venv/bin/python bench/preflight_bench.py [--images 48] [--workers 2]

Writes `--images` synthetic 2544 x 3056 greyscale JPEGs (MIMIC-CXR's size, quality 95; 2.8 MB each) and a GRPO set
with one row per image, then times the check cold (nothing cached) with one process and with `--workers`
processes, and warm (the cache from the cold run). Figures are per 1,000 images (scaled from `--images`). The
ratio is against one GRPO step of the tiny model on this CPU, measured in the same process (`step_time` of a 3-step
run through ms-swift, 4 prompts x 4 generations, 64-token completions): a real 8-GPU step is far longer.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from utils.data.validation import ImageCheckCache, check_file  # noqa: E402

MIMIC_SIZE = (2544, 3056)  # width x height of a MIMIC-CXR JPEG


def write_films(folder: Path, count: int) -> list[Path]:
    """Synthetic chest-film-like JPEGs: smooth shading plus noise, so they compress as real films do (~1 MB)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    width, height = MIMIC_SIZE
    y, x = np.mgrid[0:height, 0:width]
    base = 128 + 60 * np.sin(x / 300.0) * np.cos(y / 400.0)
    paths = []
    for i in range(count):
        pixels = np.clip(base + rng.normal(0, 5, size=base.shape), 0, 255).astype("uint8")
        path = folder / f"film_{i:04d}.jpg"
        Image.fromarray(pixels, mode="L").save(path, quality=95)
        paths.append(path)
    return paths


def grpo_step_seconds(work: Path) -> float:
    """Median `step_time` of a 3-step tiny-model GRPO run through ms-swift with our plugin (seconds)."""
    import statistics

    from swift import RLHFArguments, rlhf_main

    from tools.make_demo_data import generate
    from tools.make_tiny_model import build
    from utils.data.grpo_rows import annotation_to_grpo_row
    from utils.io import atomic_write_jsonl
    from utils.training_logs import read_training_log

    model = build(work / "tiny", seed=0)
    data = work / "data"
    generate(data, seed=0, test_size=8, pool_size=16, image_size=112)
    rows = json.loads((data / "annotations" / "eval" / "valid_all_vqa.json").read_text())
    atomic_write_jsonl(work / "rows.jsonl", [annotation_to_grpo_row(r, data / "images") for r in rows])
    rlhf_main(
        RLHFArguments(
            rlhf_type="grpo",
            model=str(model),
            model_type="phi4_mm_native",
            dataset=[str(work / "rows.jsonl")],
            external_plugins=[str(REPO / "plugin.py")],
            reward_funcs=["external_r1v_acc", "external_kg_jac"],
            tuner_type="full",
            torch_dtype="float32",
            use_vllm=False,
            num_generations=4,
            per_device_train_batch_size=4,
            max_completion_length=64,
            max_steps=3,
            logging_steps=1,
            save_strategy="no",
            report_to=["none"],
            check_model=False,
            dataset_num_proc=1,
            dataloader_num_workers=0,
            output_dir=str(work / "grpo"),
            add_version=False,
            seed=0,
        )
    )
    steps = [row["step_time"] for row in read_training_log(work / "grpo" / "logging.jsonl") if "step_time" in row]
    return statistics.median(steps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        films = write_films(work, args.images)
        size_mb = sum(p.stat().st_size for p in films) / len(films) / 1e6
        rows = work / "set.jsonl"
        rows.write_text(
            "".join(
                json.dumps(
                    {
                        "messages": [{"role": "user", "content": "<image>Q?"}],
                        "images": [str(p)],
                        "solution": "<think>x</think><answer>y</answer>",
                        "answer": ["y"],
                    }
                )
                + "\n"
                for p in films
            )
        )
        timings = {}
        for label, workers in (("cold, 1 process", 1), (f"cold, {args.workers} processes", args.workers)):
            start = time.perf_counter()
            check = check_file(
                rows, kind="grpo", workers=workers, cache=ImageCheckCache(work / f"cache{workers}.json")
            )
            timings[label] = time.perf_counter() - start
            assert not check.row_problems, check.messages()[:3]
        start = time.perf_counter()
        check_file(rows, kind="grpo", workers=args.workers, cache=ImageCheckCache(work / f"cache{args.workers}.json"))
        timings["warm (cached)"] = time.perf_counter() - start
        step = grpo_step_seconds(work)
    per_thousand = {label: seconds / args.images * 1000 for label, seconds in timings.items()}
    print(f"{args.images} MIMIC-sized JPEGs ({MIMIC_SIZE[0]} x {MIMIC_SIZE[1]}, {size_mb:.2f} MB each)")
    for label, seconds in per_thousand.items():
        print(f"pre-flight check, {label:22s} {seconds:8.2f} s per 1,000 images  ({seconds / step:8.1f} x one step)")
    print(f"one tiny-model GRPO step on this CPU: {step:.3f} s (median step_time of 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
