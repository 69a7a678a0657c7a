"""Measure every prompt of a GRPO training file against MAX_LENGTH before a run starts (train.sh calls it).

    python tools/check_prompt_length.py --model checkpoints/chex-phi4mm-sft \
        --dataset data/MIMIC-VQA-CoT/annotations/hard_uniform/5000.jsonl --max_length 4096 --dynamic_hd 4

Text tokens come from the model's ms-swift template (the SFT chat format), image tokens from each image's size at
`--dynamic_hd` crops (no pixels are decoded). A prompt longer than `--max_length` stops with exit code 2 and the
numbers, unless `--allow-truncation`, which only reports. `--report FILE` writes the figures as JSON (atomically).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from utils.cli import ArgumentParser  # noqa: E402
from utils.data.prompt_budget import PromptBudget, PromptLength  # noqa: E402
from utils.io import InputError, atomic_write_json  # noqa: E402
from utils.log import get_logger  # noqa: E402

logger = get_logger("check_prompt_length")


def _rows(path: Path) -> list[tuple[int, dict]]:
    if not path.is_file():
        raise InputError(f"{path}: no such dataset file")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}: line {number}: not JSON ({error.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
            raise InputError(f"{path}: line {number}: field 'messages': missing or not a list")
        rows.append((number, row))
    return rows


def measure(model: str, dataset: Path, max_length: int, dynamic_hd: int, model_type: str) -> PromptBudget:
    """Every row's prompt length through the model's template (see the module docstring)."""
    from PIL import Image
    from swift.model import get_processor
    from swift.template import get_template
    from swift.utils import import_external_file
    from tqdm import tqdm

    from swift_patches.image_processor import image_token_count

    import_external_file(str(REPO / "plugin.py"))
    processor = get_processor(model, model_type=model_type, download_model=False)
    template = get_template(processor, template_type=model_type, truncation_strategy="right")
    template.set_mode("transformers")
    image_processor = processor.image_processor
    crop_size = getattr(image_processor, "crop_size", None) or image_processor.size["height"]
    patch_size = getattr(image_processor, "patch_size", 14)
    lengths = []
    for line, row in tqdm(_rows(dataset), desc="prompt lengths", unit="row"):
        # The image tags become image tokens only: count the text without them, the images from their sizes.
        messages = [
            {**message, "content": re.sub(r"<image>", "", message.get("content") or "")}
            for message in row["messages"]
            if message.get("role") != "assistant"
        ]
        text_tokens = len(template.encode({"messages": messages})["input_ids"])
        image_tokens = 0
        for image in row.get("images") or []:
            path = image if isinstance(image, str) else image.get("path", "")
            try:
                with Image.open(path) as opened:
                    width, height = opened.size
            except OSError as error:
                raise InputError(f"{dataset}: line {line}: field 'images': {path}: {error}") from None
            image_tokens += image_token_count(width, height, crop_size, patch_size, dynamic_hd)
        lengths.append(PromptLength(line, text_tokens, image_tokens))
    return PromptBudget(max_length=max_length, dynamic_hd=dynamic_hd, lengths=lengths)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint folder")
    parser.add_argument("--dataset", required=True, type=Path, help="GRPO rows (JSON lines)")
    parser.add_argument("--max_length", required=True, type=int)
    parser.add_argument("--dynamic_hd", required=True, type=int, help="maximum image crops")
    parser.add_argument("--model_type", default="phi4_mm_native")
    parser.add_argument("--allow-truncation", action="store_true", help="report over-long prompts, do not stop")
    parser.add_argument("--report", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    try:
        budget = measure(args.model, args.dataset, args.max_length, args.dynamic_hd, args.model_type)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.report:
        atomic_write_json(args.report, budget.to_json())
    print(f"check_prompt_length: {args.dataset}: {budget.describe()}")
    if budget.over_limit and not args.allow_truncation:
        print(
            f"error: {len(budget.over_limit)} prompts exceed MAX_LENGTH={args.max_length} (lines "
            f"{[p.line for p in budget.over_limit[:10]]}): raise MAX_LENGTH, lower DYNAMIC_HD, or set "
            "ALLOW_TRUNCATION=1 to train on truncated prompts",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
