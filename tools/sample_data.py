"""Build GRPO training sets from a pool of SFT-scored annotations (hard-example mining).

    python tools/sample_data.py                                   # hard_uniform + uniform, sizes 1000 2000 5000
    python tools/sample_data.py --sample_types hard_uniform --sizes 2000 --seed 7 --allow-short

Reads the pool (original annotation format with `is_correct`, default
`<data_root>/annotations/eval/valid_all_vqa.json`), writes each set as GRPO rows to
`<data_root>/annotations/<sample_type>/<size>.jsonl` (exactly what train_loop.sh reads) with a manifest next to it
(`<size>.manifest.json`: seed, SHA-256 of the pool file, counts per stratum), and prints the strata table.
It warns when all drawn items of a stratum have one answer that most of the pool's items there do not (a model
blind to a finding gets every item of one answer wrong, so mining keeps only those).
Same pool + same seed gives byte-identical files. See utils/data/sampling.py for the sampling rules.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.cli import ArgumentParser  # noqa: E402
from utils.data.annotations import POOL_FIELDS, load_annotations  # noqa: E402
from utils.data.grpo_rows import annotation_to_grpo_row  # noqa: E402
from utils.data.sampling import (  # noqa: E402
    DEFAULT_SEED,
    DEFAULT_SIZES,
    SAMPLE_TYPES,
    STRATUM_FIELDS,
    ShortPoolError,
    draw,
    manifest_path,
    one_answer_strata,
    training_set_path,
)
from utils.io import InputError, atomic_write_json, atomic_write_jsonl  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def learnable_count(rows: list[dict]) -> int | None:
    """How many rows the SFT model got wrong at greedy but right in a sample, or None when the pool carries no samples.

    >>> learnable_count([{"is_correct": False, "sampled_right": True}, {"is_correct": True, "sampled_right": True}])
    1
    """
    if not rows or any("sampled_right" not in row for row in rows):
        return None
    return sum(row["is_correct"] is False and row["sampled_right"] is True for row in rows)


def strata_table(sampled, title: str) -> str:
    """The printed table: one line per stratum with available items, quota and items taken."""
    lines = [title, f"  {'semantic / question / answer type':48s} {'available':>9s} {'quota':>6s} {'taken':>6s}"]
    for key, counts in sampled.strata.items():
        quota = "-" if counts["quota"] is None else str(counts["quota"])
        lines.append(f"  {' / '.join(key):48s} {counts['available']:9d} {quota:>6s} {counts['taken']:6d}")
    lines.append(
        f"  {'total':48s} {sum(c['available'] for c in sampled.strata.values()):9d} "
        f"{sampled.requested_size:6d} {len(sampled.rows):6d}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_root", type=Path, default=REPO / "data" / "MIMIC-VQA-CoT")
    parser.add_argument("--pool", type=Path, help="default: <data_root>/annotations/eval/valid_all_vqa.json")
    parser.add_argument("--img_root", type=Path, help="default: <data_root>/images")
    parser.add_argument("--sample_types", nargs="+", choices=SAMPLE_TYPES, default=["hard_uniform", "uniform"])
    parser.add_argument("--sizes", nargs="+", type=int, default=list(DEFAULT_SIZES))
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--allow-short", action="store_true", help="take what small strata have, redistribute the rest"
    )
    parser.add_argument(
        "--relative-to", type=Path, help="write image paths relative to this folder (default: absolute)"
    )
    args = parser.parse_args(argv)
    pool_path = args.pool or args.data_root / "annotations" / "eval" / "valid_all_vqa.json"
    img_root = args.img_root or args.data_root / "images"
    try:
        pool = load_annotations(pool_path, required=POOL_FIELDS)
        pool_sha256 = hashlib.sha256(pool_path.read_bytes()).hexdigest()
        for sample_type in args.sample_types:
            for size in args.sizes:
                sampled = draw(pool, sample_type, size, args.seed, args.allow_short)
                if not sampled.rows:
                    hint = {
                        "hard_uniform": " (no item has is_correct false)",
                        "hard_random": " (no item has is_correct false)",
                        "learnable": " (no item is wrong at greedy and right in a sample)",
                    }.get(sample_type, "")
                    raise InputError(f"{pool_path}: {sample_type} {size}: the pool has no item to draw{hint}")
                output = training_set_path(args.data_root, sample_type, size)
                rows = [annotation_to_grpo_row(row, img_root, args.relative_to) for row in sampled.rows]
                atomic_write_jsonl(output, rows)
                atomic_write_json(
                    manifest_path(output),
                    {
                        "sample_type": sample_type,
                        "requested_size": size,
                        "size": len(rows),
                        "seed": args.seed,
                        "pool": str(pool_path),
                        "pool_sha256": pool_sha256,
                        # rows wrong at greedy but right in a sample (None: the pool was scored without samples)
                        "learnable": learnable_count(sampled.rows),
                        "strata": [
                            {"stratum": dict(zip(STRATUM_FIELDS, key)), **counts}
                            for key, counts in sampled.strata.items()
                        ],
                    },
                )
                print(strata_table(sampled, f"{sample_type} {size} -> {output}"))
                if len(rows) < size:
                    why = "--allow-short" if args.allow_short else "the pool has no more"
                    print(f"  warning: only {len(rows)} of {size} items ({why})", file=sys.stderr)
                for skewed in one_answer_strata(pool, sampled.rows):
                    print(f"  warning: {skewed.describe()}", file=sys.stderr)
    except (InputError, ShortPoolError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
