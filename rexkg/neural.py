"""The ReXKG neural backend: PURE-style span NER plus a typed-marker relation classifier, in plain torch and
transformers (no allennlp).

Expected assets (the folders ReXKG's `run_entity.py` / `run_relation.py` write, given explicitly, never
downloaded):

- `<model_dir>/run_entity/`: `config.json` (BERT, without `num_ner_labels`: the label count is read from the
  classifier's weight) and `pytorch_model.bin` or `model.safetensors` of PURE's `BertForEntity` (keys `bert.*`
  including transformers 4.x's `bert.embeddings.position_ids` buffer and the unused pooler,
  `width_embedding.weight`, `ner_classifier.0._linear_layers.{0,1}.*`, `ner_classifier.1.*`);
- `<model_dir>/run_relation/`: the same files for PURE's `BertForRelation` (keys `bert.*`, `layer_norm.*`,
  `classifier.*`), plus `label_list.json` (relation labels in classifier order) and `special_tokens.json` (marker
  name -> vocabulary token, as `run_relation.py` assigns them);
- `<tokenizer_dir>/vocab.txt`: the BiomedBERT word-piece vocabulary (a word's id is its line number).

Markers, as `run_relation.py` makes them. As shipped (no `--add_new_tokens`), markers are BERT's `[unusedN]`
vocabulary entries: `special_tokens.json` maps a marker name (`SUBJ_START=anatomy`) to one, and a name it lacks
gets the next `[unused{len+1}]` on first use, in the order `convert_examples_to_features` asks for them. With
`--add_new_tokens`, the relation model's vocabulary is 52 rows longer (`add_marker_tokens` added `<SUBJ_START=anatomy>`
and the like), but those rows are never read: `get_special_token` asks for the lower-cased `<subj_start=anatomy>`,
which the fast tokenizer of ReXKG's transformers 4.1 (`AutoTokenizer`) does not know (an added token keeps its
case), so `convert_tokens_to_ids` gives `[UNK]` for every marker, in training and inference alike. The relation
model learnt on `[UNK]` markers; the backend feeds it the same. The mode is read from the relation model's vocabulary
size.

Pipelines (`PIPELINES`): the steps around the two models, each faithful to one reference.
- `rexkg` (default): ReXKG's inference scripts. `get_inference_data.py` removes newlines (joining the words either
  side), splits sentences on "." only (re-joining a decimal split between digits), spaces out `/ , : . ! ? ( )` and
  lower-cases, and drops sentences of fewer than 2 words; `run_entity.py` scores every span of up to 8 words
  ([CLS] word pieces [SEP]) and keeps every span whose label is not null, overlapping or not; `run_relation.py`
  pairs every two of them (subject x, object y, x != y, in span order), marks them, cuts the sequence at 256 pieces
  (the `[SEP]` with it; a marker past the cut points at 0), and keeps pairs not labelled `no_relation`. Markers:
  see above; the `special_tokens` mapping lives as long as the extractor, like one ReXKG run.
- `chexpo`: CheX-Phi4MM's wrapper (`utils/get_reward_data.py`, `ReXKG/get_entity_relation.py`), the paper's KG
  reward. The same text preparation (its `preprocess_sentences_all` is ReXKG's; its `clean_sentence` is never
  called), the same spans and pairs, but `unused_tokens=False` with a fresh `special_tokens` per call and no
  `add_marker_tokens`: markers are the lower-cased `<subj_start=anatomy>` strings looked up in the vocabulary, which
  is `[UNK]` unless the tokenizer folder holds them; relation labels are its hard-coded list.
- `rexkg_fixed`: `rexkg` with two quirks mended: a newline separates words instead of joining them, and the
  `[unusedN]` mapping is fixed at load (every type pair assigned once, in the schema's order) instead of depending on
  which pairs came first.
Entities are ReXKG's word text (`" ".join(words)`, lower-cased) with the character span of those words in the input.

Models are loaded once (callers keep the `NeuralExtractor`; `rexkg.get_extractor` caches one per process) on the
process's own device (`cuda:LOCAL_RANK` when CUDA is present), and run batched under `torch.inference_mode`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rexkg.schema import ENTITY_TYPES, Entity, KnowledgeGraph, Relation

logger = logging.getLogger(__name__)

NER_LABELS = ("",) + ENTITY_TYPES  # index 0: not an entity
RELATION_LABELS = ("no_relation", "located_at", "suggestive_of", "modify")
MAX_SPAN_WORDS = 8
WIDTH_DIM = 150
HEAD_DIM = 150
MAX_RELATION_PIECES = 256  # run_inference.sh: run_relation.py --max_seq_length 256
MAX_NER_PIECES = 512  # BERT's positions; ReXKG has no cut and fails past it, we keep the sentence's first words
# get_inference_data.py's `re.sub('(?<! )(?=[/,-,:,.,!?()])|(?<=[/,-,:,.,!?()])(?! )', ' ', s).lower().split()`:
# the class is / , : . ! ? ( ) (",-," is the range from "," to ","), each such character becomes a word of its own.
_SPACED = "/,:.!?()"
_REXKG_WORD = re.compile(rf"[{re.escape(_SPACED)}]|[^\s{re.escape(_SPACED)}]+")
_ENDS_IN_DIGIT, _STARTS_WITH_DIGIT = re.compile(r"\d$"), re.compile(r"\d")  # match() anchors at pos


@dataclass(frozen=True)
class Pipeline:
    """What the steps around the models do (module docstring, "Pipelines")."""

    name: str
    markers_from_vocabulary: bool  # chexpo: lower-cased marker strings looked up in vocab.txt, fresh each call
    newline_joins_words: bool = True
    stable_markers: bool = False


PIPELINES = {
    "rexkg": Pipeline("rexkg", markers_from_vocabulary=False),
    "chexpo": Pipeline("chexpo", markers_from_vocabulary=True),
    "rexkg_fixed": Pipeline(
        "rexkg_fixed", markers_from_vocabulary=False, newline_joins_words=False, stable_markers=True
    ),
}


def rexkg_sentences(text: str, newline_joins_words: bool = True) -> list[list[tuple[str, int, int]]]:
    r"""The words of each sentence as ReXKG's `get_inference_data.py` prepares a report (module docstring), with
    each word's character span in `text`.

    >>> [[w for w, _, _ in s] for s in rexkg_sentences("Left pleural\neffusion. Size 1.5 cm. Ok")]
    [['left', 'pleuraleffusion'], ['size', '1', '.', '5', 'cm']]
    """
    if newline_joins_words:
        origin = [i for i, char in enumerate(text) if char != "\n"]
        prepared = "".join(text[i] for i in origin)
    else:
        origin, prepared = list(range(len(text))), text.replace("\n", " ")
    pieces, start = [], 0
    for part in prepared.split("."):
        pieces.append((start, start + len(part)))
        start += len(part) + 1
    merged, k = [], 0
    while k < len(pieces):
        begin, end = pieces[k]
        if (
            k + 1 < len(pieces)
            and _ENDS_IN_DIGIT.search(prepared, begin, end)
            and _STARTS_WITH_DIGIT.match(prepared, pieces[k + 1][0], pieces[k + 1][1])
        ):
            merged.append((begin, pieces[k + 1][1]))
            k += 2
        else:
            merged.append((begin, end))
            k += 1
    sentences = []
    for begin, end in merged:
        words = [
            (m.group().lower(), origin[m.start()], origin[m.end() - 1] + 1)
            for m in _REXKG_WORD.finditer(prepared, begin, end)
        ]
        if len(words) >= 2:
            sentences.append(words)
    return sentences


def added_marker_tokens() -> list[str]:
    """The 52 tokens `run_relation.py --add_new_tokens` adds (`add_marker_tokens`), in its order, lower-cased as its
    lower-casing tokenizer stores them."""
    markers = ["<SUBJ_START>", "<SUBJ_END>", "<OBJ_START>", "<OBJ_END>"]
    for label in ENTITY_TYPES:
        markers += [f"<SUBJ_START={label}>", f"<SUBJ_END={label}>", f"<OBJ_START={label}>", f"<OBJ_END={label}>"]
    markers += [marker for label in ENTITY_TYPES for marker in (f"<SUBJ={label}>", f"<OBJ={label}>")]
    return [marker.lower() for marker in markers]


def pair_marker_names(subject_type: str, object_type: str) -> list[str]:
    """The marker names `convert_examples_to_features` asks `get_special_token` for, per pair, in its order."""
    return [
        "SUBJ_START",
        "SUBJ_END",
        "OBJ_START",
        "OBJ_END",
        f"SUBJ={subject_type}",
        f"OBJ={object_type}",
        f"SUBJ_START={subject_type}",
        f"SUBJ_END={subject_type}",
        f"OBJ_START={object_type}",
        f"OBJ_END={object_type}",
    ]


class MarkerTokens:
    """Marker name -> token id, as `run_relation.py`'s `get_special_token` assigns them (see the module docstring).

    >>> markers = MarkerTokens({"SUBJ_START": "[unused1]"}, added_tokens=False)
    >>> markers.token("SUBJ_START"), markers.token("SUBJ_END"), markers.token("SUBJ_START")
    ('[unused1]', '[unused2]', '[unused1]')
    >>> MarkerTokens({}, added_tokens=True).token("SUBJ_START=anatomy")
    '<subj_start=anatomy>'
    """

    def __init__(self, special_tokens: dict[str, str], added_tokens: bool):
        self.special_tokens = dict(special_tokens)
        self.added_tokens = added_tokens

    def token(self, name: str) -> str:
        if name not in self.special_tokens:
            self.special_tokens[name] = (
                f"<{name}>".lower() if self.added_tokens else f"[unused{len(self.special_tokens) + 1}]"
            )
        return self.special_tokens[name]

    def pair(self, subject_type: str, object_type: str) -> dict[str, str]:
        """The tokens of one pair's four typed markers, after asking for all ten names in ReXKG's order."""
        tokens = {name: self.token(name) for name in pair_marker_names(subject_type, object_type)}
        return {
            "subject_start": tokens[f"SUBJ_START={subject_type}"],
            "subject_end": tokens[f"SUBJ_END={subject_type}"],
            "object_start": tokens[f"OBJ_START={object_type}"],
            "object_end": tokens[f"OBJ_END={object_type}"],
        }


class FeedForward(nn.Module):
    """allennlp's FeedForward (linear + ReLU + dropout per layer), with its parameter names."""

    def __init__(self, input_dim: int, hidden_dim: int, num_layers: int = 2, dropout: float = 0.2):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * num_layers
        self._linear_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self._dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self._linear_layers:
            x = self._dropout(torch.relu(layer(x)))
        return x


