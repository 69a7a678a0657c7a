"""A GRPO run's completions.jsonl as one HTML page: each step's groups with rewards, advantages and token shading.

    .venv/bin/python tools/completions_report.py output/grpo/<run> [--output page.html]

Reads RUN_DIR/completions.jsonl (written with --log_completions true, as train.sh does), dynamic_sampling.jsonl
(the groups dynamic sampling dropped, when it ran) and logging.jsonl (the curves). Writes `--output` (default:
RUN_DIR/completions.html) and its step chunks in `<output stem>_files/`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.cli import ArgumentParser  # noqa: E402
from utils.io import InputError, read_jsonl  # noqa: E402
from utils.reports.completions import write_completions_report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a GRPO output folder (train.sh's OUTPUT_DIR)")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    completions = args.run_dir / "completions.jsonl"
    try:
        if not completions.is_file():
            raise InputError(f"{completions}: file not found (train with --log_completions true, as train.sh does)")
        rows = list(read_jsonl(completions))
        dropped_file, logging_file = args.run_dir / "dynamic_sampling.jsonl", args.run_dir / "logging.jsonl"
        dropped = list(read_jsonl(dropped_file)) if dropped_file.is_file() else []
        logging_rows = list(read_jsonl(logging_file)) if logging_file.is_file() else []
        for number, row in enumerate(rows, 1):
            if not isinstance(row, dict) or not isinstance(row.get("completion"), list):
                raise InputError(f"{completions}: line {number}: not a completions row (no 'completion' list)")
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    output = args.output or args.run_dir / "completions.html"
    counts = write_completions_report(rows, dropped, logging_rows, output, f"completions: {args.run_dir.name}")
    steps, chunks, dropped_groups = counts["steps"], counts["chunks"], counts["dropped_groups"]
    print(f"{output}: {steps} steps in {chunks} chunk files, {dropped_groups} groups dropped by dynamic sampling")
    return 0


if __name__ == "__main__":
    sys.exit(main())
