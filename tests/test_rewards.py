"""The pure reward scorers (no ms-swift): hand-written cases and property tests over malformed completions."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rexkg import get_extractor
from utils.scoring.answers import answer_items, first_sentence, first_tag_span
from utils.scoring.kg_reward import KGScorer, get_kg_scorer, kg_f1, kg_jaccard, kg_jaccard_original
from utils.scoring.rewards import answer_f1, normalized_accuracy, r1v_accuracy, think_answer_format

SOLUTION = "<think>Small left pleural effusion. No pneumothorax.</think><answer>left pleural effusion</answer>"


# ecoxial2007/CheX-Phi4MM, plugin.py at 9c47195: `calculate_sentence_reward` and the body of
# `MultiModalAccuracyORM.__call__`, transcribed statement for statement (debug prints left out). The oracle of the
# tests below: the expected values come from the original's code, not from ours.
def original_calculate_sentence_reward(prediction: str, ground_truth: str) -> float:
    preds_list = [p.strip().lower() for p in prediction.split(",") if p.strip()]
    gts_list = [g.strip().lower() for g in ground_truth.split(",") if g.strip()]
    preds_set = set(preds_list)
    gts_set = set(gts_list)
    if not gts_set:
        return 1.0 if not preds_set else 0.0
    if not preds_set.isdisjoint(gts_set):
        return 1.0
    else:
        return 0.0


def original_multimodal_accuracy(completions: list[str], solution: list[str]) -> list[float]:
    rewards = []
    for content, sol in zip(completions, solution):
        reward = 0.0
        if "<answer>" in sol:
            sol_match = re.search(r"<answer>(.*?)</answer>", sol)
            ground_truth = sol_match.group(1).strip() if sol_match else sol.strip()
            cont_match = re.search(r"<answer>(.*?)</answer>", content)
            prediction = cont_match.group(1).strip() if cont_match else content.strip()
        else:
            pattern = r"[^.!?。！？]*(?=[.!?。！？]|$)"
            sol_match = re.search(pattern, sol)
            ground_truth = sol_match.group(0).strip() if sol_match else sol.strip()
            cont_match = re.search(pattern, content)
            prediction = cont_match.group(0).strip() if cont_match else content.strip()
        reward = original_calculate_sentence_reward(prediction, ground_truth)
        rewards.append(reward)
    return rewards


@pytest.mark.parametrize(
    ("completion", "solution"),
    [
        ("<think>x</think><answer>Left pleural effusion</answer>", SOLUTION),
        ("<answer>pneumothorax, left pleural effusion, edema</answer>", SOLUTION),  # any overlap pays
        ("<answer>right pleural effusion</answer>", SOLUTION),
        ("left pleural effusion", SOLUTION),  # no answer span: the whole stripped completion
        ("Left pleural effusion. Also edema.", SOLUTION),
        ("<answer>yes</answer>", "<think>x</think><answer>yes"),  # `<answer>` but no closing tag: whole reference
        ("<answer>yes</answer>", "<answer>yes"),
        ("yes", "<answer>yes"),
        ("<answer>yes", "<answer>yes. Small effusion."),
        ("<answer>yes,</answer>", "<answer>no,</answer>"),  # empty comma items are dropped
        ("<answer>,</answer>", "<answer>,</answer>"),
        ("<answer>yes.</answer>", "<answer>yes</answer>"),  # punctuation is part of the item
        ("<answer> Yes </answer>", "<answer>yes</answer>"),  # stripped and lowercased
        ("<ANSWER>yes</ANSWER>", "<answer>yes</answer>"),  # the tags are case-sensitive
        ("<answer>left\nright</answer>", "<answer>left</answer>"),  # a span does not cross lines
        ("<answer>left</answer>", "<answer>left,\nright</answer>"),
        ("No. Nothing else.", "No. The lungs are clear."),  # no `<answer>` in the reference: first sentences
        ("The nodule is 1.5 cm", "The nodule is 1.2 cm"),  # a decimal point ends the sentence
        ("是。否", "是！"),  # full-width sentence ends
        (". yes", "yes"),  # a leading sentence end: an empty first sentence
        ("", "<answer></answer>"),  # empty reference: only an empty answer agrees
        ("<answer>yes</answer>", "<answer></answer>"),
        ("<answer>yes, </answer>", "<answer></answer>"),
    ],
)
def test_r1v_accuracy_reproduces_the_original(completion, solution):
    assert r1v_accuracy(completion, solution) == original_multimodal_accuracy([completion], [solution])[0]


def test_r1v_accuracy_on_the_classes_where_it_used_to_differ():
    """Hand-read from the original's code: the three input classes in which our earlier port disagreed."""
    assert r1v_accuracy("left pleural effusion", SOLUTION) == 1.0  # whole completion, not ""
    assert r1v_accuracy("<answer>yes</answer>", "<think>x</think><answer>yes") == 0.0  # whole reference
    assert r1v_accuracy("yes", "<answer>yes") == 0.0
    assert r1v_accuracy("<answer>yes</answer>", "<answer>yes") == 0.0
    assert r1v_accuracy("<answer>yes", "<answer>yes. Small effusion.") == 0.0  # not first sentences
    assert r1v_accuracy("<answer>yes,</answer>", "<answer>no,</answer>") == 0.0  # empty items dropped


