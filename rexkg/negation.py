"""Negation and hedging of the rules backend: a scoped trigger algorithm in the manner of NegEx and ConText.

A sentence is scanned once, left to right, for triggers (longest phrase first). Each trigger has a role and a
direction:
- **negation** ("no", "without", "free of", "resolution of", "removal of"; after the finding: "has resolved", "was
  removed", "is not seen"; both ways: "no longer"): the findings and devices in its scope are absent
  (`disorder_notpresent`, `devices_notpresent`).
- **probable negation** ("unlikely", "less likely", "not likely", "doubtful"; before the finding: "argues against",
  "more likely than"): ReXKG's guideline types a finding as present or not "according to the sentence", and these
  sentences say it is probably not there, so it is absent, and marked hedged.
- **uncertainty** ("possible", "likely", "may represent", "cannot be excluded", "not ruled out", "concerning for"):
  the finding stays present, as the guideline's two types allow and as a reader must still act on it, and is marked
  hedged, so that the KG reward tells "consolidation is likely" apart from "consolidation is present".
- **pseudo-triggers** negate nothing although they contain a negation word: comparison with a prior study ("no
  (significant / interval) change in", "no increase in", "no worsening of"), double negations ("has not resolved",
  "no resolution of", "not free of", "not absent", "has not been removed") and "not only". A pseudo-trigger consumes
  its words, so the negation inside it never fires.

Scope is a property of the sentence's structure, not of the trigger: a forward scope runs to the end of the sentence
or to a termination term, a backward scope to the start of its clause.
- Termination terms end a forward scope: conjunctions that contrast or add a new clause ("but", "however",
  "although", "though", "whereas", "while", "except"), relative and existential starts ("which", "there"), "with"
  (it attaches another finding: "no effusion with a right lower lobe opacity"), ";" and ", and" (a new clause).
- A clause starts after a comma, ";" or one of the terms above ("with" included): a backward scope never crosses one.
- A trigger directly after "partially", "nearly", "near-complete", "incomplete", ... describes a finding that is
  still there ("partial resolution of", "nearly resolved"), and is no trigger.

Every decision above is written beside its phrase below. A trigger in the uncertainty list wins over a negation word
inside it ("cannot be excluded" is no "not").
"""

from __future__ import annotations

from bisect import bisect_left
from typing import NamedTuple

from rexkg.mentions import Mention, phrase_index, phrase_length

NEGATION, PROBABLE, UNCERTAIN, PSEUDO = "negation", "probable", "uncertain", "pseudo"
FORWARD, BACKWARD, BOTH = "forward", "backward", "both"


class Trigger(NamedTuple):
    role: str
    direction: str


def _table(role: str, direction: str, phrases: list[str]) -> dict[tuple[str, ...], Trigger]:
    return {tuple(phrase.split()): Trigger(role, direction) for phrase in phrases}


