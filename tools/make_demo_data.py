"""Generate the synthetic MIMIC-VQA-CoT-like dataset under the original folder layout.

    python tools/make_demo_data.py --root data/MIMIC-VQA-CoT --seed 0

writes `<root>/images/<image_id>.png` and `<root>/annotations/eval/<split>.json` for the splits test_basic_vqa,
test_compare_vqa, test_region_vqa and the validation pool valid_all_vqa. The same seed gives byte-identical files.
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
from utils.data.synthetic_cxr import SPLITS, build_annotations, render_study  # noqa: E402
from utils.io import atomic_write_json  # noqa: E402

logger = logging.getLogger("make_demo_data")
DEFAULT_ROOT = Path(__file__).resolve().parents[1] / "data" / "MIMIC-VQA-CoT"


def generate(root: Path, seed: int, test_size: int, pool_size: int, image_size: int) -> dict[str, int]:
    """Write every split and its images; returns the number of rows per split."""
    rng = random.Random(seed)
    counts = {}
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
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="dataset root (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-size", type=int, default=32, help="rows per test split")
    parser.add_argument("--pool-size", type=int, default=240, help="rows in the valid_all_vqa pool")
    parser.add_argument("--image-size", type=int, default=112, help="square image side in pixels")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    counts = generate(args.root, args.seed, args.test_size, args.pool_size, args.image_size)
    for split, count in counts.items():
        logger.info("%-18s %4d rows -> %s", split, count, args.root / "annotations" / "eval" / f"{split}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
