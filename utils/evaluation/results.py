"""The evaluation core's pure half: items, correctness, streamed and resumable results, summaries, the chart.

The model half (`utils/evaluation/engine.py`) turns items into generations; `utils/evaluation/runner.py` wires both for
`evaluate.py` and `evaluate_token_prob.py`.

Correctness, both reported:
- `is_correct` (the original metric): some reference answer, lowercased, is a substring of the whole lowercased
  response. Lenient: "no" is found in "no pneumothorax, but a large effusion", and a response listing every option
  is correct.
- `is_correct_strict`: the response's `<answer>` span, split into comma-separated items (the parser the rewards
  use), equals the set of reference answers. A response without an `<answer>` span is wrong.

>>> original_correct("<answer>Left</answer> lung", ["left"]), strict_correct("<answer>Left</answer>", ["left"])
(True, True)
>>> strict_correct("<answer>left, right</answer>", ["left"])
False
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from utils.data.annotations import TYPE_FIELDS, image_path, reference_answers
from utils.io import InputError, atomic_save_figure
from utils.scoring.answers import answer_items, answer_span
from utils.scoring.consistency import CONSISTENT, CONTRADICTS
from utils.scoring.consistency import check as check_consistency
from utils.scoring.rewards import think_answer_format


@dataclass(frozen=True)
class EvalItem:
    """One annotation to evaluate: `id` is its position in the annotation file (stable across runs)."""

    id: int
    annotation: dict
    image_paths: tuple[str, ...]


def build_items(annotations: Sequence[dict], img_root: str | os.PathLike) -> list[EvalItem]:
    """Items for every annotation, image paths resolved under `img_root`."""
    return [
        EvalItem(i, row, tuple(image_path(stem, img_root) for stem in row["image_ids"]))
        for i, row in enumerate(annotations)
    ]


def image_error(paths: Iterable[str]) -> str | None:
    """None when every image exists and decodes; otherwise a message naming the first bad one."""
    from PIL import Image

    for path in paths:
        if not os.path.isfile(path):
            return f"image not found: {path}"
        try:
            with Image.open(path) as image:
                image.load()
        except Exception as error:  # PIL raises many types for corrupt files; the message says which
            return f"image unreadable: {path} ({type(error).__name__}: {error})"
    return None


def original_correct(response: str, answers: Sequence[str]) -> bool:
    """The original metric: any lowercased reference answer is a substring of the lowercased response."""
    text = response.lower() if isinstance(response, str) else ""
    return any(answer.lower().strip() and answer.lower().strip() in text for answer in answers)


def strict_correct(response: str, answers: Sequence[str]) -> bool:
    """The strict metric: the items of the `<answer>` span equal the set of reference answers."""
    span = answer_span(response)
    if span is None:
        return False
    reference = frozenset().union(*(answer_items(a) for a in answers)) if answers else frozenset()
    return answer_items(span) == reference


def result_record(item: EvalItem, generation: dict | None, error: str | None = None) -> dict:
    """The results-file entry of one item: the original fields plus strict correctness, types and `error`."""
    row = item.annotation
    answers = reference_answers(row)
    text = generation["generated_text"] if generation else ""
    record = {
        "id": item.id,
        "idx": row.get("idx"),
        "image_ids": row["image_ids"],
        "question": row["question"],
        "answer": row["answer"],
        "explanation": row.get("explanation"),
        "generated_text": text,
        "answer_span": answer_span(text),
        "is_correct": bool(generation) and original_correct(text, answers),
        "is_correct_strict": bool(generation) and strict_correct(text, answers),
        # does the reasoning support the answer it gives (utils/scoring/consistency.py)
        "consistency": check_consistency(row["question"], text).verdict if generation else None,
        "image_paths": list(item.image_paths),
        **{field: row.get(field) for field in TYPE_FIELDS},
        "error": error,
    }
    if generation:
        record.update({k: v for k, v in generation.items() if k not in ("generated_text", "samples")})
    if generation and "samples" in generation:
        record["samples"] = list(generation["samples"])
        record["samples_correct_strict"] = [strict_correct(sample, answers) for sample in generation["samples"]]
    return record


def contradictions(rows: Sequence[dict]) -> tuple[int, int]:
    """(responses whose reasoning contradicts their answer, responses the consistency check could judge).

    >>> contradictions([{"consistency": "contradicts"}, {"consistency": "consistent"}, {"consistency": "unchecked"}])
    (1, 2)
    """
    checked = [row for row in rows if row.get("consistency") in (CONSISTENT, CONTRADICTS)]
    return sum(row["consistency"] == CONTRADICTS for row in checked), len(checked)


def headroom(rows: Sequence[dict]) -> dict | None:
    """What GRPO can learn on `rows`, from K samples per item at the rollout temperature: pass@1 (the greedy answer,
    strict), pass@K (some sample right) and the share of items whose samples are mixed, some right and some wrong.
    Only a mixed group gives GRPO an accuracy advantage that is not zero; the rest is what dynamic sampling drops.
    None when the rows carry no samples.

    >>> rows = [{"is_correct_strict": False, "samples_correct_strict": [False, True]},
    ...         {"is_correct_strict": True, "samples_correct_strict": [True, True]}]
    >>> headroom(rows)
    {'num_samples_per_item': 2, 'pass_at_1': 0.5, 'pass_at_k': 1.0, 'mixed': 0.5, 'wrong_but_sampled_right': 0.5}
    """
    sampled = [r for r in rows if r.get("samples_correct_strict")]
    if not sampled:
        return None
    n = len(sampled)
    return {
        "num_samples_per_item": max(len(r["samples_correct_strict"]) for r in sampled),
        "pass_at_1": sum(bool(r["is_correct_strict"]) for r in sampled) / n,
        "pass_at_k": sum(any(r["samples_correct_strict"]) for r in sampled) / n,
        "mixed": sum(any(r["samples_correct_strict"]) and not all(r["samples_correct_strict"]) for r in sampled) / n,
        "wrong_but_sampled_right": sum(
            not r["is_correct_strict"] and any(r["samples_correct_strict"]) for r in sampled
        )
        / n,
    }


def shard(items: Sequence, rank: int, world_size: int) -> list:
    """The items rank `rank` of `world_size` evaluates (round robin, so batches stay mixed)."""
    return list(items[rank::world_size])


class ResultStream:
    """Append-only JSONL of finished records for one rank, flushed and fsynced per batch.

    A run killed mid-write can leave a partial last line; opening the stream drops it, so a resumed run neither
    duplicates nor loses a finished record.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                with open(self.path, "r+b") as handle:
                    handle.truncate(data.rfind(b"\n") + 1)
        self._handle = open(self.path, "a", encoding="utf-8")

    def append(self, records: Iterable[dict]) -> None:
        """Write records and make them durable before returning."""
        for record in records:
            self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


