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

import functools

from rexkg.attachment import break_counts, located_at, modify_target, suggestive_pairs
from rexkg.mentions import Mention, find_mentions, sentence_spans, tokenize
from rexkg.negation import apply_negation
from rexkg.schema import Entity, KnowledgeGraph, Relation

_TYPE = {"anatomy": "anatomy", "concept": "concept", "size": "size", "procedure": "procedures"}


def _entity(text: str, mention: Mention) -> Entity:
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
    for start, end in sentence_spans(text):
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
    tokens = tokenize(sentence, 0, len(sentence))
    if not tokens:
        return (), ()
    mentions = find_mentions(sentence, tokens, 0, len(sentence))
    if not mentions:
        return (), ()
    apply_negation(tokens, mentions)
    if len(mentions) == 1:  # no relation without a second entity
        return (_entity(sentence, mentions[0]),), ()
    breaks = break_counts(tokens)
    edges = []
    for i, mention in enumerate(mentions):
        if mention.kind in ("concept", "size"):
            target = modify_target(i, mentions, tokens, breaks)
            if target is not None and target != i:
                edges.append((i, target, "modify"))
        elif mention.kind in ("disorder", "device"):
            edges += [(i, j, "located_at") for j in located_at(i, mentions, tokens, breaks)]
    edges += [(i, j, "suggestive_of") for i, j in suggestive_pairs(mentions, tokens)]
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
