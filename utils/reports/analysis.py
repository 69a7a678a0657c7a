"""What the report pages show about one response, computed by the training's own scorers (no second implementation).

For a response and its reference explanation (the `solution` the GRPO rewards receive): every reward the training
would give it (`external_r1v_acc`, `external_answer_strict`, `external_kg_jac` with entity and relation IoU), and the
two knowledge graphs of `external_kg_jac` (response reasoning, reference reasoning) with each entity and relation
marked matched, missing (reference only) or invented (response only), from the key sets the scorer compares
(`rexkg.metrics.compared_keys`).

>>> from utils.scoring.kg_reward import get_kg_scorer
>>> [view] = analyse(["<think>Small left effusion.</think><answer>yes</answer>"],
...                  ["<think>Small left pleural effusion.</think><answer>yes</answer>"], get_kg_scorer("rules"))
>>> view["rewards"]["external_kg_jac"], view["graph"]["counts"]["entity"]
(0.5, {'matched': 3, 'missing': 1, 'invented': 0})
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence

from rexkg import KnowledgeGraph
from rexkg.metrics import compared_keys
from rexkg.schema import hedge_key
from utils.data.annotations import TYPE_FIELDS
from utils.scoring.answers import think_text
from utils.scoring.kg_reward import KGComparison, KGScorer, kg_jaccard
from utils.scoring.rewards import answer_f1, r1v_accuracy

REWARD_NAMES = ("external_r1v_acc", "external_answer_strict", "external_kg_jac", "entity_iou", "relation_iou")


def _side(text: str, graph: KnowledgeGraph, entity_keys: set, relation_keys: set, absent: str, by_text: bool) -> dict:
    text_type = {e.text.lower(): e.type for e in graph.entities}  # the original's one type per text
    entities = []
    for e in graph.entities:
        key = (e.text.lower(), text_type[e.text.lower()]) if by_text else hedge_key(e)
        status = "matched" if key in entity_keys else absent
        entities.append({"text": e.text, "type": e.type, "start": e.start, "end": e.end, "status": status})
    relations = [
        {
            "source": r.source.text,
            "target": r.target.text,
            "type": r.type,
            "status": "matched" if (r.source.text.lower(), r.target.text.lower(), r.type) in relation_keys else absent,
        }
        for r in graph.relations
    ]
    return {"text": text, "entities": entities, "relations": relations}


def graph_view(comparison: KGComparison, response_text: str, reference_text: str) -> dict:
    """The KG panel's data: both sides' entities and relations with their marks, and the counts of distinct keys
    (what the IoU is computed from: matched / (matched + missing + invented))."""
    keys = compared_keys(comparison.predicted, comparison.reference, comparison.entities_by_text)
    (pred_entities, gold_entities), (pred_relations, gold_relations) = keys["entity"], keys["relation"]
    by_text = comparison.entities_by_text
    return {
        "response": _side(response_text, comparison.predicted, gold_entities, gold_relations, "invented", by_text),
        "reference": _side(reference_text, comparison.reference, pred_entities, pred_relations, "missing", by_text),
        "counts": {
            name: {"matched": len(p & g), "missing": len(g - p), "invented": len(p - g)}
            for name, (p, g) in keys.items()
        },
    }


def analyse(responses: Sequence[str], solutions: Sequence[str], scorer: KGScorer) -> list[dict]:
    """Per response: `rewards` (REWARD_NAMES) and `graph` (`graph_view`), against its own solution."""
    comparisons = scorer.compare(responses, solutions)
    views = []
    for response, solution, comparison in zip(responses, solutions, comparisons):
        scores = comparison.scores
        rewards = {
            "external_r1v_acc": r1v_accuracy(response, solution),
            "external_answer_strict": answer_f1(response, solution),
            "external_kg_jac": kg_jaccard(scores),
            "entity_iou": scores["entity_jaccard"],
            "relation_iou": scores["relation_jaccard"],
        }
        views.append({"rewards": rewards, "graph": graph_view(comparison, think_text(response), think_text(solution))})
    return views


def kg_histogram(values: Sequence[float], bins: int = 10) -> list[dict]:
    """Counts of KG agreement values in `bins` equal bins over [0, 1] (1.0 in the last).

    >>> [b["count"] for b in kg_histogram([0.0, 0.05, 0.5, 1.0], bins=4)]
    [2, 0, 1, 1]
    """
    counts = [0] * bins
    for value in values:
        counts[min(bins - 1, int(value * bins))] += 1
    return [{"label": f"{i / bins:.1f}", "count": count} for i, count in enumerate(counts)]


def mean_and_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error (the noise of one evaluation of a mean score).

    >>> mean_and_se([0.0, 1.0])
    (0.5, 0.5)
    """
    if not values:
        return 0.0, 0.0
    mean = sum(values) / len(values)
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return mean, se


def per_type(samples: Sequence[dict], block: Callable[[Sequence[dict]], dict]) -> dict[str, dict[str, dict]]:
    """`block` of all samples ({"overall": {"all": ...}}) and of each value of each type field, values sorted.

    >>> per_type([{"question_type": "verify", "semantic_type": "size", "answer_type": "closed"}], len)["question_type"]
    {'verify': 1}
    """
    summary: dict[str, dict] = {"overall": {"all": block(samples)}}
    for field in TYPE_FIELDS:
        groups: dict[str, list[dict]] = defaultdict(list)
        for sample in samples:
            groups[sample[field]].append(sample)
        summary[field] = {name: block(rows) for name, rows in sorted(groups.items())}
    return summary
