"""rexkg: radiology knowledge-graph extraction in the ReXKG convention.

>>> [g.entity_keys() for g in extract(["No pneumothorax."])]
[{('pneumothorax', 'disorder_notpresent')}]
"""

from __future__ import annotations

from rexkg.extractor import Extractor, extract, get_extractor
from rexkg.schema import ENTITY_TYPES, RELATION_TYPES, Entity, KnowledgeGraph, Relation

__all__ = [
    "ENTITY_TYPES",
    "RELATION_TYPES",
    "Entity",
    "Extractor",
    "KnowledgeGraph",
    "Relation",
    "extract",
    "get_extractor",
]