@pytest.mark.parametrize(
    ("completion", "solution", "expected"),
    [
        ("<think>x</think><answer>Left pleural effusion</answer>", SOLUTION, 1.0),
        ("Left pleural effusion. Also edema.", SOLUTION, 1.0),  # no <answer>: first sentence
        ("<think>Effusion.</think>", SOLUTION, 0.0),  # first sentence of the reasoning is not the answer
        ("<answer>yes.</answer>", "<answer>Yes</answer>", 1.0),  # case and trailing punctuation ignored
        ("The nodule is 1.5 cm. Stable.", "The nodule is 1.5 cm.", 1.0),  # decimals survive
        ("", "<answer></answer>", 1.0),
        ("<answer>yes</answer>", "<answer></answer>", 0.0),
    ],
)
def test_normalized_accuracy_forgives_case_and_punctuation(completion, solution, expected):
    assert normalized_accuracy(completion, solution) == expected


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("<answer>left pleural effusion</answer>", 1.0),
        ("<answer>left pleural effusion, edema</answer>", 2 / 3),
        (
            "<answer>" + ", ".join([f"finding {i}" for i in range(9)] + ["left pleural effusion"]) + "</answer>",
            2 / 11,
        ),
        ("left pleural effusion", 0.0),  # the reference has an <answer> span, the completion must too
        ("<answer>right pleural effusion</answer>", 0.0),
    ],
)
def test_answer_f1_does_not_pay_for_listing_every_answer(completion, expected):
    assert answer_f1(completion, SOLUTION) == pytest.approx(expected)


def test_answer_f1_partial_credit_on_multi_item_answers():
    reference = "<answer>atelectasis, effusion, edema</answer>"
    assert answer_f1("<answer>effusion, edema</answer>", reference) == pytest.approx(0.8)
    assert r1v_accuracy("<answer>" + ", ".join(f"x{i}" for i in range(30)) + ", edema</answer>", reference) == 1.0


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("<think>Small effusion.</think><answer>yes</answer>", 1.0),
        ("  <think>a\nb</think>\n<answer>no</answer>\n", 1.0),
        ("<think>a</think>", 0.0),
        ("<answer>yes</answer><think>a</think>", 0.0),
        ("<think></think><answer>yes</answer>", 0.0),
        ("<think>a<think>b</think><answer>yes</answer>", 0.0),
        ("<think>a</think><answer>yes</answer> trailing words", 0.0),
        ("<think>a</think><answer>yes</answer><answer>no</answer>", 0.0),
    ],
)
def test_format_reward(completion, expected):
    assert think_answer_format(completion) == expected


def test_answer_items_and_first_sentence():
    assert answer_items("A, b ,, 'C'.") == frozenset({"a", "b", "c"})
    assert first_sentence("The 1.5 cm nodule is new. Otherwise normal.") == "The 1.5 cm nodule is new"
    assert first_sentence("<think>Yes! more") == "Yes"


def test_kg_reward_compares_think_with_think():
    scorer = KGScorer(get_extractor("rules"))
    # The completion's answer repeats findings that are not in its reasoning; they must not count.
    details = scorer.score(
        ["<think>Small left pleural effusion. No pneumothorax.</think><answer>edema, consolidation</answer>"],
        [SOLUTION],
    )[0]
    assert kg_jaccard(details) == 1.0 and kg_f1(details) == 1.0
    assert details["num_entities"] == 5
    # No <think>: the text before <answer> is the reasoning.
    details = scorer.score(["Small left pleural effusion. No pneumothorax. <answer>x</answer>"], [SOLUTION])[0]
    assert kg_jaccard(details) == 1.0
    # Different findings score lower, and F1 >= Jaccard.
    details = scorer.score(["<think>Small right pleural effusion.</think>"], [SOLUTION])[0]
    assert 0 < kg_jaccard(details) < 1 and kg_f1(details) >= kg_jaccard(details)


