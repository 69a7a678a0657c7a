"""The rules backend against the hand-annotated development set, plus its negation, size and splitting rules."""

from __future__ import annotations

import gc
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rexkg
from rexkg.mentions import sentence_spans, tokenize
from rexkg.metrics import corpus_scores
from rexkg.rules import extract_rules
from rexkg.schema import ENTITY_TYPES, RELATION_TYPES, Entity, KnowledgeGraph, Relation

DEV_SET = Path(__file__).parent / "data" / "rexkg_dev.txt"


def load_dev_set() -> list[tuple[str, KnowledgeGraph]]:
    """(sentence, gold graph) pairs, read by `rexkg.gold` (the reader of `python -m rexkg evaluate`)."""
    from rexkg.gold import load_gold

    items = []
    for item in load_gold(DEV_SET):
        entities = [Entity(text, kind, 0, 0) for text, kind in sorted(item.entities)]
        by_text = {entity.text: entity for entity in entities}
        relations = [Relation(by_text[source], by_text[target], kind) for source, target, kind in item.relations or ()]
        items.append((item.text, KnowledgeGraph(entities, relations)))
    return items


def test_dev_set_is_large_and_well_formed():
    items = load_dev_set()
    assert len(items) >= 80
    for _, gold in items:
        assert all(e.type in ENTITY_TYPES for e in gold.entities)
        assert all(r.type in RELATION_TYPES for r in gold.relations)


def test_dev_set_typed_entity_f1_and_relation_f1():
    items = load_dev_set()
    scores = corpus_scores([extract_rules(text) for text, _ in items], [gold for _, gold in items])
    assert scores["entity_micro_f1"] >= 0.90, scores
    assert scores["relation_micro_f1"] >= 0.80, scores


@pytest.mark.parametrize(
    "text,expected",
    [
        (
            "No pleural effusion or pneumothorax.",
            {("effusion", "disorder_notpresent"), ("pneumothorax", "disorder_notpresent")},
        ),
        (
            "No effusion, but there is consolidation.",
            {("effusion", "disorder_notpresent"), ("consolidation", "disorder_present")},
        ),
        ("The chest tube was removed.", {("chest", "anatomy"), ("tube", "devices_notpresent")}),
        ("Possible pneumonia.", {("pneumonia", "disorder_present")}),
        ("Cannot exclude pneumonia.", {("pneumonia", "disorder_present")}),
        ("Pneumonia can not be excluded.", {("pneumonia", "disorder_present")}),
        ("The effusion has resolved.", {("effusion", "disorder_notpresent")}),
    ],
)
def test_negation_and_uncertainty(text, expected):
    keys = extract_rules(text).entity_keys()
    assert expected <= keys, keys


@pytest.mark.parametrize(
    "text,size",
    [
        ("A 3 cm nodule.", "3 cm"),
        ("A 5.5 mm nodule.", "5.5 mm"),
        ("A 2.6 x 1.7 cm mass.", "2.6 x 1.7 cm"),
        ("4 x 5 cm", "4 x 5 cm"),
    ],
)
def test_sizes_survive_decimal_points(text, size):
    assert (size, "size") in extract_rules(text).entity_keys()


def test_sentence_splitting_on_tags_headers_and_lists():
    text = "FINDINGS: 1. Small effusion. 2. No pneumothorax.<think>Mild edema</think><answer>yes</answer>"
    keys = extract_rules(text).entity_keys()
    assert {
        ("effusion", "disorder_present"),
        ("pneumothorax", "disorder_notpresent"),
        ("edema", "disorder_present"),
    } <= keys
    # Negation does not leak across a sentence boundary or out of a tag.
    assert ("edema", "disorder_notpresent") not in keys


def test_duplicates_of_different_types_are_kept():
    graph = extract_rules("No effusion on the left. Small effusion on the right.")
    assert {("effusion", "disorder_notpresent"), ("effusion", "disorder_present")} <= graph.entity_keys()


