"""KG extraction benchmark, one core: rules throughput, reward-sized call latency, rules vs neural speed ratio,
and a 1 MB text.

    .venv/bin/python bench/kg_bench.py [--neural-texts 2]

Texts are ~200-word reasoning passages assembled from the synthetic corpus. The neural figure runs the ReXKG
architecture (PURE span NER + relation classifier) built from a randomly initialised BERT-base config, on CPU with
one thread; the ratio is rules texts/s over neural texts/s measured in this same process. The rules figures bypass
the sentence memo, except the one so labelled: the same texts again and again, so it is the memo's best case (its
hit rate is printed; `bench/reward_bench.py` measures it on new completions).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from rexkg.rules import clear_sentence_cache, extract_rules, sentence_cache_info  # noqa: E402
from utils.data.synthetic_cxr import corpus  # noqa: E402
from utils.scoring.answers import think_text  # noqa: E402


def reasoning_texts(count: int, words: int = 200, seed: int = 0) -> list[str]:
    """`count` texts of about `words` words, each a shuffle of synthetic reasoning sentences."""
    rng = random.Random(seed)
    sentences = sorted(
        {
            s.strip() + "."
            for line in corpus(seed, 60)
            if "<think>" in line
            for s in think_text(line).split(".")
            if s.strip()
        }
    )
    texts = []
    for _ in range(count):
        chosen = []
        while sum(len(s.split()) for s in chosen) < words:
            chosen.append(rng.choice(sentences))
        texts.append(" ".join(chosen))
    return texts


def extract_core(text: str):
    """The rules extractor without its sentence memo: every figure here is the extractor's own work."""
    return extract_rules(text, memoize=False)


def rate(fn, items, min_seconds: float = 1.0) -> float:
    """Items per second of `fn` over `items`, repeated for at least `min_seconds`."""
    done, start = 0, time.perf_counter()
    while True:
        for item in items:
            fn(item)
        done += len(items)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--neural-texts", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    texts = reasoning_texts(256)
    print(f"texts: {len(texts)} x ~{sum(len(t.split()) for t in texts) // len(texts)} words")

    rules_rate = rate(extract_core, texts, 2.0)
    print(f"rules throughput:              {rules_rate:8.0f} texts/s/core   (target >= 1000)")
    clear_sentence_cache()
    memo_rate = rate(extract_rules, texts, 2.0)  # the first pass fills the memo; later passes hit it
    memo = sentence_cache_info()
    print(
        f"rules throughput, memo:        {memo_rate:8.0f} texts/s/core   (target >= 2000; "
        f"{memo.hits / max(1, memo.hits + memo.misses):.1%} sentence hits)"
    )

    completions, references = texts[:64], texts[64:72]
    latencies = []
    for _ in range(20):
        start = time.perf_counter()
        for text in completions + references:
            extract_core(text)
        latencies.append(time.perf_counter() - start)
    print(
        f"reward-sized call (64+8):      {1000 * sorted(latencies)[len(latencies) // 2]:8.1f} ms median "
        "(target <= 100)"
    )

    from transformers import BertConfig

    from rexkg.neural import NeuralExtractor, save_random_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        save_random_checkpoint(Path(tmp) / "model", Path(tmp) / "tok", BertConfig())  # BERT-base shape
        neural = NeuralExtractor.from_dirs(Path(tmp) / "model", Path(tmp) / "tok", batch_size=32)
        sample = texts[: args.neural_texts]
        start = time.perf_counter()
        neural.extract(sample)
        neural_rate = len(sample) / (time.perf_counter() - start)
    print(f"neural (BERT-base, random):    {neural_rate:8.3f} texts/s/core")
    print(f"rules / neural speed ratio:    {rules_rate / neural_rate:8.0f}x         (target >= 500)")

    big = (" ".join(texts) * 10)[:1_000_000]
    start = time.perf_counter()
    extract_core(big)
    print(f"1 MB text:                     {time.perf_counter() - start:8.2f} s          (target <= 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
