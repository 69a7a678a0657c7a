"""The closing summary of `make demo`: accuracy before and after GRPO per split, KG agreement before and after, the
reward curves, and where every output is.

    python tools/demo_summary.py demo_out
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.training_logs import read_training_log, reward_means, step_metrics  # noqa: E402

SPLITS = ("test_basic", "test_compare", "test_region")


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def summary_lines(out: Path) -> list[str]:
    """The lines printed (see the module docstring); a missing file shows as '-'."""
    lines = ["", "== demo summary (tiny random-init model, synthetic data: a plumbing check, not a result)", ""]
    lines.append(f"{'split':14s} {'accuracy before':>16s} {'after':>7s} {'strict before':>14s} {'after':>7s}")
    moved = []
    for split in SPLITS:
        before = _load(out / "eval_before" / split / "summary.json")
        after = _load(out / "eval_after" / split / "summary.json")
        if not before or not after:
            lines.append(f"{split:14s} {'-':>16s}")
            continue
        b, a = before["overall"], after["overall"]
        lines.append(
            f"{split:14s} {b['accuracy']:16.3f} {a['accuracy']:7.3f} {b['accuracy_strict']:14.3f} "
            f"{a['accuracy_strict']:7.3f}"
        )
        moved.append((a["accuracy_strict"] - b["accuracy_strict"], a["num_samples"]))
    if moved:
        mean = sum(change for change, _ in moved) / len(moved)
        one_sample = 1 / min(n for _, n in moved)
        verdict = "moved" if abs(mean) > one_sample else "did not move beyond one sample's worth"
        lines.append(
            f"strict accuracy {verdict}: mean change {mean:+.3f} over {len(moved)} splits "
            f"(one sample = {one_sample:.3f})"
        )
    kg = {when: _load(out / f"kg_{when}" / "kg_metric.json") for when in ("before", "after")}
    if all(kg.values()):
        lines.append(
            "KG agreement of the reasoning with the references (test_basic, micro F1): entities "
            f"{kg['before']['entity_micro_f1']:.3f} -> {kg['after']['entity_micro_f1']:.3f}, relations "
            f"{kg['before']['relation_micro_f1']:.3f} -> {kg['after']['relation_micro_f1']:.3f}"
        )
    logging = out / "grpo" / "logging.jsonl"
    series = step_metrics(read_training_log(logging)) if logging.is_file() else {}
    if series.get("rewards/KGJaccard/mean"):
        first, last = reward_means(series, 0), reward_means(series, -1)
        lines.append(
            f"GRPO rewards, first -> last step ({len(series['rewards/KGJaccard/mean'])} logged): accuracy "
            f"{first.get('R1VAccuracy', float('nan')):.3f} -> {last.get('R1VAccuracy', float('nan')):.3f}, KG Jaccard "
            f"{first['KGJaccard']:.3f} -> {last['KGJaccard']:.3f}"
        )
    lines += ["", "outputs:"]
    for label, path in (
        ("SFT warm-up checkpoint", out / "sft"),
        ("scored pool (is_correct from our evaluation)", out / "pool_scored.json"),
        ("GRPO run (logging.jsonl, completions.jsonl with token log-probs)", out / "grpo"),
        ("reward curves (PNG)", out / "grpo" / "plots"),
        ("evaluation before GRPO", out / "eval_before"),
        ("evaluation after GRPO", out / "eval_after"),
        ("token probabilities + browser report", out / "token_prob" / "test_basic" / "report.html"),
        ("KG metrics", out / "kg_after" / "kg_metric.json"),
    ):
        lines.append(f"  {label:66s} {path}{'' if path.exists() else '  (missing)'}")
    return lines


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path("demo_out")
    print("\n".join(summary_lines(out)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
