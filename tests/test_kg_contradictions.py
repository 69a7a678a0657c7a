"""The KG reward never pays in full for a contradiction of its reference.

From the two hand-labelled development sets (rexkg/data/guideline_dev.txt, rexkg/data/dev2_reports.txt; written for
this project, no ReXKG or RadGraph text), contradicting copies of each sentence are made by surface edits chosen from
the gold labels alone, never from the extractor's output:
- drop a negation cue that negates a finding or device ("No pneumothorax." -> "Pneumothorax.");
- add one ("Small left effusion." -> "No small left effusion.");
- swap the only side named (left <-> right);
- move a finding to another anatomy (upper <-> lower, apex <-> base, apical <-> basilar);
- swap a device between present and absent ("has been removed" <-> "remains in place").

For every copy, `external_kg_jac` of the copy against the original as reference must be below its value for the
unchanged original. The counts per kind are printed (`pytest -s`) and quoted in the README.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from rexkg.gold import load_gold
from utils.scoring.kg_reward import get_kg_scorer, kg_f1, kg_jaccard

DATA = Path(__file__).resolve().parents[1] / "rexkg" / "data"
DEV_SETS = ("guideline_dev.txt", "dev2_reports.txt", "dev3_comparisons.txt")
ABSENT = {"disorder_notpresent", "devices_notpresent"}
PRESENT = {"disorder_present", "devices_present"}
HEDGES = re.compile(
    r"\b(possible|possibly|probable|likely|may|might|could|cannot|can not|not excluded|questionable|suspect|"
    r"suspected|suspicious|concern|concerning|difficult to exclude|ruled out|versus|vs)\b",
    re.I,
)
# Pre-cues at the start of the sentence (after "Impression:" or "There is/are"), and what replaces them.
_LEADING_CUE = re.compile(
    r"^(?P<lead>(?:impression: )?(?:there (?:is|are) )?)"
    r"(?P<cue>no evidence of (?:an? )?|no signs? of (?:an? )?|no findings to suggest |negative for |no |"
    r"without evidence of (?:an? )?|without )",
    re.I,
)
# Post-cues: absent -> present (findings and devices).
_POST_CUES = (
    (r"\bhas resolved\b", "has increased"),
    (r"\bhave resolved\b", "have increased"),
    (r"\bis no longer (seen|visualized|visible|present)\b", "is again seen"),
    (r"\bis not (seen|visualized|identified|present)\b", "is seen"),
    (r"\bare not (seen|identified|present)\b", "are seen"),
    (r"\bis absent\b", "is present"),
    (r"\bhas been removed\b", "remains in place"),
    (r"\bhave been removed\b", "remain in place"),
)
# Present -> absent for devices.
_DEVICE_PRESENT = (
    (r"\bremains in place\b", "has been removed"),
    (r"\bremain in place\b", "have been removed"),
    (r"\bis in place\b", "has been removed"),
    (r"\bis present\b", "is no longer present"),
)
_VERBS = r"\b(is|are|has|have|was|were|remains?|measures|projects?|terminates?|ends|courses)\b"
# A sentence about a comparison or an inference is no finding phrase that "No" can negate.
# A negation cue's scope ends at these (NegEx/ConText termination terms); "No worsening X" and the like compare with a
# prior study and negate nothing (pseudo-triggers).
_TERMINATION = re.compile(r"\b(with|but|however|although|though|whereas|while|except|which)\b|;", re.I)
_COMPARISON_START = re.compile(
    r"^(worsening|change|increase|increased|decrease|decreased|improvement|improved)\b", re.I
)


def _in_a_leading_cues_scope(text: str, entities) -> bool:
    """Whether a negation cue put before `text` would negate a labelled present finding or device: one occurs before
    the first termination term, and the text does not start with a comparison word."""
    if _COMPARISON_START.match(text):
        return False
    head = _TERMINATION.split(text, maxsplit=1)[0].lower()
    return any(kind in PRESENT and re.search(rf"\b{re.escape(word)}\b", head) for word, kind in entities)


_NOT_A_FINDING_PHRASE = set(
    "interval improvement resolution findings features decreased increased suggest near".split()
)
_ANATOMY_MOVES = {"upper": "lower", "lower": "upper", "apex": "base", "base": "apex", "apical": "basilar",
                  "basilar": "apical"}  # fmt: skip
_SIDES = {"left": "right", "right": "left"}


def _kinds(entities) -> set[str]:
    return {kind for _, kind in entities}


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def contradictions(text: str, entities) -> list[tuple[str, str]]:
    """(kind, contradicting copy) pairs for one gold sentence (rules in the module docstring)."""
    kinds, words = _kinds(entities), _words(text)
    copies = []
    negated = kinds & ABSENT
    hedged = bool(HEDGES.search(text))
    if negated:
        match = _LEADING_CUE.match(text)
        if (
            match
            and words.count("no") + words.count("without") <= 1
            and not re.search(r"\b(but|however)\b", text, re.I)
        ):
            rest = text[match.end() :]
            cue = match["cue"].lower()
            if cue.startswith("without "):
                copy = match["lead"] + "with " + rest
            elif cue == "negative for ":
                copy = match["lead"] + "positive for " + rest
            else:
                copy = match["lead"] + rest
            copies.append(("drop negation cue", copy[:1].upper() + copy[1:]))
        for pattern, replacement in _POST_CUES:
            if re.search(pattern, text):
                copies.append(("drop negation cue", re.sub(pattern, replacement, text, count=1)))
                break
    if (
        kinds & PRESENT
        and not negated
        and not hedged
        and not re.search(r"\b(no|not|without|free|negative)\b", text, re.I)
        and _in_a_leading_cues_scope(text, entities)
    ):
        if re.match(r"^there (is|are) (an? )?", text, re.I):
            copies.append(("add negation cue", re.sub(r"^(there (?:is|are)) (?:an? )?", r"\1 no ", text, flags=re.I)))
        elif not re.search(_VERBS, text) and not set(words) & _NOT_A_FINDING_PHRASE:
            lead = "Impression: " if text.startswith("Impression: ") else ""
            body = text[len(lead) :]
            copies.append(("add negation cue", f"{lead}No {body[:1].lower()}{body[1:]}"))
        elif re.search(r"\b(is|are) (seen|noted|present|identified)\b", text):
            copies.append(
                (
                    "add negation cue",
                    re.sub(r"\b(is|are) (seen|noted|present|identified)\b", r"\1 not \2", text, count=1),
                )
            )
    if kinds & {"disorder_present", "disorder_notpresent", "devices_present"} and sum(w in _SIDES for w in words) == 1:
        copies.append(("swap laterality", re.sub(r"\b(left|right|Left|Right)\b", _swap_side, text, count=1)))
    if "disorder_present" in kinds and sum(w in _ANATOMY_MOVES for w in words) == 1:
        copies.append(("move to another anatomy", re.sub(r"\b(upper|lower|apex|base|apical|basilar)\b",
                                                         lambda m: _ANATOMY_MOVES[m[1]], text, count=1)))  # fmt: skip
    if "devices_present" in kinds and "devices_notpresent" not in kinds and not hedged:
        for pattern, replacement in _DEVICE_PRESENT:
            if re.search(pattern, text):
                copies.append(("swap device present/absent", re.sub(pattern, replacement, text, count=1)))
                break
    return [(kind, copy) for kind, copy in copies if copy != text]


def _swap_side(match: re.Match) -> str:
    side = _SIDES[match[1].lower()]
    return side.capitalize() if match[1][0].isupper() else side


def _cases() -> list[tuple[str, str, str, str]]:
    cases = []
    for name in DEV_SETS:
        for item in load_gold(DATA / name):
            for kind, copy in contradictions(item.text, item.entities):
                cases.append((name, kind, item.text, copy))
    return cases


CASES = _cases()


def test_the_generator_makes_every_kind_from_both_sets():
    counts = Counter((name, kind) for name, kind, _, _ in CASES)
    print("\ncontradicting copies per set and kind:")
    for key, count in sorted(counts.items()):
        print(f"  {key[0]:20s} {key[1]:28s} {count:4d}")
    print(f"  {'total':49s} {len(CASES):4d} from {len({c[2] for c in CASES})} sentences")
    kinds = {kind for _, kind, _, _ in CASES}
    assert kinds == {"drop negation cue", "add negation cue", "swap laterality", "move to another anatomy",
                     "swap device present/absent"}  # fmt: skip
    assert {name for name, _, _, _ in CASES} == set(DEV_SETS)


def _think(text: str) -> str:
    return f"<think>{text}</think><answer>yes</answer>"


def test_the_kg_reward_drops_below_the_unchanged_copy_on_every_contradiction():
    scorer = get_kg_scorer("rules")
    originals = [_think(original) for _, _, original, _ in CASES]
    copies = [_think(copy) for _, _, _, copy in CASES]
    unchanged = [kg_jaccard(d) for d in scorer.score(originals, originals)]
    contradicted = [kg_jaccard(d) for d in scorer.score(copies, originals)]
    missed = [
        f"{kind}: {original!r} -> {copy!r} ({after:.3f} vs {before:.3f})"
        for (_, kind, original, copy), before, after in zip(CASES, unchanged, contradicted)
        if not after < before
    ]
    assert missed == [], f"{len(missed)} of {len(CASES)} contradictions not penalised:\n" + "\n".join(missed)


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("No pleural effusions.", "drop negation cue", "Pleural effusions."),
        ("There is no mediastinal shift.", "drop negation cue", "There is mediastinal shift."),
        ("Without evidence of pulmonary edema.", "drop negation cue", "With pulmonary edema."),
        ("The left pneumothorax has resolved.", "drop negation cue", "The left pneumothorax has increased."),
        ("Small left apical pneumothorax.", "add negation cue", "No small left apical pneumothorax."),
        ("There is a small left pleural effusion.", "add negation cue", "There is no small left pleural effusion."),
        ("Consolidation in the left upper lobe.", "swap laterality", "Consolidation in the right upper lobe."),
        ("Consolidation in the left upper lobe.", "move to another anatomy", "Consolidation in the left lower lobe."),
        ("A left chest tube is in place.", "swap device present/absent", "A left chest tube has been removed."),
    ],
)
def test_generator_rules(text, kind, expected):
    gold = {item.text: item for name in DEV_SETS for item in load_gold(DATA / name)}
    assert (kind, expected) in contradictions(text, gold[text].entities)


# Pairs of (completion's reasoning, reference's reasoning) that contradict each other, as they were reported paid in
# full or in half by `external_kg_jac`. Every verdict is the sentences' meaning: none may be paid in full.
CONTRADICTING_PAIRS = [
    ("There is a pleural effusion.", "There is no longer any pleural effusion."),
    ("Consolidation is present.", "Consolidation is unlikely."),
    ("Pneumonia.", "Pneumonia is less likely."),
    (
        "There is a large right pleural effusion.",
        "No significant interval change in the large right pleural effusion.",
    ),
    ("There is a pneumothorax.", "Removal of dialysis catheter with no evidence of pneumothorax."),
    ("The positioning indicates a AP projection.", "The positioning indicates a PA projection."),
    ("Consolidation is likely.", "Consolidation is present."),  # a hedged finding is not an affirmed one
]


@pytest.mark.parametrize(("completion", "reference"), CONTRADICTING_PAIRS)
def test_a_contradicting_reasoning_is_never_paid_in_full(completion, reference):
    scorer = get_kg_scorer("rules")
    (details,) = scorer.score([_think(completion)], [_think(reference)])
    assert kg_jaccard(details) < 1.0


def test_agreeing_comparison_language_is_paid_in_full():
    """ "No significant interval change in the large right pleural effusion" keeps the effusion present: against
    itself and against the same finding stated as unchanged, the reward pays what it pays for agreement."""
    scorer = get_kg_scorer("rules")
    text = "No significant interval change in the large right pleural effusion."
    (details,) = scorer.score([_think(text)], [_think(text)])
    assert kg_jaccard(details) == 1.0
    graph = scorer.reference_graphs([_think(text)])[0]
    assert ("effusion", "disorder_present") in {(e.text, e.type) for e in graph.entities}


@pytest.mark.parametrize("reasoning", ["", "   ", "The.", "<think></think>"])
def test_an_empty_or_entity_free_reasoning_scores_nothing(reasoning):
    scorer = get_kg_scorer("rules")
    for reference in ("A small left pleural effusion. No pneumothorax.", "Pneumonia. No pneumothorax."):
        (details,) = scorer.score([f"<think>{reasoning}</think><answer>yes</answer>"], [_think(reference)])
        assert kg_jaccard(details) == 0.0 and kg_f1(details) == 0.0
    assert details["num_reference_relations"] == 0  # the second has findings and no relation: no free half
