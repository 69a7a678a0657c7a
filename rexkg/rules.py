"""The rules backend: a deterministic, weight-free extractor for the ReXKG convention.

Pipeline, per sentence: lexicon lookup (longest multi-word match first) and size patterns give typed entities;
negation cues flip findings and devices to `*_notpresent`; attachment rules give `modify`, `located_at` and
`suggestive_of` relations.

Negation. Pre-cues ("no", "without", "free of", "negative for", "resolution of", "removal of", ...) negate the
findings and devices after them up to a scope break ("but", "however", "although", "which", "there", a new
sentence). Post-cues ("has resolved", "was removed", "is not seen", "no longer", ...) negate those before them in
the same clause.

Uncertainty. "possible", "cannot exclude", "may represent", "likely", ... leave a finding `disorder_present`. ReXKG's
labellers were told to separate present from absent findings only, and an uncertain finding is one the reader must
still act on; labelling it absent would reward a model for dropping a differential diagnosis. So hedges never negate
("can not exclude" is not read as "not").

>>> graph = extract_rules("Small left pleural effusion. No pneumothorax.")
>>> [(e.text, e.type) for e in graph.entities]
[('Small', 'concept'), ('left', 'concept'), ('pleural', 'anatomy'), ('effusion', 'disorder_present'), \
('pneumothorax', 'disorder_notpresent')]
>>> sorted((r.source.text, r.target.text, r.type) for r in graph.relations)
[('Small', 'effusion', 'modify'), ('effusion', 'pleural', 'located_at'), ('left', 'pleural', 'modify')]
"""

from __future__ import annotations

import bisect
import functools
import re
from dataclasses import dataclass
from typing import NamedTuple

from rexkg.lexicon import DEGREE_ADVERBS, LOCATIVE_CONCEPTS, MAX_TERM_WORDS, MULTIWORD, MULTIWORD_FIRST_WORDS, lookup
from rexkg.schema import Entity, KnowledgeGraph, Relation

# Sentence breaks: tags, section-header colons, newlines, ; ! ? and full stops that are not decimal points.
_SENTENCE_BREAK = re.compile(r"</?\s*(?:think|answer)\s*>|[!?;:\n\r]|\.(?!\d)|(?<!\d)\.")
_TOKEN = re.compile(r"[A-Za-z][A-Za-z'\-]*|\d+(?:\.\d+)?|[,()]")
_DIGIT = re.compile(r"\d")
_UNIT = r"(?:mm|cm|m)\b"
_NUMBER = r"\d+(?:\.\d+)?"
_SIZE = re.compile(rf"{_NUMBER}(?:\s*(?:x|×|by)\s*{_NUMBER}){{0,2}}\s*{_UNIT}", re.IGNORECASE)


def _index(phrases: list[tuple[str, ...]]) -> dict[str, list[tuple[str, ...]]]:
    """Phrases by first word, longest first: a token that starts no phrase costs one dict lookup."""
    by_first: dict[str, list[tuple[str, ...]]] = {}
    for phrase in sorted(set(phrases), key=len, reverse=True):
        by_first.setdefault(phrase[0], []).append(phrase)
    return by_first


