"""ReXKG's own checkpoints load into the neural backend, and its tokenizer and markers give ReXKG's ids.

Expected values come from reading rajpurkarlab/ReXKG `src/ner`, never from `rexkg.neural`:
- `run_entity.py` saves `BertForEntity` (entity/models.py: `BertModel(config)` with its pooler, allennlp
  `FeedForward(2H+150 -> 150 -> 150)`, `Linear(150, 9)`, `width_embedding` of 9 x 150) with `save_pretrained` under
  transformers 4.x, which also saves the `bert.embeddings.position_ids` buffer; its `config.json` has no label count;
- `run_relation.py` saves `BertForRelation` (relation/models.py: `layer_norm` and `classifier` over 2H) with
  `torch.save(state_dict)`, `label_list.json` (`[negative_label] + task_rel_labels['mimic01']`) and
  `special_tokens.json`, whose markers `get_special_token` assigns in first-use order as `[unused{len+1}]`, or, with
  `--add_new_tokens`, as the lower-cased tokens `add_marker_tokens` appends to the vocabulary;
- a word-piece id is the word's line in `vocab.txt`.
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import BertConfig, BertModel

from rexkg.neural import NeuralExtractor

HIDDEN = 32
VOCAB = (
    ["[PAD]"]
    + [f"[unused{i}]" for i in range(20)]
    + ["[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "there", "is", "a", "small", "left", "right", "pleural"]
    + ["effusion", "and", "no", "pneumothorax", "in", "the", "lung", "##s", "x"]
)
LINE = {token: i for i, token in enumerate(VOCAB)}  # a token's id is its line in vocab.txt
RELATION_LABELS = ["no_relation", "located_at", "suggestive_of", "modify"]  # run_relation.py's label_list.json
ADD_MARKER_TOKENS = (  # run_relation.py's add_marker_tokens, mimic01 labels, in its order
    ["<SUBJ_START>", "<SUBJ_END>", "<OBJ_START>", "<OBJ_END>"]
    + [
        f"<{kind}={label}>"
        for label in (
            "size",
            "anatomy",
            "disorder_present",
            "disorder_notpresent",
            "concept",
            "procedures",
            "devices_present",
            "devices_notpresent",
        )
        for kind in ("SUBJ_START", "SUBJ_END", "OBJ_START", "OBJ_END")
    ]
)


def _bert_state(config: BertConfig) -> dict[str, torch.Tensor]:
    """`bert.*` as transformers 4.x's BertModel saves it: pooler included, plus the position_ids buffer."""
    state = {f"bert.{k}": v for k, v in BertModel(config, add_pooling_layer=True).state_dict().items()}
    state["bert.embeddings.position_ids"] = torch.arange(config.max_position_embeddings).expand((1, -1))
    return state


