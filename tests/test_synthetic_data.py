"""The generated dataset: reproducible, complete, and its annotations agree with its images."""

from __future__ import annotations

import hashlib
import json
import random

import pytest
from PIL import Image

from tools.make_demo_data import generate
from utils.data.synthetic_cxr import (
    DEVICES,
    LOCATION_QUESTION,
    SIDE_QUESTION,
    SIDES,
    SPLITS,
    ZONES,
    Effusion,
    Opacity,
    Teacher,
    build_annotations,
    decided_by_image,
    render_study,
    teacher_error_kind,
    teacher_explanation,
)
from utils.scoring.consistency import check as check_consistency

REQUIRED = {
    "image_ids": list,
    "question": str,
    "answer": list,
    "explanation": str,
    "semantic_type": str,
    "question_type": str,
    "answer_type": str,
    "is_correct": bool,
    "idx": int,
    "subject_id": int,
    "study_id": int,
}


def _tree_digest(root) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_every_field_present_and_every_image_opens(demo_data):
    for split in SPLITS:
        rows = json.loads((demo_data / "annotations" / "eval" / f"{split}.json").read_text())
        assert rows, split
        for row in rows:
            for field, kind in REQUIRED.items():
                assert isinstance(row[field], kind), (split, row["idx"], field)
            assert row["explanation"].startswith("<think>") and row["explanation"].endswith("</answer>")
            assert ", ".join(row["answer"]) in row["explanation"]
            for stem in row["image_ids"]:
                with Image.open(demo_data / "images" / f"{stem}.png") as image:
                    assert image.mode == "L" and image.size == (112, 112)


def test_compare_split_has_two_images_and_pool_mixes_correctness(demo_data):
    compare = json.loads((demo_data / "annotations" / "eval" / "test_compare_vqa.json").read_text())
    assert all(len(row["image_ids"]) == 2 for row in compare)
    pool = json.loads((demo_data / "annotations" / "eval" / "valid_all_vqa.json").read_text())
    assert {row["is_correct"] for row in pool} == {True, False}
    assert len({row["semantic_type"] for row in pool}) >= 3


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    generate(tmp_path / "a", seed=3, test_size=3, pool_size=4, image_size=64)
    generate(tmp_path / "b", seed=3, test_size=3, pool_size=4, image_size=64)
    generate(tmp_path / "c", seed=4, test_size=3, pool_size=4, image_size=64)
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    assert _tree_digest(tmp_path / "a") != _tree_digest(tmp_path / "c")


# Which finding of a study answers each question the generator asks, written from the question wording.
ANSWERED_BY = {
    "Is there any evidence of pleural effusion": "effusion",
    "Is there any evidence of lung opacity": "opacity",
    "Are there any abnormalities": "cardiomegaly",  # any finding answers it; cardiomegaly alone is one
    "List all abnormalities": "device",  # the list names the device, which only its course tells apart
    "Is the cardiac silhouette enlarged": "cardiomegaly",
    "Which line or tube": "device",
    "Is this patient male or female": "gender",
    "What is the view of this image": "view",
    "Where is the focal opacity": "opacity",
    "Which side is the pleural effusion": "effusion",
    "Is there any abnormality in the": "opacity",
    "Compared with the prior study": "effusion",
}
VALUES = {
    "opacity": [None, *(Opacity(side, zone) for side in SIDES for zone in ZONES)],
    "effusion": [None, *(Effusion(side, size) for side in SIDES for size in ("small", "moderate"))],
    "cardiomegaly": [False, True],
    "device": [None, *DEVICES],
    "gender": ["male", "female"],
    "view": ["PA", "AP"],
}


def test_the_pixels_tell_apart_every_answer_of_every_question_the_image_decides():
    """`decided_by_image` (what the demo summary scores a model on against the image-blind majority) holds only if
    studies that differ in the finding a question asks about also differ in their pixels."""
    asked = {row["question"] for split in SPLITS for row in build_annotations(split, 200, random.Random(1))[0]}
    for question in asked:
        assert question.startswith((*ANSWERED_BY, "Is there any evidence of pneumothorax")), question
    base = {"opacity": None, "effusion": None, "cardiomegaly": False, "device": None, "view": "PA", "gender": "male"}
    for prefix, finding in ANSWERED_BY.items():
        if not decided_by_image(prefix):
            continue
        renders = []
        for value in VALUES[finding]:
            pixels = hashlib.sha256(render_study({**base, finding: value}, 112, random.Random(0)).tobytes()).digest()
            assert pixels not in renders, f"{prefix!r}: {finding}={value!r} draws like another value"
            renders.append(pixels)
    assert not decided_by_image("Is there any evidence of pneumothorax in this image?")  # never present: no pixels


# ----------------------------------------------------------------------------------------------------------------
# The teacher: SFT explanations with stated errors; the references stay true
# ----------------------------------------------------------------------------------------------------------------
def _study(**findings) -> dict:
    return {
        "opacity": None,
        "effusion": None,
        "cardiomegaly": False,
        "device": None,
        "view": "PA",
        "gender": "male",
    } | findings