class SpanNER(nn.Module):
    """PURE `BertForEntity`: [start piece, end piece, width embedding] of every span -> entity label."""

    def __init__(self, config):
        from transformers import BertModel

        super().__init__()
        self.bert = BertModel(config, add_pooling_layer=False)
        self.hidden_dropout = nn.Dropout(config.hidden_dropout_prob)
        self.width_embedding = nn.Embedding(MAX_SPAN_WORDS + 1, WIDTH_DIM)
        self.ner_classifier = nn.Sequential(
            FeedForward(2 * config.hidden_size + WIDTH_DIM, HEAD_DIM), nn.Linear(HEAD_DIM, len(NER_LABELS))
        )

    def forward(self, input_ids, attention_mask, spans):
        """spans: [B, S, 3] (start piece, end piece, width in words) -> logits [B, S, labels]."""
        hidden = self.hidden_dropout(self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state)
        gather = lambda idx: torch.gather(hidden, 1, idx.unsqueeze(-1).expand(-1, -1, hidden.size(-1)))  # noqa: E731
        features = torch.cat([gather(spans[..., 0]), gather(spans[..., 1]), self.width_embedding(spans[..., 2])], -1)
        return self.ner_classifier(features)


class RelationClassifier(nn.Module):
    """PURE `BertForRelation`: hidden states at the subject and object start markers -> relation label."""

    def __init__(self, config):
        from transformers import BertModel

        super().__init__()
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layer_norm = nn.LayerNorm(2 * config.hidden_size)
        self.classifier = nn.Linear(2 * config.hidden_size, len(RELATION_LABELS))

    def forward(self, input_ids, attention_mask, subject_index, object_index):
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        rows = torch.arange(hidden.size(0), device=hidden.device)
        pair = torch.cat([hidden[rows, subject_index], hidden[rows, object_index]], -1)
        return self.classifier(self.dropout(self.layer_norm(pair)))


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"ReXKG asset missing: {path} (expected {what})")
    return path


