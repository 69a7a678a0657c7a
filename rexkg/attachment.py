"""Attachment rules of the rules backend: `modify` (descriptor -> what it describes), `located_at` (finding or
device -> its anatomy) and `suggestive_of` (finding -> the disease it may indicate), each searching at most
`_MAX_REACH` entities away, with break words counted once per sentence (`break_counts`).
"""

from __future__ import annotations

import bisect
from typing import NamedTuple

from rexkg.lexicon import DEGREE_ADVERBS, LOCATIVE_CONCEPTS
from rexkg.mentions import Mention, Token, phrase_index, phrase_length
from rexkg.negation import CLAUSE_BREAK, SCOPE_BREAK

_SUGGESTIVE = phrase_index(
    [
        ("suggestive", "of"),
        ("consistent", "with"),
        ("concerning", "for"),
        ("compatible", "with"),
        ("may", "represent"),
        ("could", "represent"),
        ("might", "represent"),
        ("likely", "represents"),
        ("likely", "represent"),
        ("represents",),
        ("representing",),
        ("suspicious", "for"),
        ("worrisome", "for"),
        ("indicative", "of"),
        ("may", "reflect"),
        ("likely", "reflecting"),
        ("reflecting",),
        ("reflects",),
        ("suggesting",),
        ("suggests",),
        ("which", "may", "be"),
        ("possibly", "representing"),
    ]
)
# Words that end a noun phrase when a modifier looks ahead for what it modifies.
_PHRASE_BREAK = frozenset(
    ", ( ) of in at with without and or is are was were has have to from by on over within along into "
    "projecting seen noted there which but be been terminates terminating extending overlying may could might "
    "represent represents representing reflect reflects reflecting suggestive consistent concerning compatible "
    "suspicious worrisome indicative suggesting suggests likely".split()
)
_LOCATIVE_PREPOSITIONS = frozenset(
    "in at of within over along into overlying involving projecting near below above beneath through".split()
)
# Concepts that are nouns describing another entity ("cardiomediastinal silhouette", "tube position").
_ATTRIBUTE_NOUNS = frozenset("silhouette size position appearance contours contour".split())
_HEAD_KINDS = frozenset({"disorder", "device", "procedure"})
# How many entities away an attachment rule looks. A modifier, a finding's anatomy or a suggested diagnosis sits within
# a few words of its partner in real reports; bounding the search keeps every rule linear on adversarial text.
_MAX_REACH = 8


_PREDICATE_BREAK = SCOPE_BREAK | {","}  # what separates a predicate descriptor from an earlier subject


class Breaks(NamedTuple):
    """Prefix counts of break words over a sentence's tokens: `phrase[k]` phrase breaks among tokens[:k] (and the same
    for predicate breaks), so "is there a break between two entities" is one subtraction, not a scan."""

    phrase: list[int]
    predicate: list[int]


def break_counts(tokens: list[Token]) -> Breaks:
    phrase, predicate = [0], [0]
    for token in tokens:
        phrase.append(phrase[-1] + (token.lower in _PHRASE_BREAK))
        predicate.append(predicate[-1] + (token.lower in _PREDICATE_BREAK))
    return Breaks(phrase, predicate)


def _phrase_break_between(breaks: Breaks, a: int, b: int) -> bool:
    """A phrase-break word strictly between tokens a and b."""
    return b > a + 1 and breaks.phrase[b] - breaks.phrase[a + 1] > 0