def read_parts(folder: str | os.PathLike) -> dict[int, dict]:
    """Finished records of every rank's part file in `folder`, by item id (a partial last line is ignored)."""
    done: dict[int, dict] = {}
    for part in sorted(Path(folder).glob("part-*.jsonl")):
        lines = part.read_text(encoding="utf-8").split("\n")
        for lineno, line in enumerate(lines[:-1], 1):  # the text after the last newline is unfinished
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise InputError(f"{part}: line {lineno}: malformed result ({error.msg})") from None
                done.setdefault(record["id"], record)
    return done


def summarize(results: Sequence[dict]) -> dict:
    """Accuracy overall and per semantic_type / question_type / answer_type, original and strict metrics, and the
    share of outputs in the `<think>…</think><answer>…</answer>` format, over the samples without errors; error count
    alongside."""
    scored = [r for r in results if not r.get("error")]

    def block(rows: Sequence[dict]) -> dict:
        n = len(rows)
        figures = {
            "num_samples": n,
            "accuracy": sum(r["is_correct"] for r in rows) / n if n else 0.0,
            "accuracy_strict": sum(r["is_correct_strict"] for r in rows) / n if n else 0.0,
            # the share of outputs in the trained format, what `external_format` rewards
            "format": sum(think_answer_format(r.get("generated_text", "")) for r in rows) / n if n else 0.0,
        }
        contradicting, checked = contradictions(rows)
        figures["consistency_checked"] = checked
        figures["contradiction_rate"] = contradicting / checked if checked else None
        room = headroom(rows)
        return {**figures, "headroom": room} if room else figures

    summary = {"overall": block(scored), "num_errors": len(results) - len(scored)}
    for field in TYPE_FIELDS:
        groups: dict[str, list[dict]] = defaultdict(list)
        for row in scored:
            groups[str(row.get(field))].append(row)
        summary[field] = {name: block(rows) for name, rows in sorted(groups.items())}
    return summary