def _original_report_kg_jaccard(completion_graphs: list[dict], ground_truth_graph: dict) -> list[float]:
    """ecoxial2007/CheX-Phi4MM plugin.py, `ReportKG_Jaccard.__call__` from its graphs on, transcribed (prints left
    out): graphs in the original's format, entities a dict from text to type."""
    entity_set2 = set(ground_truth_graph["entities"].items())
    relation_set2 = set(
        (rel["source_entity"], rel["target_entity"], rel["type"]) for rel in ground_truth_graph["relations"]
    )
    rewards = []
    for content in completion_graphs:
        entity_set1 = set(content["entities"].items())
        relation_set1 = set((rel["source_entity"], rel["target_entity"], rel["type"]) for rel in content["relations"])
        entity_union = entity_set1 | entity_set2
        entity_score = 1.0 if len(entity_union) == 0 else len(entity_set1 & entity_set2) / len(entity_union)
        relation_union = relation_set1 | relation_set2
        relation_score = 1.0 if len(relation_union) == 0 else len(relation_set1 & relation_set2) / len(relation_union)
        rewards.append((entity_score + relation_score) / 2)
    return rewards


def _original_format(graph) -> dict:
    entities = {}
    for entity in graph.entities:
        entities.update({entity.text.lower(): entity.type})
    relations = [
        {"source_entity": r.source.text.lower(), "target_entity": r.target.text.lower(), "type": r.type}
        for r in graph.relations
    ]
    return {"entities": entities, "relations": relations}


def _original_ground_truth_text(sol: str) -> str:
    """The original's reference text, transcribed (`solution[0]` replaced by each completion's own solution)."""
    if "<think>" in sol:
        an_match = re.search(r"<think>(.*?)</think>", str(sol), re.DOTALL)
        return an_match.group(1) if an_match else sol
    return sol


ORIGINAL_INPUT_CASES = [
    ("<think>Small left pleural effusion.</think><answer>left pleural effusion</answer>", SOLUTION),
    ("Left effusion. <answer>edema</answer>", SOLUTION),
    ("<think>Left lung base opacity, left pleural effusion.</think>", "<think>Left pleural effusion</think>"),
    ("No pneumothorax. Left effusion.", "Left effusion <think>unclosed"),
    ("<think>Right effusion.</think>", "Right effusion, right lung."),
    ("<think>Small effusion.</think>", "<think>No effusion. Small effusion.</think>"),  # one type per text
    ("<think>No effusion. Small effusion.</think>", "<think>Small effusion.</think>"),
]


@pytest.mark.parametrize(("completion", "solution"), ORIGINAL_INPUT_CASES)
def test_kg_jaccard_original_inputs_match_the_original_reward(completion, solution):
    extractor = get_extractor("rules")
    seen = []

    def recording(texts):
        seen.extend(texts)
        return extractor(texts)

    details = KGScorer(recording).score([completion], [solution], inputs="original")[0]
    # The original hands the extractor the whole completion and the reference's think part, as they are.
    assert seen == [completion, _original_ground_truth_text(solution)]
    graphs = extractor([completion, _original_ground_truth_text(solution)])
    expected = _original_report_kg_jaccard([_original_format(graphs[0])], _original_format(graphs[1]))[0]
    assert kg_jaccard_original(details) == pytest.approx(expected)


def test_kg_jaccard_original_inputs_differ_from_think_with_think():
    """The answer's words count on the original's inputs; duplicates of a text collapse to one type."""
    scorer = KGScorer(get_extractor("rules"))
    completion = "<think>Small left pleural effusion. No pneumothorax.</think><answer>edema, consolidation</answer>"
    think = scorer.score([completion], [SOLUTION])[0]
    original = scorer.score([completion], [SOLUTION], inputs="original")[0]
    assert kg_jaccard(think) == 1.0 and kg_jaccard(original) < 1.0


def test_each_completion_is_scored_against_its_own_reference():
    scorer = KGScorer(get_extractor("rules"))
    solutions = [SOLUTION, "<think>Mild cardiomegaly. The lungs are clear.</think><answer>yes</answer>"]
    scores = [kg_jaccard(d) for d in scorer.score(solutions, solutions)]
    assert scores == [1.0, 1.0]  # the original's solution[0] pairing would give the second one < 1