_PRE_NEGATION = _index(
    [
        ("no",),
        ("not",),
        ("without",),
        ("free", "of"),
        ("negative", "for"),
        ("absence", "of"),
        ("resolution", "of"),
        ("removal", "of"),
        ("resolved",),
        ("clear", "of"),
        ("rather", "than"),
        ("nor",),
    ]
)
_POST_NEGATION = _index(
    [
        ("has", "resolved"),
        ("have", "resolved"),
        ("resolved",),
        ("is", "not", "seen"),
        ("are", "not", "seen"),
        ("not", "seen"),
        ("not", "identified"),
        ("not", "visualized"),
        ("is", "absent"),
        ("are", "absent"),
        ("was", "removed"),
        ("were", "removed"),
        ("has", "been", "removed"),
        ("have", "been", "removed"),
        ("removed",),
        ("no", "longer"),
    ]
)
# Hedges, recognised so that their words are not read as negation; uncertain findings stay present (see above).
_HEDGES = _index(
    [
        ("cannot", "exclude"),
        ("can", "not", "exclude"),
        ("not", "excluded"),
        ("cannot", "be", "excluded"),
        ("can", "not", "be", "excluded"),
        ("not", "be", "excluded"),
        ("not", "ruled", "out"),
    ]
)
_SUGGESTIVE = _index(
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
_NEGATION_WORDS = frozenset(_PRE_NEGATION) | frozenset(_POST_NEGATION)
# "no longer" is a post-cue; "no (significant) change in ..." compares with a prior study and negates nothing.
_NOT_A_PRE_NEGATION = _index([("no", "longer"), ("no", "change"), ("no", "changes")])
_NOT_A_PRE_NEGATION.update(
    {
        "no": _NOT_A_PRE_NEGATION["no"]
        + [("no", q, c) for q in ("significant", "interval", "appreciable") for c in ("change", "changes")]
    }
)
# "partially resolved" describes a finding that is still there.
_PARTIAL = frozenset("partially nearly almost incompletely slowly".split())
_SCOPE_BREAK = frozenset("but however although though whereas while except which there".split())
_CLAUSE_BREAK = frozenset({",", "but", "however", "although", "though", "whereas", "while", "which"})
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


class _Token(NamedTuple):  # a tuple: built once per word, the hottest allocation of the extractor
    text: str
    lower: str
    start: int
    end: int


@dataclass(slots=True)
class _Mention:
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


def _sentences(text: str) -> list[tuple[int, int]]:
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


def _tokens(text: str, start: int, end: int) -> list[_Token]:
    new = tuple.__new__  # _Token._make without its Python frame: this runs once per word
    return [
        new(_Token, (word, word.lower(), m.start(), m.end()))
        for m in _TOKEN.finditer(text, start, end)
        for word in (m.group(),)
    ]


def _matches_at(tokens: list[_Token], i: int, phrases: dict[str, list[tuple[str, ...]]]) -> int:
    """Length of the longest phrase starting at token i (0 when none)."""
    for phrase in phrases.get(tokens[i].lower, ()):
        n = len(phrase)
        if i + n <= len(tokens) and all(tokens[i + k].lower == phrase[k] for k in range(1, n)):
            return n
    return 0


# word -> lexicon kind (or None), the per-token lookup of `_mentions` without a function call
_WORD_KINDS: dict[str, str | None] = {}
_WORD_KINDS_LIMIT = 1 << 16
_UNSEEN = object()


def _mentions(text: str, tokens: list[_Token], start: int, end: int) -> list[_Mention]:
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
            mentions.append(_Mention("size", i, j, size_span[0], size_span[1]))
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
            mentions.append(_Mention(kind, i, i + width - 1, token.start, tokens[i + width - 1].end))
        i += width
    _projections(tokens, mentions)
    return mentions


# "lateral" is a projection (a procedure) in "PA and lateral", "lateral view", "frontal and lateral radiographs".
_PROJECTION_PARTNERS = frozenset("pa ap frontal upright".split())


def _projections(tokens: list[_Token], mentions: list[_Mention]) -> None:
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


def _apply_negation(tokens: list[_Token], mentions: list[_Mention]) -> None:
    negatable = [m for m in mentions if m.kind in ("disorder", "device")]
    if not negatable or _NEGATION_WORDS.isdisjoint(t.lower for t in tokens):
        return
    starting_at = {m.first: m for m in negatable}
    hedged = set()
    for i, token in enumerate(tokens):
        if token.lower in _HEDGES:
            hedged.update(range(i, i + _matches_at(tokens, i, _HEDGES)))
    clause_start, scope_open = 0, False
    for i, token in enumerate(tokens):
        if token.lower in _SCOPE_BREAK:
            scope_open = False
        if token.lower in _CLAUSE_BREAK:
            clause_start = i + 1
        if i not in hedged and token.lower in _NEGATION_WORDS:
            partial = i > 0 and tokens[i - 1].lower in _PARTIAL
            if _matches_at(tokens, i, _POST_NEGATION) and not partial:
                for mention in reversed(negatable):  # in text order: walk back to the clause start only
                    if mention.first >= i:
                        continue
                    if mention.first < clause_start:
                        break
                    mention.negated = True
            if _matches_at(tokens, i, _PRE_NEGATION) and not _matches_at(tokens, i, _NOT_A_PRE_NEGATION):
                scope_open = True
        if scope_open and i in starting_at:
            starting_at[i].negated = True


_PREDICATE_BREAK = _SCOPE_BREAK | {","}  # what separates a predicate descriptor from an earlier subject


class _Breaks(NamedTuple):
    """Prefix counts of break words over a sentence's tokens: `phrase[k]` phrase breaks among tokens[:k] (and the same
    for predicate breaks), so "is there a break between two entities" is one subtraction, not a scan."""

    phrase: list[int]
    predicate: list[int]


def _break_counts(tokens: list[_Token]) -> _Breaks:
    phrase, predicate = [0], [0]
    for token in tokens:
        phrase.append(phrase[-1] + (token.lower in _PHRASE_BREAK))
        predicate.append(predicate[-1] + (token.lower in _PREDICATE_BREAK))
    return _Breaks(phrase, predicate)


def _phrase_break_between(breaks: _Breaks, a: int, b: int) -> bool:
    """A phrase-break word strictly between tokens a and b."""
    return b > a + 1 and breaks.phrase[b] - breaks.phrase[a + 1] > 0


def _modify_target(index: int, mentions: list[_Mention], tokens: list[_Token], breaks: _Breaks) -> int | None:
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
        if any(
            tokens[k].lower in _SCOPE_BREAK or tokens[k].lower == "," for k in range(mentions[j].last + 1, gap_end)
        ):
            break
        if mentions[j].kind not in ("concept", "size"):
            return j
        gap_end = mentions[j].first
    return None


def _located_at(index: int, mentions: list[_Mention], tokens: list[_Token], breaks: _Breaks) -> list[int]:
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
        if any(w in _CLAUSE_BREAK or w in _SCOPE_BREAK for w in between):
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


def _suggestive(mentions: list[_Mention], tokens: list[_Token]) -> list[tuple[int, int]]:
    pairs = []
    starts = [m.first for m in mentions]
    for i in range(len(tokens)):
        if tokens[i].lower not in _SUGGESTIVE:  # the common case, without a call
            continue
        n = _matches_at(tokens, i, _SUGGESTIVE)
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
                    tokens[k].lower in _CLAUSE_BREAK - {","} for k in range(first_target.first, mentions[j].first)
                )
            ]
            pairs += [(sources[-1], j) for j in group]
    return pairs


