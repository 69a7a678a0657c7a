"""Negation scope of the rules backend: which findings and devices a sentence states as absent.

Pre-cues ("no", "without", "free of", "negative for", "resolution of", "removal of", ...) negate the findings and
devices after them up to a scope break ("but", "however", "although", "which", "there", a new sentence). Post-cues
("has resolved", "was removed", "is not seen", "no longer", ...) negate those before them in the same clause. "No
(significant) change in ..." compares with a prior study and negates nothing; "partially resolved" leaves a finding
present.

Uncertainty. "possible", "cannot exclude", "may represent", "likely", ... leave a finding `disorder_present`. ReXKG's
labellers were told to separate present from absent findings only, and an uncertain finding is one the reader must
still act on; labelling it absent would reward a model for dropping a differential diagnosis. So hedges never negate
("can not exclude" is not read as "not").
"""

from __future__ import annotations

from rexkg.mentions import Mention, phrase_index, phrase_length

_PRE_NEGATION = phrase_index(
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
        ("neither",),
    ]
)
_POST_NEGATION = phrase_index(
    [
        ("has", "resolved"),
        ("have", "resolved"),
        ("resolved",),
        ("is", "not", "seen"),
        ("are", "not", "seen"),
        ("not", "seen"),
        ("not", "identified"),
        ("not", "visualized"),
        ("not", "noted"),
        ("not", "present"),
        ("not", "appreciated"),
        ("not", "demonstrated"),
        ("not", "evident"),
        ("not", "visible"),
        ("not", "detected"),
        ("has", "cleared"),
        ("have", "cleared"),
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
_HEDGES = phrase_index(
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
_NEGATION_WORDS = frozenset(_PRE_NEGATION) | frozenset(_POST_NEGATION)
# "no longer" is a post-cue; "no (significant) change in ..." compares with a prior study and negates nothing.
_NOT_A_PRE_NEGATION = phrase_index(
    [("no", "longer"), ("no", "change"), ("no", "changes")]
    + [("no", q, c) for q in ("significant", "interval", "appreciable") for c in ("change", "changes")]
)
# "partially resolved" describes a finding that is still there.
_PARTIAL = frozenset("partially nearly almost incompletely slowly".split())
SCOPE_BREAK = frozenset("but however although though whereas while except which there".split())
CLAUSE_BREAK = frozenset({",", "but", "however", "although", "though", "whereas", "while", "which"})


def apply_negation(words: list[str], mentions: list[Mention]) -> None:
    """Mark the findings and devices that `words` (one sentence) state as absent: `mention.negated = True`."""
    negatable = [m for m in mentions if m.kind in ("disorder", "device")]
    if not negatable or _NEGATION_WORDS.isdisjoint(words):
        return
    starting_at = {m.first: m for m in negatable}
    hedged = set()
    for i, word in enumerate(words):
        if word in _HEDGES:
            hedged.update(range(i, i + phrase_length(words, i, _HEDGES)))
    clause_start, scope_open = 0, False
    for i, word in enumerate(words):
        if word in SCOPE_BREAK:
            scope_open = False
        if word in CLAUSE_BREAK:
            clause_start = i + 1
        if i not in hedged and word in _NEGATION_WORDS:
            partial = i > 0 and words[i - 1] in _PARTIAL
            if phrase_length(words, i, _POST_NEGATION) and not partial:
                for mention in reversed(negatable):  # in text order: walk back to the clause start only
                    if mention.first >= i:
                        continue
                    if mention.first < clause_start:
                        break
                    mention.negated = True
            if phrase_length(words, i, _PRE_NEGATION) and not phrase_length(words, i, _NOT_A_PRE_NEGATION):
                scope_open = True
        if scope_open and i in starting_at:
            starting_at[i].negated = True
