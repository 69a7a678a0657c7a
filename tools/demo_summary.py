"""The closing summary of `make demo`: what the SFT warm-up reached (format, accuracy on the questions the image
decides against the image-blind majority answer), what GRPO moved (training reward, strict accuracy) against the noise
of one evaluation, the questions a model answers the same whatever the image (what it does not see), KG agreement,
and where every output is.

    python tools/demo_summary.py demo_out [--data_root demo_out/synthetic-data]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.cli import ArgumentParser  # noqa: E402
from utils.data.synthetic_cxr import decided_by_image  # noqa: E402
from utils.evaluation.learning import learning_outcome  # noqa: E402
from utils.io import read_json  # noqa: E402

FORMAT_TARGET = 0.9


def _against_noise(change: float, noise: float) -> str:
    if abs(change) > 2 * noise:
        return f"moved by more than twice the noise of one evaluation ({noise:.3f})"
    return f"did NOT move beyond the noise of one evaluation (2 x {noise:.3f})"


def _headroom(room: dict | None) -> str:
    if not room:
        return "not sampled"
    k = room["num_samples_per_item"]
    return f"pass@1 {room['pass_at_1']:.3f}, pass@{k} {room['pass_at_k']:.3f}, mixed {room['mixed']:.3f}"


def summary_lines(out: Path, data_root: Path) -> list[str]:
    """The lines printed (see the module docstring)."""
    lines = ["", "== demo summary (tiny model trained from scratch on synthetic studies, CPU)", ""]
    outcome = learning_outcome(out, data_root, decided_by_image)
    if outcome is None:
        return lines + ["evaluations missing: no learning figures"]
    lines.append(f"{'split':14s} {'n':>4s} {'format SFT -> GRPO':>19s} {'strict SFT -> GRPO':>19s}")
    for split, stages in outcome["per_split"].items():
        b, a = stages["before"], stages["after"]
        lines.append(
            f"{split:14s} {b['n']:4d} {b['format']:10.3f} -> {a['format']:.3f} "
            f"{b['strict']:10.3f} -> {a['strict']:.3f}"
        )
    before, after = outcome["before"], outcome["after"]
    reached = "reached" if before["format"] >= FORMAT_TARGET else "NOT reached"
    beats = "beats" if before["decided_strict"] > before["decided_majority"] else "does NOT beat"
    lines += [
        "",
        f"SFT warm-up: format {before['format']:.3f} on the test splits ({reached}; target >= {FORMAT_TARGET}); "
        f"on the {before['n_decided']} questions the image decides, strict accuracy {before['decided_strict']:.3f} "
        f"{beats} the image-blind majority answer ({before['decided_majority']:.3f}).",
    ]
    pool = out / "eval_pool" / "valid_all_vqa" / "results.json"
    room = read_json(pool)["summary"]["overall"].get("headroom") if pool.is_file() else None
    if room:
        k = room["num_samples_per_item"]
        lines.append(
            f"Headroom on the pool before GRPO ({k} samples per item): pass@1 {room['pass_at_1']:.3f}, pass@{k} "
            f"{room['pass_at_k']:.3f}; {room['mixed']:.3f} of the items have mixed samples, the only ones that give "
            f"GRPO an accuracy advantage; {room['wrong_but_sampled_right']:.3f} are wrong at greedy but right in a "
            "sample."
        )
    curve = outcome["reward_curve"]
    if curve:
        lines.append(
            f"GRPO training accuracy reward, mean of the first vs last quarter of {curve[2]} steps: "
            f"{curve[0]:.3f} -> {curve[1]:.3f} ({curve[1] - curve[0]:+.3f})."
        )
    change, noise = outcome["strict_change"], outcome["evaluation_se"]
    lines.append(
        f"GRPO strict accuracy on all {before['n']} test questions: {before['strict']:.3f} -> {after['strict']:.3f} "
        f"({change:+.3f}): {_against_noise(change, noise)}. Image-decided questions: "
        f"{before['decided_strict']:.3f} -> {after['decided_strict']:.3f}. Seed-to-seed spread: "
        "bench/learning_bench.py (figures in the README)."
    )
    taught = outcome["teacher_errors"]
    if taught:
        b, a = taught["before"], taught["after"]
        lines.append(
            f"On the {b['n']} test questions of the kinds the SFT teacher answers wrongly (data_root/teacher.json): "
            f"{b['strict']:.3f} -> {a['strict']:.3f} ({taught['change']:+.3f}): "
            f"{_against_noise(taught['change'], taught['evaluation_se'])}."
        )
    rooms = outcome["headroom"]
    if any(rooms.values()):
        lines.append(
            f"Headroom on the test questions: SFT {_headroom(rooms['before'])}; GRPO {_headroom(rooms['after'])}."
        )
    (b_bad, b_n), (a_bad, a_n) = outcome["contradictions"]["before"], outcome["contradictions"]["after"]
    lines.append(
        f"Reasoning that contradicts its own answer, of the responses the check can judge: {b_bad} of {b_n} "
        f"-> {a_bad} of {a_n} (utils/scoring/consistency.py). Reasoning KG F1 against the reference: "
        f"{outcome['kg_f1']['before']:.3f} -> {outcome['kg_f1']['after']:.3f}."
    )
    for stage, model in (("before", "The SFT model"), ("after", "The GRPO model")):
        blind = outcome["one_answer"][stage]
        if blind:
            listing = "; ".join(
                f"{question!r}: {answer!r} to all {n} ({n - right} of them another answer)"
                for question, (answer, n, right) in blind.items()
            )
            lines.append(f"{model} gives one answer to every item of a question whose references differ: {listing}.")
    kg_files = {when: out / f"kg_{when}" / "kg_metric.json" for when in ("before", "after")}
    if all(path.is_file() for path in kg_files.values()):
        kg = {when: read_json(path) for when, path in kg_files.items()}
        lines.append(
            "KG agreement of the reasoning with the references (test_basic, micro F1): entities "
            f"{kg['before']['entity_micro_f1']:.3f} -> {kg['after']['entity_micro_f1']:.3f}, relations "
            f"{kg['before']['relation_micro_f1']:.3f} -> {kg['after']['relation_micro_f1']:.3f}"
        )
    lines += ["", "outputs:"]
    for label, path in (
        ("SFT warm-up checkpoint", out / "sft"),
        ("scored pool (is_correct from our evaluation)", out / "pool_scored.json"),
        ("GRPO run (logging.jsonl, completions.jsonl with token log-probs)", out / "grpo"),
        ("reward curves (PNG)", out / "grpo" / "plots"),
        ("evaluation before GRPO", out / "eval_before"),
        ("evaluation after GRPO", out / "eval_after"),
        ("report: X-rays, graphs, rewards, token shading", out / "token_prob" / "test_basic" / "report.html"),
        ("what GRPO rewarded: the completions page", out / "grpo" / "completions.html"),
        ("what GRPO changed: SFT vs GRPO, a page per split", out / "compare" / "test_basic.html"),
        ("KG metrics", out / "kg_after" / "kg_metric.json"),
    ):
        lines.append(f"  {label:66s} {path}{'' if path.exists() else '  (missing)'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", type=Path, default=Path("demo_out"))
    parser.add_argument("--data_root", type=Path, help="dataset the demo used (default: <out>/synthetic-data)")
    args = parser.parse_args(argv)
    print("\n".join(summary_lines(args.out, args.data_root or args.out / "synthetic-data")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
