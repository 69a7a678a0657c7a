"""What changed between two evaluations of the same split, as one HTML page (flips first).

    .venv/bin/python tools/compare_runs.py output/eval/sft/test_basic output/eval/grpo/test_basic \
        --labels SFT GRPO --output compare_test_basic.html

BEFORE and AFTER are evaluate.py outputs: a split folder or its results.json. Correctness is the strict metric by
default (`--metric original` for the substring one). The KG graphs and rewards are the training's (CHEX_KG_BACKEND
and friends pick the extractor, as for the rewards). Writes `--output` (default: `compare.html` in AFTER's folder).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.cli import ArgumentParser  # noqa: E402
from utils.io import InputError, atomic_write_text, read_json  # noqa: E402
from utils.reports.compare import RunMismatch, render_comparison  # noqa: E402


def results_of(path: Path) -> tuple[Path, list[dict]]:
    """The results file of an evaluation output (a split folder or its results.json) and its `results` list."""
    file = path / "results.json" if path.is_dir() else path
    results = read_json(file)
    if not isinstance(results, dict) or not isinstance(results.get("results"), list):
        raise InputError(f"{file}: expected an evaluation results JSON with a 'results' list")
    for index, record in enumerate(results["results"]):
        missing = [key for key in ("id", "question", "generated_text", "explanation") if key not in record]
        if missing:
            raise InputError(f"{file}: results[{index}]: missing field {missing[0]!r}")
    return file, results["results"]


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path, help="the first evaluation (split folder or results.json)")
    parser.add_argument("after", type=Path, help="the second evaluation of the same split")
    parser.add_argument("--labels", nargs=2, default=("before", "after"), metavar=("BEFORE", "AFTER"))
    parser.add_argument("--metric", choices=("strict", "original"), default="strict")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    try:
        before_file, before = results_of(args.before)
        after_file, after = results_of(args.after)
        title = f"{args.labels[0]} → {args.labels[1]}: {after_file.parent.name}"
        page = render_comparison(before, after, tuple(args.labels), title, args.metric)
    except (InputError, RunMismatch) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    output = args.output or after_file.with_name("compare.html")
    atomic_write_text(output, page)
    print(f"{output}: {len(before)} samples, {args.labels[0]} → {args.labels[1]} ({args.metric} metric)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
