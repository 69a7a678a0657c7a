"""Knowledge-graph agreement metrics, the one implementation that the KG reward and the KG metric tool share.

Entities are compared as (lowercased text, type) sets and relations as (source text, target text, type) sets, so
two entities with the same words but different types stay distinct (the original keyed entities by text alone).

Empty-set conventions, as in the original reward: a Jaccard index whose union is empty is 1.0 (two empty graphs
agree). For precision, recall and F1 the same rule applies to the whole triple: both sets empty gives 1.0 for all
three; otherwise an empty denominator gives 0.0 (nothing predicted has precision 0 against a non-empty reference).

>>> jaccard({1, 2}, {2, 3}), jaccard(set(), set())
(0.3333333333333333, 1.0)
>>> precision_recall_f1({"a", "b"}, {"a"})
(0.5, 1.0, 0.6666666666666666)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rexkg.schema import KnowledgeGraph


def jaccard(pred: set, gold: set) -> float:
    """|pred ∩ gold| / |pred ∪ gold|; 1.0 when both are empty."""
    union = len(pred | gold)
    return 1.0 if union == 0 else len(pred & gold) / union


def precision_recall_f1(pred: set, gold: set) -> tuple[float, float, float]:
    """Set precision, recall and F1 of `pred` against `gold` (conventions in the module docstring)."""
    if not pred and not gold:
        return 1.0, 1.0, 1.0
    hits = len(pred & gold)
    precision = hits / len(pred) if pred else 0.0
    recall = hits / len(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def compared_keys(
    pred: KnowledgeGraph, gold: KnowledgeGraph, entities_by_text: bool = False
) -> dict[str, tuple[set, set]]:
    """The key sets `graph_scores` compares: {"entity": (predicted, reference), "relation": (predicted, reference)}.
    Reports mark what is matched (in both), invented (predicted only) and missing (reference only) from these.
    Entities are keyed with their hedge mark (`KnowledgeGraph.entity_hedge_keys`), or as the original reward keyed
    them (`entities_by_text`)."""
    entity = (
        (pred.entity_text_keys(), gold.entity_text_keys())
        if entities_by_text
        else (pred.entity_hedge_keys(), gold.entity_hedge_keys())
    )
    return {"entity": entity, "relation": (pred.relation_keys(), gold.relation_keys())}


def graph_scores(pred: KnowledgeGraph, gold: KnowledgeGraph, entities_by_text: bool = False) -> dict[str, float]:
    """Entity and relation P/R/F1 and Jaccard of one predicted graph against its reference. `entities_by_text`
    keys entities as the original reward did (one type per text: `KnowledgeGraph.entity_text_keys`).

    >>> from rexkg.rules import extract_rules
    >>> s = graph_scores(extract_rules("Small effusion."), extract_rules("Small effusion."))
    >>> s["entity_f1"], s["relation_jaccard"]
    (1.0, 1.0)
    """
    scores = {}
    for name, (p, g) in compared_keys(pred, gold, entities_by_text).items():
        precision, recall, f1 = precision_recall_f1(p, g)
        scores.update(
            {
                f"{name}_precision": precision,
                f"{name}_recall": recall,
                f"{name}_f1": f1,
                f"{name}_jaccard": jaccard(p, g),
            }
        )
    return scores


def corpus_scores(preds: Sequence[KnowledgeGraph], golds: Sequence[KnowledgeGraph]) -> dict[str, float]:
    """Micro (pooled counts) and per-sample macro P/R/F1 for entities and relations over paired graphs."""
    if len(preds) != len(golds):
        raise ValueError(f"{len(preds)} predicted graphs for {len(golds)} references")
    result = {}
    for name in ("entity", "relation"):
        key = (lambda g: g.entity_keys()) if name == "entity" else (lambda g: g.relation_keys())
        hits = n_pred = n_gold = 0
        per_sample = []
        for pred, gold in zip(preds, golds):
            p, g = key(pred), key(gold)
            hits, n_pred, n_gold = hits + len(p & g), n_pred + len(p), n_gold + len(g)
            per_sample.append(precision_recall_f1(p, g))
        precision = hits / n_pred if n_pred else float(n_gold == 0)
        recall = hits / n_gold if n_gold else float(n_pred == 0)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        result.update({f"{name}_micro_precision": precision, f"{name}_micro_recall": recall, f"{name}_micro_f1": f1})
        for i, label in enumerate(("precision", "recall", "f1")):
            result[f"{name}_macro_{label}"] = _mean(s[i] for s in per_sample)
    return result


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def typed_words(entities: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """(word, type) pairs of entities: each entity's lowercased text split into words (ReXKG's one-word granularity,
    so "PICC line" as one device and as two device words compare equal).

    >>> sorted(typed_words([("PICC line", "devices_present"), ("3 cm", "size")]))
    [('3', 'size'), ('cm', 'size'), ('line', 'devices_present'), ('picc', 'devices_present')]
    """
    return {(word, kind) for text, kind in entities for word in text.lower().split()}


def head_relations(relations: Iterable[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    """Relations with each end reduced to its last word, so word-level and phrase-level labels compare."""
    return {(source.lower().split()[-1], target.lower().split()[-1], kind) for source, target, kind in relations}


def typed_word_scores(
    predicted: Sequence[tuple[set, set]], gold: Sequence[tuple[set, set | None]]
) -> dict[str, dict[str, float]]:
    """Micro P/R/F1 of typed words overall and per type, and of head-word relations (over the items whose gold
    relations were annotated). Items are (entity (text, type) set, relation (source, target, type) set or None).

    >>> s = typed_word_scores([({("effusion", "disorder_present")}, set())], [({("effusion", "disorder_present"),
    ...     ("left", "concept")}, None)])
    >>> s["typed_words"]["recall"], s["concept"]["recall"], s["relations"]["items"]
    (0.5, 0.0, 0)
    """
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predicted items for {len(gold)} gold items")
    counts: dict[str, list[int]] = {}  # name -> [hits, predicted, gold]

    def add(name: str, pred: set, ref: set) -> None:
        row = counts.setdefault(name, [0, 0, 0])
        row[0] += len(pred & ref)
        row[1] += len(pred)
        row[2] += len(ref)

    related = 0
    for (pred_entities, pred_relations), (gold_entities, gold_relations) in zip(predicted, gold):
        pred_words, gold_words = typed_words(pred_entities), typed_words(gold_entities)
        add("typed_words", pred_words, gold_words)
        for kind in sorted({k for _, k in pred_words | gold_words}):
            add(kind, {w for w in pred_words if w[1] == kind}, {w for w in gold_words if w[1] == kind})
        if gold_relations is not None:
            related += 1
            add("relations", head_relations(pred_relations), head_relations(gold_relations))
    scores = {}
    for name, (hits, n_pred, n_gold) in counts.items():
        precision = hits / n_pred if n_pred else 0.0
        recall = hits / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[name] = {"precision": precision, "recall": recall, "f1": f1, "gold": n_gold, "predicted": n_pred}
    scores.setdefault("relations", {"precision": 0.0, "recall": 0.0, "f1": 0.0, "gold": 0, "predicted": 0})
    scores["relations"]["items"] = related
    return scores


_POLAR = {
    "disorder_present": ("disorder", True),
    "disorder_notpresent": ("disorder", False),
    "devices_present": ("devices", True),
    "devices_notpresent": ("devices", False),
}


def polarity_agreement(predicted: Sequence[set], gold: Sequence[set]) -> dict[str, float]:
    """Present/absent agreement on the findings and devices both sides found: per item, every word the gold labels
    as a disorder (or device) that the prediction also labels as one, counted as agreeing when both say present or
    both say absent. Items are entity (text, type) sets.

    >>> polarity_agreement([{("no", "concept"), ("effusion", "disorder_present")}],
    ...                    [{("effusion", "disorder_notpresent")}])
    {'shared': 1, 'agree': 0, 'accuracy': 0.0}
    """
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predicted items for {len(gold)} gold items")
    shared = agree = 0
    for pred_entities, gold_entities in zip(predicted, gold):
        polarity_of = {}
        for word, kind in typed_words(pred_entities):
            if kind in _POLAR:
                polarity_of.setdefault((word, _POLAR[kind][0]), set()).add(_POLAR[kind][1])
        for word, kind in typed_words(gold_entities):
            if kind in _POLAR and (word, _POLAR[kind][0]) in polarity_of:
                shared += 1
                agree += polarity_of[(word, _POLAR[kind][0])] == {_POLAR[kind][1]}
    return {"shared": shared, "agree": agree, "accuracy": agree / shared if shared else 1.0}
