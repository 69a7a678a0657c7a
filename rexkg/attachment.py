"""Attachment rules of the rules backend: `modify` (descriptor -> what it describes), `located_at` (finding or
device -> its anatomy) and `suggestive_of` (finding -> the disease it may indicate), each searching at most
`_MAX_REACH` entities away, with what separates neighbouring entities computed once per sentence (`sentence_gaps`).
"""

from __future__ import annotations

import bisect
from itertools import accumulate
from typing import NamedTuple

from rexkg.lexicon import DEGREE_ADVERBS, LOCATIVE_CONCEPTS
from rexkg.mentions import Mention, phrase_index, phrase_length

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
_ANATOMY_ONLY = frozenset({"anatomy"})
# How many entities away an attachment rule looks. A modifier, a finding's anatomy or a suggested diagnosis sits within
# a few words of its partner in real reports; bounding the search keeps every rule linear on adversarial text.
_MAX_REACH = 8


# Where a relation cannot reach across (the words of contrast and of a new clause; a comma within a clause).
SCOPE_BREAK = frozenset("but however although though whereas while except which there".split())
CLAUSE_BREAK = frozenset({",", "but", "however", "although", "though", "whereas", "while", "which"})
_PREDICATE_BREAK = SCOPE_BREAK | {","}  # what separates a predicate descriptor from an earlier subject
_CLAUSE_OR_SCOPE_BREAK = CLAUSE_BREAK | SCOPE_BREAK
_CLAUSE_WORDS = CLAUSE_BREAK - {","}  # a comma may separate a list of suggested diagnoses
_DESCRIPTORS = frozenset({"concept", "size"})


class Gaps(NamedTuple):
    """What separates the mentions of one sentence, computed once so that every rule reads list items.

    `phrase[k]` counts phrase-break words among words[:k] (a break between any two words is one subtraction);
    `phrase_gap[j]`, `predicate_gap[j]` and `clause_gap[j]` say whether such a word lies between mention j - 1 and
    mention j (index 0 is False)."""

    kinds: list[str]
    phrase: list[int]
    phrase_gap: list[bool]
    predicate_gap: list[bool]
    clause_gap: list[bool]


def sentence_gaps(words: list[str], mentions: list[Mention]) -> Gaps:
    phrase = list(accumulate([word in _PHRASE_BREAK for word in words], initial=0))
    between = [()] + [words[mentions[j - 1].last + 1 : mentions[j].first] for j in range(1, len(mentions))]
    return Gaps(
        [m.kind for m in mentions],
        phrase,
        [not _PHRASE_BREAK.isdisjoint(gap) for gap in between],
        [not _PREDICATE_BREAK.isdisjoint(gap) for gap in between],
        [not _CLAUSE_OR_SCOPE_BREAK.isdisjoint(gap) for gap in between],
    )


def _phrase_break_between(gaps: Gaps, a: int, b: int) -> bool:
    """A phrase-break word strictly between words a and b."""
    return b > a + 1 and gaps.phrase[b] - gaps.phrase[a + 1] > 0


def modify_target(index: int, mentions: list[Mention], words: list[str], gaps: Gaps) -> int | None:
    """The mention that descriptor `index` (a concept or size) modifies, or None."""
    kinds, phrase_gap = gaps.kinds, gaps.phrase_gap
    mention = mentions[index]
    word = words[mention.first]
    count = len(mentions)
    adjacent = index + 1 < count and not phrase_gap[index + 1]
    if (
        adjacent
        and kinds[index + 1] == "concept"
        and (word in DEGREE_ADVERBS or words[mentions[index + 1].first] in _ATTRIBUTE_NOUNS)
    ):
        return index + 1  # "mildly enlarged", "standard position"
    if word in _ATTRIBUTE_NOUNS:  # "cardiomediastinal silhouette", "tube position": the entity just before
        for j in range(index - 1, max(-1, index - 1 - _MAX_REACH), -1):
            if kinds[j] in ("anatomy", "device") and not _phrase_break_between(gaps, mentions[j].last, mention.first):
                return j
            if kinds[j] != "concept":
                break
        if mention.last + 1 < len(words) and words[mention.last + 1] == "of":  # "position of the tube"
            phrase = [
                j
                for j in range(index + 1, min(count, index + 1 + _MAX_REACH))
                if kinds[j] in ("anatomy", "device", "concept")
            ]
            heads = [j for j in phrase if kinds[j] == "device"] or [j for j in phrase if kinds[j] == "anatomy"]
            return heads[0] if heads else None
        return None
    locative = word in LOCATIVE_CONCEPTS
    wanted = _ANATOMY_ONLY if locative else _HEAD_KINDS
    fallback = None
    for j in range(index + 1, min(count, index + 1 + _MAX_REACH)):
        if phrase_gap[j]:
            break
        kind = kinds[j]
        if kind in _DESCRIPTORS:  # nothing to record: long descriptor runs cost one test per entity
            continue
        if kind in wanted:
            return j
        if kind != "anatomy":  # a head of another kind ends the phrase and is the fallback
            fallback = j if fallback is None else fallback
            break
        if fallback is None and not locative:
            fallback = j
    if fallback is not None:
        return fallback
    if adjacent and kinds[index + 1] != "concept":
        return index + 1
    # Predicate use ("the heart is enlarged"): the nearest entity before it that is not a descriptor, with no scope
    # break or comma in any gap on the way.
    predicate_gap = gaps.predicate_gap
    for j in range(index - 1, max(-1, index - 1 - _MAX_REACH), -1):
        if predicate_gap[j + 1]:
            break
        if kinds[j] not in _DESCRIPTORS:
            return j
    return None


def located_at(index: int, mentions: list[Mention], words: list[str], gaps: Gaps) -> list[int]:
    """The anatomy mentions that finding or device `index` is located at (none when the sentence names none)."""
    kinds, phrase_gap = gaps.kinds, gaps.phrase_gap
    count = len(mentions)
    mention = mentions[index]
    before = []
    k = index - 1
    while k >= max(0, index - _MAX_REACH) and kinds[k] in ("anatomy", "concept") and not phrase_gap[k + 1]:
        if kinds[k] == "anatomy":
            before.append(k)
        k -= 1
    if before:
        return before
    # Otherwise the anatomy after a locative preposition in the same clause ("opacity in the right lung").
    for j in range(index + 1, min(count, index + 1 + _MAX_REACH)):
        if gaps.clause_gap[j] or kinds[j] in _HEAD_KINDS:
            return []
        if kinds[j] == "anatomy":
            if _LOCATIVE_PREPOSITIONS.isdisjoint(words[mention.last + 1 : mentions[j].first]):
                return []
            group, k = [j], j + 1
            while k < min(count, j + _MAX_REACH) and kinds[k] in ("anatomy", "concept") and not phrase_gap[k]:
                if kinds[k] == "anatomy":
                    group.append(k)
                k += 1
            return group
    return []


def suggestive_pairs(mentions: list[Mention], words: list[str]) -> list[tuple[int, int]]:
    if _SUGGESTIVE.keys().isdisjoint(words):  # most sentences suggest nothing
        return []
    pairs = []
    starts = [m.first for m in mentions]
    for i in range(len(words)):
        if words[i] not in _SUGGESTIVE:  # the common case, without a call
            continue
        n = phrase_length(words, i, _SUGGESTIVE)
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
            group = [j for j in targets if _CLAUSE_WORDS.isdisjoint(words[first_target.first : mentions[j].first])]
            pairs += [(sources[-1], j) for j in group]
    return pairs
