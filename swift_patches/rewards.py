"""ms-swift adapters of our rewards: each class unpacks the batch columns and calls a pure scorer from `utils/`.

Registered names (`--reward_funcs …`) and the class names that key their `rewards/<Class>/…` metrics and their
completions.jsonl columns:

| reward name              | class             | scorer                                   |
|--------------------------|-------------------|------------------------------------------|
| `external_r1v_acc`       | `R1VAccuracy`     | `utils.scoring.rewards.r1v_accuracy`             |
| `external_r1v_acc_normalized` | `R1VAccuracyNormalized` | `utils.scoring.rewards.normalized_accuracy` |
| `external_answer_strict` | `AnswerStrictF1`  | `utils.scoring.rewards.answer_f1`                |
| `external_format`        | `ThinkAnswerFormat` | `utils.scoring.rewards.think_answer_format`    |
| `external_kg_jac`        | `KGJaccard`       | `utils.scoring.kg_reward.kg_jaccard`             |
| `external_kg_jac_original` | `KGJaccardOriginal` | `kg_jaccard_original` on the original's inputs |
| `external_kg_f1`         | `KGF1`            | `utils.scoring.kg_reward.kg_f1`                  |
| `external_consistency`   | `ReasoningConsistency` | `utils.scoring.consistency.consistency_reward` |

The KG rewards read their extractor from the environment: `CHEX_KG_BACKEND` (`rules`, the default, or `neural`),
and for `neural` `CHEX_REXKG_MODEL_DIR` / `CHEX_REXKG_TOKENIZER_DIR` and `CHEX_KG_NEURAL_PIPELINE` (`chexpo`, the
default: CheX-Phi4MM's wrapper, as the paper's reward ran; `rexkg`; `rexkg_fixed`). A misconfigured extractor fails
when the trainer builds the reward, before any rollout.

Sub-scores: after each call a reward's `last_metrics` maps a metric name to one value per completion; our trainer
(`swift_patches/grpo_trainer.py`) reports their means as `rewards/<Class>/<metric>`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from swift.rewards import ORM, orms

from utils.log import get_logger
from utils.scoring.consistency import consistency_reward
from utils.scoring.kg_reward import KGInputs, kg_f1, kg_jaccard, kg_jaccard_original, kg_scorer_from_env
from utils.scoring.rewards import answer_f1, normalized_accuracy, r1v_accuracy, think_answer_format

logger = get_logger("rewards")


def _solutions(name: str, completions: Sequence, solution: Sequence | None) -> Sequence:
    """The `solution` column, checked: a missing column is a dataset error, not a model-output error."""
    if solution is None:
        raise ValueError(f"{name} needs a 'solution' column in the training dataset (the reference explanation)")
    if len(solution) != len(completions):
        raise ValueError(f"{name}: {len(completions)} completions but {len(solution)} solutions")
    return solution


class _PairwiseReward(ORM):
    """A reward that scores each completion against its own `solution` with `score(completion, solution)`."""

    registry_name = ""
    score: Callable[[str, str], float]

    def __init__(self, args=None, **kwargs):
        super().__init__(args, **kwargs)
        self.last_metrics: dict[str, list[float]] = {}

    def __call__(self, completions: list[str], solution: list[str] | None = None, **kwargs) -> list[float]:
        solutions = _solutions(self.registry_name, completions, solution)
        scores = [self.score(completion, reference) for completion, reference in zip(completions, solutions)]
        logger.debug("%s: %s on %r", self.registry_name, scores[:4], [str(c)[:80] for c in completions[:4]])
        return scores


class R1VAccuracy(_PairwiseReward):
    registry_name = "external_r1v_acc"
    score = staticmethod(r1v_accuracy)


class R1VAccuracyNormalized(_PairwiseReward):
    registry_name = "external_r1v_acc_normalized"
    score = staticmethod(normalized_accuracy)


class AnswerStrictF1(_PairwiseReward):
    registry_name = "external_answer_strict"
    score = staticmethod(answer_f1)


class ThinkAnswerFormat(ORM):
    registry_name = "external_format"

    def __call__(self, completions: list[str], **kwargs) -> list[float]:
        return [think_answer_format(completion) for completion in completions]


def _question(messages: object) -> str:
    """The question of a GRPO row: its last user turn without the `<image>` placeholders."""
    users = (
        [m for m in messages if isinstance(m, dict) and m.get("role") == "user"] if isinstance(messages, list) else []
    )
    content = users[-1].get("content") if users else None
    return content.replace("<image>", "").strip() if isinstance(content, str) else ""


class ReasoningConsistency(ORM):
    """`external_consistency`: 0 when the completion's reasoning contradicts its answer (utils.scoring.consistency)."""

    registry_name = "external_consistency"

    def __call__(self, completions: list[str], messages: list | None = None, **kwargs) -> list[float]:
        if messages is None or len(messages) != len(completions):
            raise ValueError(f"{self.registry_name} needs the rows' 'messages' column (the question)")
        return [consistency_reward(_question(m), c) for m, c in zip(messages, completions)]


class _KGReward(ORM):
    """Shared KG adapter: one extraction per batch, sub-scores kept in `last_metrics`."""

    registry_name = ""
    combine: Callable[[dict[str, float]], float]
    sub_scores: tuple[tuple[str, str], ...] = ()
    inputs: KGInputs = "think"

    def __init__(self, args=None, **kwargs):
        super().__init__(args, **kwargs)
        self.scorer = kg_scorer_from_env()
        self.last_metrics: dict[str, list[float]] = {}
        self.last_seconds: float | None = None
        logger.info("%s uses the %s KG extractor", self.registry_name, os.environ.get("CHEX_KG_BACKEND", "rules"))

    def __call__(self, completions: list[str], solution: list[str] | None = None, **kwargs) -> list[float]:
        started = time.perf_counter()
        details = self.scorer.score(completions, _solutions(self.registry_name, completions, solution), self.inputs)
        self.last_metrics = {
            metric: [d[key] for d in details] for metric, key in (*self.sub_scores, ("num_entities", "num_entities"))
        }
        scores = [self.combine(d) for d in details]
        self.last_seconds = time.perf_counter() - started  # the trainer logs it as time/reward/<name>_s
        logger.debug(
            "%s: %s (cache hits %d, misses %d)",
            self.registry_name,
            scores[:4],
            self.scorer.cache_hits,
            self.scorer.cache_misses,
        )
        return scores


class KGJaccard(_KGReward):
    registry_name = "external_kg_jac"
    combine = staticmethod(kg_jaccard)
    sub_scores = (("entity_iou", "entity_jaccard"), ("relation_iou", "relation_jaccard"))


class KGJaccardOriginal(KGJaccard):
    """`external_kg_jac` on the original reward's inputs: whole completion against the reference's `<think>`."""

    registry_name = "external_kg_jac_original"
    inputs = "original"
    combine = staticmethod(kg_jaccard_original)


class KGF1(_KGReward):
    registry_name = "external_kg_f1"
    combine = staticmethod(kg_f1)
    sub_scores = (("entity_f1", "entity_f1"), ("relation_f1", "relation_f1"))


REWARDS = (
    R1VAccuracy,
    R1VAccuracyNormalized,
    AnswerStrictF1,
    ThinkAnswerFormat,
    KGJaccard,
    KGJaccardOriginal,
    KGF1,
    ReasoningConsistency,
)


def register() -> None:
    """Add every reward to ms-swift's `orms` under its `external_*` name."""
    for reward in REWARDS:
        orms[reward.registry_name] = reward
