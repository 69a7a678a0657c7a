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


def test_summary_reports_the_teacher_error_items_headroom_contradictions_and_kg_f1(tmp_path):
    view = "What is the view of this image, PA or AP?"
    side = "Which side is the pleural effusion on, left or right?"
    # 10 side questions (the teacher's wrong-side kind) and 6 view questions (its contradiction kind, answer kept)
    references = ["left", "right"] * 5
    before = [_row(side, r, "right") for r in references] + [_row(view, "PA", "PA") for _ in range(6)]
    after = [_row(side, r, r if i < 8 else "right") for i, r in enumerate(references)] + [dict(r) for r in before[10:]]
    for stage in (before, after):
        for i, row in enumerate(stage):
            row["id"] = i
            row["explanation"] = f"<think>The effusion is on the {row['answer'][0]}.</think><answer>x</answer>"
    # two samples per item: before, the side questions' samples are mixed; after, right twice on 8 of them
    for row in before[:10]:
        row.update(samples_correct_strict=[True, False], consistency="consistent")
    for i, row in enumerate(after[:10]):
        row.update(samples_correct_strict=[i < 8, i < 8], consistency="consistent")
    for stage, contradicting in ((before, 3), (after, 1)):
        for i, row in enumerate(stage[10:]):
            row["consistency"] = "contradicts" if i < contradicting else "consistent"
    data_root = _write_run(tmp_path, before, after, [0.5, 0.5])
    (data_root / "teacher.json").write_text(
        json.dumps(
            {
                "rates": {"under_call": 0.6, "wrong_side": 0.6, "contradiction": 0.5},
                "test_items": {
                    "test_basic": {"under_call": [], "wrong_side": list(range(10)), "contradiction": [10, 11, 12]}
                },
            }
        )
    )
    text = "\n".join(summary_lines(tmp_path, data_root))
    # the side questions: 5 of 10 right before (the "right" ones), 9 of 10 after (8 read + 1 "right" among the rest);
    # the view questions are the contradiction kind, whose answers the teacher keeps right: not counted here
    assert "On the 10 test questions of the kinds the SFT teacher answers wrongly" in text
    assert "0.500 -> 0.900 (+0.400): moved by more than twice the noise of one evaluation (0.158)" in text
    # headroom over the 10 sampled items: pass@1 5/10 -> 9/10; some sample right 10/10 -> 8/10; mixed 10/10 -> 0/10
    assert "SFT pass@1 0.500, pass@2 1.000, mixed 1.000; GRPO pass@1 0.900, pass@2 0.800, mixed 0.000" in text
    assert "contradicts its own answer, of the responses the check can judge: 3 of 16 -> 1 of 16" in text


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
