"""What the demo summary and the learning bench read from a run: hand-written evaluation results, pool and training
log, so every expected figure is counted here rather than taken from the code under test."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tools.demo_summary import summary_lines
from utils.evaluation.learning import SPLITS, one_answer_questions

SEX = "Is this patient male or female?"
CARDIO = "Is the cardiac silhouette enlarged?"


def _row(question: str, reference: str, said: str) -> dict:
    return {
        "question": question,
        "answer": [reference],
        "answer_span": said,
        "generated_text": f"<think>x</think><answer>{said}</answer>",
        "is_correct_strict": said.lower() == reference.lower(),
    }


def _write_run(out: Path, before: list[dict], after: list[dict], accuracy_rewards: list[float]) -> Path:
    for stage, rows in (("before", before), ("after", after)):
        for split in SPLITS:
            path = out / f"eval_{stage}" / split / "results.json"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps({"results": rows if split == "test_basic" else []}))
    data_root = out / "data"
    pool = data_root / "annotations" / "eval" / "valid_all_vqa.json"
    pool.parent.mkdir(parents=True)
    # Majority answers of the pool: "male" to the sex question, "no" to the heart question.
    pool.write_text(json.dumps([{"question": SEX, "answer": ["male"]}] * 3 + [{"question": CARDIO, "answer": ["no"]}]))
    log = out / "grpo" / "logging.jsonl"
    log.parent.mkdir(parents=True)
    n = len(accuracy_rewards)
    log.write_text(
        "".join(
            json.dumps({"rewards/R1VAccuracy/mean": value, "global_step/max_steps": f"{step}/{n}"}) + "\n"
            for step, value in enumerate(accuracy_rewards, 1)
        )
    )
    return data_root


def test_summary_reports_format_majority_reward_change_and_a_question_answered_blindly(tmp_path):
    # Before: "male" to all 16 sex questions (8 are female), the heart question right 8 of 8.
    sexes = ["male", "female"] * 8
    before = [_row(SEX, s, "male") for s in sexes] + [_row(CARDIO, a, a) for a in ["yes", "no", "no", "yes"] * 2]
    # After: the sex question read from the image on the first 14; the heart question unchanged.
    after = [_row(SEX, s, s if i < 14 else "male") for i, s in enumerate(sexes)] + before[16:]
    data_root = _write_run(tmp_path, before, after, [0.25, 0.25, 0.5, 0.5, 0.5, 0.75, 0.75, 1.0])
    text = "\n".join(summary_lines(tmp_path, data_root))
    assert "format 1.000 on the test splits (reached; target >= 0.9)" in text
    # 16 of 24 right before (8 male + 8 heart); the majority answer gets 8 sex + 4 heart = 12 of 24.
    assert "strict accuracy 0.667 beats the image-blind majority answer (0.500)" in text
    assert "first vs last quarter of 8 steps: 0.250 -> 0.875 (+0.625)" in text
    # 23 of 24 after; one evaluation's noise is sqrt(2/3 * 1/3 / 24) = 0.096.
    assert "0.667 -> 0.958 (+0.292): moved by more than twice the noise of one evaluation (0.096)" in text
    assert f"The SFT model gives one answer to every item of a question whose references differ: '{SEX}': " in text
    assert "'male' to all 16 (8 of them another answer)" in text
    assert "The GRPO model gives one answer" not in text


@settings(max_examples=300, deadline=None)
@given(
    references=st.lists(st.sampled_from(["male", "female", "Male"]), min_size=1, max_size=20),
    said=st.one_of(st.sampled_from(["male", "female", " MALE "]), st.lists(st.sampled_from(["male", "female"]))),
)
def test_a_question_is_flagged_when_one_answer_meets_references_that_differ(references, said):
    answers = [said] * len(references) if isinstance(said, str) else (said + ["male"] * len(references))
    rows = [_row(SEX, ref, answer) for ref, answer in zip(references, answers)]
    given_answers = {answer.strip().lower() for answer in answers[: len(references)]}
    flagged = one_answer_questions(rows)
    if len(rows) >= 5 and len(given_answers) == 1:
        (answer,) = given_answers
        others = sum(ref.lower() != answer for ref in references)
        expect = others >= max(2, 0.25 * len(rows))
    else:
        expect, others = False, 0
    assert (SEX in flagged) == expect
    if expect:
        assert flagged[SEX][1:] == (len(rows), len(rows) - others)