def _write_rexkg_checkpoint(root, ner_labels: int = 9, relation_rows: int = 0, label_list=RELATION_LABELS):
    torch.manual_seed(0)
    tokenizer_dir, model_dir = root / "BiomedNLP", root / "result"
    tokenizer_dir.mkdir(parents=True)
    (tokenizer_dir / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    config = BertConfig(
        vocab_size=len(VOCAB), hidden_size=HIDDEN, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37
    )
    entity = model_dir / "run_entity"
    entity.mkdir(parents=True)
    config.to_json_file(str(entity / "config.json"))
    ner = _bert_state(config)
    ner["width_embedding.weight"] = torch.randn(9, 150)
    ner["ner_classifier.0._linear_layers.0.weight"] = torch.randn(150, 2 * HIDDEN + 150)
    ner["ner_classifier.0._linear_layers.0.bias"] = torch.randn(150)
    ner["ner_classifier.0._linear_layers.1.weight"] = torch.randn(150, 150)
    ner["ner_classifier.0._linear_layers.1.bias"] = torch.randn(150)
    ner["ner_classifier.1.weight"] = torch.randn(ner_labels, 150)
    ner["ner_classifier.1.bias"] = torch.randn(ner_labels)
    torch.save(ner, entity / "pytorch_model.bin")
    (entity / "vocab.txt").write_text("\n".join(VOCAB) + "\n")  # model.tokenizer.save_pretrained
    relation = model_dir / "run_relation"
    relation.mkdir(parents=True)
    relation_config = BertConfig.from_dict({**config.to_dict(), "vocab_size": len(VOCAB) + relation_rows})
    relation_config.to_json_file(str(relation / "config.json"))
    rel = _bert_state(relation_config)
    rel["layer_norm.weight"], rel["layer_norm.bias"] = torch.ones(2 * HIDDEN), torch.zeros(2 * HIDDEN)
    rel["classifier.weight"], rel["classifier.bias"] = torch.randn(4, 2 * HIDDEN), torch.randn(4)
    torch.save(rel, relation / "pytorch_model.bin")
    (relation / "label_list.json").write_text(json.dumps(label_list))
    (relation / "special_tokens.json").write_text("{}")  # saved before training fills it
    (relation / "vocab.txt").write_text("\n".join(VOCAB) + "\n")  # tokenizer.save_vocabulary
    return model_dir, tokenizer_dir, ner


def test_a_checkpoint_as_rexkg_writes_it_loads_with_its_own_weights(tmp_path):
    model_dir, tokenizer_dir, ner = _write_rexkg_checkpoint(tmp_path)
    extractor = NeuralExtractor.from_dirs(model_dir, tokenizer_dir)
    torch.testing.assert_close(extractor.ner.ner_classifier[1].weight, ner["ner_classifier.1.weight"])
    torch.testing.assert_close(
        extractor.ner.bert.embeddings.word_embeddings.weight, ner["bert.embeddings.word_embeddings.weight"]
    )
    assert extractor.relation_labels == tuple(RELATION_LABELS)


def test_a_words_id_is_its_line_in_vocab_txt(tmp_path):
    model_dir, tokenizer_dir, _ = _write_rexkg_checkpoint(tmp_path)
    tokenizer = NeuralExtractor.from_dirs(model_dir, tokenizer_dir).tokenizer
    assert tokenizer.encode("Left pleural effusions", add_special_tokens=False) == [
        LINE["left"],
        LINE["pleural"],
        LINE["effusion"],
        LINE["##s"],
    ]
    assert (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id) == (
        LINE["[CLS]"],
        LINE["[SEP]"],
        LINE["[PAD]"],
    )


def test_unused_markers_are_assigned_in_first_use_order(tmp_path):
    model_dir, tokenizer_dir, _ = _write_rexkg_checkpoint(tmp_path)
    extractor = NeuralExtractor.from_dirs(model_dir, tokenizer_dir)
    words = [("left", 0, 4), ("pleural", 5, 12), ("effusion", 13, 21)]
    ids, subject_at, object_at = extractor._marked(words, (1, 1, "anatomy"), (2, 2, "disorder_present"))
    # get_special_token asks for SUBJ_START, SUBJ_END, OBJ_START, OBJ_END, SUBJ=anatomy, OBJ=disorder_present
    # ([unused1..6]), then SUBJ_START=anatomy [unused7], SUBJ_END=anatomy [unused8], OBJ_START=disorder_present
    # [unused9], OBJ_END=disorder_present [unused10].
    tokens = ["[CLS]", "left", "[unused7]", "pleural", "[unused8]", "[unused9]", "effusion", "[unused10]", "[SEP]"]
    assert ids == [LINE[t] for t in tokens]
    assert (subject_at, object_at) == (2, 5)
    # The second pair reuses the untyped names and continues the count: SUBJ=disorder_present [unused11],
    # OBJ=anatomy [unused12], SUBJ_START/END=disorder_present [unused13/14], OBJ_START/END=anatomy [unused15/16].
    ids, _, _ = extractor._marked(words, (2, 2, "disorder_present"), (1, 1, "anatomy"))
    tokens = ["[CLS]", "left", "[unused15]", "pleural", "[unused16]", "[unused13]", "effusion", "[unused14]", "[SEP]"]
    assert ids == [LINE[t] for t in tokens]


def test_added_markers_are_unk_as_rexkgs_own_scripts_read_them(tmp_path):
    """On a `--add_new_tokens` checkpoint, ReXKG's run_relation.py (transformers 4.1, `AutoTokenizer`: the fast
    tokenizer, `do_lower_case`) adds `<SUBJ_START=concept>`-style tokens as written by `add_marker_tokens`, while
    `get_special_token` (`unused_tokens=False`) asks for `('<' + w + '>').lower()`, `<subj_start=concept>`. The fast
    tokenizer's `convert_tokens_to_ids` looks the string up exactly; an added token keeps its case, so every marker is
    `[UNK]`: [CLS] [UNK] left [UNK] [UNK] effusion [UNK] [SEP], in training and in inference. The 52 added embedding
    rows are never read."""
    model_dir, tokenizer_dir, _ = _write_rexkg_checkpoint(tmp_path, relation_rows=52)
    extractor = NeuralExtractor.from_dirs(model_dir, tokenizer_dir)
    words = [("left", 0, 4), ("effusion", 5, 13)]
    ids, subject_at, object_at = extractor._marked(words, (0, 0, "concept"), (1, 1, "disorder_present"))
    tokens = ["[CLS]", "[UNK]", "left", "[UNK]", "[UNK]", "effusion", "[UNK]", "[SEP]"]
    assert ids == [LINE[t] for t in tokens]
    assert (subject_at, object_at) == (1, 4)  # sub_idx and obj_idx: the positions of the start markers


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ner_labels": 7}, "predicts 7 labels, but the label files say 9"),
        ({"label_list": ["no_relation", "located_at", "modify"]}, "label_list.json: expected"),
        ({"relation_rows": 36}, "36 more tokens"),
    ],
)
def test_a_checkpoint_that_disagrees_with_its_label_files_stops_at_load(tmp_path, kwargs, message):
    model_dir, tokenizer_dir, _ = _write_rexkg_checkpoint(tmp_path, **kwargs)
    with pytest.raises(ValueError, match=message):
        NeuralExtractor.from_dirs(model_dir, tokenizer_dir)


def test_a_vocabulary_that_does_not_know_radiology_stops_at_load(tmp_path):
    model_dir, tokenizer_dir, _ = _write_rexkg_checkpoint(tmp_path)
    (tokenizer_dir / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "x"]) + "\n")
    with pytest.raises(ValueError, match=r"are \[UNK\]"):
        NeuralExtractor.from_dirs(model_dir, tokenizer_dir)
