"""The ReXKG knowledge-graph data model ("mimic01" schema): 8 entity types, 3 relation types.

Entities carry character offsets into the text they came from, so `text[entity.start:entity.end] == entity.text`.
Relations point from a finding to its anatomy (`located_at`), from a modifier to what it modifies (`modify`), and
from a finding to what it suggests (`suggestive_of`).

>>> e = Entity("effusion", "disorder_present", 6, 14)
>>> KnowledgeGraph([e], []).to_json()
{'entities': [{'text': 'effusion', 'type': 'disorder_present', 'start': 6, 'end': 14}], 'relations': []}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

ENTITY_TYPES = (
    "size",
    "anatomy",
    "disorder_present",
    "disorder_notpresent",
    "concept",
    "procedures",
    "devices_present",
    "devices_notpresent",
)
RELATION_TYPES = ("located_at", "suggestive_of", "modify")


class Entity(NamedTuple):
    """A typed span of the input text (an immutable named tuple: extraction builds many of them)."""

    text: str
    type: str
    start: int
    end: int
    hedged: bool = False  # stated with uncertainty ("likely", "unlikely"); the rules backend marks it


def hedge_key(entity: Entity) -> tuple[str, str]:
    """An entity's key in `KnowledgeGraph.entity_hedge_keys`."""
    return entity.text.lower(), entity.type + "?" if entity.hedged else entity.type


class Relation(NamedTuple):
    """A typed edge between two entities of the same graph."""

    source: Entity
    target: Entity
    type: str


@dataclass
class KnowledgeGraph:
    """Entities in text order and the relations between them."""

    entities: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)

    def entity_keys(self) -> set[tuple[str, str]]:
        """(lowercased text, type) of every entity: what entity metrics compare."""
        return {(e.text.lower(), e.type) for e in self.entities}

    def entity_hedge_keys(self) -> set[tuple[str, str]]:
        """(lowercased text, type) with `?` after the type of a hedged entity: what the KG reward compares, so that
        "consolidation is likely" is not "consolidation is present".

        >>> KnowledgeGraph([Entity("opacity", "disorder_present", 0, 7, hedged=True)], []).entity_hedge_keys()
        {('opacity', 'disorder_present?')}
        """
        return {hedge_key(e) for e in self.entities}

    def entity_text_keys(self) -> set[tuple[str, str]]:
        """(lowercased text, type) with one type per text, the last in text order: the original reward's entities,
        a dict from text to type (`entities.update(...)` sentence by sentence), which collapses duplicates.

        >>> g = KnowledgeGraph([Entity("left", "concept", 0, 4), Entity("Left", "anatomy", 9, 13)], [])
        >>> sorted(g.entity_keys()), sorted(g.entity_text_keys())
        ([('left', 'anatomy'), ('left', 'concept')], [('left', 'anatomy')])
        """
        return set({e.text.lower(): e.type for e in self.entities}.items())

    def relation_keys(self) -> set[tuple[str, str, str]]:
        """(source text, target text, type), lowercased: what relation metrics compare."""
        return {(r.source.text.lower(), r.target.text.lower(), r.type) for r in self.relations}

    def to_json(self) -> dict:
        """The CLI's line format: relations refer to entities by index."""
        index = {entity: i for i, entity in enumerate(self.entities)}
        return {
            "entities": [{"text": e.text, "type": e.type, "start": e.start, "end": e.end} for e in self.entities],
            "relations": [
                {"source": index[r.source], "target": index[r.target], "type": r.type} for r in self.relations
            ],
        }

    @classmethod
    def from_json(cls, obj: dict) -> KnowledgeGraph:
        """Inverse of `to_json`."""
        entities = [Entity(e["text"], e["type"], int(e["start"]), int(e["end"])) for e in obj.get("entities", [])]
        relations = [
            Relation(entities[r["source"]], entities[r["target"]], r["type"]) for r in obj.get("relations", [])
        ]
        return cls(entities, relations)
