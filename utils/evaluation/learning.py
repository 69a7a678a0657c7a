"""What a training run changed, from evaluation results: format, strict accuracy, accuracy on the questions the image
decides, and the image-blind baseline (the pool's most frequent answer to each question). `tools/demo_summary.py`
prints it for one run and `bench/learning_bench.py` over seeds.

>>> rows = [{"question": "Q?", "answer": ["yes"], "generated_text": "<think>a</think><answer>yes</answer>",
...          "is_correct_strict": True}]
>>> split_scores(rows, {"Q?": "no"}, lambda q: True)
{'n': 1, 'format': 1.0, 'strict': 1.0, 'n_decided': 1, 'decided_strict': 1.0, 'decided_majority': 0.0}
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from utils.data.synthetic_cxr import ANSWER_CHANGING_ERRORS
from utils.evaluation.results import contradictions, headroom
from utils.io import read_json
from utils.scoring.kg_reward import get_kg_scorer, kg_f1
from utils.scoring.rewards import think_answer_format
from utils.training_logs import read_training_log, step_metrics

SPLITS = ("test_basic", "test_compare", "test_region")


def majority_answers(pool: Sequence[dict]) -> dict[str, str]:
    """The most frequent reference answer to each question text of a pool (ties: the first seen)."""
    answers: dict[str, Counter] = defaultdict(Counter)
    for row in pool:
        answers[row["question"]][", ".join(row["answer"])] += 1
    return {question: counts.most_common(1)[0][0] for question, counts in answers.items()}


def split_scores(rows: Sequence[dict], majority: dict[str, str], decided: Callable[[str], bool]) -> dict:
    """Format share, strict accuracy, and on the image-decided questions strict accuracy and the majority baseline's
    accuracy (the answer a model that ignores the image would give)."""
    decided_rows = [r for r in rows if decided(r["question"])]

    def share(values: list[bool | float]) -> float:
        return sum(values) / len(values) if values else 0.0

    return {
        "n": len(rows),
        "format": share([think_answer_format(r.get("generated_text", "")) for r in rows]),
        "strict": share([bool(r["is_correct_strict"]) for r in rows]),
        "n_decided": len(decided_rows),
        "decided_strict": share([bool(r["is_correct_strict"]) for r in decided_rows]),
        "decided_majority": share([majority.get(r["question"]) == ", ".join(r["answer"]) for r in decided_rows]),
    }


def one_answer_questions(
    rows: Sequence[dict], min_items: int = 5, min_other_share: float = 0.25
) -> dict[str, tuple[str, int, int]]:
    """Questions a model answered the same on every item (at least `min_items`) although at least `min_other_share`
    of their references are another answer: question -> (the model's answer, items, items whose reference is that
    answer). A model that gives one answer whatever the image shows does not see what the question asks about;
    a few misses among many right answers would not show that, hence the share.

    >>> rows = [{"question": "Sex?", "answer": [a], "answer_span": "Male"} for a in ["male"] * 3 + ["female"] * 2]
    >>> one_answer_questions(rows)
    {'Sex?': ('Male', 5, 3)}
    """
    by_question: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_question[row["question"]].append(row)
    found = {}
    for question, items in by_question.items():
        given = {str(row.get("answer_span") or "").strip().lower() for row in items}
        references = [", ".join(row["answer"]).strip().lower() for row in items]
        if len(items) < min_items or len(given) != 1:
            continue
        (answer,) = given
        others = len(items) - references.count(answer)
        if others >= max(2, min_other_share * len(items)):
            found[question] = (str(items[0].get("answer_span") or "").strip(), len(items), len(items) - others)
    return found


def binomial_se(p: float, n: int) -> float:
    """Standard error of an accuracy `p` measured on `n` samples (the noise of one evaluation).

    >>> round(binomial_se(0.5, 100), 3)
    0.05
    """
    return math.sqrt(p * (1 - p) / n) if n else float("nan")


def spread(values: Sequence[float]) -> float:
    """Seed-to-seed spread: the sample standard deviation (0 for fewer than two values).

    >>> round(spread([0.5, 0.7]), 3)
    0.141
    """
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _split_rows(out: Path, stage: str) -> dict[str, list[dict]] | None:
    """Result rows of each test split evaluated at one stage (`before`, `after`, `after_<arm>`), each with its
    `split`, or None while one is missing."""
    files = {split: out / f"eval_{stage}" / split / "results.json" for split in SPLITS}
    if not all(path.is_file() for path in files.values()):
        return None
    return {split: [{**row, "split": split} for row in read_json(path)["results"]] for split, path in files.items()}


def teacher_error_items(data_root: Path) -> set[tuple[str, int]] | None:
    """(split, id) of the test items of the kinds whose answer the data's teacher gets wrong at its stated rate
    (`teacher.json` of `tools/make_demo_data.py`), or None for data without a teacher."""
    card_file = data_root / "teacher.json"
    if not card_file.is_file():
        return None
    card = read_json(card_file)
    return {
        (split, item)
        for split, kinds in card["test_items"].items()
        for kind in ANSWER_CHANGING_ERRORS
        for item in kinds.get(kind, [])
    }


def reasoning_kg_f1(rows: Sequence[dict]) -> float:
    """Mean KG F1 (`external_kg_f1`'s arithmetic, rules extractor) of each response's reasoning against its
    reference explanation's."""
    scored = [row for row in rows if row.get("explanation")]
    if not scored:
        return float("nan")
    details = get_kg_scorer("rules").score(
        [r.get("generated_text", "") for r in scored], [r["explanation"] for r in scored]
    )
    return statistics.fmean(kg_f1(d) for d in details)


def reward_curve(logging_file: Path, key: str = "rewards/R1VAccuracy/mean") -> tuple[float, float, int] | None:
    """Mean of the first and of the last quarter of the logged steps of one reward, and the number of steps."""
    if not logging_file.is_file():
        return None
    values = [value for _, value in step_metrics(read_training_log(logging_file)).get(key, [])]
    if not values:
        return None
    quarter = max(1, len(values) // 4)
    return sum(values[:quarter]) / quarter, sum(values[-quarter:]) / quarter, len(values)


def learning_outcome(out: Path, data_root: Path, decided: Callable[[str], bool], arm: str = "") -> dict | None:
    """Scores of a demo run's SFT model (`before`, `<out>/eval_before`) and GRPO model (`after`, `<out>/eval_after`;
    with `arm`, `<out>/eval_after_<arm>` trained in `<out>/grpo_<arm>`) on the pooled test splits and per split; on
    the items the data's teacher gets wrong, if it has one; headroom, contradictions and the reasoning's KG F1 of
    each model; the GRPO training reward curve, and the noise of one evaluation. None until both evaluations exist.
    `decided(question)` says which questions the image decides."""
    suffix = f"_{arm}" if arm else ""
    stages = {"before": _split_rows(out, "before"), "after": _split_rows(out, f"after{suffix}")}
    pool_file = data_root / "annotations" / "eval" / "valid_all_vqa.json"
    if None in stages.values() or not pool_file.is_file():
        return None
    majority = majority_answers(read_json(pool_file))
    pooled = {stage: [row for rows in splits.values() for row in rows] for stage, splits in stages.items()}
    scores = {stage: split_scores(rows, majority, decided) for stage, rows in pooled.items()}
    taught_wrong = teacher_error_items(data_root)
    teacher = None
    taught = {
        stage: [row for row in rows if (row["split"], row["id"]) in taught_wrong] if taught_wrong else []
        for stage, rows in pooled.items()
    }
    if taught["before"] and taught["after"]:
        teacher = {
            stage: {"n": len(items), "strict": sum(bool(r["is_correct_strict"]) for r in items) / len(items)}
            for stage, items in taught.items()
        }
        teacher["change"] = teacher["after"]["strict"] - teacher["before"]["strict"]
        teacher["evaluation_se"] = binomial_se(teacher["before"]["strict"], teacher["before"]["n"])
    return {
        **scores,
        "teacher_errors": teacher,  # None without a teacher, or without a test item of its kinds
        "headroom": {stage: headroom(rows) for stage, rows in pooled.items()},
        "contradictions": {stage: contradictions(rows) for stage, rows in pooled.items()},
        "kg_f1": {stage: reasoning_kg_f1(rows) for stage, rows in pooled.items()},
        "per_split": {
            split: {stage: split_scores(splits[split], majority, decided) for stage, splits in stages.items()}
            for split in SPLITS
        },
        "strict_change": scores["after"]["strict"] - scores["before"]["strict"],
        "evaluation_se": binomial_se(scores["before"]["strict"], scores["before"]["n"]),
        "reward_curve": reward_curve(out / f"grpo{suffix}" / "logging.jsonl"),
        "one_answer": {stage: one_answer_questions(rows) for stage, rows in pooled.items()},
    }
