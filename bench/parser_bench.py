"""Hostile text: every parser of model text and every reward on 1 MB of adversarial repetition, one core.

    .venv/bin/python bench/parser_bench.py [--megabytes 1]

Each pattern is repeated up to the size; each function gets the whole text (rewards against a short reference). A
quadratic parser shows up as seconds or minutes here. The baseline line is the same functions on 1 MB of plain
synthetic reasoning, in the same process, so the ratio says how much worse the hostile pattern is than normal text.
Target: every cell <= 1 s.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rexkg.rules import extract_rules  # noqa: E402
from utils.scoring.answers import answer_items, answer_span, first_sentence, think_text  # noqa: E402
from utils.scoring.consistency import consistency_reward  # noqa: E402
from utils.scoring.kg_reward import KGScorer, kg_jaccard  # noqa: E402
from utils.scoring.rewards import answer_f1, normalized_accuracy, r1v_accuracy, think_answer_format  # noqa: E402

REFERENCE = "<think>Small left pleural effusion. No pneumothorax.</think><answer>left pleural effusion</answer>"
PATTERNS = {
    "<answer>": "<answer>",
    "</answer>": "</answer>",
    "<think>": "<think>",
    "<think><answer>": "<think><answer>",
    "<answer>x\\n": "<answer>x\n",
    "</think><answer>": "</think><answer>",
    "<ANSWER>a</answer": "<ANSWER>a</answer",
    "commas": ",",
    "1.5 ": "1.5 ",
    "no ": "no ",
    "left pleural ": "left pleural ",
    "no evidence of ": "no evidence of ",
    "effusion, ": "effusion, ",
    "effusion has resolved ": "effusion has resolved ",
    "opacity suggesting effusion ": "opacity suggesting effusion ",
    "left right upper ": "left right upper ",
    "3 cm ": "3 cm ",
    "no left effusion or ": "no left effusion or ",
    "x": "x",
}


def _functions(scorer: KGScorer) -> dict:
    return {
        "think_text": think_text,
        "answer_span": answer_span,
        "first_sentence": first_sentence,
        "answer_items": lambda text: answer_items(text),
        "r1v_accuracy": lambda text: r1v_accuracy(text, REFERENCE),
        "normalized_accuracy": lambda text: normalized_accuracy(text, REFERENCE),
        "answer_f1": lambda text: answer_f1(text, REFERENCE),
        "think_answer_format": think_answer_format,
        "kg_extract_rules": lambda text: extract_rules(text, memoize=False),
        "kg_jaccard": lambda text: kg_jaccard(scorer.score([text], [REFERENCE])[0]),
        # the question of every type is checked: the side and presence checks extract the reasoning's graph
        "consistency": lambda text: consistency_reward("Is there any evidence of pleural effusion?", text),
    }


def _seconds(function, text: str) -> float:
    start = time.perf_counter()
    function(text)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, default=1.0)
    args = parser.parse_args(argv)
    size = int(args.megabytes * 1_000_000)
    functions = _functions(KGScorer(lambda texts: [extract_rules(text, memoize=False) for text in texts]))
    plain = (REFERENCE.replace("<answer>", " ").replace("</answer>", " ") + " ") * (size // len(REFERENCE) + 1)
    baseline = {name: _seconds(function, plain[:size]) for name, function in functions.items()}
    width = max(map(len, functions))
    print(f"seconds on {args.megabytes:g} MB (baseline: plain reasoning text; ratio = pattern / baseline)")
    print(f"{'function':<{width}}  {'baseline':>8}  {'worst pattern':<20} {'s':>6} {'ratio':>6}")
    worst_overall = 0.0
    for name, function in functions.items():
        timings = {
            label: _seconds(function, (unit * (size // len(unit) + 1))[:size]) for label, unit in PATTERNS.items()
        }
        label, worst = max(timings.items(), key=lambda item: item[1])
        worst_overall = max(worst_overall, worst)
        print(f"{name:<{width}}  {baseline[name]:>8.3f}  {label:<20} {worst:>6.3f} {worst / baseline[name]:>6.1f}")
    print(f"slowest cell: {worst_overall:.3f} s (target <= 1 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