def final_results(results: Sequence[dict], summary: dict, meta: dict) -> dict:
    """The results JSON: the original's `results`, `accuracy`, `num_samples`, plus strict accuracy, the summary and
    run metadata."""
    return {
        "results": list(results),
        "accuracy": summary["overall"]["accuracy"],
        "num_samples": len(results),
        "accuracy_strict": summary["overall"]["accuracy_strict"],
        "num_errors": summary["num_errors"],
        "summary": summary,
        **meta,
    }


def format_summary(summary: dict, title: str) -> str:
    """A plain-text table of the summary (what the scripts print)."""
    lines = [f"{title}", f"{'group':40s} {'n':>6s} {'accuracy':>9s} {'strict':>8s} {'format':>7s}"]

    def line(name: str, block: dict) -> str:
        return (
            f"{name:40s} {block['num_samples']:6d} {block['accuracy']:9.3f} {block['accuracy_strict']:8.3f} "
            f"{block['format']:7.3f}"
        )

    lines.append(line("overall", summary["overall"]))
    for field in TYPE_FIELDS:
        for name, block in summary[field].items():
            lines.append(line(f"{field}={name}", block))
    lines.append(f"samples with errors (not scored): {summary['num_errors']}")
    overall = summary["overall"]
    if overall.get("contradiction_rate") is not None:
        lines.append(
            f"reasoning contradicts its answer: {overall['contradiction_rate']:.3f} of the "
            f"{overall['consistency_checked']} checkable responses"
        )
    room = summary["overall"].get("headroom")
    if room:
        lines.append(
            f"headroom from {room['num_samples_per_item']} samples per item: pass@1 {room['pass_at_1']:.3f}, "
            f"pass@{room['num_samples_per_item']} {room['pass_at_k']:.3f}, mixed groups {room['mixed']:.3f} "
            "(only these give GRPO an accuracy advantage), wrong but sampled right "
            f"{room['wrong_but_sampled_right']:.3f}"
        )
    return "\n".join(lines)


def accuracy_chart(summary: dict, path: str | os.PathLike, title: str) -> None:
    """A bar chart of accuracy per type (original and strict), written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, original, strict = ["overall"], [summary["overall"]["accuracy"]], [summary["overall"]["accuracy_strict"]]
    for field in TYPE_FIELDS:
        for name, block in summary[field].items():
            labels.append(f"{field.split('_')[0]}: {name} (n={block['num_samples']})")
            original.append(block["accuracy"])
            strict.append(block["accuracy_strict"])
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(labels) + 2), 4.5))
    positions = range(len(labels))
    ax.bar([p - 0.2 for p in positions], original, width=0.4, label="original (substring)")
    ax.bar([p + 0.2 for p in positions], strict, width=0.4, label="strict (answer span)")
    ax.set_xticks(list(positions), labels, rotation=40, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    atomic_save_figure(fig, path)
    plt.close(fig)
