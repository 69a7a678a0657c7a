"""The knowledge-graph consistency reward: the reasoning of each completion against the reasoning of its own reference.

Both sides are reduced the same way before extraction (`utils.scoring.answers.think_text`: the `<think>` content, else
the text before `<answer>`, else everything), so a completion's tags and final answer never count as findings. Graphs
are compared with `rexkg.metrics.graph_scores`, the scorer the KG metric tool uses too.

`inputs="original"` reproduces the inputs of the original `ReportKG_Jaccard` (ecoxial2007/CheX-Phi4MM plugin.py)
instead, for reproducing the paper's reward: the graph of the *whole* completion (tags and final answer included)
against the graph of the reference's `<think>` part (`rexkg.text.original_reference_reasoning`), entities keyed by
text with one type each. Only the original's pairing bug (every completion against `solution[0]`) is not repeated.

Reference graphs are cached (references repeat across the generations of a prompt and across epochs); the extractor
is the process-wide one from `rexkg.get_extractor`, loaded once.

>>> scorer = KGScorer(get_extractor("rules"))
>>> details = scorer.score(["<think>Small left effusion.</think><answer>yes</answer>"],
...                        ["<think>Small left pleural effusion.</think><answer>yes</answer>"])
>>> round(kg_jaccard(details[0]), 3), details[0]["num_entities"]
(0.5, 3.0)
"""

from __future__ import annotations

import functools
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

from rexkg import KnowledgeGraph, get_extractor
from rexkg.metrics import graph_scores
from rexkg.text import original_reference_reasoning
from utils.scoring.answers import think_text

KGInputs = Literal["think", "original"]

# Enough for every distinct reference of a 5,000-sample sweep several times over; a rules graph is a few KB.
DEFAULT_CACHE_SIZE = 65_536


class KGComparison(NamedTuple):
    """One completion's graph, its reference's graph, the reward's scores, and how entities were keyed."""

    predicted: KnowledgeGraph
    reference: KnowledgeGraph
    scores: dict[str, float]
    entities_by_text: bool = False


class KGScorer:
    """Extracts graphs for completions and (cached) references and scores each pair.

    `extractor` is any callable `list[str] -> list[KnowledgeGraph]` (a `rexkg.Extractor`).
    """

    def __init__(
        self, extractor: Callable[[Sequence[str]], list[KnowledgeGraph]], cache_size: int = DEFAULT_CACHE_SIZE
    ):
        self._extract = extractor
        self._cache_size = cache_size
        self._reference_graphs: OrderedDict[str, KnowledgeGraph] = OrderedDict()
        self.cache_hits = 0
        self.cache_misses = 0

    def reference_graphs(self, solutions: Sequence[str], inputs: KGInputs = "think") -> list[KnowledgeGraph]:
        """Graphs of the references' reasoning, extracting only those not cached (in one batch)."""
        reasoning = think_text if inputs == "think" else original_reference_reasoning
        thinks = [reasoning(solution) for solution in solutions]
        missing = list(dict.fromkeys(t for t in thinks if t not in self._reference_graphs))
        self.cache_misses += len(missing)
        self.cache_hits += len(thinks) - len(missing)
        if missing:
            for text, graph in zip(missing, self._extract(missing)):
                self._reference_graphs[text] = graph
        graphs = []
        for text in thinks:
            self._reference_graphs.move_to_end(text)
            graphs.append(self._reference_graphs[text])
        while len(self._reference_graphs) > self._cache_size:
            self._reference_graphs.popitem(last=False)
        return graphs

    def score(
        self, completions: Sequence[object], solutions: Sequence[str], inputs: KGInputs = "think"
    ) -> list[dict[str, float]]:
        """Per completion: entity/relation precision, recall, F1 and Jaccard against its own reference, plus
        `num_entities` (entities found in the completion's reasoning). `inputs`: see the module docstring."""
        return [comparison.scores for comparison in self.compare(completions, solutions, inputs)]

    def compare(
        self, completions: Sequence[object], solutions: Sequence[str], inputs: KGInputs = "think"
    ) -> list[KGComparison]:
        """`score`, with the two graphs each score came from (what the reports draw)."""
        if len(completions) != len(solutions):
            raise ValueError(f"{len(completions)} completions but {len(solutions)} solutions: they must pair up")
        if inputs not in ("think", "original"):
            raise ValueError(f"KG reward inputs {inputs!r}: choose 'think' or 'original'")
        if inputs == "think":
            texts = [think_text(completion) for completion in completions]
        else:
            texts = [completion if isinstance(completion, str) else "" for completion in completions]
        predicted = self._extract(texts)
        references = self.reference_graphs(solutions, inputs)
        by_text = inputs == "original"
        return [
            KGComparison(
                pred,
                gold,
                {
                    **graph_scores(pred, gold, entities_by_text=by_text),
                    "num_entities": float(len(pred.entities)),
                    "num_relations": float(len(pred.relation_keys())),
                    "num_reference_relations": float(len(gold.relation_keys())),
                },
                by_text,
            )
            for pred, gold in zip(predicted, references)
        ]


