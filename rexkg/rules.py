"""The rules backend: a deterministic, weight-free extractor for the ReXKG convention.

Pipeline, per sentence: `rexkg.mentions` (tokens, lexicon lookup with the longest multi-word match first, size
patterns) gives typed mentions; `rexkg.negation` flips findings and devices to `*_notpresent`; `rexkg.attachment`
gives `modify`, `located_at` and `suggestive_of` relations. This module runs them and memoises sentence graphs.

>>> graph = extract_rules("Small left pleural effusion. No pneumothorax.")
>>> [(e.text, e.type) for e in graph.entities]
[('Small', 'concept'), ('left', 'concept'), ('pleural', 'anatomy'), ('effusion', 'disorder_present'), \
('pneumothorax', 'disorder_notpresent')]
>>> sorted((r.source.text, r.target.text, r.type) for r in graph.relations)
[('Small', 'effusion', 'modify'), ('effusion', 'pleural', 'located_at'), ('left', 'pleural', 'modify')]
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import Iterator

from rexkg.attachment import located_at, modify_target, sentence_gaps, suggestive_pairs
from rexkg.mentions import find_mentions, sentence_spans, tokenize
from rexkg.negation import apply_negation
from rexkg.schema import Entity, KnowledgeGraph, Relation

_TYPE = {"anatomy": "anatomy", "concept": "concept", "size": "size", "procedure": "procedures"}
_NEGATED_TYPE = {"disorder": "disorder_notpresent", "device": "devices_notpresent"}
_PRESENT_TYPE = {"disorder": "disorder_present", "device": "devices_present"} | _TYPE

# A sentence graph: (start, end, type) of each entity, offsets within the sentence, and (source, target, type)
# relation edges between entity indices. Plain tuples: entities are built once, at their place in the whole text.
SentenceGraph = tuple[tuple[tuple[int, int, str], ...], tuple[tuple[int, int, str], ...]]


def extract_rules(text: str, memoize: bool = True) -> KnowledgeGraph:
    """Knowledge graph of one text with the rules backend. Never raises on a string; non-strings give an empty
    graph. `memoize=False` bypasses the sentence memo (benchmarks of the extractor itself)."""
    if not isinstance(text, str) or not text:
        return KnowledgeGraph()
    with _collector_paused():
        return _extract(text, memoize)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a graph is built. Entities and relations are named tuples, which the
    collector tracks for life (it untracks exact tuples only), so a long text's graph triggers full collections that
    walk the whole heap: in a process holding a model, 0.2 s each, a third of the time of a 1 MB text. The graph has
    no reference cycles, so pausing frees nothing later than it would have been; a reward drops its graphs once they
    are scored, before any later collection sees them. The collector's state is restored on exit (the remedy of
    Mercurial's `util.nogc`)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _extract(text: str, memoize: bool) -> KnowledgeGraph:
    entities, relations = [], []
    new = tuple.__new__
    for start, end in sentence_spans(text):
        sentence = text[start:end]
        graph_of = _cached_sentence_graph if memoize and len(sentence) <= _MAX_CACHED_SENTENCE else _sentence_graph
        spans, edges = graph_of(sentence)
        if not spans:
            continue
        # tuple.__new__: a named tuple's own __new__ is a Python frame, and this runs once per entity and relation
        placed = [
            new(Entity, (text[a + start : b + start], kind, a + start, b + start, hedged))
            for a, b, kind, hedged in spans
        ]
        entities += placed
        relations += [new(Relation, (placed[i], placed[j], kind)) for i, j, kind in edges]
    return KnowledgeGraph(entities, relations)


def _sentence_graph(sentence: str) -> SentenceGraph:
    """Entity spans and relation edges of one sentence."""
    words, spans = tokenize(sentence)
    if not words:
        return (), ()
    mentions = find_mentions(sentence, words, spans)
    if not mentions:
        return (), ()
    apply_negation(words, mentions)
    entities = tuple(
        [(m.start, m.end, (_NEGATED_TYPE if m.negated else _PRESENT_TYPE)[m.kind], m.hedged) for m in mentions]
    )
    if len(mentions) == 1:  # no relation without a second entity
        return entities, ()
    gaps = sentence_gaps(words, mentions)
    edges = []
    for i, mention in enumerate(mentions):
        if mention.kind in ("concept", "size"):
            target = modify_target(i, mentions, words, gaps)
            if target is not None and target != i:
                edges.append((i, target, "modify"))
        elif mention.kind in ("disorder", "device"):
            edges += [(i, j, "located_at") for j in located_at(i, mentions, words, gaps)]
    edges += [(i, j, "suggestive_of") for i, j in suggestive_pairs(mentions, words)]
    # dict.fromkeys: drop repeated edges of this sentence, keep their order
    return entities, tuple(dict.fromkeys(edges))


# Radiology reasoning is formulaic: the same sentences recur across generations, prompts and references, and a
# sentence's graph depends on its own text only, so sentence graphs are memoised (offsets relative to the sentence).
# Bounded in entries and in key length (a pathological 1 MB "sentence" is computed, not kept).
SENTENCE_CACHE_SIZE = 1 << 16
_MAX_CACHED_SENTENCE = 2_000
_cached_sentence_graph = functools.lru_cache(maxsize=SENTENCE_CACHE_SIZE)(_sentence_graph)


def sentence_cache_info() -> functools._CacheInfo:
    """Hits, misses and size of the sentence memo."""
    return _cached_sentence_graph.cache_info()


def clear_sentence_cache() -> None:
    """Forget memoised sentence graphs (benchmarks use it to measure a cold start)."""
    _cached_sentence_graph.cache_clear()