def _checkpoint_state(folder: Path) -> dict[str, torch.Tensor]:
    if (folder / "model.safetensors").exists():
        from safetensors.torch import load_file

        return load_file(str(folder / "model.safetensors"))
    weights = _require(folder / "pytorch_model.bin", "pytorch_model.bin or model.safetensors (model weights)")
    return torch.load(weights, map_location="cpu", weights_only=True)


def _without_saved_buffers(state: dict[str, torch.Tensor], folder: Path) -> dict[str, torch.Tensor]:
    """Drop what transformers 4.x and PURE save but the model does not take: the pooler (unused by both heads) and
    the `position_ids` buffer, which must be the plain 0..n-1 it always is."""
    position_ids = state.get("bert.embeddings.position_ids")
    if position_ids is not None and not torch.equal(
        position_ids.reshape(-1), torch.arange(position_ids.numel(), dtype=position_ids.dtype)
    ):
        raise ValueError(f"{folder}: bert.embeddings.position_ids is not 0..{position_ids.numel() - 1}")
    return {k: v for k, v in state.items() if not k.startswith("bert.pooler.") and k != "bert.embeddings.position_ids"}


def _load_module(cls, folder: Path, device: torch.device, num_labels: int, classifier_key: str) -> nn.Module:
    """Build `cls` from a ReXKG output folder, strictly; the classifier's label count must be `num_labels`."""
    from transformers import BertConfig

    _require(folder, f"a folder with config.json and pytorch_model.bin or model.safetensors of {cls.__name__}")
    config = BertConfig.from_pretrained(str(_require(folder / "config.json", "the BERT config of the model")))
    state = _without_saved_buffers(_checkpoint_state(folder), folder)
    if classifier_key not in state:
        raise ValueError(f"{folder}: no {classifier_key} in the weights (not a ReXKG {cls.__name__} checkpoint?)")
    if state[classifier_key].shape[0] != num_labels:
        raise ValueError(
            f"{folder}: the classifier predicts {state[classifier_key].shape[0]} labels, but the label files say "
            f"{num_labels}"
        )
    module = cls(config)
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{folder}: weights do not fit {cls.__name__}: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return module.to(device).eval()