def test_api_one_graph_per_text_in_order_and_cached_extractor():
    graphs = rexkg.extract(["Mild edema.", "", "No pneumothorax."])
    assert [sorted(g.entity_keys()) for g in graphs] == [
        [("edema", "disorder_present"), ("mild", "concept")],
        [],
        [("pneumothorax", "disorder_notpresent")],
    ]
    assert rexkg.get_extractor("rules") is rexkg.get_extractor("rules")
    with pytest.raises(ValueError, match="unknown rexkg backend"):
        rexkg.Extractor("bert")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t ",
        "<think>",
        "</answer><think>no",
        "\x00\xff\ufffd" * 50,
        "🫁 ∅ ≤3 cm — épanchement",
        "." * 1000,
        "no " * 500,
    ],
)
def test_degenerate_inputs_give_a_graph(text):
    assert isinstance(extract_rules(text), KnowledgeGraph)


@pytest.mark.timeout(60)  # a hang guard, not a speed assertion: bench/kg_bench.py measures the 1 MB case
def test_one_megabyte_text_gives_a_graph():
    text = ("There is a small left pleural effusion. No pneumothorax. " * 20_000)[:1_000_000]
    graph = extract_rules(text)
    assert len(graph.entities) > 10_000


def test_non_string_gives_empty_graph():
    assert extract_rules(None).entities == [] and extract_rules(b"bytes").entities == []


RADIOLOGY_WORDS = st.sampled_from(
    [
        "no",
        "small",
        "left",
        "pleural",
        "effusion",
        ",",
        ".",
        "3.5",
        "cm",
        "x",
        "<think>",
        "</think>",
        "<answer>",
        "consistent with",
        "may represent",
        "PICC",
        "line",
        "has resolved",
        "FINDINGS:",
        "1.",
        "\n",
        "without",
        "lung",
        "zone",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(), st.lists(RADIOLOGY_WORDS, max_size=40).map(" ".join)))
def test_offsets_always_match_and_relations_stay_inside_the_graph(text):
    graph = extract_rules(text)
    for entity in graph.entities:
        assert text[entity.start : entity.end] == entity.text
        assert entity.type in ENTITY_TYPES
    ids = {id(e) for e in graph.entities}
    for relation in graph.relations:
        assert id(relation.source) in ids and id(relation.target) in ids and relation.type in RELATION_TYPES
    assert KnowledgeGraph.from_json(graph.to_json()).relation_keys() == graph.relation_keys()


GUIDELINE_DEV_SET = Path(__file__).resolve().parents[1] / "rexkg" / "data" / "guideline_dev.txt"


def test_guideline_dev_set_quality_gate():
    """The independent development set (annotated from ReXKG's guideline before the extractor ran on it)."""
    from rexkg.gold import load_gold
    from rexkg.metrics import typed_word_scores

    items = load_gold(GUIDELINE_DEV_SET)
    assert len(items) >= 300
    predicted = [
        ({(e.text, e.type) for e in g.entities}, {(r.source.text, r.target.text, r.type) for r in g.relations})
        for g in (extract_rules(item.text) for item in items)
    ]
    scores = typed_word_scores(predicted, [(item.entities, item.relations) for item in items])
    assert scores["typed_words"]["f1"] >= 0.95, scores["typed_words"]
    for kind in ENTITY_TYPES:
        assert scores[kind]["f1"] >= 0.85, (kind, scores[kind])
    assert scores["relations"]["items"] >= 100 and scores["relations"]["f1"] >= 0.80, scores["relations"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A kind-less multi-word lexicon entry once swallowed these phrases: no entity at all.
        ("Mild pulmonary edema.", {("mild", "concept"), ("pulmonary", "anatomy"), ("edema", "disorder_present")}),
        ("There is no pulmonary edema.", {("pulmonary", "anatomy"), ("edema", "disorder_notpresent")}),
        ("Sharp costophrenic angles.", {("sharp", "concept"), ("costophrenic", "anatomy"), ("angles", "anatomy")}),
        ("Low lung volumes.", {("low", "concept"), ("lung", "anatomy"), ("volumes", "concept")}),
        # ReXKG's guideline: one word per entity, the examination and actions on devices are procedures.
        (
            "Right internal jugular central venous catheter.",
            {
                ("right", "concept"),
                ("internal", "concept"),
                ("jugular", "anatomy"),
                ("central", "concept"),
                ("venous", "anatomy"),
                ("catheter", "devices_present"),
            },
        ),
        (
            "Sternotomy wires are intact.",
            {("sternotomy", "procedures"), ("wires", "devices_present"), ("intact", "concept")},
        ),
        ("PA and lateral views.", {("pa", "procedures"), ("lateral", "procedures"), ("views", "procedures")}),
        ("Heart size is normal.", {("heart", "anatomy"), ("size", "size"), ("normal", "concept")}),
        (
            "No change in the position of the endotracheal tube.",
            {("change", "concept"), ("position", "concept"), ("endotracheal", "anatomy"), ("tube", "devices_present")},
        ),
    ],
)
def test_guideline_granularity_and_types(text, expected):
    assert {(e.text.lower(), e.type) for e in extract_rules(text).entities} == expected