def modify_target(index: int, mentions: list[Mention], tokens: list[Token], breaks: Breaks) -> int | None:
    mention = mentions[index]
    word = tokens[mention.first].lower
    adjacent = index + 1 < len(mentions) and not _phrase_break_between(breaks, mention.last, mentions[index + 1].first)
    if (
        adjacent
        and mentions[index + 1].kind == "concept"
        and (word in DEGREE_ADVERBS or tokens[mentions[index + 1].first].lower in _ATTRIBUTE_NOUNS)
    ):
        return index + 1  # "mildly enlarged", "standard position"
    if word in _ATTRIBUTE_NOUNS:  # "cardiomediastinal silhouette", "tube position": the entity just before
        for j in range(index - 1, max(-1, index - 1 - _MAX_REACH), -1):
            if mentions[j].kind in ("anatomy", "device") and not _phrase_break_between(
                breaks, mentions[j].last, mention.first
            ):
                return j
            if mentions[j].kind != "concept":
                break
        if mention.last + 1 < len(tokens) and tokens[mention.last + 1].lower == "of":  # "position of the tube"
            phrase = [
                j
                for j in range(index + 1, min(len(mentions), index + 1 + _MAX_REACH))
                if mentions[j].kind in ("anatomy", "device", "concept")
            ]
            heads = [j for j in phrase if mentions[j].kind == "device"] or [
                j for j in phrase if mentions[j].kind == "anatomy"
            ]
            return heads[0] if heads else None
        return None
    wanted = {"anatomy"} if word in LOCATIVE_CONCEPTS else _HEAD_KINDS
    fallback = None
    for j in range(index + 1, min(len(mentions), index + 1 + _MAX_REACH)):
        if _phrase_break_between(breaks, mentions[j - 1].last, mentions[j].first):
            break
        if mentions[j].kind in wanted:
            return j
        if mentions[j].kind in _HEAD_KINDS and fallback is None:
            fallback = j
        if mentions[j].kind not in ("concept", "anatomy", "size"):
            break
        if fallback is None and mentions[j].kind == "anatomy" and word not in LOCATIVE_CONCEPTS:
            fallback = j
    if fallback is not None:
        return fallback
    if (
        index + 1 < len(mentions)
        and not _phrase_break_between(breaks, mention.last, mentions[index + 1].first)
        and mentions[index + 1].kind != "concept"
    ):
        return index + 1
    # Predicate use ("the heart is enlarged"): the nearest entity before it that is not a descriptor. Each step
    # checks only the words between two neighbouring entities (the nearer gaps were checked already).
    gap_end = mention.first
    for j in range(index - 1, max(-1, index - 1 - _MAX_REACH), -1):
        if any(tokens[k].lower in SCOPE_BREAK or tokens[k].lower == "," for k in range(mentions[j].last + 1, gap_end)):
            break
        if mentions[j].kind not in ("concept", "size"):
            return j
        gap_end = mentions[j].first
    return None


def located_at(index: int, mentions: list[Mention], tokens: list[Token], breaks: Breaks) -> list[int]:
    mention = mentions[index]
    before = []
    k = index - 1
    while (
        k >= max(0, index - _MAX_REACH)
        and mentions[k].kind in ("anatomy", "concept")
        and not _phrase_break_between(breaks, mentions[k].last, mentions[k + 1].first)
    ):
        if mentions[k].kind == "anatomy":
            before.append(k)
        k -= 1
    if before:
        return before
    # Otherwise the anatomy after a locative preposition in the same clause ("opacity in the right lung").
    for j in range(index + 1, min(len(mentions), index + 1 + _MAX_REACH)):
        between = [t.lower for t in tokens[mentions[j - 1].last + 1 : mentions[j].first]]
        if any(w in CLAUSE_BREAK or w in SCOPE_BREAK for w in between):
            return []
        if mentions[j].kind in _HEAD_KINDS:
            return []
        if mentions[j].kind == "anatomy":
            gap = [t.lower for t in tokens[mention.last + 1 : mentions[j].first]]
            if not any(w in _LOCATIVE_PREPOSITIONS for w in gap):
                return []
            group, k = [j], j + 1
            while (
                k < min(len(mentions), j + _MAX_REACH)
                and mentions[k].kind in ("anatomy", "concept")
                and not _phrase_break_between(breaks, mentions[k - 1].last, mentions[k].first)
            ):
                if mentions[k].kind == "anatomy":
                    group.append(k)
                k += 1
            return group
    return []


def suggestive_pairs(mentions: list[Mention], tokens: list[Token]) -> list[tuple[int, int]]:
    pairs = []
    starts = [m.first for m in mentions]
    for i in range(len(tokens)):
        if tokens[i].lower not in _SUGGESTIVE:  # the common case, without a call
            continue
        n = phrase_length(tokens, i, _SUGGESTIVE)
        if not n:
            continue
        split = bisect.bisect_left(starts, i)  # mentions before the cue, then after it
        sources = [
            j
            for j in range(max(0, split - _MAX_REACH), split)
            if mentions[j].kind == "disorder" and mentions[j].last < i
        ]
        targets = [
            j
            for j in range(split, min(len(mentions), split + _MAX_REACH))
            if mentions[j].kind == "disorder" and mentions[j].first >= i + n
        ]
        if sources and targets:
            first_target = mentions[targets[0]]
            group = [
                j
                for j in targets
                if not any(
                    tokens[k].lower in CLAUSE_BREAK - {","} for k in range(first_target.first, mentions[j].first)
                )
            ]
            pairs += [(sources[-1], j) for j in group]
    return pairs
