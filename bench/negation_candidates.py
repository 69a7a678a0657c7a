"""The field's clinical-negation tools as candidates for the KG reward's polarity: medspaCy's ConText and negspacy's
NegEx, against our rules, on both development sets.

    python3 -m venv /tmp/negvenv && /tmp/negvenv/bin/pip install medspacy==1.3.1 negspacy==1.0.4
    /tmp/negvenv/bin/python bench/negation_candidates.py

Not part of `make bench`: neither package is a dependency of the project (spaCy 3.7 pins numpy below the version
our stack uses), so they live in a venv of their own. Both ship their rules in the package; no model is loaded (a
blank English tokenizer). Each candidate decides present/absent for exactly the finding and device spans our rules
extractor found, so only polarity differs; the score is `rexkg.metrics.polarity_agreement` against the hand labels
(the figure `python -m rexkg evaluate` prints); a span spaCy cannot keep (overlapping another) counts as present.
Speed: texts per second on one core, rules extraction (without its sentence memo) included.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rexkg.gold import load_gold  # noqa: E402
from rexkg.metrics import polarity_agreement  # noqa: E402
from rexkg.rules import extract_rules  # noqa: E402

POLAR = {"disorder": ("disorder_present", "disorder_notpresent"), "devices": ("devices_present", "devices_notpresent")}


def _family(kind: str) -> str | None:
    return next((family for family, kinds in POLAR.items() if kind in kinds), None)


def with_polarity(graph, negated: list[bool]) -> set[tuple[str, str]]:
    """The graph's (text, type) entities, each finding or device typed present/absent by `negated` (in order)."""
    out, flags = set(), iter(negated)
    for entity in graph.entities:
        family = _family(entity.type)
        if family is None:
            out.add((entity.text.lower(), entity.type))
        else:
            out.add((entity.text.lower(), POLAR[family][1 if next(flags) else 0]))
    return out


def spacy_candidate(name: str):
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")  # ConText scopes modifiers by sentence
    if name == "medspacy ConText":
        from medspacy.context import ConText

        context = ConText(nlp)  # the package's default rules (NegEx-derived, with pseudo-negations and terminations)

        def negated(span) -> bool:
            return bool(span._.is_negated)

        component = context
    else:
        from negspacy.negation import Negex
        from negspacy.termsets import termset

        component = Negex(nlp, name="negex", neg_termset=termset("en_clinical").get_patterns(), ent_types=[],
                          extension_name="negex", chunk_prefix=[])  # fmt: skip

        def negated(span) -> bool:
            return bool(span._.negex)

    def decide(text: str, graph) -> list[bool]:
        doc = nlp(text)
        spans = []
        for entity in graph.entities:
            if _family(entity.type):
                span = doc.char_span(entity.start, entity.end, label="FINDING", alignment_mode="expand")
                spans.append(span)
        kept = [s for s in spans if s is not None]
        doc.ents = spacy.util.filter_spans(kept)
        doc = component(doc)
        by_start = {s.start_char: s for s in doc.ents}
        return [s is not None and s.start_char in by_start and negated(by_start[s.start_char]) for s in spans]

    return decide


def main() -> int:
    sets = {name: load_gold(REPO / "rexkg" / "data" / name) for name in ("guideline_dev.txt", "dev2_reports.txt")}
    candidates = {"our rules": None}
    for name in ("medspacy ConText", "negspacy NegEx"):
        try:
            candidates[name] = spacy_candidate(name)
        except ImportError as error:
            print(f"{name}: not installed ({error}); see the module docstring", file=sys.stderr)
            return 2
    print(f"{'candidate':20s} {'set':20s} {'shared':>6s} {'polarity':>9s} {'texts/s':>9s}")
    for name, decide in candidates.items():
        for set_name, items in sets.items():
            texts = [item.text for item in items]
            start = time.perf_counter()
            repeats = 5
            for _ in range(repeats):
                predicted = []
                for text in texts:
                    graph = extract_rules(text, memoize=False)
                    if decide is None:
                        predicted.append({(e.text.lower(), e.type) for e in graph.entities})
                    else:
                        predicted.append(with_polarity(graph, decide(text, graph)))
            speed = repeats * len(texts) / (time.perf_counter() - start)
            score = polarity_agreement(predicted, [item.entities for item in items])
            print(f"{name:20s} {set_name:20s} {score['shared']:6d} {score['accuracy']:9.3f} {speed:9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