def test_evaluate_command_scores_labelled_data_and_rejects_bad_files(tmp_path, capsys):
    from rexkg.cli import main

    gold = tmp_path / "gold.jsonl"
    gold.write_text(
        '{"text": "Small left effusion.", "entities": [{"text": "small", "type": "concept"}, '
        '{"text": "left", "type": "concept"}, {"text": "effusion", "type": "disorder_present"}], '
        '"relations": [{"source": "small", "target": "effusion", "type": "modify"}]}\n'
    )
    assert main(["evaluate", "--gold", str(gold), "--json", str(tmp_path / "scores.json")]) == 0
    out = capsys.readouterr().out
    assert "1 texts, 1 with annotated relations" in out and "typed_words" in out and "relations" in out
    assert json.loads((tmp_path / "scores.json").read_text())["typed_words"]["gold"] == 3
    bad = tmp_path / "bad.txt"
    bad.write_text("S: No effusion.\nE: effusion|disorder_absent\nR: ?\n")
    assert main(["evaluate", "--gold", str(bad)]) == 2
    assert f"{bad}: line 2: entity 'effusion|disorder_absent'" in capsys.readouterr().err


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("Ab1 .,;:\n<>/thinkanswer\u212a\u0130\u00e9")), max_size=60) | st.text())
def test_tokens_are_the_lowercased_words_at_their_spans(text):
    # Lowercasing the whole text at once is only safe for ASCII: the Kelvin sign lowercases to an ASCII "k".
    words, spans = tokenize(text)
    assert [m.span() for m in re.finditer(r"[A-Za-z][A-Za-z'\-]*|\d+(?:\.\d+)?|[,()]", text)] == spans
    assert words == [text[start:end].lower() for start, end in spans]


# The readable definition of a sentence break; `rexkg.mentions` compiles an equivalent that scans 5x faster.
_READABLE_SENTENCE_BREAK = re.compile(r"</?\s*(?:think|answer)\s*>|[!?;:\n\r]|\.(?!\d)|(?<!\d)\.")


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("1.2 a.b.5<think></answer> ;:!?\n")), max_size=80))
def test_sentence_breaks_follow_their_readable_definition(text):
    expected, start = [], 0
    for match in _READABLE_SENTENCE_BREAK.finditer(text):
        if match.start() > start:
            expected.append((start, match.start()))
        start = match.end()
    if start < len(text):
        expected.append((start, len(text)))
    assert sentence_spans(text) == expected


def test_extraction_restores_the_garbage_collector_state():
    try:
        gc.disable()
        extract_rules("Small left pleural effusion.")
        assert not gc.isenabled()
        gc.enable()
        extract_rules("Small left pleural effusion.")
        assert gc.isenabled()
    finally:
        gc.enable()
