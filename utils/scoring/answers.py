"""Parsing of `<think>…</think><answer>…</answer>` text: the one parser shared by rewards and evaluation.

Every function takes any string (malformed, unbalanced, empty, or not a string at all), never raises, and runs in
linear time: tag pairs are found by `first_tag_span`, not by lazy regular expressions, which rescan the rest of the
text from every opening tag (quadratic on `"<answer>" * n`).

>>> think_text("<think>Small effusion.</think><answer>yes</answer>")
'Small effusion.'
>>> answer_span("<think>x</think><answer> yes </answer>")
'yes'
>>> think_text("Reasoning first <answer>no</answer>"), answer_span("no tags at all")
('Reasoning first', None)
"""

from __future__ import annotations

import re

from rexkg.text import ANY_TAG, first_tag_span, think_text

__all__ = ["ANY_TAG", "answer_items", "answer_span", "first_sentence", "first_tag_span", "think_text"]


def answer_span(text: str) -> str | None:
    """The stripped content of the first `<answer>…</answer>`, or None when there is none."""
    if not isinstance(text, str):
        return None
    span = first_tag_span(text, "<answer>", "</answer>")
    return text[span[0] : span[1]].strip() if span else None


# Sentence ends: . ! ? and their full-width forms, followed by whitespace or the end. A bare period inside a number
# ("1.5 cm") is not a sentence end.
_SENTENCE_END = re.compile(r"[.!?。！？](?=\s|$)")
_ITEM_STRIP = " \t\r\n.;:!?\"'`()[]{}"


def first_sentence(text: str) -> str:
    """The text up to its first sentence end (`.!?。！？` followed by a space or the end), tags removed.

    >>> first_sentence("Yes. The heart is enlarged.")
    'Yes'
    """
    if not isinstance(text, str):
        return ""
    plain = ANY_TAG.sub(" ", text).strip()
    return _SENTENCE_END.split(plain, maxsplit=1)[0].strip()


def answer_items(text: str) -> frozenset[str]:
    """The comma-separated items of an answer: lowercased, inner whitespace collapsed, surrounding punctuation and
    quotes stripped, empty items dropped.

    >>> sorted(answer_items(" Left lung,right  lung. ,"))
    ['left lung', 'right lung']
    """
    if not isinstance(text, str):
        return frozenset()
    items = (" ".join(part.split()).strip(_ITEM_STRIP).lower() for part in text.split(","))
    return frozenset(item for item in items if item)