_TYPE = {"anatomy": "anatomy", "concept": "concept", "size": "size", "procedure": "procedures"}


def _entity(text: str, mention: _Mention) -> Entity:
    if mention.kind == "disorder":
        kind = "disorder_notpresent" if mention.negated else "disorder_present"
    elif mention.kind == "device":
        kind = "devices_notpresent" if mention.negated else "devices_present"
    else:
        kind = _TYPE[mention.kind]
    return Entity(text[mention.start : mention.end], kind, mention.start, mention.end)


def extract_rules(text: str, memoize: bool = True) -> KnowledgeGraph:
    """Knowledge graph of one text with the rules backend. Never raises on a string; non-strings give an empty
    graph. `memoize=False` bypasses the sentence memo (benchmarks of the extractor itself)."""
    if not isinstance(text, str) or not text:
        return KnowledgeGraph()
    entities, relations = [], []
    for start, end in _sentences(text):
        sentence = text[start:end]
        graph_of = _cached_sentence_graph if memoize and len(sentence) <= _MAX_CACHED_SENTENCE else _sentence_graph
        sentence_entities, edges = graph_of(sentence)
        if not sentence_entities:
            continue
        shifted = [Entity(e.text, e.type, e.start + start, e.end + start) for e in sentence_entities]
        entities += shifted
        relations += [Relation(shifted[i], shifted[j], kind) for i, j, kind in edges]
    return KnowledgeGraph(entities, relations)


def _sentence_graph(sentence: str) -> tuple[tuple[Entity, ...], tuple[tuple[int, int, str], ...]]:
    """Entities (offsets within `sentence`) and relation edges (entity index pairs) of one sentence."""
    tokens = _tokens(sentence, 0, len(sentence))
    if not tokens:
        return (), ()
    mentions = _mentions(sentence, tokens, 0, len(sentence))
    if not mentions:
        return (), ()
    _apply_negation(tokens, mentions)
    if len(mentions) == 1:  # no relation without a second entity
        return (_entity(sentence, mentions[0]),), ()
    breaks = _break_counts(tokens)
    edges = []
    for i, mention in enumerate(mentions):
        if mention.kind in ("concept", "size"):
            target = _modify_target(i, mentions, tokens, breaks)
            if target is not None and target != i:
                edges.append((i, target, "modify"))
        elif mention.kind in ("disorder", "device"):
            edges += [(i, j, "located_at") for j in _located_at(i, mentions, tokens, breaks)]
    edges += [(i, j, "suggestive_of") for i, j in _suggestive(mentions, tokens)]
    # dict.fromkeys: drop repeated edges of this sentence, keep their order
    return tuple(_entity(sentence, m) for m in mentions), tuple(dict.fromkeys(edges))


# Radiology reasoning is formulaic: the same sentences recur across generations, prompts and references, and a
# sentence's graph depends on its own text only, so sentence graphs are memoised (offsets relative to the sentence).
# Bounded in entries and in key length (a pathological 1 MB "sentence" is computed, not kept).
SENTENCE_CACHE_SIZE = 1 << 16
_MAX_CACHED_SENTENCE = 2_000
_cached_sentence_graph = functools.lru_cache(maxsize=SENTENCE_CACHE_SIZE)(_sentence_graph)


def clear_sentence_cache() -> None:
    """Forget memoised sentence graphs (benchmarks use it to measure a cold start)."""
    _cached_sentence_graph.cache_clear()
