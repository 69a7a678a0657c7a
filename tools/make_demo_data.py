"""Generate the synthetic MIMIC-VQA-CoT-like dataset under the original folder layout.

    python tools/make_demo_data.py --root data/MIMIC-VQA-CoT --seed 0

writes `<root>/images/<image_id>.png` and `<root>/annotations/eval/<split>.json` for the splits test_basic_vqa,
test_compare_vqa, test_region_vqa and the validation pool valid_all_vqa. The same seed gives byte-identical files.

With a teacher (any `--teacher-*` rate above 0), it also writes the pool's SFT explanations as a teacher with those
error rates writes them (`utils/data/synthetic_cxr.Teacher`), to `<root>/annotations/sft/valid_all_vqa.json`, each
row's `teacher_error` naming the error made, and `<root>/teacher.json`: the rates, the errors written, and per test
split the ids of the items of each kind the teacher errs on. The evaluation and pool references stay true.

    python tools/make_demo_data.py --root data/demo --teacher-under-call 0.6 --teacher-wrong-side 0.6 \
        --teacher-contradiction 0.5
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tqdm import tqdm  # noqa: E402

from utils.cli import ArgumentParser  # noqa: E402
from utils.data.synthetic_cxr import (  # noqa: E402
    SPLITS,
    TEACHER_ERROR_KINDS,
    Teacher,
    build_annotations,
    render_study,
    teacher_error_kind,
    teacher_rows,
)
from utils.io import atomic_write_json, read_json  # noqa: E402

logger = logging.getLogger("make_demo_data")
DEFAULT_ROOT = Path(__file__).resolve().parents[1] / "data" / "MIMIC-VQA-CoT"


def generate(
    root: Path, seed: int, test_size: int, pool_size: int, image_size: int, teacher: Teacher | None = None
) -> dict[str, int]:
    """Write every split and its images, and with a `teacher` its SFT rows and `teacher.json`; returns the number of
    rows per split."""
    rng = random.Random(seed)
    counts, card = {}, {"seed": seed, "rates": teacher.rates() if teacher else None, "test_items": {}}
    (root / "images").mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        rows, studies = build_annotations(split, pool_size if split == "valid_all_vqa" else test_size, rng)
        for stem, study in tqdm(sorted(studies.items()), desc=f"images {split}", leave=False, disable=None):
            target = root / "images" / f"{stem}.png"
            tmp = target.with_suffix(".png.tmp")
            render_study(study, image_size, random.Random(stem)).save(tmp, format="PNG")
            tmp.replace(target)
        atomic_write_json(root / "annotations" / "eval" / f"{split}.json", rows)
        counts[split] = len(rows)
        if teacher is None:
            continue
        if split == "valid_all_vqa":
            written = teacher_rows(rows, studies, teacher, random.Random(f"teacher-{seed}"))
            atomic_write_json(root / "annotations" / "sft" / f"{split}.json", written)
            card["sft_file"] = f"annotations/sft/{split}.json"
            card["errors_written"] = {
                kind: {
                    "written": sum(row["teacher_error"] == kind for row in written),
                    "of_items": sum(_error_kind(row, studies) == kind for row in rows),
                }
                for kind in TEACHER_ERROR_KINDS
            }
        else:
            card["test_items"][split.removesuffix("_vqa")] = {
                kind: [i for i, row in enumerate(rows) if _error_kind(row, studies) == kind]
                for kind in TEACHER_ERROR_KINDS
            }
    if teacher is not None:
        atomic_write_json(root / "teacher.json", card)
    return counts


def _error_kind(row: dict, studies: dict[str, dict]) -> str | None:
    return teacher_error_kind([studies[stem] for stem in row["image_ids"]], row["question"])


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="dataset root (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-size", type=int, default=32, help="rows per test split")
    parser.add_argument("--pool-size", type=int, default=240, help="rows in the valid_all_vqa pool")
    parser.add_argument("--image-size", type=int, default=112, help="square image side in pixels")
    for kind in TEACHER_ERROR_KINDS:
        parser.add_argument(
            f"--teacher-{kind.replace('_', '-')}",
            type=_rate,
            default=0.0,
            help=f"rate of the teacher's {kind.replace('_', ' ')} errors in the SFT explanations (default: 0)",
        )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rates = {kind: getattr(args, f"teacher_{kind}") for kind in TEACHER_ERROR_KINDS}
    teacher = Teacher(**rates) if any(rates.values()) else None
    counts = generate(args.root, args.seed, args.test_size, args.pool_size, args.image_size, teacher)
    for split, count in counts.items():
        logger.info("%-18s %4d rows -> %s", split, count, args.root / "annotations" / "eval" / f"{split}.json")
    if teacher is not None:
        card = read_json(args.root / "teacher.json")
        made = ", ".join(
            f"{kind} {e['written']} of {e['of_items']} (rate {rates[kind]})"
            for kind, e in card["errors_written"].items()
        )
        logger.info("teacher's SFT explanations -> %s; errors written: %s", args.root / card["sft_file"], made)
    return 0


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a rate is between 0 and 1, not {text}")
    return value


if __name__ == "__main__":
    sys.exit(main())
