"""Check annotation files or GRPO training files and report every problem with its index and field.

    python tools/validate_data.py data/MIMIC-VQA-CoT/annotations/eval/*.json --img_root data/MIMIC-VQA-CoT/images
    python tools/validate_data.py data/MIMIC-VQA-CoT/annotations/hard_uniform/1000.jsonl
    python tools/validate_data.py pool.json --pool --img_root images/     # also needs the sampler's fields

Checks the JSON structure, required fields and their types, the `<image>` placeholders of GRPO rows, and that every
image exists and opens (`--no-images` skips that). Exit code 0 when clean, 2 when any problem was found.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.data.annotations import POOL_FIELDS  # noqa: E402
from utils.data.validation import validate_file  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--kind", choices=("auto", "annotations", "grpo"), default="auto")
    parser.add_argument("--img_root", type=Path, help="annotation files: folder of <image_id>.png")
    parser.add_argument("--base-dir", type=Path, default=Path("."), help="GRPO rows: base of relative image paths")
    parser.add_argument("--no-images", action="store_true", help="skip opening the images")
    parser.add_argument("--pool", action="store_true", help="annotations must carry the sampler's fields too")
    args = parser.parse_args(argv)
    found = 0
    for path in args.files:
        problems = validate_file(
            path, args.kind, args.img_root, not args.no_images, POOL_FIELDS if args.pool else (), args.base_dir
        )
        for problem in problems:
            print(problem)
        found += len(problems)
        if not problems:
            print(f"{path}: ok")
    if found:
        print(f"{found} problem(s)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
