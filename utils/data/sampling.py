"""Hard-example mining: training sets drawn from a pool of SFT-scored annotations (pure functions, no I/O).

Sample types:
- `uniform`: the whole pool, stratified by semantic_type x question_type x answer_type;
- `hard_uniform`: only items the SFT model got wrong (`is_correct == false`), stratified the same way;
- `random` / `hard_random`: the same candidates, drawn without stratification;
- `learnable`: items the SFT model gets wrong at greedy but right in some sample at the rollout temperature
  (`is_correct == false` and `sampled_right == true`, from `evaluate.py --num_samples` and
  `tools/set_is_correct.py`), stratified. Only on such items can GRPO's groups have mixed rewards: an item the model
  never samples right gives every completion the same accuracy reward and no advantage.

Stratified quotas are proportional to each stratum's share of the candidates, apportioned by largest remainder:
every stratum gets the floor of its exact share, and the units left go to the largest fractional parts. So every
quota is >= 0, at most its stratum's size (when the pool is large enough), and the quotas sum to the size. (The
original rounded each share and put the rounding error on the largest stratum, which can drive that quota negative:
33 items over one stratum of 11 and twenty of 10 gave it -7.) A stratum that cannot
fill its quota is an error unless `allow_short`, which takes what exists and hands the shortfall to strata with
items to spare, in proportion to their size.

>>> proportional_quotas(10, {"a": 5, "b": 3, "c": 2})
{'a': 5, 'b': 3, 'c': 2}
>>> proportional_quotas(4, {"a": 5, "b": 3, "c": 2})
{'a': 2, 'b': 1, 'c': 1}

Mining a model's mistakes also selects answers: where the SFT model cannot see a finding and always gives one answer,
every hard item of that question has the other answer, and GRPO on the set is paid for answering it always.
`one_answer_strata` finds such strata so the sampler can warn.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from utils.data.annotations import TYPE_FIELDS, reference_answers

SAMPLE_TYPES = ("hard_uniform", "uniform", "hard_random", "random", "learnable")
DEFAULT_SIZES = (1000, 2000, 5000)
DEFAULT_SEED = 42
STRATUM_FIELDS = TYPE_FIELDS  # strata are the annotation type fields


def training_set_path(data_root: str | os.PathLike, sample_type: str, size: int) -> Path:
    """Where a training set lives: `<data_root>/annotations/<sample_type>/<size>.jsonl` (what train_loop.sh reads).

    >>> str(training_set_path("data/MIMIC-VQA-CoT", "hard_uniform", 1000))
    'data/MIMIC-VQA-CoT/annotations/hard_uniform/1000.jsonl'
    """
    return Path(data_root) / "annotations" / sample_type / f"{size}.jsonl"


def manifest_path(set_path: str | os.PathLike) -> Path:
    """The manifest written next to a training set: `<size>.manifest.json`."""
    set_path = Path(set_path)
    return set_path.with_name(f"{set_path.stem}.manifest.json")


class ShortPoolError(ValueError):
    """The pool cannot fill the requested set; the message lists every short stratum."""


def stratum_of(row: dict) -> tuple[str, str, str]:
    """The stratum key of an annotation."""
    return tuple(str(row[f]) for f in STRATUM_FIELDS)


def candidates(pool: Sequence[dict], sample_type: str) -> list[dict]:
    """The items a sample type draws from: every item, those with `is_correct == false` for `hard_*`, and those also
    with `sampled_right == true` for `learnable`.

    >>> pool = [{"is_correct": False, "sampled_right": True}, {"is_correct": False, "sampled_right": False}]
    >>> len(candidates(pool, "hard_uniform")), len(candidates(pool, "learnable"))
    (2, 1)
    """
    if sample_type not in SAMPLE_TYPES:
        raise ValueError(f"unknown sample type {sample_type!r}; choose from {', '.join(SAMPLE_TYPES)}")
    if sample_type == "learnable":
        unsampled = sum("sampled_right" not in row for row in pool)
        if unsampled:
            raise ValueError(
                f"learnable: {unsampled} pool items have no 'sampled_right' field; score the pool with "
                "evaluate.py --num_samples 8, then tools/set_is_correct.py"
            )
        return [row for row in pool if row["is_correct"] is False and row["sampled_right"] is True]
    return [row for row in pool if row["is_correct"] is False] if sample_type.startswith("hard_") else list(pool)


def proportional_quotas(size: int, counts: dict) -> dict:
    """Quotas summing to `size`, proportional to `counts`, by largest remainder (ties: larger stratum, then key).

    >>> proportional_quotas(33, {"big": 11, **{f"s{i:02d}": 10 for i in range(20)}})["big"]
    2
    """
    total = sum(counts.values())
    if total == 0:
        return {key: 0 for key in counts}
    # Integer arithmetic: exact shares are size * n / total; floors plus the remainders size * n % total.
    quotas = {key: size * n // total for key, n in counts.items()}
    left = size - sum(quotas.values())
    by_remainder = sorted(counts, key=lambda key: (-(size * counts[key] % total), -counts[key], str(key)))
    for key in by_remainder[:left]:
        quotas[key] += 1
    return quotas


@dataclass
class SampledSet:
    """A drawn training set and how it was drawn."""

    rows: list[dict]
    requested_size: int
    strata: dict = field(default_factory=dict)  # stratum -> {"available", "quota", "taken"}


def _rng(seed: int, sample_type: str, size: int) -> random.Random:
    # One independent, reproducible stream per (seed, type, size), so adding a size never changes the others.
    digest = hashlib.sha256(f"{seed}:{sample_type}:{size}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def draw(pool: Sequence[dict], sample_type: str, size: int, seed: int = DEFAULT_SEED, allow_short: bool = False):
    """Draw one training set (see the module docstring). Raises ShortPoolError when a stratum (or, unstratified,
    the candidate set) is too small and `allow_short` is off."""
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    rng = _rng(seed, sample_type, size)
    items = candidates(pool, sample_type)
    by_stratum: dict[tuple, list[dict]] = defaultdict(list)
    for row in items:
        by_stratum[stratum_of(row)].append(row)
    available = {key: len(rows) for key, rows in sorted(by_stratum.items())}
    if sample_type.endswith("random"):
        if len(items) < size and not allow_short:
            raise ShortPoolError(f"{sample_type} {size}: only {len(items)} candidate items in the pool")
        rows = rng.sample(items, min(size, len(items)))
        taken = defaultdict(int)
        for row in rows:
            taken[stratum_of(row)] += 1
        strata = {key: {"available": n, "quota": None, "taken": taken[key]} for key, n in available.items()}
        return SampledSet(rows, size, strata)
    quotas = proportional_quotas(size, available)
    short = {key: (q, available[key]) for key, q in quotas.items() if q > available[key]}
    if short and not allow_short:
        listing = "; ".join(f"{'/'.join(key)} needs {q}, has {n}" for key, (q, n) in short.items())
        total = f"; {len(items)} candidates in all" if len(items) < size else ""
        raise ShortPoolError(
            f"{sample_type} {size}: strata too small ({listing}{total}); use --allow-short to redistribute"
        )
    quotas = _redistribute(quotas, available) if short else quotas
    rows = []
    for key in sorted(by_stratum):
        rows += rng.sample(by_stratum[key], quotas[key])
    rng.shuffle(rows)
    strata = {key: {"available": available[key], "quota": quotas[key], "taken": quotas[key]} for key in available}
    return SampledSet(rows, size, strata)


def _redistribute(quotas: dict, available: dict) -> dict:
    """Cap every quota at what its stratum has and give the shortfall to strata with spare items."""
    quotas = dict(quotas)
    while True:
        deficit = sum(max(0, quotas[k] - available[k]) for k in quotas)
        if deficit == 0:
            return quotas
        quotas = {k: min(q, available[k]) for k, q in quotas.items()}
        spare = {k: available[k] - quotas[k] for k in quotas if available[k] > quotas[k]}
        if not spare:
            return quotas  # the candidates are exhausted: the set is smaller than requested
        for key, extra in proportional_quotas(min(deficit, sum(spare.values())), spare).items():
            quotas[key] += extra


@dataclass(frozen=True)
class OneAnswerStratum:
    """A stratum whose drawn items all have one answer that the pool's items of that stratum mostly do not."""

    stratum: tuple[str, ...]
    answer: str
    drawn: int
    pool_items: int
    pool_share: float

    def describe(self) -> str:
        """One warning line.

        >>> OneAnswerStratum(("gender", "choose", "closed"), "female", 20, 54, 0.37).describe()[:64]
        "gender/choose/closed: all 20 drawn items answer 'female', 37% of"
        """
        return (
            f"{'/'.join(self.stratum)}: all {self.drawn} drawn items answer {self.answer!r}, "
            f"{self.pool_share:.0%} of the stratum's {self.pool_items} pool items do; a policy that always answers "
            f"{self.answer!r} earns the full reward on this set"
        )


