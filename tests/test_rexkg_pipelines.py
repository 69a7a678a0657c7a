"""The neural backend's pipelines against the two references' code (read in rajpurkarlab/ReXKG `src/ner` and
ecoxial2007/CheX-Phi4MM), never against `rexkg.neural` itself.

- `get_inference_data.py` (ReXKG) and `utils/get_reward_data.py` (CheX-Phi4MM, the same two functions) are
  transcribed below and are the oracle of the text preparation;
- the span lists, piece ids and marked relation inputs of a few sentences are written out by hand from
  `EntityModel._get_input_tensors`, `convert_dataset_to_samples`, `generate_relation_data` and
  `convert_examples_to_features`;
- `run_entity.py` keeps every span whose argmax label is not 0; `generate_relation_data` pairs every two of them.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rexkg.extractor import NEURAL_PIPELINES
from rexkg.neural import PIPELINES, NeuralExtractor, rexkg_sentences
from tests.test_rexkg_checkpoints import LINE, _write_rexkg_checkpoint


# ReXKG src/ner/data/get_inference_data.py, transcribed (the CheX-Phi4MM wrapper's copy is identical).
def get_sentence_list(ori_report):
    ori_report = str(ori_report).replace("\n", "")
    sentence_list = str(ori_report).split(".")
    return_sentence_list = []
    idx = 0
    while idx < len(sentence_list):
        sentence_idx = sentence_list[idx]
        if (
            idx + 1 < len(sentence_list)
            and re.search(r"\d$", sentence_idx)
            and re.match(r"^\d", sentence_list[idx + 1])
        ):
            return_sentence_list.append(sentence_idx + "." + sentence_list[idx + 1])
            idx += 1
        else:
            return_sentence_list.append(sentence_idx)
        idx += 1
    return return_sentence_list


def preprocess_report(report) -> list[list[str]]:
    sentences = []
    for sentence in get_sentence_list(report):
        sen = re.sub("(?<! )(?=[/,-,:,.,!?()])|(?<=[/,-,:,.,!?()])(?! )", r" ", sentence).lower().split()
        if len(sen) >= 2:
            sentences.append(sen)
    return sentences


REPORT_TEXT = st.lists(
    st.one_of(
        st.sampled_from(
            ["Left", " ", "pleural", "effusion", ".", "1", "5", "\n", ",", "(", ")", "/", ":", "-", "'s", "?", "!"]
        ),
        st.sampled_from(["post-operative", "patient's", "3.5 cm", "\t", "  ", "No", "x2", "\xa0", "\u2028"]),
        st.text(max_size=4),
    ),
    max_size=30,
).map("".join)


@settings(max_examples=2000, deadline=None)
@given(text=REPORT_TEXT)
def test_text_preparation_equals_rexkgs_get_inference_data(text):
    sentences = rexkg_sentences(text)
    assert [[word for word, _, _ in words] for words in sentences] == preprocess_report(text)
    for words in sentences:
        for word, start, end in words:  # each word's span is where it came from, newlines removed
            assert text[start:end].replace("\n", "").lower() == word


def test_hyphens_and_apostrophes_stay_inside_words():
    words = [[w for w, _, _ in s] for s in rexkg_sentences("Post-operative changes, patient's left\nlung. 3.5 cm")]
    assert words == [["post-operative", "changes", ",", "patient's", "leftlung"], ["3", ".", "5", "cm"]]


@pytest.fixture
def extractor(tmp_path):
    model_dir, tokenizer_dir, _ = _write_rexkg_checkpoint(tmp_path)
    return NeuralExtractor.from_dirs(model_dir, tokenizer_dir)


def test_span_inputs_are_rexkgs(extractor):
    # EntityModel._get_input_tensors: [CLS], each word's pieces, [SEP]; a span is (first piece of its first word,
    # last piece of its last word, width in words), every span of up to 8 words (convert_dataset_to_samples).
    ids, spans = extractor._ner_inputs(["small", "left", "effusions"])
    assert ids == [LINE["[CLS]"], LINE["small"], LINE["left"], LINE["effusion"], LINE["##s"], LINE["[SEP]"]]
    assert spans == [(1, 1, 1), (1, 2, 2), (1, 4, 3), (2, 2, 1), (2, 4, 2), (3, 4, 1)]


def test_relation_inputs_are_cut_at_256_pieces(extractor):
    words = [("small", 0, 5)] + [("x", 6, 7)] * 300 + [("effusion", 8, 16)]
    ids, subject_at, object_at = extractor._marked(words, (0, 0, "size"), (301, 301, "disorder_present"))
    assert len(ids) == 256 and ids[-1] != LINE["[SEP]"]  # the cut drops [SEP] with the rest
    assert subject_at == 1 and object_at == 0  # a marker past the cut points at 0


class _FixedSpans(torch.nn.Module):
    """A NER head that labels the given (first word, last word) spans, in `convert_dataset_to_samples` order."""

    def __init__(self, labelled: dict[tuple[int, int], int], words: int):
        super().__init__()
        self.labelled = labelled
        self.order = [(i, j) for i in range(words) for j in range(i, min(words, i + 8))]

    def forward(self, input_ids, attention_mask, spans):
        logits = torch.zeros(*spans.shape[:2], 9)
        logits[..., 0] = 1.0
        for k, span in enumerate(self.order):
            if span in self.labelled:
                logits[:, k, self.labelled[span]] = 5.0
        return logits


def test_every_non_null_span_is_kept_and_every_two_are_paired(extractor):
    # "left pleural effusion." is 3 words (the "." splits sentences); labels: anatomy=2, disorder_present=3.
    extractor.ner = _FixedSpans({(0, 1): 2, (1, 1): 2, (1, 2): 3}, words=3)
    seen = []
    marked = extractor._marked

    def recording(words, subject, obj):
        seen.append((subject, obj))
        return marked(words, subject, obj)

    extractor._marked = recording
    graph = extractor.extract(["left pleural effusion."])[0]
    assert [(e.text, e.type) for e in graph.entities] == [
        ("left pleural", "anatomy"),
        ("pleural", "anatomy"),
        ("pleural effusion", "disorder_present"),
    ]  # overlapping spans all stay, in span order
    entities = [(0, 1, "anatomy"), (1, 1, "anatomy"), (1, 2, "disorder_present")]
    assert seen == [(entities[x], entities[y]) for x in range(3) for y in range(3) if x != y]


def test_chexpo_markers_are_lower_cased_strings_looked_up_in_the_vocabulary(tmp_path):
    model_dir, tokenizer_dir, _ = _write_rexkg_checkpoint(tmp_path)
    chexpo = NeuralExtractor.from_dirs(model_dir, tokenizer_dir, pipeline="chexpo")
    words = [("left", 0, 4), ("effusion", 5, 13)]
    ids, _, _ = chexpo._marked(words, (0, 0, "concept"), (1, 1, "disorder_present"))
    unk = LINE["[UNK]"]  # add_marker_tokens is never called there: `<subj_start=concept>` is not in the vocabulary
    assert ids == [LINE["[CLS]"], unk, LINE["left"], unk, unk, LINE["effusion"], unk, LINE["[SEP]"]]
    assert chexpo.markers.token("SUBJ_START=concept") == "<subj_start=concept>"


def test_chexpo_uses_its_hard_coded_labels_and_rexkg_the_checkpoints(tmp_path):
    order = ["no_relation", "modify", "located_at", "suggestive_of"]
    model_dir, tokenizer_dir, _ = _write_rexkg_checkpoint(tmp_path, label_list=order)
    assert NeuralExtractor.from_dirs(model_dir, tokenizer_dir).relation_labels == tuple(order)
    assert NeuralExtractor.from_dirs(model_dir, tokenizer_dir, pipeline="chexpo").relation_labels == (
        "no_relation",
        "located_at",
        "suggestive_of",
        "modify",
    )


def test_rexkg_fixed_separates_words_at_newlines_and_fixes_the_marker_map(tmp_path):
    model_dir, tokenizer_dir, _ = _write_rexkg_checkpoint(tmp_path)
    special = model_dir / "run_relation" / "special_tokens.json"
    special.write_text(json.dumps({}))
    maps = []
    for first in (("anatomy", "concept"), ("size", "size")):
        fixed = NeuralExtractor.from_dirs(model_dir, tokenizer_dir, pipeline="rexkg_fixed")
        fixed.markers.pair(*first)
        maps.append(fixed.markers.pair("anatomy", "disorder_present"))
    assert maps[0] == maps[1]  # the same whatever pair came first
    faithful = [NeuralExtractor.from_dirs(model_dir, tokenizer_dir) for _ in range(2)]
    faithful[0].markers.pair("anatomy", "concept")
    assert faithful[0].markers.pair("anatomy", "disorder_present") != faithful[1].markers.pair(
        "anatomy", "disorder_present"
    )  # ReXKG's map depends on what it met first
    assert [[w for w, _, _ in s] for s in rexkg_sentences("left\nlung base", newline_joins_words=False)] == [
        ["left", "lung", "base"]
    ]


def test_pipeline_names_agree():
    assert tuple(PIPELINES) == NEURAL_PIPELINES


@pytest.mark.parametrize(("setting", "expected"), [(None, "chexpo"), ("rexkg", "rexkg")])
def test_the_kg_reward_runs_the_papers_pipeline_by_default(tmp_path, swift_plugin, monkeypatch, setting, expected):
    from swift.rewards import orms

    model_dir, tokenizer_dir, _ = _write_rexkg_checkpoint(tmp_path)
    monkeypatch.setenv("CHEX_KG_BACKEND", "neural")
    monkeypatch.setenv("CHEX_REXKG_MODEL_DIR", str(model_dir))
    monkeypatch.setenv("CHEX_REXKG_TOKENIZER_DIR", str(tokenizer_dir))
    if setting:
        monkeypatch.setenv("CHEX_KG_NEURAL_PIPELINE", setting)
    reward = orms["external_kg_jac"](args=None)
    assert reward.scorer._extract._neural.pipeline.name == expected
    assert len(reward(["<think>Small left pleural effusion.</think>"], solution=["<think>No effusion.</think>"])) == 1
