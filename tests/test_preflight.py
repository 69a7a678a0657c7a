"""train.sh's pre-flight check: a bad image or row stops the run before any model loads, names every bad row, and
`SKIP_BAD_ROWS=1` trains on the good ones; decode results are cached; an image that breaks during training names
its row and file."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.grpo_helpers import write_grpo_rows
from tests.test_launchers import _run, _tiny_env
from utils.data import validation
from utils.data.validation import ImageCheckCache, check_file


def _truncate(source: Path, target: Path) -> Path:
    """A PNG cut short: its header reads (size known), its pixels do not decode."""
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


@pytest.fixture
def eight_rows(demo_data, tmp_path) -> tuple[Path, Path]:
    """An 8-row GRPO set whose row 6 (line 6) points at a truncated copy of its image."""
    rows_file = write_grpo_rows(
        demo_data / "annotations" / "eval" / "valid_all_vqa.json", demo_data / "images", tmp_path / "set.jsonl", 8
    )
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()]
    broken = _truncate(Path(rows[5]["images"][0]), tmp_path / "truncated.png")
    rows[5]["images"][0] = str(broken)
    rows_file.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return rows_file, broken


def test_a_truncated_png_passes_a_header_read(eight_rows):
    _, broken = eight_rows
    with Image.open(broken) as image:
        assert image.size[0] > 0  # what a header-only check sees
    check = check_file(broken.parent / "set.jsonl", kind="grpo")
    assert list(check.row_problems) == [5]
    assert "line 6: field 'images': image unreadable" in check.messages()[0] and str(broken) in check.messages()[0]


def test_train_sh_stops_before_any_model_loads_and_lists_every_bad_row(eight_rows, tiny_model, tmp_path):
    rows_file, broken = eight_rows
    rows = rows_file.read_text().splitlines()
    second = json.loads(rows[1])
    second["solution"] = ""
    rows[1] = json.dumps(second)
    rows_file.write_text("\n".join(rows) + "\n")
    env = {**_tiny_env(tiny_model, tmp_path), "DATASET": str(rows_file), "OUTPUT_DIR": str(tmp_path / "run")}
    started = time.monotonic()
    completed = _run("train.sh", env)
    assert completed.returncode == 2
    assert time.monotonic() - started < 60  # stopped at the check, not in training
    assert f"{rows_file}: line 2: field 'solution'" in completed.stdout
    assert f"{rows_file}: line 6: field 'images': image unreadable: {broken}" in completed.stdout
    assert "pre-flight check" in completed.stderr
    assert not (tmp_path / "run" / "logging.jsonl").exists() and not list((tmp_path / "logs").glob("*.log"))


def test_skip_bad_rows_trains_on_the_good_rows_and_keeps_the_list(eight_rows, tiny_model, tmp_path):
    rows_file, broken = eight_rows
    run = tmp_path / "run"
    env = {**_tiny_env(tiny_model, tmp_path), "DATASET": str(rows_file), "OUTPUT_DIR": str(run), "SKIP_BAD_ROWS": "1"}
    completed = _run("train.sh", env)
    assert completed.returncode == 0, completed.stderr[-2000:]
    kept = [json.loads(line) for line in (run / "dataset_checked.jsonl").read_text().splitlines()]
    skipped = [json.loads(line) for line in (run / "skipped_rows.jsonl").read_text().splitlines()]
    assert len(kept) == 7 and str(broken) not in json.dumps(kept)
    assert [s["place"] for s in skipped] == ["line 6"] and str(broken) in skipped[0]["problems"][0]
    assert "SKIP_BAD_ROWS=1: training on" in completed.stdout
    assert f"--dataset {run / 'dataset_checked.jsonl'}" in completed.stdout
    assert (run / "logging.jsonl").is_file()  # it trained


def test_decode_results_are_cached_by_path_size_and_mtime(eight_rows, tmp_path, monkeypatch):
    rows_file, broken = eight_rows
    decoded = []
    original = validation._decode_error
    monkeypatch.setattr(validation, "_decode_error", lambda path: decoded.append(path) or original(path))
    cache_file = tmp_path / "cache.json"
    images = {p for line in rows_file.read_text().splitlines() for p in json.loads(line)["images"]}
    first = check_file(rows_file, kind="grpo", cache=ImageCheckCache(cache_file)).messages()
    assert sorted(decoded) == sorted(images)  # each distinct image once
    second = check_file(rows_file, kind="grpo", cache=ImageCheckCache(cache_file)).messages()
    assert second == first and len(decoded) == len(images)  # nothing decoded again
    good = Path(json.loads(rows_file.read_text().splitlines()[0])["images"][0])
    broken.write_bytes(good.read_bytes())  # the file is mended: new size and mtime
    third = check_file(rows_file, kind="grpo", cache=ImageCheckCache(cache_file))
    assert decoded[len(images) :] == [str(broken)] and not third.row_problems


def test_parallel_workers_find_what_one_finds(eight_rows):
    rows_file, _ = eight_rows
    one = check_file(rows_file, kind="grpo", workers=1).messages()
    assert check_file(rows_file, kind="grpo", workers=2).messages() == one and len(one) == 1


def test_an_image_that_breaks_during_training_names_its_row_and_file(eight_rows, tiny_model, swift_plugin):
    from swift.model import get_processor
    from swift.template import get_template

    from swift_patches.phi4mm import ImageReadError

    rows_file, broken = eight_rows
    row = json.loads(rows_file.read_text().splitlines()[5])
    template = get_template(
        get_processor(str(tiny_model), model_type="phi4_mm_native"), template_type="phi4_mm_native"
    )
    template.set_mode("transformers")
    with pytest.raises(ImageReadError) as error:
        template.encode(row)
    message = str(error.value)
    assert str(broken) in message and f"'idx': {row['idx']}" in message and "validate_data.py" in message
