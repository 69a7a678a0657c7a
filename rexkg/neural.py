"""The ReXKG neural backend: PURE-style span NER plus a typed-marker relation classifier, in plain torch and
transformers (no allennlp).

Expected assets (ReXKG's release layout, given explicitly, never downloaded):

- `<model_dir>/run_entity/`: `config.json` (BERT) and `pytorch_model.bin` or `model.safetensors` of PURE's
  `BertForEntity` (keys `bert.*`, `width_embedding.weight`, `ner_classifier.0._linear_layers.{0,1}.*`,
  `ner_classifier.1.*`);
- `<model_dir>/run_relation/`: the same files for PURE's `BertForRelation` (keys `bert.*`, `layer_norm.*`,
  `classifier.*`), whose embeddings include the typed marker tokens;
- `<tokenizer_dir>/vocab.txt`: the BiomedBERT word-piece vocabulary.

Models are loaded once (callers keep the `NeuralExtractor`; `rexkg.get_extractor` caches one per process) on the
process's own device (`cuda:LOCAL_RANK` when CUDA is present), and run batched under `torch.inference_mode`.
"""

from __future__ import annotations

import logging
import os
import re
from itertools import permutations
from pathlib import Path

import torch
from torch import nn

from rexkg.mentions import sentence_spans
from rexkg.schema import ENTITY_TYPES, Entity, KnowledgeGraph, Relation

logger = logging.getLogger(__name__)

NER_LABELS = ("",) + ENTITY_TYPES  # index 0: not an entity
RELATION_LABELS = ("no_relation", "located_at", "suggestive_of", "modify")
MAX_SPAN_WORDS = 8
WIDTH_DIM = 150
HEAD_DIM = 150
MAX_SENTENCE_WORDS = 128  # longer "sentences" (unpunctuated text) are cut, as BERT's 512 pieces would be
_WORD = re.compile(r"\w+|[^\w\s]")


def marker_tokens() -> list[str]:
    """PURE's marker tokens, in the order it adds them to the tokenizer (untyped first, then per entity type)."""
    markers = ["<SUBJ_START>", "<SUBJ_END>", "<OBJ_START>", "<OBJ_END>"]
    for label in ENTITY_TYPES:
        markers += [f"<SUBJ_START={label}>", f"<SUBJ_END={label}>", f"<OBJ_START={label}>", f"<OBJ_END={label}>"]
    return markers


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


def _load_module(cls, folder: Path, device: torch.device) -> nn.Module:
    from transformers import BertConfig

    _require(folder, f"a folder with config.json and pytorch_model.bin or model.safetensors of {cls.__name__}")
    config = BertConfig.from_pretrained(str(_require(folder / "config.json", "the BERT config of the model")))
    module = cls(config)
    if (folder / "model.safetensors").exists():
        from safetensors.torch import load_file

        state = load_file(str(folder / "model.safetensors"))
    else:
        weights = _require(folder / "pytorch_model.bin", "pytorch_model.bin or model.safetensors (model weights)")
        state = torch.load(weights, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("bert.pooler.")}  # the pooler is unused
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{folder}: weights do not fit {cls.__name__}: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return module.to(device).eval()


