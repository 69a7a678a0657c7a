"""Reasoning text of a model response, the part rexkg's `--think` option and the KG reward extract graphs from.

Tag pairs are found by `first_tag_span` in linear time (lazy regular expressions rescan the rest of the text from
every opening tag: quadratic on `"<answer>" * n`). The project's answer parser (`utils.scoring.answers`) builds on
these, so there is one parser of `<think>` / `<answer>` text.

>>> think_text("<think>Small effusion.</think><answer>yes</answer>"), think_text("Reasoning first <answer>no</answer>")
('Small effusion.', 'Reasoning first')
"""

from __future__ import annotations

import functools
import re

_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_ANSWER_OPEN = re.compile(r"<answer>", re.IGNORECASE)
ANY_TAG = re.compile(r"</?\s*(?:think|answer)\s*>", re.IGNORECASE)


@functools.lru_cache(maxsize=32)
def _tag_patterns(open_tag: str, close_tag: str, ignore_case: bool) -> tuple[re.Pattern, re.Pattern]:
    """Compiled once per tag pair: every reward call parses every completion with them."""
    flags = re.IGNORECASE if ignore_case else 0
    return re.compile(re.escape(open_tag), flags), re.compile(re.escape(close_tag), flags)


def first_tag_span(
    text: str, open_tag: str, close_tag: str, *, ignore_case: bool = True, multiline: bool = True
) -> tuple[int, int] | None:
    r"""(start, end) of the content of the first `open_tag … close_tag` pair: exactly what
    `re.search(open_tag + "(.*?)" + close_tag, text)` finds (with IGNORECASE when `ignore_case`, DOTALL when
    `multiline`), in linear time.

    From an opening tag, the lazy group ends at the first closing tag after it; without DOTALL it must not cross a
    newline, and then no opening tag before that newline can match either. So each closing-tag and newline search
    starts where the last one stopped.

    >>> first_tag_span("<answer>a<answer>b</answer>", "<answer>", "</answer>")
    (8, 18)
    >>> first_tag_span("<answer>a\nb</answer>", "<answer>", "</answer>", multiline=False) is None
    True
    """
    opener, closer = _tag_patterns(open_tag, close_tag, ignore_case)
    position, close, newline = 0, None, -1
    while True:
        opened = opener.search(text, position)
        if opened is None:
            return None
        start = opened.end()
        if close is None or close.start() < start:
            close = closer.search(text, start)
            if close is None:
                return None
        if multiline:
            return start, close.start()
        if newline < start:
            newline = text.find("\n", start)
        if newline == -1 or close.start() < newline:
            return start, close.start()
        position = newline + 1


def think_text(text: str) -> str:
    """The reasoning of a response: the `<think>` content, else the text before `<answer>`, else all of it (tags
    removed in every case)."""
    if not isinstance(text, str):
        return ""
    span = first_tag_span(text, "<think>", "</think>")
    if span:
        return text[span[0] : span[1]].strip()
    opened = _ANSWER_OPEN.search(text)
    head = text[: opened.start()] if opened else text
    unclosed = _THINK_OPEN.search(head)
    return ANY_TAG.sub(" ", head[unclosed.end() :] if unclosed else head).strip()


def original_reference_reasoning(solution: str) -> str:
    """The reference side of the original `ReportKG_Jaccard` (ecoxial2007/CheX-Phi4MM plugin.py): when `<think>`
    occurs, the content of the first `re.search(r"<think>(.*?)</think>", solution, re.DOTALL)` unstripped, else the
    whole solution. (The original takes it from `solution[0]` for the whole batch; callers pair each completion with
    its own solution.)

    >>> original_reference_reasoning("<think> Effusion. </think><answer>yes</answer>")
    ' Effusion. '
    >>> original_reference_reasoning("a <think>b")
    'a <think>b'
    """
    if not isinstance(solution, str):
        return ""
    if "<think>" not in solution:
        return solution
    span = first_tag_span(solution, "<think>", "</think>", ignore_case=False)
    return solution[span[0] : span[1]] if span else solution
