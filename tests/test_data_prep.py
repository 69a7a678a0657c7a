"""Data preparation: the sampler (pure rules and the CLI), is_correct from our evaluation, conversion, validation."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.data.sampling import (
    STRATUM_FIELDS,
    ShortPoolError,
    draw,
    one_answer_strata,
    proportional_quotas,
    stratum_of,
    training_set_path,
)

REPO = Path(__file__).resolve().parents[1]


def _pool(n: int = 600, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    strata = (
        [("abnormality", "verify", "closed")] * 6 + [("anatomy", "query", "open")] * 3 + [("size", "choose", "closed")]
    )
    return [
        {
            "image_ids": [f"img{i}"],
            "question": f"q{i}",
            "answer": ["yes"],
            "explanation": "<think>x</think>",
            **dict(zip(STRATUM_FIELDS, rng.choice(strata))),
            "is_correct": rng.random() < 0.6,
            "idx": i,
        }
        for i in range(n)
    ]


def test_quotas_sum_to_the_size_and_follow_the_proportions():
    pool = _pool()
    sampled = draw(pool, "uniform", 200, seed=1)
    assert len(sampled.rows) == 200
    counts = Counter(stratum_of(r) for r in pool)
    taken = Counter(stratum_of(r) for r in sampled.rows)
    for key, n in counts.items():
        assert abs(taken[key] - 200 * n / len(pool)) < 1, key
    assert proportional_quotas(7, {"a": 1, "b": 3, "c": 1}) == {"a": 2, "b": 4, "c": 1}  # largest remainders


@settings(max_examples=2000, deadline=None)
@given(counts=st.lists(st.integers(0, 60), min_size=1, max_size=30), data=st.data())
def test_quotas_by_largest_remainder_are_feasible(counts, data):
    strata = {f"s{i:02d}": n for i, n in enumerate(counts)}
    total = sum(counts)
    size = data.draw(st.integers(0, total))
    quotas = proportional_quotas(size, strata)
    assert sum(quotas.values()) == size
    for key, n in strata.items():
        assert 0 <= quotas[key] <= n and (total == 0 or abs(quotas[key] - size * n / total) < 1)


def test_quota_of_the_largest_stratum_never_goes_negative():
    # 33 items over one stratum of 11 and twenty of 10: the original's rounding gave the largest stratum -7.
    pool = [
        {
            "image_ids": [f"i{k}_{j}"],
            "question": "q",
            "answer": ["yes"],
            "explanation": "x",
            "is_correct": False,
            **dict(zip(STRATUM_FIELDS, (f"t{k}", "verify", "closed"))),
        }
        for k, n in enumerate([11] + [10] * 20)
        for j in range(n)
    ]
    sampled = draw(pool, "uniform", 33, seed=0)
    assert len(sampled.rows) == 33 and all(s["quota"] >= 0 for s in sampled.strata.values())


def test_hard_sets_contain_only_wrong_answers_and_random_ignores_strata():
    pool = _pool()
    for sample_type in ("hard_uniform", "hard_random"):
        rows = draw(pool, sample_type, 100, seed=3).rows
        assert len(rows) == 100 and all(r["is_correct"] is False for r in rows)
    assert len({r["idx"] for r in draw(pool, "random", 100, seed=3).rows}) == 100


def test_seeds_make_sets_reproducible_and_distinct():
    pool = _pool()
    assert draw(pool, "uniform", 50, seed=1).rows == draw(pool, "uniform", 50, seed=1).rows
    assert draw(pool, "uniform", 50, seed=1).rows != draw(pool, "uniform", 50, seed=2).rows


def test_short_strata_error_by_default_and_redistribute_on_request():
    pool = _pool(60)
    hard = [r for r in pool if r["is_correct"] is False]
    with pytest.raises(ShortPoolError, match="strata too small"):
        draw(pool, "hard_uniform", len(hard) + 5)
    sampled = draw(pool, "hard_uniform", len(hard) + 5, allow_short=True)
    assert len(sampled.rows) == len(hard)  # everything there is, nothing invented
    small = min(Counter(stratum_of(r) for r in hard).items(), key=lambda kv: kv[1])
    # a request the small stratum cannot meet proportionally: the others make up its shortfall
    size = len(hard) - 2
    sampled = draw(pool, "hard_uniform", size, allow_short=True)
    assert len(sampled.rows) == size
    assert sampled.strata[small[0]]["taken"] <= small[1]


def _sample(data_root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / "sample_data.py"), "--data_root", str(data_root), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.fixture
def data_copy(demo_data, tmp_path) -> Path:
    root = tmp_path / "MIMIC-VQA-CoT"
    shutil.copytree(demo_data / "annotations", root / "annotations")
    (root / "images").symlink_to(demo_data / "images")
    return root


def test_sampler_cli_is_byte_identical_writes_manifests_and_prints_strata(data_copy, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(data_copy, other, symlinks=True)
    args = ("--sample_types", "uniform", "hard_random", "--sizes", "6", "10", "--allow-short")
    first = _sample(data_copy, *args, "--relative-to", str(data_copy))
    second = _sample(other, *args, "--relative-to", str(other))
    assert first.returncode == 0 and second.returncode == 0, first.stderr
    assert "semantic / question / answer type" in first.stdout and "total" in first.stdout
    for sample_type in ("uniform", "hard_random"):
        for size in (6, 10):
            path = training_set_path(data_copy, sample_type, size)
            twin = training_set_path(other, sample_type, size)
            assert path.read_bytes() == twin.read_bytes()
            manifest = json.loads(path.with_name(f"{size}.manifest.json").read_text())
            assert manifest["seed"] == 42 and len(manifest["pool_sha256"]) == 64
            assert (
                sum(s["taken"] for s in manifest["strata"]) == manifest["size"] == len(path.read_text().splitlines())
            )
            row = json.loads(path.read_text().splitlines()[0])
            assert row["messages"][0]["content"].startswith("<image>") and row["images"][0].startswith("images/")


def _blind_model_pool() -> list[dict]:
    # A model that cannot see sex says "male" to every gender question, so it is wrong on exactly the female
    # patients; on the view question it is right half the time whatever the answer.
    rows = []
    for i in range(40):
        gender, view = ("female" if i % 5 < 2 else "male"), ("AP" if i % 2 else "PA")
        common = {"image_ids": [f"img{i}"], "explanation": "<think>x</think>", "idx": i}
        rows.append(
            {**common, "question": "Is this patient male or female?", "answer": [gender],
             "semantic_type": "gender", "question_type": "choose", "answer_type": "closed",
             "is_correct": gender == "male"}
        )  # fmt: skip
        rows.append(
            {**common, "question": "What is the view of this image, PA or AP?", "answer": [view],
             "semantic_type": "plane", "question_type": "choose", "answer_type": "closed",
             "is_correct": i % 4 < 2}
        )  # fmt: skip
    return rows


def test_mining_a_blind_models_mistakes_is_flagged_where_one_answer_pays():
    pool = _blind_model_pool()
    hard = draw(pool, "hard_uniform", 40, allow_short=True).rows
    flagged = one_answer_strata(pool, hard)
    assert [(s.stratum[0], s.answer, s.drawn, s.pool_items, s.pool_share) for s in flagged] == [
        ("gender", "female", 16, 40, 0.4)
    ]
    assert one_answer_strata(pool, draw(pool, "uniform", 40).rows) == []


@settings(max_examples=300, deadline=None)
@given(
    answers=st.lists(st.sampled_from(["yes", "no", "Yes ", "maybe"]), min_size=1, max_size=30),
    mined=st.one_of(st.sampled_from(["yes", "no", "maybe"]), st.lists(st.booleans(), min_size=30, max_size=30)),
)
def test_a_flagged_stratum_has_one_drawn_answer_that_most_of_the_pool_lacks(answers, mined):
    # `mined` is the answer a blind model always misses, or which items it got wrong at random.
    pool = [
        {"answer": [a], "semantic_type": "presence", "question_type": "verify", "answer_type": "closed"}
        for a in answers
    ]
    if isinstance(mined, str):
        drawn = [row for row in pool if row["answer"][0].strip().lower() == mined]
    else:
        drawn = [row for row, is_wrong in zip(pool, mined) if is_wrong]
    keys = {row["answer"][0].strip().lower() for row in drawn}
    share = sum(row["answer"][0].strip().lower() in keys for row in pool) / len(pool)
    expect = len(drawn) >= 5 and len(keys) == 1 and share <= 0.8
    flagged = one_answer_strata(pool, drawn)
    assert bool(flagged) == expect
    if flagged:
        assert flagged[0].answer in keys and flagged[0].drawn == len(drawn) and flagged[0].pool_share == share


def test_sampler_warns_when_a_hard_set_pays_for_one_answer(tmp_path):
    pool_path = tmp_path / "pool.json"
    pool_path.write_text(json.dumps(_blind_model_pool()))
    args = ("--pool", str(pool_path), "--img_root", str(tmp_path), "--sizes", "40", "--allow-short")
    hard = _sample(tmp_path, *args, "--sample_types", "hard_uniform")
    assert hard.returncode == 0, hard.stderr
    assert "warning: gender/choose/closed: all 16 drawn items answer 'female', 40% of" in hard.stderr
    uniform = _sample(tmp_path, *args, "--sample_types", "uniform")
    assert uniform.returncode == 0 and "drawn items answer" not in uniform.stderr


def test_sampler_stops_on_a_short_stratum(data_copy):
    completed = _sample(data_copy, "--sample_types", "hard_uniform", "--sizes", "1000")
    assert completed.returncode == 2 and "strata too small" in completed.stderr and "--allow-short" in completed.stderr
    assert not training_set_path(data_copy, "hard_uniform", 1000).exists()


def test_sampler_output_paths_are_what_train_loop_reads(tiny_model, data_copy):
    assert (
        _sample(data_copy, "--sample_types", "hard_uniform", "uniform", "--sizes", "5", "--allow-short").returncode
        == 0
    )
    plan = subprocess.run(
        ["bash", str(REPO / "train_loop.sh")],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "DRY_RUN": "1",
            "MODEL_PATH": str(tiny_model),
            "DATA_ROOT": str(data_copy),
            "SAMPLE_TYPES": "hard_uniform uniform",
            "DATASET_SIZES": "5",
            "OUTPUT_ROOT": str(data_copy / "out"),
        },
    )
    assert plan.returncode == 0, plan.stderr
    for sample_type in ("hard_uniform", "uniform"):
        assert f"--dataset {training_set_path(data_copy, sample_type, 5)} " in plan.stdout
        row = json.loads(training_set_path(data_copy, sample_type, 5).read_text().splitlines()[0])
        assert Path(row["images"][0]).is_absolute() and Path(row["images"][0]).is_file()  # default: absolute


def test_evaluation_pool_sample_round_trip(tiny_model, data_copy, tmp_path):
    from tools.set_is_correct import main as set_is_correct
    from utils.evaluation.runner import main as evaluate

    pool = data_copy / "annotations" / "eval" / "valid_all_vqa.json"
    assert (
        evaluate(
            [
                "--model_path",
                str(tiny_model),
                "--annotation_file",
                str(pool),
                "--img_root",
                str(data_copy / "images"),
                "--output_dir",
                str(tmp_path / "eval"),
                "--max_new_tokens",
                "12",
                "--num_samples",
                "2",
                "--temperature",
                "1.0",
            ]
        )
        == 0
    )
    results = json.loads((tmp_path / "eval" / "valid_all_vqa" / "results.json").read_text())["results"]
    assert (
        set_is_correct(
            [
                "--pool",
                str(pool),
                "--results",
                str(tmp_path / "eval" / "valid_all_vqa" / "results.json"),
                "--output",
                str(tmp_path / "scored.json"),
            ]
        )
        == 0
    )
    scored = json.loads((tmp_path / "scored.json").read_text())
    assert [row["is_correct"] for row in scored] == [r["is_correct"] for r in results]
    completed = _sample(
        data_copy,
        "--pool",
        str(tmp_path / "scored.json"),
        "--sample_types",
        "hard_random",
        "--sizes",
        "5",
        "--allow-short",
    )
    assert completed.returncode == 0, completed.stderr
    wrong_questions = {(r["question"], tuple(r["image_ids"])) for r in results if not r["is_correct"]}
    for line in training_set_path(data_copy, "hard_random", 5).read_text().splitlines():
        row = json.loads(line)
        stems = tuple(Path(p).stem for p in row["images"])
        assert (row["messages"][0]["content"].replace("<image>", ""), stems) in wrong_questions
    # the samples' verdicts reach the pool, and `learnable` draws exactly the items wrong at greedy but sampled right
    assert [row["sampled_right"] for row in scored] == [any(r["samples_correct_strict"]) for r in results]
    learnable = [i for i, row in enumerate(scored) if not row["is_correct"]][:2]
    for i, row in enumerate(scored):
        row["sampled_right"] = i in learnable  # two wrong items made learnable, by hand
    (tmp_path / "scored.json").write_text(json.dumps(scored))
    completed = _sample(
        data_copy, "--pool", str(tmp_path / "scored.json"), "--sample_types", "learnable", "--sizes", "5",
        "--allow-short",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    drawn = [json.loads(line) for line in training_set_path(data_copy, "learnable", 5).read_text().splitlines()]
    assert sorted(row["idx"] for row in drawn) == sorted(scored[i].get("idx") for i in learnable)
    for row in scored:
        row["sampled_right"] = False
    (tmp_path / "scored.json").write_text(json.dumps(scored))
    nothing = _sample(data_copy, "--pool", str(tmp_path / "scored.json"), "--sample_types", "learnable")
    assert nothing.returncode == 2 and "no item is wrong at greedy and right in a sample" in nothing.stderr


def test_set_is_correct_refuses_results_of_another_file(data_copy, tmp_path, capsys):
    from tools.set_is_correct import main as set_is_correct

    pool = data_copy / "annotations" / "eval" / "valid_all_vqa.json"
    results = {
        "results": [{"id": 0, "question": "other", "image_ids": ["x"], "is_correct": True, "is_correct_strict": True}]
    }
    (tmp_path / "r.json").write_text(json.dumps(results))
    assert set_is_correct(["--pool", str(pool), "--results", str(tmp_path / "r.json")]) == 2
    assert "results for a pool of" in capsys.readouterr().err


def test_conversion_relative_paths(demo_data, tmp_path):
    from tools.convert_to_grpo import main as convert

    out = tmp_path / "rows.jsonl"
    assert (
        convert(
            [
                "--annotations",
                str(demo_data / "annotations" / "eval" / "test_compare_vqa.json"),
                "--img_root",
                str(demo_data / "images"),
                "--output",
                str(out),
                "--relative-to",
                str(demo_data),
            ]
        )
        == 0
    )
    row = json.loads(out.read_text().splitlines()[0])
    assert row["messages"][0]["content"].startswith("<image><image>") and len(row["images"]) == 2
    assert all(p.startswith("images/") for p in row["images"]) and (demo_data / row["images"][0]).is_file()
    assert row["solution"].startswith("<think>") and isinstance(row["answer"], list)


def _grpo_row(image: str) -> dict:
    return {
        "messages": [{"role": "user", "content": "<image>Q?"}],
        "images": [image],
        "solution": "<think>x</think>",
        "answer": ["yes"],
    }


@pytest.mark.parametrize(
    ("kind", "content", "expected"),
    [
        ("annotations", "[{]", "malformed JSON"),
        ("annotations", [{"image_ids": ["IMG"], "question": "q"}], "index 0: field 'answer': missing"),
        ("annotations", [{"image_ids": ["IMG"], "question": "q", "answer": 5}], "index 0: field 'answer': expected"),
        (
            "annotations",
            [{"image_ids": ["IMG"], "question": "q", "answer": "a", "is_correct": "yes"}],
            "index 0: field 'is_correct'",
        ),
        (
            "annotations",
            [
                {"image_ids": ["IMG"], "question": "q", "answer": "a"},
                {"image_ids": ["nope"], "question": "q", "answer": "a"},
            ],
            "index 1: field 'image_ids': image not found",
        ),
        (
            "annotations",
            [{"image_ids": ["broken"], "question": "q", "answer": "a"}],
            "index 0: field 'image_ids': image unreadable",
        ),
        (
            "grpo",
            [_grpo_row("IMG"), {**_grpo_row("IMG"), "messages": [{"role": "user", "content": "Q?"}]}],
            "line 2: field 'messages': the user turn has 0 <image> placeholders for 1 images",
        ),
        ("grpo", [{**_grpo_row("IMG"), "solution": None}], "line 1: field 'solution'"),  # JSON lines: line numbers
        ("grpo", [_grpo_row("missing.png")], "line 1: field 'images': image not found"),
    ],
)
def test_validator_reports_each_defect_with_index_and_field(kind, content, expected, demo_data, tmp_path):
    from tools.validate_data import main as validate

    image = next((demo_data / "images").glob("*.png"))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    suffix = ".json" if kind == "annotations" else ".jsonl"
    path = tmp_path / f"input{suffix}"
    if isinstance(content, str):
        path.write_text(content)
    elif kind == "annotations":
        path.write_text(json.dumps(content).replace('"IMG"', json.dumps(image.stem)))
    else:
        path.write_text("".join(json.dumps(r).replace('"IMG"', json.dumps(str(image))) + "\n" for r in content))
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "validate_data.py"),
            str(path),
            "--img_root",
            str(tmp_path if "broken" in str(content) else demo_data / "images"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert completed.returncode == 2
    assert expected in completed.stdout and str(path) in completed.stdout
    assert (
        validate(
            [
                str(demo_data / "annotations" / "eval" / "test_basic_vqa.json"),
                "--img_root",
                str(demo_data / "images"),
                "--pool",
            ]
        )
        == 0
    )


def test_an_empty_pool_stops_with_one_line_and_writes_nothing(tmp_path):
    """It used to exit 0, write six empty sets and warn about an --allow-short that was never passed."""
    pool = tmp_path / "empty.json"
    pool.write_text("[]")
    completed = _sample(tmp_path / "data", "--pool", str(pool))
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [f"error: {pool}: no annotations (an empty list)"]
    assert "--allow-short" not in completed.stderr and not (tmp_path / "data").exists()


def test_a_pool_without_wrong_items_draws_no_empty_hard_set(data_copy):
    pool = data_copy / "annotations" / "eval" / "valid_all_vqa.json"
    rows = json.loads(pool.read_text())
    for row in rows:
        row["is_correct"] = True
    pool.write_text(json.dumps(rows))
    completed = _sample(data_copy, "--sample_types", "hard_uniform", "--sizes", "5", "--allow-short")
    assert completed.returncode == 2 and "no item has is_correct false" in completed.stderr
    assert not training_set_path(data_copy, "hard_uniform", 5).exists()


def test_validation_without_kind_flags_an_empty_answer_and_a_wrong_kind_names_the_converter(tmp_path):
    from utils.data.validation import check_file

    annotations = tmp_path / "a.json"
    annotations.write_text(json.dumps([{"image_ids": ["x"], "question": "Which side?", "answer": []}]))
    assert check_file(annotations, check_images=False).messages() == [
        f"{annotations}: index 0: field 'answer': empty (no reference answer)"
    ]
    as_rows = check_file(annotations, kind="grpo", check_images=False).messages()
    assert len(as_rows) == 1 and "tools/convert_to_grpo.py" in as_rows[0]
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    assert check_file(empty, kind="grpo").messages() == [f"{empty}: no records (an empty file)"]