def process_device() -> torch.device:
    """The device of this process: `cuda:LOCAL_RANK` when CUDA is available, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


class NeuralExtractor:
    """Holds the loaded NER and relation models and the tokenizer; `extract(texts)` runs them batched."""

    def __init__(
        self, ner: SpanNER, relation: RelationClassifier, tokenizer, device: torch.device, batch_size: int = 32
    ):
        self.ner, self.relation, self.tokenizer = ner, relation, tokenizer
        self.device, self.batch_size = device, batch_size
        self.marker_ids = {m: tokenizer.convert_tokens_to_ids(m) for m in marker_tokens()}

    @classmethod
    def from_dirs(cls, model_dir, tokenizer_dir, batch_size: int = 32) -> NeuralExtractor:
        """Load from explicit local folders (see module docstring); errors name the missing path."""
        from transformers import BertTokenizerFast

        if model_dir is None or tokenizer_dir is None:
            raise ValueError(
                "the neural backend needs model_dir (with run_entity/ and run_relation/) and "
                "tokenizer_dir (with vocab.txt)"
            )
        model_dir, tokenizer_dir = Path(model_dir), Path(tokenizer_dir)
        _require(tokenizer_dir / "vocab.txt", "the BiomedBERT word-piece vocabulary")
        tokenizer = BertTokenizerFast(vocab_file=str(tokenizer_dir / "vocab.txt"), do_lower_case=True)
        tokenizer.add_special_tokens({"additional_special_tokens": marker_tokens()})
        device = process_device()
        ner = _load_module(SpanNER, model_dir / "run_entity", device)
        relation = _load_module(RelationClassifier, model_dir / "run_relation", device)
        logger.info("ReXKG neural backend loaded from %s on %s", model_dir, device)
        return cls(ner, relation, tokenizer, device, batch_size)

    @staticmethod
    def _words(text: str, start: int, end: int) -> list[tuple[str, int, int]]:
        """Words and punctuation of one sentence with their character offsets (ReXKG spaces out punctuation)."""
        return [(m.group(), start + m.start(), start + m.end()) for m in _WORD.finditer(text[start:end])]

    def _encode_words(self, words: list[str], max_pieces: int = 500) -> tuple[list[int], list[int], list[int]]:
        ids, first, last = [self.tokenizer.cls_token_id], [], []
        for word in words:
            pieces = self.tokenizer.encode(word, add_special_tokens=False) or [self.tokenizer.unk_token_id]
            first.append(len(ids))
            ids += pieces
            last.append(len(ids) - 1)
        ids = ids[:max_pieces] + [self.tokenizer.sep_token_id]
        return ids, [min(i, max_pieces - 1) for i in first], [min(i, max_pieces - 1) for i in last]

    def _pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return ids.to(self.device), mask.to(self.device)

    def _entities(self, sentences) -> list[list[tuple[int, int, str]]]:
        """Per sentence: non-overlapping (first word, last word, type), most confident first."""
        results = []
        for b in range(0, len(sentences), self.batch_size):
            batch = sentences[b : b + self.batch_size]
            encoded = [self._encode_words([w for w, _, _ in words]) for words in batch]
            spans = [
                [(i, j) for i in range(len(words)) for j in range(i, min(len(words), i + MAX_SPAN_WORDS))]
                for words in batch
            ]
            width = max(1, max(len(s) for s in spans))
            span_tensor = torch.zeros((len(batch), width, 3), dtype=torch.long)
            for r, (row_spans, (_, first, last)) in enumerate(zip(spans, encoded)):
                for s, (i, j) in enumerate(row_spans):
                    span_tensor[r, s] = torch.tensor([first[i], last[j], j - i + 1])
            ids, mask = self._pad([e[0] for e in encoded])
            probs = self.ner(ids, mask, span_tensor.to(self.device)).softmax(-1).cpu()
            for r, row_spans in enumerate(spans):
                scored = []
                for s, (i, j) in enumerate(row_spans):
                    score, label = probs[r, s].max(-1)
                    if int(label) != 0:
                        scored.append((float(score), i, j, NER_LABELS[int(label)]))
                taken, chosen = set(), []
                for _, i, j, label in sorted(scored, reverse=True):
                    if not taken & set(range(i, j + 1)):
                        taken |= set(range(i, j + 1))
                        chosen.append((i, j, label))
                results.append(sorted(chosen))
        return results

    def _relations(self, sentences, entities) -> list[list[tuple[int, int, str]]]:
        pairs, rows = [], []
        for n, (words, ents) in enumerate(zip(sentences, entities)):
            for a, b in permutations(range(len(ents)), 2):
                marked, subject_at, object_at = self._marked(words, ents[a], ents[b])
                pairs.append((n, a, b))
                rows.append((marked, subject_at, object_at))
        labels = []
        for k in range(0, len(rows), self.batch_size):
            chunk = rows[k : k + self.batch_size]
            ids, mask = self._pad([r[0] for r in chunk])
            subject = torch.tensor([r[1] for r in chunk], device=self.device)
            obj = torch.tensor([r[2] for r in chunk], device=self.device)
            labels += self.relation(ids, mask, subject, obj).argmax(-1).tolist()
        found = [[] for _ in sentences]
        for (n, a, b), label in zip(pairs, labels):
            if label != 0:
                found[n].append((a, b, RELATION_LABELS[label]))
        return found

    def _marked(self, words, subject, obj) -> tuple[list[int], int, int]:
        ids, subject_at, object_at = [self.tokenizer.cls_token_id], 0, 0
        for k, (word, _, _) in enumerate(words):
            if k == subject[0]:
                subject_at = len(ids)
                ids.append(self.marker_ids[f"<SUBJ_START={subject[2]}>"])
            if k == obj[0]:
                object_at = len(ids)
                ids.append(self.marker_ids[f"<OBJ_START={obj[2]}>"])
            ids += self.tokenizer.encode(word, add_special_tokens=False) or [self.tokenizer.unk_token_id]
            if k == subject[1]:
                ids.append(self.marker_ids[f"<SUBJ_END={subject[2]}>"])
            if k == obj[1]:
                ids.append(self.marker_ids[f"<OBJ_END={obj[2]}>"])
        return ids[:511] + [self.tokenizer.sep_token_id], min(subject_at, 510), min(object_at, 510)

    @torch.inference_mode()
    def extract(self, texts: list[str]) -> list[KnowledgeGraph]:
        """One graph per text; sentences are batched across all texts."""
        sentences, owner = [], []
        for t, text in enumerate(texts):
            if not isinstance(text, str):
                continue
            for start, end in sentence_spans(text):
                words = self._words(text, start, end)
                if len(words) >= 2:  # ReXKG drops sentences shorter than two tokens
                    sentences.append(words[:MAX_SENTENCE_WORDS])
                    owner.append(t)
        entities = self._entities(sentences) if sentences else []
        relations = self._relations(sentences, entities) if sentences else []
        graphs = [KnowledgeGraph() for _ in texts]
        for t, words, ents, rels in zip(owner, sentences, entities, relations):
            text = texts[t]
            objects = [
                Entity(text[words[i][1] : words[j][2]], label, words[i][1], words[j][2]) for i, j, label in ents
            ]
            graphs[t].entities += objects
            graphs[t].relations += [Relation(objects[a], objects[b], label) for a, b, label in rels]
        return graphs


def save_random_checkpoint(
    model_dir: str | os.PathLike, tokenizer_dir: str | os.PathLike, config=None, seed: int = 0
) -> None:
    """Write randomly initialised models and a small vocabulary in ReXKG's layout, for tests and benchmarks.

    `config` is a `BertConfig` (default: a 2-layer, 32-wide BERT); its vocab size is set from the vocabulary.
    """
    from transformers import BertConfig

    from rexkg.lexicon import ANATOMY, CONCEPTS, DEVICES, DISORDERS, PROCEDURES

    torch.manual_seed(seed)
    words = sorted(ANATOMY | CONCEPTS | DEVICES | DISORDERS | PROCEDURES)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghijklmnopqrstuvwxyz0123456789.,;:-()")
    vocab += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"] + words
    tokenizer_dir, model_dir = Path(tokenizer_dir), Path(model_dir)
    tokenizer_dir.mkdir(parents=True, exist_ok=True)
    (tokenizer_dir / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    config = config or BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)
    config.vocab_size = len(dict.fromkeys(vocab))
    for folder, cls, extra in (("run_entity", SpanNER, 0), ("run_relation", RelationClassifier, len(marker_tokens()))):
        folder_config = BertConfig.from_dict({**config.to_dict(), "vocab_size": config.vocab_size + extra})
        (model_dir / folder).mkdir(parents=True, exist_ok=True)
        folder_config.save_pretrained(str(model_dir / folder))
        torch.save(cls(folder_config).state_dict(), model_dir / folder / "pytorch_model.bin")
