"""Convert annotations (original format) into ms-swift GRPO rows, or SFT rows with `--sft` (JSON lines).

    python tools/convert_to_grpo.py --annotations data/MIMIC-VQA-CoT/annotations/eval/valid_all_vqa.json \
        --img_root data/MIMIC-VQA-CoT/images --output train.jsonl [--relative-to .]

Each row: the user turn with one `<image>` placeholder per image before the question, image paths (absolute, or
relative to `--relative-to`, which must then be ms-swift's working directory), `solution` = the explanation, the
answers and the ids. See utils/data/grpo_rows.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.cli import ArgumentParser  # noqa: E402
from utils.data.annotations import load_annotations  # noqa: E402
from utils.data.grpo_rows import annotation_to_grpo_row, annotation_to_sft_row  # noqa: E402
from utils.io import InputError, atomic_write_jsonl  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotations", type=Path, required=True)
    parser.add_argument("--img_root", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--relative-to", type=Path, help="write image paths relative to this folder")
    parser.add_argument("--limit", type=int, help="convert only the first N annotations")
    parser.add_argument("--sft", action="store_true", help="SFT rows: the explanation as the assistant turn")
    args = parser.parse_args(argv)
    try:
        rows = load_annotations(args.annotations, required=("image_ids", "question", "answer", "explanation"))
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    to_row = annotation_to_sft_row if args.sft else annotation_to_grpo_row
    converted = [to_row(row, args.img_root, args.relative_to) for row in rows[: args.limit]]
    atomic_write_jsonl(args.output, converted)
    print(f"{args.output}: {len(converted)} {'SFT' if args.sft else 'GRPO'} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
