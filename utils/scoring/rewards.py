"""Answer and format rewards: pure functions of one completion and its reference, no ms-swift needed.

Every function accepts any value for the completion (malformed, truncated, empty, not even a string) and returns a
float in [0, 1]; none of them raises on model output. The ms-swift adapters in `swift_patches/rewards.py` only
unpack columns and call these.

>>> r1v_accuracy("<think>…</think><answer>left lung, right lung</answer>", "<answer>right lung</answer>")
1.0
>>> answer_f1("<answer>left lung, right lung</answer>", "<answer>right lung</answer>")
0.6666666666666666
>>> think_answer_format("<think>Small effusion.</think><answer>yes</answer>")
1.0
"""

from __future__ import annotations

import re

from utils.scoring.answers import ANY_TAG, answer_items, answer_span, first_sentence, first_tag_span

# The original's first sentence: the text up to the first of these characters, whatever follows it.
_ORIGINAL_SENTENCE_END = re.compile(r"[.!?。！？]")


def _original_answer(text: str, with_span: bool) -> str:
    """One side's answer as the original `MultiModalAccuracyORM` took it, stripped: the first
    `re.search(r"<answer>(.*?)</answer>")` span (case-sensitive, not crossing a newline), else the whole text; or,
    when the reference has no `<answer>` at all, `re.search(r"[^.!?。！？]*(?=[.!?。！？]|$)")`, which always matches
    the text up to its first `.!?。！？`."""
    if with_span:
        span = first_tag_span(text, "<answer>", "</answer>", ignore_case=False, multiline=False)
        return (text[span[0] : span[1]] if span else text).strip()
    return _ORIGINAL_SENTENCE_END.split(text, maxsplit=1)[0].strip()


def _original_sentence_reward(prediction: str, ground_truth: str) -> float:
    """The original's `calculate_sentence_reward`: comma items stripped and lowercased, empty ones dropped; any
    shared item pays 1.0; an empty reference pays only an empty prediction."""
    predicted = {item.strip().lower() for item in prediction.split(",") if item.strip()}
    reference = {item.strip().lower() for item in ground_truth.split(",") if item.strip()}
    if not reference:
        return float(not predicted)
    return float(not predicted.isdisjoint(reference))


def r1v_accuracy(completion: str, solution: str) -> float:
    """`external_r1v_acc`, the original CheXPO-v2 accuracy reward (`MultiModalAccuracyORM` and
    `calculate_sentence_reward` in ecoxial2007/CheX-Phi4MM's plugin.py), rule for rule: 1.0 when the completion's
    answer items and the reference's share an item, else 0.0.

    When the string `<answer>` occurs in the reference, each side is its first `<answer>…</answer>` span
    (case-sensitive, on one line) or, without one, its whole stripped text; otherwise each side is its text up to
    the first `.!?。！？` (a decimal point counts). Answers are split on commas, each item stripped and lowercased,
    empty items dropped: `"yes."` and `"yes"` differ, and an empty reference matches only an empty answer. Any overlap
    pays, so listing every candidate is rewarded; `answer_f1` (`external_answer_strict`) closes that loophole and
    asks for an answer span, and `normalized_accuracy` (`external_r1v_acc_normalized`) forgives punctuation and
    case. The only departure: a non-string completion scores 0.0 where the original would raise.

    >>> r1v_accuracy("<answer>yes</answer>", "<think>Effusion.</think><answer>Yes</answer>")
    1.0
    >>> r1v_accuracy("<answer>yes.</answer>", "<answer>yes</answer>"), r1v_accuracy("No. Clear.", "No, none.")
    (0.0, 1.0)
    >>> r1v_accuracy("Yes", "<answer>yes</answer>"), r1v_accuracy("<answer>yes,</answer>", "<answer>no,</answer>")
    (1.0, 0.0)
    """
    if not isinstance(completion, str) or not isinstance(solution, str):
        return 0.0
    with_span = "<answer>" in solution
    return _original_sentence_reward(_original_answer(completion, with_span), _original_answer(solution, with_span))


def _answer_or_first_sentence(text: str) -> str:
    span = answer_span(text)
    return span if span is not None else first_sentence(text)


def normalized_accuracy(completion: str, solution: str) -> float:
    """`external_r1v_acc_normalized`: `r1v_accuracy`'s any-overlap rule on normalised answers: spans found in any
    case and across lines, first sentences ended only by `.!?` before whitespace (decimals survive), items with
    inner whitespace collapsed and surrounding punctuation and quotes stripped. Two empty answers agree.

    >>> normalized_accuracy("<answer>Yes.</answer>", "<answer>yes</answer>")
    1.0
    >>> normalized_accuracy("No. Nothing is seen.", "No pneumothorax is seen. The lungs are clear.")
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
    # Linear equivalent of `\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*` as a full match: a think block
    # holding no tag must end at the first </think>, and the answer block runs to the final </answer>.
    text = completion.strip()
    if not (text.startswith("<think>") and text.endswith("</answer>")):
        return 0.0
    think_end = text.find("</think>")
    rest = text[think_end + len("</think>") :].lstrip() if think_end >= 0 else ""
    if not rest.startswith("<answer>") or len(rest) < len("<answer></answer>"):
        return 0.0
    parts = text[len("<think>") : think_end], rest[len("<answer>") : -len("</answer>")]
    return float(all(part.strip() and not ANY_TAG.search(part) for part in parts))
