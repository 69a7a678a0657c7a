"""The generated dataset: reproducible, complete, and its annotations agree with its images."""

from __future__ import annotations

import hashlib
import json
import random

from PIL import Image

from tools.make_demo_data import generate
from utils.data.synthetic_cxr import (
    DEVICES,
    SIDES,
    SPLITS,
    ZONES,
    Effusion,
    Opacity,
    build_annotations,
    decided_by_image,
    render_study,
)

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
