"""`FREEZE_NON_VISION_PARAMS=1`: train only Phi-4-MM's vision LoRA (the CheXPO-v2 recipe), optionally plus lm_head.

Environment:
- `FREEZE_NON_VISION_PARAMS` (default 0): turn the hook on.
- `FREEZE_TRAINABLE_PATTERNS` (default `lora_A\\.vision\\.,lora_B\\.vision\\.`): comma-separated regular expressions;
  a parameter stays trainable when its name matches any of them (`re.search`). The default matches the `vision`
  adapter that our loader attaches from `vision-lora/`, i.e. the same tensors microsoft's remote-code model calls
  `lora_A.vision` / `lora_B.vision`.
- `FREEZE_TRAIN_LM_HEAD` (default 0): also train the output projection. Off by default because the published
  CheXPO-v2 run trained the vision LoRA only (its README said "and lm_head", its code did not): the default
  reproduces the paper's numbers. lm_head (200k x 3072 in Phi-4-MM) is also shared by every text output, so
  training it moves the model far more than the LoRA does.

A run in which nothing would train stops here with an error instead of silently "training" nothing.

>>> select_trainable(["model.layers.0.qkv_proj.lora_A.vision.weight", "model.embed_tokens.weight"],
...                  DEFAULT_PATTERNS)
['model.layers.0.qkv_proj.lora_A.vision.weight']
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from torch import nn

from utils.env import env_flag
from utils.log import get_logger

logger = get_logger("freezing")

DEFAULT_PATTERNS = (r"lora_A\.vision\.", r"lora_B\.vision\.")


@dataclass(frozen=True)
class FreezeConfig:
    """What stays trainable when freezing is on."""

    enabled: bool = False
    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    train_lm_head: bool = False

    @classmethod
    def from_env(cls) -> FreezeConfig:
        """Read `FREEZE_NON_VISION_PARAMS`, `FREEZE_TRAINABLE_PATTERNS` and `FREEZE_TRAIN_LM_HEAD`."""
        raw = os.environ.get("FREEZE_TRAINABLE_PATTERNS", "").strip()
        patterns = tuple(p.strip() for p in raw.split(",") if p.strip()) if raw else DEFAULT_PATTERNS
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                message = f"FREEZE_TRAINABLE_PATTERNS: {pattern!r} is not a regular expression ({error})"
                raise ValueError(message) from None
        return cls(
            enabled=env_flag("FREEZE_NON_VISION_PARAMS"),
            patterns=patterns,
            train_lm_head=env_flag("FREEZE_TRAIN_LM_HEAD"),
        )


def select_trainable(names: Iterable[str], patterns: Sequence[str]) -> list[str]:
    """The names that match any of `patterns` (regular expressions, searched anywhere in the name), in order."""
    compiled = [re.compile(pattern) for pattern in patterns]
    return [name for name in names if any(regex.search(name) for regex in compiled)]


@dataclass(frozen=True)
class FreezeReport:
    """The outcome of `freeze_non_vision`: trainable parameter names and element counts."""

    trainable_names: tuple[str, ...]
    trainable_count: int
    frozen_count: int


def freeze_non_vision(model: nn.Module, config: FreezeConfig) -> FreezeReport:
    """Set `requires_grad` so that only the parameters selected by `config` train; log and return the counts.

    Raises ValueError when no parameter name matches the patterns (for example when the vision LoRA was not
    attached), naming the patterns and a few parameter names to compare them with.
    """
    named = dict(model.named_parameters())
    selected = set(select_trainable(named, config.patterns))
    if not selected:
        sample = ", ".join(list(named)[:5])
        raise ValueError(
            f"FREEZE_NON_VISION_PARAMS=1 but no parameter name matches FREEZE_TRAINABLE_PATTERNS "
            f"{list(config.patterns)}; nothing would train. Parameter names look like: {sample}. Is the vision "
            f"LoRA attached (checkpoint has vision-lora/, PHI4MM_VISION_LORA is not 0)?"
        )
    if config.train_lm_head:
        selected |= _output_embedding_names(model, named)
    trainable = frozen = 0
    for name, param in named.items():
        param.requires_grad_(name in selected)
        if name in selected:
            trainable += parameter_count(param)
        else:
            frozen += parameter_count(param)
    logger.info(
        "FREEZE_NON_VISION_PARAMS: %d tensors / %s parameters trainable, %s frozen (patterns %s, lm_head %s)",
        len(selected),
        f"{trainable:,}",
        f"{frozen:,}",
        list(config.patterns),
        "trained" if config.train_lm_head else "frozen",
    )
    return FreezeReport(tuple(n for n in named if n in selected), trainable, frozen)


def parameter_count(param: nn.Parameter) -> int:
    """Elements of a parameter; under DeepSpeed ZeRO-3 the full count (`ds_numel`), not the 0 of its local shard.

    >>> import torch; p = nn.Parameter(torch.empty(0)); p.ds_numel = 12; parameter_count(p)
    12
    """
    return getattr(param, "ds_numel", None) or param.numel()


def _output_embedding_names(model: nn.Module, named: dict[str, nn.Parameter]) -> set[str]:
    """Names of the output projection's parameters, found by identity (works under PEFT wrappers and tying)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        raise ValueError("FREEZE_TRAIN_LM_HEAD=1 but the model has no output embeddings (lm_head)")
    head_ids = {id(p) for p in head.parameters()}
    names = {name for name, param in named.items() if id(param) in head_ids}
    input_embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if input_embeddings is not None and head_ids & {id(p) for p in input_embeddings.parameters()}:
        logger.warning("FREEZE_TRAIN_LM_HEAD=1: lm_head is tied to the input embeddings, which will train too")
    return names
