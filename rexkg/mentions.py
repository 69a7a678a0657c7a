"""Tokens and mentions, the first stage of the rules backend: sentence spans (long ones cut into windows), word
tokens, and the lexicon's typed mentions (longest multi-word term first, size patterns, "lateral" as a projection).

>>> text = "Small left pleural effusion."
>>> [(m.kind, text[m.start : m.end]) for m in find_mentions(text, tokenize(text, 0, len(text)), 0, len(text))]
[('concept', 'Small'), ('concept', 'left'), ('anatomy', 'pleural'), ('disorder', 'effusion')]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from rexkg.lexicon import MAX_TERM_WORDS, MULTIWORD, MULTIWORD_FIRST_WORDS, lookup

# Sentence breaks: tags, section-header colons, newlines, ; ! ? and full stops that are not decimal points.
_SENTENCE_BREAK = re.compile(r"</?\s*(?:think|answer)\s*>|[!?;:\n\r]|\.(?!\d)|(?<!\d)\.")
_TOKEN = re.compile(r"[A-Za-z][A-Za-z'\-]*|\d+(?:\.\d+)?|[,()]")
_DIGIT = re.compile(r"\d")
_UNIT = r"(?:mm|cm|m)\b"
_NUMBER = r"\d+(?:\.\d+)?"
_SIZE = re.compile(rf"{_NUMBER}(?:\s*(?:x|×|by)\s*{_NUMBER}){{0,2}}\s*{_UNIT}", re.IGNORECASE)


def phrase_index(phrases: list[tuple[str, ...]]) -> dict[str, list[tuple[str, ...]]]:
    """Phrases by first word, longest first: a token that starts no phrase costs one dict lookup."""
    by_first: dict[str, list[tuple[str, ...]]] = {}
    for phrase in sorted(set(phrases), key=len, reverse=True):
        by_first.setdefault(phrase[0], []).append(phrase)
    return by_first


class Token(NamedTuple):  # a tuple: built once per word, the hottest allocation of the extractor
    text: str
    lower: str
    start: int
    end: int


@dataclass(slots=True)
class Mention:
    kind: str  # anatomy | disorder | device | procedure | concept | size
    first: int  # token index range [first, last]
    last: int
    start: int
    end: int
    negated: bool = False


# A real report sentence is well under this; model output can be one endless "sentence". The attachment and negation
# rules look across a sentence, so an unbounded one would cost quadratic time: longer spans are cut into windows
# (at a space where there is one), which keeps extraction linear in the text's length.
MAX_SENTENCE_CHARS = 1_000


def sentence_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for match in _SENTENCE_BREAK.finditer(text):
        if match.start() > start:
            spans += _windows(text, start, match.start())
        start = match.end()
    if start < len(text):
        spans += _windows(text, start, len(text))
    return spans


def _windows(text: str, start: int, end: int) -> list[tuple[int, int]]:
    windows = []
    while end - start > MAX_SENTENCE_CHARS:
        cut = text.rfind(" ", start + MAX_SENTENCE_CHARS // 2, start + MAX_SENTENCE_CHARS)
        cut = cut if cut > start else start + MAX_SENTENCE_CHARS
        windows.append((start, cut))
        start = cut
    windows.append((start, end))
    return windows


def tokenize(text: str, start: int, end: int) -> list[Token]:
    new = tuple.__new__  # Token._make without its Python frame: this runs once per word
    return [
        new(Token, (word, word.lower(), m.start(), m.end()))
        for m in _TOKEN.finditer(text, start, end)
        for word in (m.group(),)
    ]


def phrase_length(tokens: list[Token], i: int, phrases: dict[str, list[tuple[str, ...]]]) -> int:
    """Length of the longest phrase starting at token i (0 when none)."""
    for phrase in phrases.get(tokens[i].lower, ()):
        n = len(phrase)
        if i + n <= len(tokens) and all(tokens[i + k].lower == phrase[k] for k in range(1, n)):
            return n
    return 0


# word -> lexicon kind (or None), the per-token lookup of `find_mentions` without a function call
_WORD_KINDS: dict[str, str | None] = {}
_WORD_KINDS_LIMIT = 1 << 16
_UNSEEN = object()


def find_mentions(text: str, tokens: list[Token], start: int, end: int) -> list[Mention]:
    sizes = [m.span() for m in _SIZE.finditer(text, start, end)] if _DIGIT.search(text, start, end) else []
    mentions, i, next_size = [], 0, 0
    while i < len(tokens):
        token = tokens[i]
        while next_size < len(sizes) and sizes[next_size][1] <= token.start:  # spans in text order: one pass
            next_size += 1
        size_span = sizes[next_size] if next_size < len(sizes) and sizes[next_size][0] <= token.start else None
        if size_span is not None:
            j = i
            while j + 1 < len(tokens) and tokens[j + 1].start < size_span[1]:
                j += 1
            mentions.append(Mention("size", i, j, size_span[0], size_span[1]))
            i = j + 1
            continue
        width = 1
        kind = None
        if token.lower in MULTIWORD_FIRST_WORDS:
            for n in range(min(MAX_TERM_WORDS, len(tokens) - i), 1, -1):
                words = tuple(t.lower for t in tokens[i : i + n])
                if words in MULTIWORD:
                    kind, width = MULTIWORD[words], n
                    break
        if width == 1:
            kind = _WORD_KINDS.get(token.lower, _UNSEEN)
            if kind is _UNSEEN:
                if len(_WORD_KINDS) >= _WORD_KINDS_LIMIT:  # model output can invent any number of words
                    _WORD_KINDS.clear()
                kind = _WORD_KINDS[token.lower] = lookup((token.lower,))
        if kind is not None:
            mentions.append(Mention(kind, i, i + width - 1, token.start, tokens[i + width - 1].end))
        i += width
    _projections(tokens, mentions)
    return mentions


# "lateral" is a projection (a procedure) in "PA and lateral", "lateral view", "frontal and lateral radiographs".
_PROJECTION_PARTNERS = frozenset("pa ap frontal upright".split())


def _projections(tokens: list[Token], mentions: list[Mention]) -> None:
    for index, mention in enumerate(mentions):
        if mention.kind != "concept" or tokens[mention.first].lower != "lateral":
            continue
        after = mentions[index + 1] if index + 1 < len(mentions) else None
        view_follows = after is not None and after.kind == "procedure" and after.first == mention.last + 1
        paired = (
            mention.first >= 2
            and tokens[mention.first - 1].lower == "and"
            and (tokens[mention.first - 2].lower in _PROJECTION_PARTNERS)
        )
        if view_follows or paired:
            mention.kind = "procedure"