def test_reference_graphs_are_cached_and_bounded():
    calls = []

    def counting_extractor(texts):
        calls.append(list(texts))
        return get_extractor("rules")(texts)

    scorer = KGScorer(counting_extractor, cache_size=8)
    references = [f"<think>Finding number {i} is a small effusion.</think>" for i in range(8)] * 8
    scorer.score(["<think>effusion</think>"] * 64, references)
    assert (scorer.cache_misses, scorer.cache_hits) == (8, 56)
    assert len(calls[-1]) == 8  # the references were extracted once each, in one batch
    scorer.score(["<think>effusion</think>"] * 64, references)
    assert (scorer.cache_misses, scorer.cache_hits) == (8, 120)
    scorer.score(["x"], ["<think>A new reference.</think>"])
    assert len(scorer._reference_graphs) == 8  # the least recently used reference was evicted
    assert get_kg_scorer() is get_kg_scorer()  # one scorer (and extractor) per process


def test_mismatched_batch_is_a_clear_error():
    with pytest.raises(ValueError, match="2 completions but 1 solutions"):
        KGScorer(get_extractor("rules")).score(["a", "b"], [SOLUTION])


_FRAGMENTS = st.sampled_from(
    [
        "<think>",
        "</think>",
        "<answer>",
        "</answer>",
        "<think",
        "answer>",
        ",",
        ".",
        "no ",
        "effusion",
        "left",
        "pleural",
        "\n",
        "  ",
        "\x00",
        "\ufffd",
        "</",
        "<<",
        "1.5 cm",
        "yes",
        "？",
        "。",
        "\U0001f600",
    ]
)
MALFORMED = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(_FRAGMENTS, st.text(max_size=12)), max_size=60).map("".join),
    st.none(),
    st.integers(),
    st.binary(max_size=40),
)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(completion=MALFORMED, solution=st.one_of(st.just(SOLUTION), st.text(max_size=80)))
def test_answer_rewards_score_anything_within_bounds(completion, solution):
    for reward in (r1v_accuracy, normalized_accuracy, answer_f1, think_answer_format):
        score = reward(completion, solution) if reward is not think_answer_format else reward(completion)
        assert isinstance(score, float) and 0.0 <= score <= 1.0


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(completions=st.lists(MALFORMED, min_size=1, max_size=4))
def test_kg_rewards_score_anything_within_bounds(completions):
    details = get_kg_scorer().score(completions, [SOLUTION] * len(completions))
    for d in details:
        for value in (kg_jaccard(d), kg_f1(d)):
            assert not math.isnan(value) and 0.0 <= value <= 1.0
        assert d["num_entities"] >= 0


# Repeated and unbalanced tags, case variants and newlines: the inputs on which lazy regular expressions go quadratic.
TAG_SOUP = st.lists(
    st.sampled_from(
        ["<answer>", "</answer>", "<ANSWER>", "</Answer>", "<think>", "</think>", "\n", " ", "a", "yes", ".", ","]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=3000, deadline=None)
@given(text=TAG_SOUP, ignore_case=st.booleans(), multiline=st.booleans())
def test_first_tag_span_finds_what_the_lazy_regex_finds(text, ignore_case, multiline):
    flags = (re.IGNORECASE if ignore_case else 0) | (re.DOTALL if multiline else 0)
    match = re.search(r"<answer>(.*?)</answer>", text, flags)
    expected = (match.start(1), match.end(1)) if match else None
    assert first_tag_span(text, "<answer>", "</answer>", ignore_case=ignore_case, multiline=multiline) == expected


@settings(max_examples=3000, deadline=None)
@given(completion=st.one_of(TAG_SOUP, st.text(max_size=60)), solution=st.one_of(TAG_SOUP, st.text(max_size=60)))
def test_r1v_accuracy_equals_the_original_code(completion, solution):
    assert r1v_accuracy(completion, solution) == original_multimodal_accuracy([completion], [solution])[0]


@settings(max_examples=3000, deadline=None)
@given(completion=TAG_SOUP)
def test_format_reward_equals_its_regex_definition(completion):
    well_formed = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)
    match = well_formed.fullmatch(completion)
    tag = re.compile(r"</?\s*(?:think|answer)\s*>", re.IGNORECASE)
    expected = float(bool(match) and all(p.strip() and not tag.search(p) for p in match.groups()))
    assert think_answer_format(completion) == expected
