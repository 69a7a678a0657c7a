"""Check annotation files or GRPO training files and report every problem with its place and field.

    python tools/validate_data.py data/MIMIC-VQA-CoT/annotations/eval/*.json --img_root data/MIMIC-VQA-CoT/images
    python tools/validate_data.py data/MIMIC-VQA-CoT/annotations/hard_uniform/1000.jsonl --workers 8
    python tools/validate_data.py pool.json --pool --img_root images/     # also needs the sampler's fields
    python tools/validate_data.py set.jsonl --good-output run/dataset_checked.jsonl \
        --skipped-output run/skipped_rows.jsonl                          # keep the good rows instead of stopping

Checks the JSON structure, required fields and their types, the `<image>` placeholders of GRPO rows, and that every
image exists and decodes in full (`--no-images` skips that), over `--workers` processes with a progress bar. Decode
results are cached by path, size and modification time (`--cache`, default `$CHEX_CACHE_DIR/image_checks.json` or
`~/.cache/chex-phi4mm/`), so checking the same set again costs almost nothing. A place is `line N` (1-based) in a
JSON-lines file and `index N` (0-based) in a JSON list. Exit code 0 when clean, 2 when any problem was found; with
`--good-output` (one input file), the good rows are written there, the skipped ones with their problems to
`--skipped-output`, and the exit code is 0 unless no row is good.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.cli import ArgumentParser  # noqa: E402
from utils.data.annotations import POOL_FIELDS  # noqa: E402
from utils.data.validation import ImageCheckCache, check_file, default_cache_path  # noqa: E402
from utils.io import atomic_write_jsonl  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--kind", choices=("auto", "annotations", "grpo"), default="auto")
    parser.add_argument("--img_root", type=Path, help="annotation files: folder of <image_id>.png")
    parser.add_argument("--base-dir", type=Path, default=Path("."), help="GRPO rows: base of relative image paths")
    parser.add_argument("--no-images", action="store_true", help="skip decoding the images")
    parser.add_argument("--pool", action="store_true", help="annotations must carry the sampler's fields too")
    parser.add_argument("--workers", type=int, default=1, help="processes that decode images (default 1)")
    parser.add_argument("--cache", type=Path, default=None, help="image-check cache file (see above)")
    parser.add_argument("--no-cache", action="store_true", help="decode every image, and remember nothing")
    parser.add_argument("--good-output", type=Path, help="write the rows without problems here (JSON lines)")
    parser.add_argument("--skipped-output", type=Path, help="with --good-output: the skipped rows and why")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers {args.workers}: must be 1 or more")
    if args.good_output and len(args.files) != 1:
        parser.error("--good-output takes exactly one input file")
    cache = None if args.no_cache or args.no_images else ImageCheckCache(args.cache or default_cache_path())
    found = 0
    for path in args.files:
        check = check_file(
            path,
            args.kind,
            args.img_root,
            not args.no_images,
            POOL_FIELDS if args.pool else (),
            args.base_dir,
            workers=args.workers,
            cache=cache,
            progress=True,
        )
        problems = check.messages()
        for problem in problems:
            print(problem)
        found += len(problems)
        bad_rows = len(check.row_problems)
        if not problems:
            print(f"{path}: ok ({len(check.records)} rows)")
        elif bad_rows:
            print(f"{path}: {bad_rows} of {len(check.records)} rows have problems", file=sys.stderr)
        if args.good_output:
            good = check.good_records()
            skipped = [{"place": None, "problems": [problem]} for problem in check.file_problems] + [
                {"place": check.records[i][0], "problems": check.row_problems[i], "row": check.records[i][1]}
                for i in sorted(check.row_problems)
            ]
            if not good:
                print(f"{path}: no good rows left to write", file=sys.stderr)
                return 2
            atomic_write_jsonl(args.good_output, good)
            if args.skipped_output:
                atomic_write_jsonl(args.skipped_output, skipped)
            print(f"{path}: kept {len(good)} rows in {args.good_output}, skipped {len(skipped)}", file=sys.stderr)
            return 0
    if found:
        print(f"{found} problem(s)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