def _relation_labels(folder: Path) -> tuple[str, ...]:
    """`label_list.json` (classifier order, `no_relation` first) when ReXKG wrote one, else mimic01's default."""
    path = folder / "label_list.json"
    if not path.exists():
        return RELATION_LABELS
    labels = json.loads(path.read_text())
    if not isinstance(labels, list) or set(labels) != set(RELATION_LABELS) or labels[0] != "no_relation":
        raise ValueError(f"{path}: expected no_relation first, then {', '.join(RELATION_LABELS[1:])}; got {labels!r}")
    return tuple(labels)


# A sentence whose words every radiology vocabulary has: most of them mapping to [UNK] means a wrong vocab.txt.
VOCABULARY_PROBE = "there is a small left pleural effusion and no pneumothorax in the right lung"


def load_vocabulary(tokenizer_dir: Path):
    """BiomedBERT's word-piece tokenizer from `vocab.txt`, lower-casing; stops if the vocabulary cannot be right.

    transformers 5.19's `BertTokenizer(vocab_file=...)` silently drops the file (5 tokens, every word `[UNK]`), so
    the tokenizer is read with `from_pretrained` on the folder, and checked: ids are `vocab.txt` lines, and most
    words of a plain radiology sentence are known.
    """
    from transformers import BertTokenizer

    vocab = _require(tokenizer_dir / "vocab.txt", "the BiomedBERT word-piece vocabulary")
    tokenizer = BertTokenizer.from_pretrained(str(tokenizer_dir), do_lower_case=True)
    lines = vocab.read_text(encoding="utf-8").split("\n")
    if len(tokenizer) < len([line for line in lines if line]) or tokenizer.convert_tokens_to_ids(lines[0]) != 0:
        raise ValueError(f"{vocab}: the tokenizer did not read it ({len(tokenizer)} tokens for {len(lines)} lines)")
    words = VOCABULARY_PROBE.split()
    unknown = [w for w in words if tokenizer.encode(w, add_special_tokens=False) == [tokenizer.unk_token_id]]
    if len(unknown) > len(words) // 2:
        raise ValueError(
            f"{vocab}: {len(unknown)} of the {len(words)} words of {VOCABULARY_PROBE!r} are [UNK] "
            "(not BiomedBERT's vocabulary?)"
        )
    return tokenizer


