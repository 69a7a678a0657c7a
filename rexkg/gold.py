"""Labelled sentences or reports for scoring an extractor: `python -m rexkg evaluate --gold FILE`.

Two formats, by extension:
- `.txt` blocks (the development sets): `S: text`, `E: text|type; ...`, `R: source>target|type; ...` (`R: ?` when the
  relations of that text were not annotated), blank lines between blocks, `#` comments;
- `.jsonl`: one object per text, `{"text": ..., "entities": [{"text", "type"}, ...], "relations": [{"source",
  "target", "type"}, ...]}` (`relations` absent or null when not annotated). Relation ends name entity texts.

>>> item = parse_blocks("S: No effusion.\\nE: effusion|disorder_notpresent\\nR: ?\\n", "x.txt")[0]
>>> item.text, sorted(item.entities), item.relations is None
('No effusion.', [('effusion', 'disorder_notpresent')], True)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from rexkg.schema import ENTITY_TYPES, RELATION_TYPES


class GoldFormatError(ValueError):
    """A gold file that cannot be read: the message names the file, the line and the field."""


@dataclass(frozen=True)
class GoldItem:
    """One labelled text: entities as (text, type) pairs, relations as (source, target, type) or None."""

    text: str
    entities: frozenset[tuple[str, str]]
    relations: frozenset[tuple[str, str, str]] | None


def _entity(raw: str, where: str) -> tuple[str, str]:
    raw = raw.strip()
    text, _, kind = raw.rpartition("|")
    if not text or kind not in ENTITY_TYPES:
        raise GoldFormatError(f"{where}: entity {raw!r}: expected text|type with a type of {sorted(ENTITY_TYPES)}")
    return text.strip().lower(), kind


def _relation(raw: str, where: str) -> tuple[str, str, str]:
    raw = raw.strip()
    ends, _, kind = raw.rpartition("|")
    source, _, target = ends.partition(">")
    if not source or not target or kind not in RELATION_TYPES:
        raise GoldFormatError(f"{where}: relation {raw!r}: expected source>target|type, type in {RELATION_TYPES}")
    return source.strip().lower(), target.strip().lower(), kind


def parse_blocks(content: str, name: str) -> list[GoldItem]:
    """Items of a `.txt` gold file (format in the module docstring)."""
    items, text, entities = [], None, None
    for number, line in enumerate(content.splitlines(), 1):
        where = f"{name}: line {number}"
        if line.startswith("S:"):
            text, entities = line[2:].strip(), None
        elif line.startswith("E:"):
            if text is None:
                raise GoldFormatError(f"{where}: field 'E' before any 'S' line")
            entities = frozenset(_entity(e, where) for e in line[2:].split(";") if e.strip())
        elif line.startswith("R:"):
            if text is None or entities is None:
                raise GoldFormatError(f"{where}: field 'R' without its 'S' and 'E' lines")
            body = line[2:].strip()
            relations = None if body == "?" else frozenset(_relation(r, where) for r in body.split(";") if r.strip())
            items.append(GoldItem(text, entities, relations))
            text, entities = None, None
    return items


def parse_jsonl(content: str, name: str) -> list[GoldItem]:
    """Items of a `.jsonl` gold file (format in the module docstring)."""
    items = []
    for number, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{name}: line {number}"
        try:
            obj = json.loads(line)
            text = obj["text"]
            entities = frozenset(_entity(f"{e['text']}|{e['type']}", where) for e in obj["entities"])
            raw_relations = obj.get("relations")
            relations = (
                None
                if raw_relations is None
                else frozenset(_relation(f"{r['source']}>{r['target']}|{r['type']}", where) for r in raw_relations)
            )
        except json.JSONDecodeError as error:
            raise GoldFormatError(f"{where}: not JSON ({error.msg})") from None
        except (KeyError, TypeError) as error:
            raise GoldFormatError(f"{where}: field {error} missing or of the wrong type") from None
        if not isinstance(text, str):
            raise GoldFormatError(f"{where}: field 'text' is not a string")
        items.append(GoldItem(text, entities, relations))
    return items


def load_gold(path: str | os.PathLike) -> list[GoldItem]:
    """Every labelled item of a gold file, `.txt` blocks or `.jsonl`."""
    path = Path(path)
    try:
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GoldFormatError(f"{path}: file not found") from None
    items = parse_jsonl(content, str(path)) if path.suffix == ".jsonl" else parse_blocks(content, str(path))
    if not items:
        raise GoldFormatError(f"{path}: no labelled items")
    return items
