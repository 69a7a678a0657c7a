"""Size and headless-Chromium load time of the error-analysis pages at scale.

    .venv/bin/python bench/report_bench.py [--samples 1000] [--steps 625]

report.html: `--samples` evaluation records in the shape evaluate_token_prob.py writes (about 60 tokens each, 5
alternatives per token, one or two X-rays per sample rendered at 1024 x 1024 and embedded at the pages' 512-pixel
size). completions.html: `--steps` GRPO steps of 64 completions (8 groups of 8), 128 tokens each, as train.sh's
paper recipe logs them on one rank. Load time = `driver.get` until the page's scripts have rendered its first page
(and, for the completions page, the first steps' chunk); the baseline is a blank page loaded by the same browser in
the same process, so the ratio says what the page itself costs. Page turns are timed the same way.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tools.make_demo_data import generate  # noqa: E402
from utils.data.annotations import image_path  # noqa: E402
from utils.reports.browser import browser_missing, headless_chromium  # noqa: E402
from utils.reports.completions import write_completions_report  # noqa: E402
from utils.reports.evaluation import PAGE_SIZE, render_report  # noqa: E402
from utils.scoring.kg_reward import get_kg_scorer  # noqa: E402


def evaluation_records(data_root: Path, count: int) -> list[dict]:
    rows = json.loads((data_root / "annotations/eval/valid_all_vqa.json").read_text())
    rng = random.Random(0)
    records = []
    for i, row in enumerate(rows[:count]):
        response = rng.choice(rows)["explanation"]
        tokens = [response[k : k + 4] for k in range(0, len(response), 4)][:60]
        records.append(
            {
                "id": i,
                "question": row["question"],
                "answer": row["answer"],
                "explanation": row["explanation"],
                "generated_text": response,
                "is_correct": rng.random() < 0.6,
                "is_correct_strict": rng.random() < 0.5,
                "image_paths": [image_path(stem, data_root / "images") for stem in row["image_ids"]],
                "generated_tokens": tokens,
                "token_probabilities": [rng.random() for _ in tokens],
                "top_alternatives": [
                    [{"token": "abc", "logprob": -rng.random() * 5} for _ in range(5)] for _ in tokens
                ],
                **{field: row[field] for field in ("semantic_type", "question_type", "answer_type")},
            }
        )
    return records


def completion_rows(steps: int) -> list[dict]:
    rng = random.Random(0)
    rows = []
    for step in range(1, steps + 1):
        n = 64
        rows.append(
            {
                "step": [str(step)] * n,
                "prompt": [f"<|user|>\n<image>Question {step}-{i // 8}?<|end|>\n<|assistant|>\n" for i in range(n)],
                "completion": ["<think>The lungs are clear. " * 8 + "</think><answer>no</answer>"] * n,
                "solution": ["<think>The lungs are clear.</think><answer>no</answer>"] * n,
                "R1VAccuracy": [float(rng.random() < 0.5) for _ in range(n)],
                "KGJaccard": [rng.random() for _ in range(n)],
                "advantages": [rng.gauss(0, 1) for _ in range(n)],
                "completion_tokens": [[" lung"] * 128 for _ in range(n)],
                "token_logps": [[round(-rng.random(), 6) for _ in range(128)] for _ in range(n)],
            }
        )
    return rows


def timed_load(driver, url: str, ready: str) -> float:
    from selenium.webdriver.support.ui import WebDriverWait

    start = time.perf_counter()
    driver.get(url)
    WebDriverWait(driver, 120, poll_frequency=0.01).until(lambda d: d.execute_script(ready))
    return time.perf_counter() - start


def timed_click(driver, selector: str, ready: str) -> float:
    from selenium.webdriver.support.ui import WebDriverWait

    before = int(driver.execute_script("return document.body.dataset.rendered"))
    start = time.perf_counter()
    driver.execute_script(f"document.querySelector({selector!r}).click()")
    WebDriverWait(driver, 60, poll_frequency=0.01).until(
        lambda d: int(d.execute_script("return document.body.dataset.rendered")) > before and d.execute_script(ready)
    )
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=625)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.samples <= PAGE_SIZE or args.steps <= 2:
        parser.error(f"--samples must exceed one page ({PAGE_SIZE}) and --steps 2, so that a page can be turned")
    if browser_missing():
        print(f"report_bench: {browser_missing()}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        generate(root / "data", seed=0, test_size=1, pool_size=args.samples, image_size=1024)
        print(f"data: {args.samples} samples with 1024 x 1024 images in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        records = evaluation_records(root / "data", args.samples)
        report = root / "report.html"
        report.write_text(render_report(records, "bench", scorer=get_kg_scorer("rules")))
        render_s = time.perf_counter() - start
        start = time.perf_counter()
        rows = completion_rows(args.steps)
        completions = root / "run" / "completions.html"
        logging_rows = [
            {"global_step/max_steps": f"{s}/{args.steps}", "rewards/R1VAccuracy/mean": math.sin(s / 50) ** 2}
            for s in range(1, args.steps + 1)
        ]
        counts = write_completions_report(rows, [], logging_rows, completions, "bench")
        completions_s = time.perf_counter() - start
        sizes = {
            "report.html": report.stat().st_size,
            "completions.html": completions.stat().st_size,
            "completions chunk files": sum(
                p.stat().st_size for p in completions.with_name("completions_files").iterdir()
            ),
        }
        blank = root / "blank.html"
        blank.write_text("<!DOCTYPE html><html><body></body></html>")
        with headless_chromium() as driver:
            loads = {"blank": [], "report": [], "report page turn": [], "completions": [], "completions page turn": []}
            rendered = "return Number(document.body.dataset.rendered || 0) > 0"
            steps_ready = rendered + " && document.querySelectorAll('.step .loading').length === 0"
            for _ in range(args.repeats):
                loads["blank"].append(timed_load(driver, blank.as_uri(), "return document.readyState === 'complete'"))
                loads["report"].append(timed_load(driver, report.as_uri(), rendered))
                loads["report page turn"].append(timed_click(driver, ".pager .next", "return true"))
                loads["completions"].append(timed_load(driver, completions.as_uri(), steps_ready))
                loads["completions page turn"].append(
                    timed_click(
                        driver, ".pager .next", "return document.querySelectorAll('.step .loading').length === 0"
                    )
                )
    blank_s = statistics.median(loads["blank"])
    print(f"report.html, {args.samples} samples: written in {render_s:.1f} s")
    print(
        f"completions.html, {counts['steps']} steps: written in {completions_s:.1f} s, {counts['chunks']} chunk files"
    )
    for name, size in sizes.items():
        print(f"  {name:24s} {size / 1e6:8.1f} MB")
    for name, times in loads.items():
        median = statistics.median(times)
        print(f"  {name:24s} median {median:6.3f} s over {len(times)} loads ({median / blank_s:6.1f}x a blank page)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