def process_device() -> torch.device:
    """The device of this process: `cuda:LOCAL_RANK` when CUDA is available, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


class NeuralExtractor:
    """Holds the loaded NER and relation models and the tokenizer; `extract(texts)` runs them batched."""

    def __init__(
        self,
        ner: SpanNER,
        relation: RelationClassifier,
        tokenizer,
        device: torch.device,
        batch_size: int = 32,
        markers: MarkerTokens | None = None,
        relation_labels: tuple[str, ...] = RELATION_LABELS,
        pipeline: str = "rexkg",
    ):
        if pipeline not in PIPELINES:
            raise ValueError(f"unknown neural pipeline {pipeline!r}; choose one of {', '.join(PIPELINES)}")
        self.ner, self.relation, self.tokenizer = ner, relation, tokenizer
        self.device, self.batch_size = device, batch_size
        self.pipeline = PIPELINES[pipeline]
        self.markers = markers or MarkerTokens({}, added_tokens=False)
        # chexpo's labels are hard-coded, and its markers are lower-cased strings (`unused_tokens=False`).
        self.relation_labels = RELATION_LABELS if self.pipeline.markers_from_vocabulary else relation_labels
        if self.pipeline.markers_from_vocabulary:
            self.markers = MarkerTokens({}, added_tokens=True)
        elif self.pipeline.stable_markers:
            for subject_type in ENTITY_TYPES:
                for object_type in ENTITY_TYPES:
                    self.markers.pair(subject_type, object_type)
        self._unknown_markers: set[str] = set()

    def marker_id(self, token: str) -> int:
        """The relation model's id of a marker token: an `[unusedN]` line of vocab.txt, or, on an `--add_new_tokens`
        checkpoint, `[UNK]`, as ReXKG's own scripts look it up (see the module docstring)."""
        if self.markers.added_tokens and not self.pipeline.markers_from_vocabulary:
            if token not in added_marker_tokens():
                raise ValueError(f"marker {token!r} is none of the tokens run_relation.py --add_new_tokens adds")
            return self.tokenizer.unk_token_id
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        if token_id == self.tokenizer.unk_token_id and token not in self._unknown_markers:
            # ReXKG's own tokenizer gives [UNK] here too, in training and inference alike: faithful, but worth saying.
            self._unknown_markers.add(token)
            logger.warning(
                "marker %s is not in vocab.txt: it is [UNK], as in the %s reference", token, self.pipeline.name
            )
        return token_id

    @classmethod
    def from_dirs(cls, model_dir, tokenizer_dir, batch_size: int = 32, pipeline: str = "rexkg") -> NeuralExtractor:
        """Load from explicit local folders (see module docstring); errors name the missing path."""
        if model_dir is None or tokenizer_dir is None:
            raise ValueError(
                "the neural backend needs model_dir (with run_entity/ and run_relation/) and "
                "tokenizer_dir (with vocab.txt)"
            )
        model_dir, tokenizer_dir = Path(model_dir), Path(tokenizer_dir)
        tokenizer = load_vocabulary(tokenizer_dir)
        device = process_device()
        ner = _load_module(SpanNER, model_dir / "run_entity", device, len(NER_LABELS), "ner_classifier.1.weight")
        relation_dir = model_dir / "run_relation"
        labels = _relation_labels(relation_dir)
        relation = _load_module(RelationClassifier, relation_dir, device, len(labels), "classifier.weight")
        extra = relation.bert.embeddings.word_embeddings.num_embeddings - len(tokenizer)
        if extra not in (0, len(added_marker_tokens())):
            raise ValueError(
                f"{relation_dir}: the relation model has {extra} more tokens than {tokenizer_dir / 'vocab.txt'}; "
                f"ReXKG's have 0 ([unusedN] markers) or {len(added_marker_tokens())} (--add_new_tokens)"
            )
        special = relation_dir / "special_tokens.json"
        markers = MarkerTokens(json.loads(special.read_text()) if special.exists() else {}, added_tokens=extra > 0)
        logger.info("ReXKG neural backend loaded from %s on %s (pipeline %s)", model_dir, device, pipeline)
        return cls(ner, relation, tokenizer, device, batch_size, markers, labels, pipeline)

    def _pieces(self, word: str) -> list[int]:
        """A word's piece ids, as ReXKG's `tokenizer.tokenize(word)` (possibly none)."""
        return self.tokenizer.convert_tokens_to_ids(self.tokenizer.tokenize(word))

    def _ner_inputs(self, words: list[str]) -> tuple[list[int], list[tuple[int, int, int]]]:
        """`EntityModel._get_input_tensors`: [CLS] pieces [SEP] and every span (first piece, last piece, width)."""
        ids, first, last = [self.tokenizer.cls_token_id], [], []
        for word in words:
            first.append(len(ids))
            ids += self._pieces(word)
            last.append(len(ids) - 1)
        ids.append(self.tokenizer.sep_token_id)
        # A word with no pieces (control characters) points at the next piece, as in ReXKG.
        spans = [
            (first[i], last[j], j - i + 1)
            for i in range(len(words))
            for j in range(i, min(len(words), i + MAX_SPAN_WORDS))
        ]
        return ids, spans

    def _fit(self, words: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
        """The sentence's first words whose pieces fit BERT's positions (ReXKG would fail beyond them)."""
        total, kept = 2, []
        for word in words:
            total += len(self._pieces(word[0]))
            if total > MAX_NER_PIECES:
                break
            kept.append(word)
        return kept

    def _pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return ids.to(self.device), mask.to(self.device)

    def _entities(self, sentences) -> list[list[tuple[int, int, str]]]:
        """Per sentence: every span (first word, last word, type) whose argmax label is not null, in span order."""
        results = []
        for b in range(0, len(sentences), self.batch_size):
            batch = sentences[b : b + self.batch_size]
            inputs = [self._ner_inputs([w for w, _, _ in words]) for words in batch]
            width = max(1, max(len(spans) for _, spans in inputs))
            span_tensor = torch.zeros((len(batch), width, 3), dtype=torch.long)
            for r, (_, spans) in enumerate(inputs):
                if spans:
                    span_tensor[r, : len(spans)] = torch.tensor(spans, dtype=torch.long)
            ids, mask = self._pad([row for row, _ in inputs])
            labels = self.ner(ids, mask, span_tensor.to(self.device)).argmax(-1).cpu().tolist()
            for r, words in enumerate(batch):
                enumerated = [(i, j) for i in range(len(words)) for j in range(i, min(len(words), i + MAX_SPAN_WORDS))]
                results.append(
                    [(i, j, NER_LABELS[label]) for (i, j), label in zip(enumerated, labels[r]) if label != 0]
                )
        return results

    def _relations(self, sentences, entities) -> list[list[tuple[int, int, str]]]:
        pairs, rows = [], []
        for n, (words, ents) in enumerate(zip(sentences, entities)):
            for x in range(len(ents)):
                for y in range(len(ents)):
                    if x != y:
                        pairs.append((n, x, y))
                        rows.append(self._marked(words, ents[x], ents[y]))
        labels = []
        for k in range(0, len(rows), self.batch_size):
            chunk = rows[k : k + self.batch_size]
            ids, mask = self._pad([r[0] for r in chunk])
            subject = torch.tensor([r[1] for r in chunk], device=self.device)
            obj = torch.tensor([r[2] for r in chunk], device=self.device)
            labels += self.relation(ids, mask, subject, obj).argmax(-1).tolist()
        found = [[] for _ in sentences]
        for (n, a, b), label in zip(pairs, labels):
            if self.relation_labels[label] != "no_relation":
                found[n].append((a, b, self.relation_labels[label]))
        return found

    def _marked(self, words, subject, obj) -> tuple[list[int], int, int]:
        """`convert_examples_to_features`: the sentence with the pair's typed markers, cut at 256 pieces."""
        marker = {k: self.marker_id(v) for k, v in self.markers.pair(subject[2], obj[2]).items()}
        ids, subject_at, object_at = [self.tokenizer.cls_token_id], 0, 0
        for k, (word, _, _) in enumerate(words):
            if k == subject[0]:
                subject_at = len(ids)
                ids.append(marker["subject_start"])
            if k == obj[0]:
                object_at = len(ids)
                ids.append(marker["object_start"])
            ids += self._pieces(word)
            if k == subject[1]:
                ids.append(marker["subject_end"])
            if k == obj[1]:
                ids.append(marker["object_end"])
        ids.append(self.tokenizer.sep_token_id)
        if len(ids) > MAX_RELATION_PIECES:
            ids = ids[:MAX_RELATION_PIECES]
            subject_at = 0 if subject_at >= MAX_RELATION_PIECES else subject_at
            object_at = 0 if object_at >= MAX_RELATION_PIECES else object_at
        return ids, subject_at, object_at

    @torch.inference_mode()
    def extract(self, texts: list[str]) -> list[KnowledgeGraph]:
        """One graph per text; sentences are batched across all texts."""
        if self.pipeline.markers_from_vocabulary:
            self.markers = MarkerTokens({}, added_tokens=True)  # chexpo: `special_tokens = {}` on every call
        sentences, owner = [], []
        for t, text in enumerate(texts):
            if not isinstance(text, str):
                continue
            for words in rexkg_sentences(text, self.pipeline.newline_joins_words):
                sentences.append(self._fit(words))
                owner.append(t)
        entities = self._entities(sentences) if sentences else []
        relations = self._relations(sentences, entities) if sentences else []
        graphs = [KnowledgeGraph() for _ in texts]
        for t, words, ents, rels in zip(owner, sentences, entities, relations):
            objects = [
                Entity(" ".join(w for w, _, _ in words[i : j + 1]), label, words[i][1], words[j][2])
                for i, j, label in ents
            ]
            graphs[t].entities += objects
            graphs[t].relations += [Relation(objects[a], objects[b], label) for a, b, label in rels]
        return graphs


def save_random_checkpoint(
    model_dir: str | os.PathLike,
    tokenizer_dir: str | os.PathLike,
    config=None,
    seed: int = 0,
    added_tokens: bool = False,
    labelled_share: float = 0.06,
) -> None:
    """Write randomly initialised models and a small vocabulary laid out as ReXKG's scripts write them, for tests and
    benchmarks: a BERT-style `vocab.txt` (`[PAD]`, `[unused0..99]`, `[UNK]`, `[CLS]`, `[SEP]`, `[MASK]`, then
    pieces and words); per folder `config.json` without `num_ner_labels`, `pytorch_model.bin` with transformers
    4.x's `bert.embeddings.position_ids` buffer and the pooler, and `vocab.txt`; `run_relation/label_list.json` and
    an empty `special_tokens.json` (saved before training filled it). `added_tokens` lays out a
    `--add_new_tokens` relation model (52 more embedding rows).

    Random heads label nearly every span, and every labelled pair goes to the relation model; the null label's
    bias is therefore set so that about `labelled_share` of a calibration sentence's spans are labelled (6 %: about
    one entity per two words, as in radiology text), which keeps tests and benchmarks at a realistic pair count.

    `config` is a `BertConfig` (default: a 2-layer, 32-wide BERT); its vocab size is set from the vocabulary.
    """
    from transformers import BertConfig, BertModel

    from rexkg.lexicon import ANATOMY, CONCEPTS, DEVICES, DISORDERS, PROCEDURES

    torch.manual_seed(seed)
    words = sorted(ANATOMY | CONCEPTS | DEVICES | DISORDERS | PROCEDURES)
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += list("abcdefghijklmnopqrstuvwxyz0123456789.,;:-()/") + [
        f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"
    ]
    vocab += ["there", "is", "a", "and", "in", "the", "of", "with"] + [w for w in words if " " not in w]
    vocab = list(dict.fromkeys(vocab))
    vocab_text = "\n".join(vocab) + "\n"
    tokenizer_dir, model_dir = Path(tokenizer_dir), Path(model_dir)
    tokenizer_dir.mkdir(parents=True, exist_ok=True)
    (tokenizer_dir / "vocab.txt").write_text(vocab_text)
    config = config or BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)
    extra = len(added_marker_tokens()) if added_tokens else 0
    for folder, cls, rows in (("run_entity", SpanNER, 0), ("run_relation", RelationClassifier, extra)):
        folder_config = BertConfig.from_dict({**config.to_dict(), "vocab_size": len(vocab) + rows})
        out = model_dir / folder
        out.mkdir(parents=True, exist_ok=True)
        folder_config.save_pretrained(str(out))
        module = cls(folder_config).eval()
        if cls is SpanNER:
            _calibrate_null_bias(module, load_vocabulary(tokenizer_dir), labelled_share)
        state = module.state_dict()
        pooler = BertModel(folder_config, add_pooling_layer=True).pooler.state_dict()
        state.update({f"bert.pooler.{k}": v for k, v in pooler.items()})
        state["bert.embeddings.position_ids"] = torch.arange(folder_config.max_position_embeddings)[None]
        torch.save(state, out / "pytorch_model.bin")
        (out / "vocab.txt").write_text(vocab_text)
    (model_dir / "run_relation" / "label_list.json").write_text(json.dumps(list(RELATION_LABELS)))
    (model_dir / "run_relation" / "special_tokens.json").write_text("{}")


CALIBRATION_SENTENCE = "there is a small left pleural effusion and no pneumothorax in the right lung with atelectasis"


@torch.no_grad()
def _calibrate_null_bias(ner: SpanNER, tokenizer, labelled_share: float) -> None:
    """Raise the null label's bias until about `labelled_share` of the calibration sentence's spans are labelled."""
    helper = NeuralExtractor(ner, None, tokenizer, torch.device("cpu"))
    ids, spans = helper._ner_inputs(CALIBRATION_SENTENCE.split())
    logits = ner(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long), torch.tensor([spans]))[0]
    margin = logits[:, 1:].max(-1).values - logits[:, 0]
    ner.ner_classifier[1].bias[0] += float(torch.quantile(margin, 1.0 - labelled_share))
