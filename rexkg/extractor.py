"""The extraction API: one object per backend, kept by callers across calls (and cached per process).

>>> extractor = get_extractor("rules")
>>> extractor is get_extractor("rules"), len(extractor(["Mild cardiomegaly.", ""]))
(True, 2)
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

from rexkg.rules import extract_rules
from rexkg.schema import KnowledgeGraph

BACKENDS = ("rules", "neural")
# The neural backend's pipelines (`rexkg.neural.PIPELINES`), named here so that callers need not import torch.
NEURAL_PIPELINES = ("rexkg", "chexpo", "rexkg_fixed")


class Extractor:
    """Callable `texts -> graphs` for one backend. Build it once; the neural backend loads its models here.
    `pipeline` (neural only): `rexkg` (ReXKG's inference scripts), `chexpo` (CheX-Phi4MM's wrapper, the paper's
    reward) or `rexkg_fixed` (see `rexkg.neural`)."""

    def __init__(
        self,
        backend: str = "rules",
        model_dir: str | os.PathLike | None = None,
        tokenizer_dir: str | os.PathLike | None = None,
        batch_size: int = 32,
        pipeline: str = "rexkg",
    ):
        if backend not in BACKENDS:
            raise ValueError(f"unknown rexkg backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.backend = backend
        self._neural = None
        if backend == "neural":
            from rexkg.neural import NeuralExtractor

            self._neural = NeuralExtractor.from_dirs(
                model_dir, tokenizer_dir, batch_size=batch_size, pipeline=pipeline
            )

    def __call__(self, texts: Sequence[str]) -> list[KnowledgeGraph]:
        """One graph per text, in order."""
        if self._neural is not None:
            return self._neural.extract(list(texts))
        return [extract_rules(text) for text in texts]


@functools.lru_cache(maxsize=8)
def get_extractor(
    backend: str = "rules", model_dir: str | None = None, tokenizer_dir: str | None = None, pipeline: str = "rexkg"
) -> Extractor:
    """The process-wide extractor for a backend (built on first use, then reused)."""
    return Extractor(backend, model_dir, tokenizer_dir, pipeline=pipeline)


def extract(
    texts: Sequence[str], backend: str = "rules", model_dir: str | None = None, tokenizer_dir: str | None = None
) -> list[KnowledgeGraph]:
    """Knowledge graphs of `texts`, one per text, in order, with the process-wide extractor of `backend`."""
    return get_extractor(backend, model_dir, tokenizer_dir)(texts)
