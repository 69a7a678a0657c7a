"""Parsing of `<think>…</think><answer>…</answer>` text: the one parser shared by rewards and evaluation.

Every function takes any string (malformed, unbalanced, empty, or not a string at all) and never raises.

>>> think_text("<think>Small effusion.</think><answer>yes</answer>")
'Small effusion.'
>>> answer_span("<think>x</think><answer> yes </answer>")
'yes'
>>> think_text("Reasoning first <answer>no</answer>"), answer_span("no tags at all")
('Reasoning first', None)
"""

from __future__ import annotations

import re

_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think>(.*)", re.DOTALL | re.IGNORECASE)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_ANSWER_OPEN = re.compile(r"<answer>", re.IGNORECASE)
ANY_TAG = re.compile(r"</?\s*(?:think|answer)\s*>", re.IGNORECASE)


def think_text(text: str) -> str:
    """The reasoning of a response: the `<think>` content, else the text before `<answer>`, else all of it (tags
    removed in every case)."""
    if not isinstance(text, str):
        return ""
    match = _THINK.search(text)
    if match:
        return match.group(1).strip()
    opened = _ANSWER_OPEN.search(text)
    head = text[: opened.start()] if opened else text
    unclosed = _THINK_OPEN.search(head)
    return ANY_TAG.sub(" ", unclosed.group(1) if unclosed else head).strip()


def answer_span(text: str) -> str | None:
    """The stripped content of the first `<answer>…</answer>`, or None when there is none."""
    if not isinstance(text, str):
        return None
    match = _ANSWER.search(text)
    return match.group(1).strip() if match else None


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
