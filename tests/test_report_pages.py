"""The error-analysis pages in a real browser (headless Chromium), after their scripts have run.

report.html, tools/compare_runs.py's page and tools/completions_report.py's page are opened from disk as a user
opens them (file://, offline). What is checked is what a user relies on: every X-ray loads, the filters and the
sorting change what is shown, pages turn, and the knowledge-graph marks are those of a case counted by hand.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from utils.data.annotations import image_path
from utils.reports.evaluation import PAGE_SIZE, render_report
from utils.scoring.kg_reward import get_kg_scorer

# A hand-counted KG case. By the ReXKG guideline: "small"/"large" are concept, "pleural" anatomy, "effusion" a
# present disorder, "No pneumothorax" an absent one; "small"/"large" modify the effusion, located at the pleura.
HAND_REFERENCE = "<think>Small pleural effusion. No pneumothorax.</think><answer>yes</answer>"
HAND_RESPONSE = "<think>Large pleural effusion. Pneumothorax is present.</think><answer>yes</answer>"
# distinct (text, type) keys: matched pleural/anatomy, effusion/present; missing small/concept, pneumothorax/absent;
# invented large/concept, pneumothorax/present. Relations: matched effusion-located_at-pleural; missing
# small-modify-effusion; invented large-modify-effusion.
HAND_ENTITIES = {"matched": 2, "missing": 2, "invented": 2}
HAND_RELATIONS = {"matched": 1, "missing": 1, "invented": 1}


def page_data(path: Path) -> dict:
    """The JSON a page embeds (what its scripts render)."""
    return json.loads(
        re.search(r'<script type="application/json" id="data">(.*?)</script>', path.read_text(), re.S)[1]
    )


def open_page(browser, path: Path) -> None:
    browser.get(path.resolve().as_uri())
    wait_rendered(browser, 0)


def wait_rendered(browser, before: int) -> None:
    """Until the page's scripts have rendered once more than `before` times (data-rendered counts renders)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 20).until(
        lambda b: int(b.execute_script("return document.body.dataset.rendered || 0")) > before
    )


def renders(browser) -> int:
    return int(browser.execute_script("return document.body.dataset.rendered || 0"))


def shown_ids(browser) -> list[int]:
    return [
        int(i)
        for i in browser.execute_script("return [...document.querySelectorAll('.sample')].map(s => s.id.slice(1))")
    ]


def images_loaded(browser) -> tuple[int, int]:
    """(images on the page, images whose natural width is > 0), once they have decoded."""
    return tuple(
        browser.execute_async_script(
            "const done = arguments[0]; const images = [...document.querySelectorAll('.sample img')];"
            "Promise.all(images.map(i => i.decode().catch(() => null)))"
            ".then(() => done([images.length, images.filter(i => i.naturalWidth > 0).length]));"
        )
    )


def change(browser, script: str) -> None:
    """Run `script` (a user action) and wait for the re-render it causes."""
    before = renders(browser)
    browser.execute_script(script)
    wait_rendered(browser, before)


def _records(data_root: Path, n: int) -> list[dict]:
    """Evaluation records over the demo pool: responses are other rows' explanations, so some agree and some don't."""
    pool = json.loads((data_root / "annotations/eval/valid_all_vqa.json").read_text())
    rng = random.Random(0)
    records = []
    for i in range(n):
        row = pool[i % len(pool)]
        response = rng.choice(pool)["explanation"]
        records.append(
            {
                "id": i,
                "question": row["question"],
                "answer": row["answer"],
                "explanation": row["explanation"],
                "generated_text": response,
                "is_correct": response == row["explanation"] or i % 3 == 0,
                "is_correct_strict": response == row["explanation"],
                "image_paths": [image_path(stem, data_root / "images") for stem in row["image_ids"]],
                **{field: row[field] for field in ("semantic_type", "question_type", "answer_type")},
            }
        )
    records.append({**records[0], "id": n, "explanation": HAND_REFERENCE, "generated_text": HAND_RESPONSE})
    return records


@pytest.fixture(scope="module")
def report(demo_data, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render_report(_records(demo_data, PAGE_SIZE + 20), "test report", scorer=get_kg_scorer("rules")))
    return path


def test_every_sample_image_loads_on_every_page(browser, report):
    open_page(browser, report)
    total = len(page_data(report)["samples"])
    seen = []
    while True:
        ids = shown_ids(browser)
        seen += ids
        count, loaded = images_loaded(browser)
        assert count >= len(ids) and loaded == count, f"{count - loaded} of {count} images did not load"
        if len(seen) >= total:
            break
        change(browser, "document.querySelector('.pager .next').click()")
    assert sorted(seen) == list(range(total))


