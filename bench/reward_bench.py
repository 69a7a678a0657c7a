"""KG reward latency, one core: one call on 64 completions with 8 distinct references, through the ms-swift reward
adapters (`external_kg_jac`, `external_kg_f1`), rules backend.

    .venv/bin/python bench/reward_bench.py

Rows (medians of repeated calls, each call on fresh completions):
- cold: the first call of a run. Reference cache and sentence memo empty; the extractor itself is loaded, as it is
  once the trainer has built the reward.
- warm: a later step. References cached, new completions written in the same sentence pool (the synthetic corpus),
  so repeated sentences hit the sentence memo as formulaic radiology text does.
- warm, unseen sentences: the worst case, every completion sentence new (a unique word appended to each).
- baseline: the original's work per call, in this process: every reference re-extracted, nothing memoised.
  Reported as baseline / warm.
Completions are ~200-word `<think>` passages with an `<answer>`.
"""

from __future__ import annotations

import itertools
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.kg_bench import reasoning_texts  # noqa: E402
from rexkg import get_extractor  # noqa: E402
from rexkg.rules import clear_sentence_cache  # noqa: E402
from utils.scoring.kg_reward import KGScorer  # noqa: E402

_UNIQUE = itertools.count()


def _unique_word() -> str:
    n, letters = next(_UNIQUE), ""
    while True:
        n, r = divmod(n, 26)
        letters += chr(ord("a") + r)
        if n == 0:
            return "zz" + letters


def _as_completion(text: str, unseen: bool = False) -> str:
    if unseen:
        text = " ".join(f"{s.strip()} {_unique_word()}." for s in text.split(".") if s.strip())
    return f"<think>{text}</think><answer>yes</answer>"


def _timed(reward, completions: list[str], references: list[str]) -> float:
    start = time.perf_counter()
    reward(completions, solution=references)
    return (time.perf_counter() - start) * 1000


def main() -> int:
    torch.set_num_threads(1)
    from swift.utils import import_external_file

    import_external_file(str(Path(__file__).resolve().parents[1] / "plugin.py"))
    from swift.rewards import orms

    extractor = get_extractor("rules")
    references = [_as_completion(t) for t in reasoning_texts(8, seed=99)] * 8
    batches = [[_as_completion(t) for t in reasoning_texts(64, seed=seed)] for seed in range(40)]
    print(f"64 completions (~{sum(len(t.split()) for t in batches[0]) // 64} words), 8 distinct references, 1 core")
    print(f"{'reward':18s} {'cold':>7s} {'warm':>7s} {'warm, unseen':>13s} {'baseline':>9s} {'baseline/warm':>14s}")
    for name in ("external_kg_jac", "external_kg_f1"):
        reward = orms[name](args=None)
        fresh = iter(batches)
        cold, warm, unseen, baseline = [], [], [], []
        for _ in range(8):
            clear_sentence_cache()
            reward.scorer = KGScorer(extractor)
            cold.append(_timed(reward, next(fresh), references))
            warm.extend(_timed(reward, next(fresh), references) for _ in range(3))
            unseen_batch = [_as_completion(t, unseen=True) for t in reasoning_texts(64, seed=len(warm))]
            unseen.append(_timed(reward, unseen_batch, references))
            reward.scorer = KGScorer(extractor, cache_size=0)
            clear_sentence_cache()
            baseline_batch = [_as_completion(t, unseen=True) for t in reasoning_texts(64, seed=len(warm))]
            baseline_refs = [_as_completion(t, unseen=True) for t in reasoning_texts(8, seed=99)] * 8
            baseline.append(_timed(reward, baseline_batch, baseline_refs))
        c, w, u, b = (statistics.median(x) for x in (cold, warm, unseen, baseline))
        print(f"{name:18s} {c:5.1f}ms {w:5.1f}ms {u:11.1f}ms {b:7.1f}ms {b / w:13.1f}x")
    print("targets: cold <= 100 ms, warm <= 50 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
