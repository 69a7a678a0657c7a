"""`report.html` of an evaluation: per sample the X-rays, the question, the reference answer and reasoning, the
response shaded by token probability, every training reward and the two knowledge graphs the KG reward compares.

The summary at the top gives accuracy (original and strict) and mean KG agreement per question, semantic and answer
type, and the distribution of KG agreement. Filters (wrong only, question type, semantic type) and sorting by any
reward run in the browser, a page of samples at a time.

>>> import json, re
>>> page = render_report([{"id": 0, "question": "Q?", "answer": ["yes"], "generated_text": "no",
...     "explanation": "<think>No effusion.</think><answer>yes</answer>", "is_correct": False,
...     "is_correct_strict": False, "image_paths": [], "generated_tokens": ["no"],
...     "token_probabilities": [0.2]}], "demo")
>>> data = json.loads(re.search(r'id="data">(.*?)</script>', page).group(1))
>>> data["samples"][0]["rewards"]["external_r1v_acc"], data["samples"][0]["min_probability"]
(0.0, 0.2)
"""

from __future__ import annotations

from collections.abc import Sequence

from utils.data.annotations import TYPE_FIELDS
from utils.evaluation.results import summarize
from utils.reports.analysis import REWARD_NAMES, analyse, kg_histogram, per_type
from utils.reports.page import DEFAULT_IMAGE_SIDE, ImageTable, html_page
from utils.scoring.kg_reward import KGScorer, kg_scorer_from_env

PAGE_SIZE = 50


def reasoning_marks(record: dict) -> dict:
    """What a page marks on a response: `consistency` (does the reasoning support the answer:
    utils/scoring/consistency.py) and `samples_right` ([right, drawn] of the samples at the rollout temperature, or
    None without samples).

    >>> reasoning_marks({"consistency": "contradicts", "samples_correct_strict": [True, False, False]})
    {'consistency': 'contradicts', 'samples_right': [1, 3]}
    """
    sampled = record.get("samples_correct_strict")
    return {
        "consistency": record.get("consistency"),
        "samples_right": [sum(map(bool, sampled)), len(sampled)] if sampled else None,
    }


def evaluation_samples(results: Sequence[dict], images: ImageTable, scorer: KGScorer) -> list[dict]:
    """The page's sample records for evaluation results (`results.json`'s `results`)."""
    responses = [r.get("generated_text") or "" for r in results]
    views = analyse(responses, [r.get("explanation") or "" for r in results], scorer)
    samples = []
    for record, response, view in zip(results, responses, views):
        probabilities = record.get("token_probabilities") or []
        samples.append(
            {
                "id": record["id"],
                "question": record["question"],
                "answer": record["answer"],
                "response": response,
                "correct": bool(record.get("is_correct")),
                "correct_strict": bool(record.get("is_correct_strict")),
                **{field: str(record.get(field)) for field in TYPE_FIELDS},
                "images": images.indices(record.get("image_paths") or []),
                "tokens": record.get("generated_tokens") or [],
                "probabilities": probabilities,
                "alternatives": [
                    [[alt["token"], 2.718281828459045 ** alt["logprob"]] for alt in alts]
                    for alts in record.get("top_alternatives") or []
                ],
                "min_probability": min(probabilities) if probabilities else None,
                "error": record.get("error"),
                **reasoning_marks(record),
                **view,
            }
        )
    return samples


def evaluation_summary(results: Sequence[dict], samples: Sequence[dict]) -> dict:
    """Accuracy and strict accuracy per type as results.json has them (`summarize`: samples with an error are left
    out), mean KG agreement over the same samples, and the KG agreement histogram."""
    accuracy = summarize(results)
    scored = [s for s in samples if not s["error"]]
    kg = per_type(scored, lambda rows: sum(r["rewards"]["external_kg_jac"] for r in rows) / len(rows) if rows else 0.0)
    by_type = {}
    for field, groups in kg.items():
        blocks = {"all": accuracy["overall"]} if field == "overall" else accuracy[field]
        by_type[field] = {
            name: {
                "n": blocks[name]["num_samples"],
                "accuracy": blocks[name]["accuracy"],
                "accuracy_strict": blocks[name]["accuracy_strict"],
                "kg_jac": mean_kg,
                "contradiction_rate": blocks[name].get("contradiction_rate"),
                "headroom": blocks[name].get("headroom"),
            }
            for name, mean_kg in groups.items()
        }
    return {
        "by_type": by_type,
        "num_errors": accuracy["num_errors"],
        "kg_histogram": kg_histogram([s["rewards"]["external_kg_jac"] for s in scored]),
        "kg_note": "external_kg_jac = (entity IoU + relation IoU) / 2 between the response's reasoning and the "
        "reference's, as the training reward computes it. Samples with an error are left out, as in results.json.",
    }


def render_report(
    results: Sequence[dict],
    title: str,
    low_threshold: float = 0.5,
    scorer: KGScorer | None = None,
    image_side: int = DEFAULT_IMAGE_SIDE,
) -> str:
    """The report page for evaluation results; token shading where they carry `generated_tokens`. `scorer` defaults
    to the one the KG rewards use (`kg_scorer_from_env`)."""
    images = ImageTable(image_side)
    samples = evaluation_samples(results, images, scorer or kg_scorer_from_env())
    payload = {
        "samples": samples,
        "images": images.uris,
        "summary": evaluation_summary(results, samples),
        "reward_names": list(REWARD_NAMES),
        "low_threshold": low_threshold,
        "page_size": PAGE_SIZE,
        "total": len(samples),
    }
    return html_page(title, payload, "report.js")
