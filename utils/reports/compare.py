"""What changed between two evaluations of the same split (say the SFT and the GRPO checkpoint), as one page.

Samples that flipped come first (right→wrong, then wrong→right), each with both reasonings side by side and their
knowledge graphs against the reference (the KG reward's scorer), then the rest. The summary gives accuracy and KG
agreement per type before and after, each with the noise of one evaluation (binomial standard error for accuracy,
standard error of the mean for KG agreement), so a change can be read against it.

>>> from utils.scoring.kg_reward import get_kg_scorer
>>> rows = [{"id": 0, "question": "Q?", "answer": ["yes"], "explanation": "<answer>yes</answer>",
...          "generated_text": "<answer>no</answer>", "is_correct_strict": False, "image_paths": []}]
>>> after = [{**rows[0], "generated_text": "<answer>yes</answer>", "is_correct_strict": True}]
>>> payload = comparison_payload(rows, after, ("SFT", "GRPO"), "strict", get_kg_scorer("rules"), ImageTable())
>>> payload["samples"][0]["flip"], payload["summary"]["overall"]["all"]["accuracy"]
('wrong→right', [0.0, 1.0])
"""

from __future__ import annotations

from collections.abc import Sequence

from utils.data.annotations import TYPE_FIELDS
from utils.evaluation.learning import binomial_se
from utils.evaluation.results import contradictions
from utils.reports.analysis import analyse, mean_and_se, per_type
from utils.reports.evaluation import reasoning_marks
from utils.reports.page import ImageTable, html_page
from utils.scoring.kg_reward import KGScorer, kg_scorer_from_env

FLIP_ORDER = {"right→wrong": 0, "wrong→right": 1, "same": 2}


class RunMismatch(ValueError):
    """The two evaluations are not of the same samples."""


def _correct(record: dict, metric: str) -> bool:
    return bool(record.get("is_correct_strict" if metric == "strict" else "is_correct"))


def _side(records: Sequence[dict], scorer: KGScorer) -> list[dict]:
    responses = [r.get("generated_text") or "" for r in records]
    return analyse(responses, [r.get("explanation") or "" for r in records], scorer)


def comparison_payload(
    before: Sequence[dict],
    after: Sequence[dict],
    labels: tuple[str, str],
    metric: str,
    scorer: KGScorer,
    images: ImageTable,
) -> dict:
    """The page's data for two runs' `results` lists (paired by `id`; both must hold the same questions)."""
    by_id = {r["id"]: r for r in after}
    if sorted(by_id) != sorted(r["id"] for r in before):
        raise RunMismatch(f"the two evaluations hold different samples ({len(before)} and {len(after)} ids)")
    after = [by_id[r["id"]] for r in before]
    for old, new in zip(before, after):
        if old["question"] != new["question"]:
            raise RunMismatch(f"sample {old['id']}: different questions ({old['question']!r} / {new['question']!r})")
    views_before, views_after = _side(before, scorer), _side(after, scorer)
    samples = []
    for old, new, view_old, view_new in zip(before, after, views_before, views_after):
        was, now = _correct(old, metric), _correct(new, metric)
        flip = "same" if was == now else ("right→wrong" if was else "wrong→right")
        samples.append(
            {
                "id": old["id"],
                "question": old["question"],
                "answer": old["answer"],
                "flip": flip,
                **{field: str(old.get(field)) for field in TYPE_FIELDS},
                "images": images.indices(old.get("image_paths") or []),
                "runs": [
                    {"response": r.get("generated_text") or "", "correct": c, **reasoning_marks(r), **view}
                    for r, c, view in ((old, was, view_old), (new, now, view_new))
                ],
            }
        )
    samples.sort(key=lambda s: (FLIP_ORDER[s["flip"]], s["id"]))
    return {
        "samples": samples,
        "labels": list(labels),
        "metric": metric,
        "summary": comparison_summary(samples),
        "total": len(samples),
        "page_size": 50,
    }


def _mixed_share(samples_right: Sequence[list[int] | None]) -> float | None:
    """The share of items whose samples are mixed (some right, some wrong), None when no item was sampled."""
    drawn = [pair for pair in samples_right if pair]
    return sum(0 < right < total for right, total in drawn) / len(drawn) if drawn else None


def comparison_summary(samples: Sequence[dict]) -> dict:
    """Per type: n, [before, after] accuracy with its binomial SE, [before, after] mean KG agreement with its SE,
    and the flip counts."""

    def block(rows: Sequence[dict]) -> dict:
        n = len(rows)
        out = {"n": n, "accuracy": [], "accuracy_se": [], "kg_jac": [], "kg_jac_se": []}
        for run in (0, 1):
            accuracy = sum(r["runs"][run]["correct"] for r in rows) / n if n else 0.0
            kg, kg_se = mean_and_se([r["runs"][run]["rewards"]["external_kg_jac"] for r in rows])
            out["accuracy"].append(accuracy)
            out["accuracy_se"].append(binomial_se(accuracy, n) if n else 0.0)
            out["kg_jac"].append(kg)
            out["kg_jac_se"].append(kg_se)
        out["flips"] = {name: sum(r["flip"] == name for r in rows) for name in ("right→wrong", "wrong→right")}
        # [contradicting, checkable] responses, and the share of items with mixed samples, per run
        out["contradictions"] = [list(contradictions([r["runs"][run] for r in rows])) for run in (0, 1)]
        out["mixed"] = [_mixed_share([r["runs"][run]["samples_right"] for r in rows]) for run in (0, 1)]
        return out

    return per_type(samples, block)


def render_comparison(
    before: Sequence[dict],
    after: Sequence[dict],
    labels: tuple[str, str],
    title: str,
    metric: str = "strict",
    scorer: KGScorer | None = None,
) -> str:
    """The comparison page of two evaluations' `results` lists."""
    images = ImageTable()
    payload = comparison_payload(before, after, labels, metric, scorer or kg_scorer_from_env(), images)
    payload["images"] = images.uris
    return html_page(title, payload, "compare.js")
