"""Tokens and mentions, the first stage of the rules backend: sentence spans (long ones cut into windows), word
tokens, and the lexicon's typed mentions (longest multi-word term first, size patterns, "lateral" as a projection).

>>> text = "Small left pleural effusion."
>>> [(m.kind, text[m.start : m.end]) for m in find_mentions(text, *tokenize(text))]
[('concept', 'Small'), ('concept', 'left'), ('anatomy', 'pleural'), ('disorder', 'effusion')]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rexkg.lexicon import MAX_TERM_WORDS, MULTIWORD, MULTIWORD_FIRST_WORDS, lookup

# Sentence breaks: tags, section-header colons, newlines, ; ! ? and full stops that are not decimal points.
_SENTENCE_BREAK = re.compile(r"</?\s*(?:think|answer)\s*>|[!?;:\n\r]|\.(?:(?!\d)|(?<!\d\.))")
_TOKEN = re.compile(r"[A-Za-z][A-Za-z'\-]*|\d+(?:\.\d+)?|[,()]")
_DIGIT = re.compile(r"\d")
_UNIT = r"(?:mm|cm|m)\b"
_NUMBER = r"\d+(?:\.\d+)?"
_SIZE = re.compile(rf"{_NUMBER}(?:\s*(?:x|×|by)\s*{_NUMBER}){{0,2}}\s*{_UNIT}", re.IGNORECASE)


PhraseIndex = dict[str, list[tuple[int, frozenset[tuple[str, ...]]]]]


def phrase_index(phrases: list[tuple[str, ...]]) -> PhraseIndex:
    """Phrases by first word, then by length, longest first: a word that starts no phrase costs one dict lookup, one
    that does costs one set lookup per phrase length.

    >>> phrase_index([("no",), ("no", "longer"), ("not", "seen")])["no"]
    [(2, frozenset({('no', 'longer')})), (1, frozenset({('no',)}))]
    """
    by_first: dict[str, dict[int, set[tuple[str, ...]]]] = {}
    for phrase in phrases:
        by_first.setdefault(phrase[0], {}).setdefault(len(phrase), set()).add(tuple(phrase))
    return {
        first: [(n, frozenset(by_length[n])) for n in sorted(by_length, reverse=True)]
        for first, by_length in by_first.items()
    }


@dataclass(slots=True)
class Mention:
    kind: str  # anatomy | disorder | device | procedure | concept | size
    first: int  # token index range [first, last]
    last: int
    start: int
    end: int
    negated: bool = False
    hedged: bool = False  # stated with uncertainty (rexkg/negation.py)


# A real report sentence is well under this; model output can be one endless "sentence". The attachment and negation
# rules look across a sentence, so an unbounded one would cost quadratic time: longer spans are cut into windows
# (at a space where there is one), which keeps extraction linear in the text's length.
MAX_SENTENCE_CHARS = 1_000


def sentence_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for match in _SENTENCE_BREAK.finditer(text):
        end = match.start()
        if end - start > MAX_SENTENCE_CHARS:
            spans += _windows(text, start, end)
        elif end > start:
            spans.append((start, end))
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


def tokenize(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The lowercased words of `text` and their (start, end) spans. Rules read `words[i]`, a plain list item: the
    per-word cost of the extractor is one span tuple, and the lowercase words come from one C-level `findall`."""
    spans = [m.span() for m in _TOKEN.finditer(text)]
    if text.isascii():  # lowercasing keeps ASCII offsets and cannot create a token (it can outside ASCII: "K")
        return _TOKEN.findall(text.lower()), spans
    return [text[start:end].lower() for start, end in spans], spans


def phrase_length(words: list[str], i: int, phrases: PhraseIndex) -> int:
    """Length of the longest phrase starting at word i (0 when none)."""
    for n, of_length in phrases.get(words[i], ()):
        if n == 1 or tuple(words[i : i + n]) in of_length:  # a slice past the end is shorter: never in the set
            return n
    return 0


# word -> lexicon kind (or None), the per-token lookup of `find_mentions` without a function call
_WORD_KINDS: dict[str, str | None] = {}
_WORD_KINDS_LIMIT = 1 << 16
_UNSEEN = object()


def find_mentions(text: str, words: list[str], spans: list[tuple[int, int]]) -> list[Mention]:
    """Typed mentions of one sentence, in text order, from its `tokenize` output."""
    sizes = [m.span() for m in _SIZE.finditer(text)] if _DIGIT.search(text) else []
    mentions, i, next_size, count = [], 0, 0, len(words)
    word_kinds = _WORD_KINDS
    while i < count:
        word = words[i]
        if sizes:
            token_start = spans[i][0]
            while next_size < len(sizes) and sizes[next_size][1] <= token_start:  # spans in text order: one pass
                next_size += 1
            if next_size < len(sizes) and sizes[next_size][0] <= token_start:
                size_start, size_end = sizes[next_size]
                j = i
                while j + 1 < count and spans[j + 1][0] < size_end:
                    j += 1
                mentions.append(Mention("size", i, j, size_start, size_end))
                i = j + 1
                continue
        width = 1
        kind = None
        if word in MULTIWORD_FIRST_WORDS:
            for n in range(min(MAX_TERM_WORDS, count - i), 1, -1):
                phrase = tuple(words[i : i + n])
                if phrase in MULTIWORD:
                    kind, width = MULTIWORD[phrase], n
                    break
        if width == 1:
            kind = word_kinds.get(word, _UNSEEN)
            if kind is _UNSEEN:
                if len(word_kinds) >= _WORD_KINDS_LIMIT:  # model output can invent any number of words
                    word_kinds.clear()
                kind = word_kinds[word] = lookup((word,))
        if kind is not None:
            mentions.append(Mention(kind, i, i + width - 1, spans[i][0], spans[i + width - 1][1]))
        i += width
    _projections(words, mentions)
    return mentions


# "lateral" is a projection (a procedure) in "PA and lateral", "lateral view", "frontal and lateral radiographs".
_PROJECTION_PARTNERS = frozenset("pa ap frontal upright".split())


def _projections(words: list[str], mentions: list[Mention]) -> None:
    for index, mention in enumerate(mentions):
        if mention.kind != "concept" or words[mention.first] != "lateral":
            continue
        after = mentions[index + 1] if index + 1 < len(mentions) else None
        view_follows = after is not None and after.kind == "procedure" and after.first == mention.last + 1
        paired = (
            mention.first >= 2
            and words[mention.first - 1] == "and"
            and (words[mention.first - 2] in _PROJECTION_PARTNERS)
        )
        if view_follows or paired:
            mention.kind = "procedure"