def _answer_key(row: dict) -> str:
    return ", ".join(sorted(answer.strip().lower() for answer in reference_answers(row)))


def one_answer_strata(
    pool: Sequence[dict], drawn: Sequence[dict], min_drawn: int = 5, max_pool_share: float = 0.8
) -> list[OneAnswerStratum]:
    """Strata with at least `min_drawn` drawn items that all share one answer held by at most `max_pool_share` of
    the pool's items in that stratum (all of them, right or wrong).

    >>> pool = [{"semantic_type": "gender", "question_type": "choose", "answer_type": "closed", "answer": a}
    ...         for a in ["male"] * 6 + ["female"] * 5]
    >>> [s.answer for s in one_answer_strata(pool, pool[6:])]
    ['female']
    >>> one_answer_strata(pool, pool[4:])
    []
    """
    answers_in_pool: dict[tuple, list[str]] = defaultdict(list)
    for row in pool:
        answers_in_pool[stratum_of(row)].append(_answer_key(row))
    answers_drawn: dict[tuple, set[str]] = defaultdict(set)
    drawn_count: dict[tuple, int] = defaultdict(int)
    for row in drawn:
        answers_drawn[stratum_of(row)].add(_answer_key(row))
        drawn_count[stratum_of(row)] += 1
    found = []
    for key in sorted(answers_drawn):
        if drawn_count[key] < min_drawn or len(answers_drawn[key]) != 1:
            continue
        (answer,) = answers_drawn[key]
        pool_answers = answers_in_pool[key]
        share = pool_answers.count(answer) / len(pool_answers)
        if share <= max_pool_share:
            found.append(OneAnswerStratum(key, answer, drawn_count[key], len(pool_answers), share))
    return found
