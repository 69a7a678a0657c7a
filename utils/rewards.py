"""Answer and format rewards: pure functions of one completion and its reference, no ms-swift needed.

Every function accepts any value for the completion (malformed, truncated, empty, not even a string) and returns a
float in [0, 1]; none of them raises on model output. The ms-swift adapters in `swift_patches/rewards.py` only
unpack columns and call these.

>>> r1v_accuracy("<think>…</think><answer>Left lung, right lung</answer>", "<answer>right lung</answer>")
1.0
>>> answer_f1("<answer>left lung, right lung</answer>", "<answer>right lung</answer>")
0.6666666666666666
>>> think_answer_format("<think>Small effusion.</think><answer>yes</answer>")
1.0
"""

from __future__ import annotations

import re

from utils.answers import ANY_TAG, answer_items, answer_span, first_sentence

_WELL_FORMED = re.compile(r"\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*", re.DOTALL)


def _answer_or_first_sentence(text: str) -> str:
    span = answer_span(text)
    return span if span is not None else first_sentence(text)


def r1v_accuracy(completion: str, solution: str) -> float:
    """`external_r1v_acc`, the original accuracy reward: 1.0 when the completion's answer items and the reference's
    share at least one item, else 0.0.

    The answer of each side is its `<answer>` span, or its first sentence when it has none. Both are split into
    `answer_items`. Two empty answers agree (1.0); an empty answer against a non-empty one scores 0.0. Any overlap
    pays, so listing every possible answer is rewarded; `answer_f1` closes that loophole.

    >>> r1v_accuracy("<answer>yes</answer>", "<think>Effusion.</think><answer>Yes</answer>")
    1.0
    >>> r1v_accuracy("No. Nothing is seen.", "No pneumothorax is seen. The lungs are clear.")
    0.0
    """
    predicted = answer_items(_answer_or_first_sentence(completion))
    reference = answer_items(_answer_or_first_sentence(solution))
    if not reference:
        return float(not predicted)
    return float(bool(predicted & reference))


def answer_f1(completion: str, solution: str) -> float:
    """`external_answer_strict`: F1 between the completion's and the reference's answer items.

    Strict where `r1v_accuracy` is lenient: when the reference has an `<answer>` span the completion must have one
    too (else 0.0), and every extra item costs precision, so naming all candidates no longer pays (one right item
    among ten scores 2/11). F1 rather than exact set match keeps partial credit on multi-item answers, which keeps
    the reward spread that GRPO's group advantages need. References without an `<answer>` span fall back to first
    sentences on both sides, as in `r1v_accuracy`.

    >>> answer_f1("<answer>yes</answer>", "<answer>yes</answer>"), answer_f1("yes", "<answer>yes</answer>")
    (1.0, 0.0)
    """
    reference_span = answer_span(solution)
    if reference_span is None:
        predicted_text, reference_text = first_sentence(completion), first_sentence(solution)
    else:
        predicted_text, reference_text = answer_span(completion), reference_span
        if predicted_text is None:
            return 0.0
    predicted, reference = answer_items(predicted_text), answer_items(reference_text)
    if not predicted and not reference:
        return 1.0
    hits = len(predicted & reference)
    if hits == 0:
        return 0.0
    precision, recall = hits / len(predicted), hits / len(reference)
    return 2 * precision * recall / (precision + recall)


def think_answer_format(completion: str) -> float:
    """`external_format`: 1.0 when the completion is exactly `<think>…</think><answer>…</answer>` (whitespace
    allowed around the blocks), both non-blank and neither containing another think/answer tag; else 0.0.

    >>> think_answer_format("<answer>yes</answer>"), think_answer_format("<think>a</think><answer> </answer>")
    (0.0, 0.0)
    """
    if not isinstance(completion, str):
        return 0.0
    match = _WELL_FORMED.fullmatch(completion)
    if not match:
        return 0.0
    parts = match.group("think"), match.group("answer")
    return float(all(part.strip() and not ANY_TAG.search(part) for part in parts))