_ADVERBS = ("", "completely ", "fully ", "entirely ", "yet ", "been ", "completely been ")
TRIGGERS: dict[tuple[str, ...], Trigger] = {
    # The finding or device after it is absent.
    **_table(NEGATION, FORWARD, [
        "no", "not", "without", "free of", "clear of", "negative for", "absence of", "nothing", "nor", "neither",
        "rather than",
        # resolution and removal: the guideline's "not present according to the sentence"
        "resolution of", "removal of",
    ]),
    # The finding or device before it, in its clause, is absent.
    **_table(NEGATION, BACKWARD, [
        "has resolved", "have resolved", "has cleared", "have cleared", "is absent", "are absent",
        "is not seen", "are not seen", "not seen", "not identified", "not visualized", "not noted", "not present",
        "not appreciated", "not demonstrated", "not evident", "not visible", "not detected",
        "was removed", "were removed", "has been removed", "have been removed", "removed",
    ]),
    # "There is no longer any effusion" and "the effusion is no longer seen".
    **_table(NEGATION, BOTH, ["no longer", "resolved"]),
    # Probably not there: absent, and hedged. "unlikely to represent pneumonia" looks forward (see _direction).
    **_table(PROBABLE, BACKWARD, [
        "unlikely", "less likely", "not likely", "doubtful", "improbable", "considered unlikely",
    ]),
    **_table(PROBABLE, FORWARD, ["argues against", "argue against", "more likely than"]),
    # Possibly there: present, and hedged.
    **_table(UNCERTAIN, BOTH, [
        "possible", "possibly", "probable", "probably", "likely", "may", "might", "could", "questionable",
        "suspicious for", "concerning for", "suspected", "suspect", "versus", "vs",
        "cannot exclude", "can not exclude", "cannot be excluded", "can not be excluded", "not be excluded",
        "not excluded", "not ruled out", "cannot rule out", "not possible to exclude", "difficult to exclude",
        "cannot be completely excluded", "not entirely excluded",
    ]),
    # Negation words that negate nothing: comparison with a prior, double negation, "not only".
    **_table(PSEUDO, FORWARD, [
        "no change", "no changes", "not only", "no less", "no lack of", "not free of", "not clear of",
        "no resolution of", "not absent", "no decrease", "no increase", "no worsening",
        *[f"no {quality} {change}" for quality in ("significant", "interval", "appreciable", "significant interval")
          for change in ("change", "changes", "increase", "decrease", "worsening")],
        *[f"not {adverb}{verb}" for adverb in _ADVERBS for verb in ("resolved", "cleared", "removed")],
        *[f"has not {adverb}{verb}" for adverb in _ADVERBS for verb in ("resolved", "cleared", "removed")],
    ]),
}  # fmt: skip
_INDEX = phrase_index(list(TRIGGERS))
_TRIGGER_WORDS = frozenset(_INDEX)
# A trigger right after one of these describes a finding that is still there ("partial resolution of").
_PARTIAL = frozenset("partially partial nearly near near-complete almost incompletely incomplete slowly".split())
TERMINATION = frozenset("but however although though whereas while except which there with ;".split())
CLAUSE_BREAK = TERMINATION | {","}


def _direction(trigger: Trigger, words: list[str], after: int) -> str:
    # "unlikely to represent pneumonia", "less likely that ...": the hedged finding follows the trigger.
    if (
        trigger.role == PROBABLE
        and trigger.direction == BACKWARD
        and after < len(words)
        and words[after] in ("to", "that")
    ):
        return FORWARD
    return trigger.direction


def _ends_scope(words: list[str], i: int) -> bool:
    return words[i] in TERMINATION or (words[i] == "and" and i > 0 and words[i - 1] == ",")


def apply_negation(words: list[str], mentions: list[Mention]) -> None:
    """Mark the findings and devices that `words` (one sentence) state as absent (`mention.negated`) or hedge
    (`mention.hedged`), by the triggers and scopes of the module docstring."""
    targets = sorted((m for m in mentions if m.kind in ("disorder", "device")), key=lambda m: m.first)
    if not targets or _TRIGGER_WORDS.isdisjoint(words):
        return
    firsts = [m.first for m in targets]
    scope_end = [len(words)] * (len(words) + 1)  # scope_end[j]: the first termination at or after j
    for j in range(len(words) - 1, -1, -1):
        scope_end[j] = j if _ends_scope(words, j) else scope_end[j + 1]
    i, clause_start = 0, 0
    while i < len(words):
        word = words[i]
        if word in CLAUSE_BREAK or (word == "and" and i > 0 and words[i - 1] == ","):
            clause_start = i + 1
        length = phrase_length(words, i, _INDEX) if word in _INDEX else 0
        if not length:
            i += 1
            continue
        trigger = TRIGGERS[tuple(words[i : i + length])]
        if trigger.role != PSEUDO and not (i > 0 and words[i - 1] in _PARTIAL):
            direction = _direction(trigger, words, i + length)
            if direction in (FORWARD, BOTH):
                _mark(targets[bisect_left(firsts, i + length) : bisect_left(firsts, scope_end[i + length])], trigger)
            if direction in (BACKWARD, BOTH):
                _mark(targets[bisect_left(firsts, clause_start) : bisect_left(firsts, i)], trigger)
        i += length


def _mark(mentions: list[Mention], trigger: Trigger) -> None:
    for mention in mentions:
        if trigger.role in (NEGATION, PROBABLE):
            mention.negated = True
        if trigger.role in (PROBABLE, UNCERTAIN):
            mention.hedged = True