def test_filters_and_sorting_change_what_is_shown(browser, report):
    samples = page_data(report)["samples"]
    open_page(browser, report)
    assert len(shown_ids(browser)) == PAGE_SIZE
    change(browser, "const box = document.querySelector('[name=wrong_only]'); box.click();")
    wrong = [s["id"] for s in samples if not s["correct"]]
    assert shown_ids(browser) == wrong[:PAGE_SIZE] and 0 < len(wrong) < len(samples)
    kind = sorted({s["question_type"] for s in samples})[0]
    change(
        browser,
        f"const s = document.querySelector('[name=question_type]'); s.value = {kind!r};"
        "s.dispatchEvent(new Event('change'));",
    )
    expected = [s["id"] for s in samples if not s["correct"] and s["question_type"] == kind]
    assert shown_ids(browser) == expected[:PAGE_SIZE] and len(expected) < len(wrong)
    change(
        browser,
        "document.querySelector('[name=wrong_only]').click();"
        "const q = document.querySelector('[name=question_type]'); q.value = '';"
        "q.dispatchEvent(new Event('change'));"
        "const o = document.querySelector('[name=sort]'); o.value = 'external_kg_jac';"
        "o.dispatchEvent(new Event('change'));",
    )
    kg = {s["id"]: s["rewards"]["external_kg_jac"] for s in samples}
    shown = shown_ids(browser)
    assert [kg[i] for i in shown] == sorted(kg[i] for i in shown)
    assert shown == sorted(kg, key=lambda i: (kg[i], i))[:PAGE_SIZE]


def test_kg_marks_match_a_hand_counted_case_and_the_reward_scorer(browser, report):
    samples = page_data(report)["samples"]
    hand = samples[-1]
    open_page(browser, report)
    change(
        browser,
        "const o = document.querySelector('[name=sort]'); o.value = 'id';"
        "document.querySelector('[name=descending]').click();",
    )
    chips = browser.execute_script(
        f"const s = document.getElementById('s{hand['id']}');"
        "return [...s.querySelectorAll('.kg')].map(side => ['entity', 'relation'].map(kind =>"
        "  [...side.querySelectorAll('.chip.' + kind)].map(c => [c.dataset.status, c.textContent.toLowerCase()])));"
    )
    (response_entities, response_relations), (reference_entities, reference_relations) = chips
    counted = {}
    for kind, response, reference in (
        ("entity", response_entities, reference_entities),
        ("relation", response_relations, reference_relations),
    ):
        distinct_response, distinct_reference = {tuple(c) for c in response}, {tuple(c) for c in reference}
        counted[kind] = {
            "matched": sum(status == "matched" for status, _ in distinct_response),
            "missing": sum(status == "missing" for status, _ in distinct_reference),
            "invented": sum(status == "invented" for status, _ in distinct_response),
        }
        # a key matched on one side is matched on the other
        assert counted[kind]["matched"] == sum(status == "matched" for status, _ in distinct_reference)
    assert counted["entity"] == HAND_ENTITIES
    assert counted["relation"] == HAND_RELATIONS
    scores = get_kg_scorer("rules").score([HAND_RESPONSE], [HAND_REFERENCE])[0]
    assert scores["entity_jaccard"] == pytest.approx(2 / 6) and scores["relation_jaccard"] == pytest.approx(1 / 3)
    assert hand["rewards"]["external_kg_jac"] == pytest.approx((2 / 6 + 1 / 3) / 2)
    absent = browser.execute_script(
        f"return [...document.getElementById('s{hand['id']}').querySelectorAll('.chip.absent .text')]"
        ".map(c => c.textContent)"
    )
    assert absent == ["pneumothorax"]  # the reference's denied finding is drawn as absent


def test_comparison_page_puts_flips_first_and_filters_them(browser, demo_data, tmp_path):
    from utils.reports.compare import render_comparison

    before = [{**r, "is_correct_strict": r["id"] % 3 == 0} for r in _records(demo_data, 30)]
    after = [{**r, "is_correct_strict": not r["is_correct_strict"] if r["id"] % 4 == 0 else r["is_correct_strict"]}
             for r in before]  # fmt: skip
    worse = [r["id"] for r, s in zip(before, after) if r["is_correct_strict"] and not s["is_correct_strict"]]
    better = [r["id"] for r, s in zip(before, after) if not r["is_correct_strict"] and s["is_correct_strict"]]
    assert worse and better
    path = tmp_path / "compare.html"
    path.write_text(render_comparison(before, after, ("SFT", "GRPO"), "compare", scorer=get_kg_scorer("rules")))
    open_page(browser, path)
    shown = shown_ids(browser)
    assert shown[: len(worse) + len(better)] == worse + better  # right→wrong, then wrong→right, then the rest
    assert images_loaded(browser)[1] == images_loaded(browser)[0] > 0
    change(browser, "document.querySelector('[name=flips_only]').click()")
    assert shown_ids(browser) == worse + better
    overall = browser.execute_script("return [...document.querySelectorAll('table.summary tr')][1].innerText")
    n = len(before)
    accuracy_before = sum(r["is_correct_strict"] for r in before) / n
    accuracy_after = sum(r["is_correct_strict"] for r in after) / n
    assert f"{accuracy_before:.3f}" in overall and f"{accuracy_after:.3f}" in overall


