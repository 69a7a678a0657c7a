"""The generated dataset: reproducible, complete, and its annotations agree with its images."""

from __future__ import annotations

import hashlib
import json

from PIL import Image

from tools.make_demo_data import generate
from utils.data.synthetic_cxr import SPLITS

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
