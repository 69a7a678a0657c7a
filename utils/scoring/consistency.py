"""Does a response's reasoning support the answer it gives? A check per question type, over the knowledge graph of
the reasoning (the rules extractor, the KG reward's).

Verdicts: `consistent`, `contradicts`, or `unchecked` when the question is of no type below or the reasoning does not
commit to one reading (it names both sides, or neither).
- **presence** ("Is there any evidence of X?", "Is there X?", "Is X present?", "Is the X enlarged?"): the reasoning
  states a finding of the question as present and the answer is "no", or as absent and the answer is "yes".
- **side** ("Which side ..., left or right?", "Where is the X located?"): the reasoning names one side and the answer
  another (and, for a location, one zone of upper / middle / lower and the answer another).
- **view** ("PA or AP?"): the reasoning names one projection and the answer the other.
- **sex** ("male or female?"): the reasoning names one and the answer the other.
- **change** ("how has X changed?"): the reasoning names one kind of change (new, worse, better, resolved,
  unchanged) and the answer another.

A contradiction is what the paper's KG reward is meant to remove; `external_consistency` pays 0 for it and 1 for
everything else, so it never pays a reasoning for being vague.

>>> check("What is the view of this image, PA or AP?",
...       "<think>The positioning indicates a AP projection.</think><answer>PA</answer>").verdict
'contradicts'
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

from rexkg import get_extractor
from utils.scoring.answers import answer_items, answer_span, think_text

CONSISTENT, CONTRADICTS, UNCHECKED = "consistent", "contradicts", "unchecked"
_PRESENCE = re.compile(r"^\s*(is there|are there|is the|are the|is this|does|do)\b", re.I)
_SIDE = re.compile(r"\b(which side|left or right|right or left|where is|where are|located)\b", re.I)
_VIEW = re.compile(r"\b(pa or ap|ap or pa)\b", re.I)
_SEX = re.compile(r"\b(male or female|female or male)\b", re.I)
_CHANGE = re.compile(r"\bhow ha(s|ve)\b.*\bchanged\b", re.I)
_WORDS = re.compile(r"[a-z]+(?:-[a-z]+)?")
_CHANGES = {
    "new": "new",
    "worse": "worse",
    "worsened": "worse",
    "worsening": "worse",
    "increased": "worse",
    "larger": "worse",
    "better": "better",
    "improved": "better",
    "improving": "better",
    "decreased": "better",
    "smaller": "better",
    "resolved": "resolved",
    "unchanged": "unchanged",
    "stable": "unchanged",
}


class Consistency(NamedTuple):
    verdict: str
    reason: str


def _words(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


def _one(named: set[str], options: set[str]) -> str | None:
    found = named & options
    return next(iter(found)) if len(found) == 1 else None


def check(question: str, response: object) -> Consistency:
    """The verdict of one response to `question` (see the module docstring)."""
    if not isinstance(question, str) or not isinstance(response, str):
        return Consistency(UNCHECKED, "no text")
    answer = answer_span(response)
    if answer is None:
        return Consistency(UNCHECKED, "no <answer> span")
    items = answer_items(answer)
    reasoning = think_text(response)
    said, answered = set(_words(reasoning)), {word for item in items for word in _words(item)}
    if _VIEW.search(question):
        return _compare("projection", _one(said, {"pa", "ap"}), _one(answered, {"pa", "ap"}))
    if _SEX.search(question):
        return _compare("sex", _one(said, {"male", "female"}), _one(answered, {"male", "female"}))
    if _CHANGE.search(question):
        kinds = {_CHANGES[w] for w in said if w in _CHANGES}
        meant = {_CHANGES[w] for w in answered if w in _CHANGES}
        return _compare("change", _one(kinds, kinds), _one(meant, meant))
    if _SIDE.search(question):
        side = _compare("side", _one(said, {"left", "right"}), _one(answered, {"left", "right"}))
        zones = {"upper", "middle", "lower"}
        zone = _compare("zone", _one(said & zones, zones), _one(answered & zones, zones))
        if CONTRADICTS in (side.verdict, zone.verdict):
            return side if side.verdict == CONTRADICTS else zone
        return side
    if _PRESENCE.match(question) and items in ({"yes"}, {"no"}):
        return _presence(question, reasoning, "yes" in items)
    return Consistency(UNCHECKED, "no check for this question")


def _compare(what: str, stated: str | None, answered: str | None) -> Consistency:
    if stated is None or answered is None:
        return Consistency(UNCHECKED, f"the reasoning or the answer names no single {what}")
    if stated == answered:
        return Consistency(CONSISTENT, f"{what}: {stated}")
    return Consistency(CONTRADICTS, f"the reasoning says {what} {stated}, the answer {answered}")


@functools.lru_cache(maxsize=4096)
def _asked_findings(question: str) -> frozenset[str]:
    # A GRPO step checks every generation of a prompt against the same question: extract it once.
    entities = get_extractor("rules")([question])[0].entities
    return frozenset(e.text.lower() for e in entities if e.type.startswith(("disorder", "devices")))


def _presence(question: str, reasoning: str, answered_yes: bool) -> Consistency:
    asked = _asked_findings(question)
    stated = {
        e.type.endswith("_present")
        for e in get_extractor("rules")([reasoning])[0].entities
        if e.text.lower() in asked and e.type.startswith(("disorder", "devices"))
    }
    if len(stated) != 1:
        return Consistency(UNCHECKED, "the reasoning does not state the asked finding one way")
    present = stated.pop()
    if present == answered_yes:
        return Consistency(CONSISTENT, f"the reasoning calls it {'present' if present else 'absent'}")
    stated_as, answered_as = ("present" if present else "absent"), ("yes" if answered_yes else "no")
    return Consistency(CONTRADICTS, f"the reasoning calls it {stated_as}, the answer is {answered_as}")


def consistency_reward(question: str, response: object) -> float:
    """`external_consistency`: 0.0 when the reasoning contradicts the answer, 1.0 otherwise; never raises.

    >>> consistency_reward("Is there any evidence of pleural effusion?",
    ...                    "<think>There is no pleural effusion.</think><answer>yes</answer>")
    0.0
    """
    return 0.0 if check(question, response).verdict == CONTRADICTS else 1.0