def _without_free_relations(entity_score: float, relation_score: float, details: dict[str, float]) -> float:
    # Two empty relation sets agree about nothing: averaging in their 1.0 would pay half the reward to an empty
    # reasoning, or to "AP projection" against "PA projection". Where neither side has a relation, the entities
    # alone decide.
    if not details["num_relations"] and not details["num_reference_relations"]:
        return entity_score
    return (entity_score + relation_score) / 2


def kg_jaccard(details: dict[str, float]) -> float:
    """`external_kg_jac`: the mean of entity and relation Jaccard; when neither graph has a relation, the entity
    Jaccard alone (an empty reasoning against a reference with findings scores 0).

    >>> kg_jaccard({"entity_jaccard": 0.0, "relation_jaccard": 1.0, "num_relations": 0, "num_reference_relations": 0})
    0.0
    """
    return _without_free_relations(details["entity_jaccard"], details["relation_jaccard"], details)


def kg_jaccard_original(details: dict[str, float]) -> float:
    """`external_kg_jac_original`: the original reward's arithmetic, the plain mean of entity and relation Jaccard
    (two empty relation sets count 1.0), to reproduce the paper's reward."""
    return (details["entity_jaccard"] + details["relation_jaccard"]) / 2


def kg_f1(details: dict[str, float]) -> float:
    """`external_kg_f1`: the mean of entity and relation F1; the entity F1 alone when neither graph has a relation."""
    return _without_free_relations(details["entity_f1"], details["relation_f1"], details)


@functools.lru_cache(maxsize=4)
def get_kg_scorer(
    backend: str = "rules",
    model_dir: str | None = None,
    tokenizer_dir: str | None = None,
    pipeline: str = "chexpo",
) -> KGScorer:
    """The process-wide scorer for one extractor configuration (shared by the Jaccard and F1 rewards, so they share
    the reference cache too). `pipeline` applies to the neural backend; the reward's default is `chexpo`,
    CheX-Phi4MM's wrapper, the one the paper's reward ran."""
    return KGScorer(get_extractor(backend, model_dir, tokenizer_dir, pipeline if backend == "neural" else "rexkg"))


def kg_scorer_from_env() -> KGScorer:
    """The scorer the KG rewards use, configured as they read it: `CHEX_KG_BACKEND` (`rules` or `neural`),
    `CHEX_REXKG_MODEL_DIR`, `CHEX_REXKG_TOKENIZER_DIR`, `CHEX_KG_NEURAL_PIPELINE` (README, "Environment variables").

    >>> kg_scorer_from_env() is get_kg_scorer("rules", None, None, "chexpo")  # with none of them set
    True
    """
    return get_kg_scorer(
        os.environ.get("CHEX_KG_BACKEND", "rules"),
        os.environ.get("CHEX_REXKG_MODEL_DIR") or None,
        os.environ.get("CHEX_REXKG_TOKENIZER_DIR") or None,
        os.environ.get("CHEX_KG_NEURAL_PIPELINE", "chexpo"),
    )