def test_completions_page_loads_steps_lazily_across_chunks(browser, tmp_path):
    """25 steps of 2 groups of 2: three chunk files; turning pages loads each step's groups from its chunk."""
    from utils.reports.completions import STEPS_PER_CHUNK, write_completions_report

    rows = []
    for step in range(1, 26):
        rows.append(
            {
                "step": [str(step)] * 4,
                "prompt": ["p1", "p1", "p2", "p2"],
                "completion": ["a", "b", "c", "d"],
                "solution": ["s1", "s1", "s2", "s2"],
                "R1VAccuracy": [1.0, 0.0, 1.0, 0.0],
                "advantages": [0.7, -0.7, 0.7, -0.7],
                "completion_tokens": [["a", "!"], ["b"], ["c"], ["d"]],
                "token_logps": [[-0.1, -3.0], [-0.5], [-0.2], [-1.0]],
            }
        )
    logging_rows = [{"global_step/max_steps": f"{s}/25", "rewards/R1VAccuracy/mean": 0.5} for s in range(1, 26)]
    output = tmp_path / "run" / "completions.html"
    counts = write_completions_report(rows, [], logging_rows, output, "run")
    assert counts["chunks"] == -(-25 // STEPS_PER_CHUNK) == 3
    open_page(browser, output)
    from selenium.webdriver.support.ui import WebDriverWait

    for page in range(13):  # two steps a page: every page, across the three chunks
        WebDriverWait(browser, 20).until(
            lambda b: b.execute_script("return document.querySelectorAll('.step .loading').length") == 0
        )
        steps = browser.execute_script("return [...document.querySelectorAll('.step')].map(s => s.id)")
        assert steps == [f"step{n}" for n in (2 * page + 1, 2 * page + 2) if n <= 25]
        tokens = browser.execute_script("return document.querySelectorAll('.step .tok').length")
        assert tokens == 5 * len(steps)  # 5 tokens per step
        if page < 12:
            change(browser, "document.querySelector('.pager .next').click()")
    assert browser.execute_script("return document.querySelectorAll('script[src]').length") == 3  # each chunk once


def test_report_summary_is_results_json_summary_with_errored_samples_left_out(demo_data):
    """The page's accuracy per type is the one results.json holds: a sample with an error (say a missing image)
    counts in neither."""
    from utils.evaluation.results import summarize
    from utils.reports.evaluation import evaluation_samples, evaluation_summary
    from utils.reports.page import ImageTable

    records = _records(demo_data, 12)
    records[1] = {**records[1], "error": "image not found: x.png", "is_correct": False, "is_correct_strict": False}
    records[2] = {**records[2], "error": "image not found: y.png", "is_correct": True, "is_correct_strict": True}
    samples = evaluation_samples(records, ImageTable(), get_kg_scorer("rules"))
    summary = evaluation_summary(records, samples)
    expected = summarize(records)
    assert summary["by_type"]["overall"]["all"]["n"] == len(records) - 2 == expected["overall"]["num_samples"]
    assert summary["by_type"]["overall"]["all"]["accuracy"] == expected["overall"]["accuracy"]
    for name, block in summary["by_type"]["question_type"].items():
        assert block["accuracy_strict"] == expected["question_type"][name]["accuracy_strict"]
    kept = [s["rewards"]["external_kg_jac"] for s in samples if not s["error"]]
    assert summary["by_type"]["overall"]["all"]["kg_jac"] == pytest.approx(sum(kept) / len(kept))


def test_both_pages_mark_a_contradiction_and_the_samples_right(browser, demo_data, tmp_path):
    from utils.reports.compare import render_comparison

    records = _records(demo_data, 12)
    for record in records:
        record["consistency"] = "consistent"
    view = "What is the view of this image, PA or AP?"
    records[3] = {**records[3], "question": view, "answer": ["AP"], "generated_text": "<answer>AP</answer>"}
    # the case users met on the compare page: the reasoning states AP, the answer says PA
    flipped = {
        **records[3],
        "generated_text": "<think>The positioning indicates a AP projection.</think><answer>PA</answer>",
        "consistency": "contradicts",
        "samples_correct_strict": [True, False, False, True],
    }
    after = [flipped if r["id"] == 3 else r for r in records]
    report = tmp_path / "report.html"
    report.write_text(render_report(after, "marks", scorer=get_kg_scorer("rules")))
    open_page(browser, report)
    marked = browser.execute_script(
        "return [...document.querySelectorAll('.sample')].filter(s => s.querySelector('.pill.contradicts'))"
        ".map(s => [s.id, s.querySelector('.pill.samples').innerText])"
    )
    assert marked == [["s3", "2 of 4 samples right"]]
    page = tmp_path / "compare.html"
    page.write_text(render_comparison(records, after, ("SFT", "GRPO"), "compare", scorer=get_kg_scorer("rules")))
    open_page(browser, page)
    sample = browser.execute_script("return document.querySelector('#s3').innerText")
    assert sample.count("reasoning contradicts its answer") == 1  # the GRPO run only
    overall = browser.execute_script("return [...document.querySelectorAll('table.summary tr')][1].innerText")
    assert f"0 of {len(records)}" in overall and f"1 of {len(records)}" in overall