# Expected explanations written by hand from what each error means, not produced by the generator.
TEACHER_CASES = [
    (
        "a small effusion under-called on the presence question: it says absent and answers no",
        [_study(effusion=Effusion("left", "small"))],
        "Is there any evidence of pleural effusion in this image?",
        "under_call",
        "<think>There is no pleural effusion. Therefore pleural effusion is absent.</think><answer>no</answer>",
    ),
    (
        "a new small effusion under-called on the change question: still none",
        [_study(), _study(effusion=Effusion("right", "small"))],
        "Compared with the prior study, how has the pleural effusion changed?",
        "under_call",
        "<think>Compared with the prior study, there is still no pleural effusion.</think><answer>absent</answer>",
    ),
    (
        "an unchanged effusion, small now, under-called: resolved",
        [_study(effusion=Effusion("right", "moderate")), _study(effusion=Effusion("right", "small"))],
        "Compared with the prior study, how has the pleural effusion changed?",
        "under_call",
        "<think>Compared with the prior study, the pleural effusion has resolved.</think><answer>resolved</answer>",
    ),
    (
        "the effusion put on the other side, in reasoning and answer alike",
        [_study(effusion=Effusion("right", "moderate"))],
        "Which side is the pleural effusion on, left or right?",
        "wrong_side",
        "<think>A moderate left pleural effusion is present with blunting of the left costophrenic angle. "
        "The effusion is on the left.</think><answer>left</answer>",
    ),
    (
        "the opacity put in the other lung, same zone",
        [_study(opacity=Opacity("left", "upper"))],
        "Where is the focal opacity located?",
        "wrong_side",
        "<think>There is a focal opacity in the right upper lung zone, concerning for pneumonia. The opacity "
        "projects over the right upper lung zone.</think><answer>right upper lung zone</answer>",
    ),
    (
        "the view question's reasoning names the other projection, the answer stays right",
        [_study(view="AP")],
        "What is the view of this image, PA or AP?",
        "contradiction",
        "<think>The positioning indicates a PA projection.</think><answer>AP</answer>",
    ),
]


@pytest.mark.parametrize("case", TEACHER_CASES, ids=[case[0] for case in TEACHER_CASES])
def test_each_teacher_error_writes_what_it_means(case):
    _, studies, question, kind, expected = case
    assert teacher_error_kind(studies, question) == kind
    assert teacher_explanation(studies, question, kind) == expected


def test_the_teacher_errs_only_where_its_kind_applies():
    moderate = [_study(effusion=Effusion("left", "moderate"))]
    assert teacher_error_kind(moderate, "Is there any evidence of pleural effusion in this image?") is None
    assert (
        teacher_error_kind(
            [_study(), _study()], "Compared with the prior study, how has the pleural effusion changed?"
        )
        is None
    )
    assert teacher_error_kind([_study()], "Is the cardiac silhouette enlarged?") is None


def test_a_teacher_changes_only_the_sft_explanations_at_its_stated_rates(tmp_path):
    plain, taught = tmp_path / "plain", tmp_path / "taught"
    generate(plain, seed=5, test_size=24, pool_size=600, image_size=32)
    generate(taught, seed=5, test_size=24, pool_size=600, image_size=32, teacher=Teacher(0.6, 0.6, 0.5))
    # the evaluation and pool references (and images) are those of the data without a teacher, byte for byte
    for split in SPLITS:
        name = f"annotations/eval/{split}.json"
        assert (plain / name).read_bytes() == (taught / name).read_bytes(), split
    pool = json.loads((taught / "annotations/eval/valid_all_vqa.json").read_text())
    sft = json.loads((taught / "annotations/sft/valid_all_vqa.json").read_text())
    card = json.loads((taught / "teacher.json").read_text())
    assert card["rates"] == {"under_call": 0.6, "wrong_side": 0.6, "contradiction": 0.5}
    assert len(sft) == len(pool)
    changed = {kind: 0 for kind in card["rates"]}
    for true_row, sft_row in zip(pool, sft):
        assert {k: v for k, v in sft_row.items() if k not in ("explanation", "teacher_error")} == {
            k: v for k, v in true_row.items() if k != "explanation"
        }
        if sft_row["teacher_error"] is None:
            assert sft_row["explanation"] == true_row["explanation"]
        else:
            assert sft_row["explanation"] != true_row["explanation"]
            changed[sft_row["teacher_error"]] += 1
            # an answer-changing error is coherent; the contradiction kind's reasoning goes against its answer
            verdict = check_consistency(sft_row["question"], sft_row["explanation"]).verdict
            if sft_row["teacher_error"] == "contradiction":
                assert verdict == "contradicts"
            else:
                assert verdict != "contradicts"
    for kind, facts in card["errors_written"].items():
        assert facts["written"] == changed[kind]
        # the rate is what was asked, within sampling noise (4 standard errors)
        rate = card["rates"][kind]
        assert facts["of_items"] >= 20, kind
        assert abs(facts["written"] / facts["of_items"] - rate) < 4 * (rate * (1 - rate) / facts["of_items"]) ** 0.5
    # test items of the error kinds are listed by split and id, and are of their kind
    listed = card["test_items"]["test_region"]["wrong_side"]
    region = json.loads((taught / "annotations/eval/test_region_vqa.json").read_text())
    assert listed and all(region[i]["question"] in (SIDE_QUESTION, LOCATION_QUESTION) for i in listed)
    assert not (plain / "teacher.json").exists() and not (plain / "annotations/sft").exists()
