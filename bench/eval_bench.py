"""Evaluation speed on CPU with the tiny model, 64 samples of the synthetic test splits, greedy decoding.

    .venv/bin/python bench/eval_bench.py [--max-new-tokens 64] [--threads 2] [--model DIR --data-root DIR]

Without `--model` / `--data-root` it builds the tiny model and synthetic data as `make demo` does, in a temporary
folder (a fresh clone has neither).

- batched: our evaluation core (`utils.evaluation.engine.generate`), batch 16, against a one-sample-at-a-time loop like
  the original's (the same engine and template, one request per `generate` call), in the same process. Reports the
  samples/s ratio and whether the greedy answers are identical.
- token-probability export (log-probs + top-5 alternatives) against plain batched evaluation: ratio of the median
  times of 5 alternating rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from utils.data.annotations import load_annotations  # noqa: E402
from utils.evaluation.results import build_items  # noqa: E402


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="checkpoint (default: a tiny model built here, as make demo builds it)")
    parser.add_argument("--data-root", help="MIMIC-VQA-CoT tree (default: synthetic data built here, as make demo)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        # A fresh clone has neither: build them as `make demo` does (seconds), unless given.
        if args.model is None:
            from tools.make_tiny_model import build

            args.model = str(build(Path(work) / "tiny-phi4mm", seed=0))
        if args.data_root is None:
            from tools.make_demo_data import generate

            args.data_root = str(Path(work) / "MIMIC-VQA-CoT")
            generate(Path(args.data_root), seed=0, test_size=64, pool_size=16, image_size=112)
        return run(args)


def run(args) -> int:
    torch.set_num_threads(args.threads)
    from swift.utils import import_external_file

    import_external_file(str(REPO / "plugin.py"))
    from utils.evaluation.engine import EngineConfig, generate, load_engine

    data_root = Path(args.data_root)
    items = []
    for split in ("test_basic", "test_compare", "test_region"):
        rows = load_annotations(data_root / "annotations" / "eval" / f"{split}_vqa.json")
        items += build_items(rows, data_root / "images")
    items = items[:64]
    engine = load_engine(EngineConfig(model_path=args.model, batch_size=16, torch_dtype="float32", attn_impl="sdpa"))
    generate(engine, items[:2], 4)  # warm-up

    def batched(logprobs: bool = False):
        out = []
        for start in range(0, len(items), 16):
            out += generate(engine, items[start : start + 16], args.max_new_tokens, logprobs=logprobs, top_k=5)
        return out

    def one_at_a_time():
        return [generate(engine, [item], args.max_new_tokens)[0] for item in items]

    t_batched, batched_out = _timed(batched)
    t_single, single_out = _timed(one_at_a_time)
    # Alternate the two and take medians: single timings of sub-second runs on a shared 2-core box swing by 2x.
    rounds = [(_timed(batched)[0], _timed(lambda: batched(logprobs=True))[0]) for _ in range(5)]
    t_plain = statistics.median(r[0] for r in rounds)
    t_tokens = statistics.median(r[1] for r in rounds)
    same = [a["generated_text"] for a in batched_out] == [b["generated_text"] for b in single_out]
    print(f"{len(items)} samples, {args.max_new_tokens} new tokens, {args.threads} threads, CPU, tiny model")
    print(f"one at a time (original-style): {len(items) / t_single:7.1f} samples/s")
    print(f"batched (16):                   {len(items) / t_batched:7.1f} samples/s")
    print(f"batched / one-at-a-time:        {t_single / t_batched:7.1f}x   (target >= 5x)")
    print(f"identical greedy answers:       {same}")
    print(f"token-prob export / plain:      {t_tokens / t_plain:7.2f}x   (target <= 1.2x)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
