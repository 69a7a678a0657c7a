"""Prompt lengths of a training set against `MAX_LENGTH`, before any compute is spent.

A 36-crop chest X-ray is about 8k image tokens; with `MAX_LENGTH=4096` ms-swift would truncate or drop such prompts
mid-run. The lengths come from the real template (text) plus each image's token count at the run's crop setting.

Rows are named by their line in the JSON-lines file (1-based), as every tool names them.

>>> budget = PromptBudget(max_length=100, dynamic_hd=4, lengths=[PromptLength(1, 20, 27), PromptLength(2, 30, 90)])
>>> budget.longest.total, [p.line for p in budget.over_limit]
(120, [2])
>>> print(budget.describe())
longest prompt 120 tokens (line 2: 30 text + 90 image) at dynamic_hd=4; MAX_LENGTH 100; 1 of 2 prompts longer
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PromptLength:
    """Token count of one dataset row's prompt (`line` of the file): its text (chat format included) and images."""

    line: int
    text_tokens: int
    image_tokens: int

    @property
    def total(self) -> int:
        return self.text_tokens + self.image_tokens


@dataclass(frozen=True)
class PromptBudget:
    """Every prompt's length against the run's limit."""

    max_length: int
    dynamic_hd: int
    lengths: list[PromptLength]

    @property
    def longest(self) -> PromptLength | None:
        return max(self.lengths, key=lambda length: length.total, default=None)

    @property
    def over_limit(self) -> list[PromptLength]:
        return [length for length in self.lengths if length.total > self.max_length]

    def describe(self) -> str:
        """One line with the numbers a user needs to choose MAX_LENGTH or DYNAMIC_HD."""
        longest = self.longest
        if longest is None:
            return f"no prompts; MAX_LENGTH {self.max_length}"
        return (
            f"longest prompt {longest.total} tokens (line {longest.line}: {longest.text_tokens} text + "
            f"{longest.image_tokens} image) at dynamic_hd={self.dynamic_hd}; MAX_LENGTH {self.max_length}; "
            f"{len(self.over_limit)} of {len(self.lengths)} prompts longer"
        )

    def to_json(self) -> dict:
        longest = self.longest
        return {
            "max_length": self.max_length,
            "dynamic_hd": self.dynamic_hd,
            "num_prompts": len(self.lengths),
            "longest": None if longest is None else {**longest.__dict__, "total": longest.total},
            "over_limit_lines": [length.line for length in self.over_limit],
        }
