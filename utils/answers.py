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
_TAG = re.compile(r"</?\s*(?:think|answer)\s*>", re.IGNORECASE)


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
    return _TAG.sub(" ", unclosed.group(1) if unclosed else head).strip()


def answer_span(text: str) -> str | None:
    """The stripped content of the first `<answer>…</answer>`, or None when there is none."""
    if not isinstance(text, str):
        return None
    match = _ANSWER.search(text)
    return match.group(1).strip() if match else None
